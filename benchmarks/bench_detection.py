"""Detection speed as ratios measured in one run (alternated, medians; the machine is noisy).

1. One VoteNet training step (forward, loss, backward, optimiser step) over one segmentation
   training step of the same backbone on the same batch: two synthetic demo rooms (the
   ``demo-detection`` / ``demo-finetune`` data, full rooms, no crop). Target: <= 1.5x.
2. Farthest point sampling of 50k points to 1024 over one dense pairwise-distance pass of the
   same size (``torch.cdist`` of 50k x 1024). Target: <= 5x.

    python benchmarks/bench_detection.py                 # demo model: res16unet14 x0.5, 5 cm
    python benchmarks/bench_detection.py --device cuda   # the same on a GPU
    python benchmarks/bench_detection.py --tiny --repeats 1   # seconds: tiny rooms, head and FPS (smoke run)
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from ppkt.data.registry import SyntheticRooms
from ppkt.eval.config import EvalDataConfig, FinetuneConfig, ModelConfig
from ppkt.eval.data import ScanNetSceneSource, SegmentationDataset
from ppkt.eval.detection.criterion import votenet_loss
from ppkt.eval.detection.data import DetectionDataset
from ppkt.eval.detection.loop import build_optimizer
from ppkt.eval.detection.model import build_detection_model, mean_box_sizes
from ppkt.eval.detection.presets import demo_detection
from ppkt.eval.finetune import _optimizer, build_model
from ppkt.geometry.point_ops import farthest_point_sample


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _timed(fn, device) -> float:
    _sync(device)
    t0 = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument(
        "--tiny",
        action="store_true",
        help="a smoke run in seconds: 3 small rooms in a temporary folder, 10 cm voxels, a small head, "
        "FPS of 5k points to 256 (the ratios then say nothing about the targets)",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    det_cfg = demo_detection()
    fps_points, fps_samples = 50_000, 1024
    if args.tiny:
        import tempfile
        from dataclasses import replace

        det_cfg = replace(
            det_cfg,
            data=replace(
                det_cfg.data, root=Path(tempfile.mkdtemp(prefix="ppkt-bench-detection-")),
                synthetic=SyntheticRooms(scenes=3, frames_per_scene=1, image_hw=(24, 32)),
            ),
            model=replace(det_cfg.model, width=0.25, voxel_size=0.1),
            head=replace(det_cfg.head, num_seeds=64, num_proposals=16, hidden=32, proposal_hidden=32),
        )  # fmt: skip
        fps_points, fps_samples = 5_000, 256
    from ppkt.eval.detection.loop import build_detection_source

    det_source = build_detection_source(det_cfg.data)
    ids = det_source.scene_ids("train")[:2]
    det_set = DetectionDataset(det_source, ids, voxel_size=det_cfg.model.voxel_size, input_features="rgb")
    det_batch = det_set.collate([det_set[0], det_set[1]]).to(device)
    sizes = mean_box_sizes([det_set.scene(i).boxes for i in range(2)], len(det_source.class_names))
    torch.manual_seed(0)
    det_model = build_detection_model(det_cfg, len(det_source.class_names), sizes).to(device).train()
    det_opt = build_optimizer(det_model, det_cfg)

    seg_cfg = FinetuneConfig(
        data=EvalDataConfig(num_classes=20),
        model=ModelConfig(
            backbone=det_cfg.model.backbone,
            width=det_cfg.model.width,
            voxel_size=det_cfg.model.voxel_size,
            input_features="rgb",
        ),
    )
    seg_source = ScanNetSceneSource(det_source.root)
    seg_set = SegmentationDataset(
        seg_source, ids, voxel_size=seg_cfg.model.voxel_size, input_features="rgb", num_classes=20
    )
    seg_batch = seg_set.collate([seg_set[0], seg_set[1]]).to(device)
    seg_model = build_model(seg_cfg).to(device).train()
    seg_opt = _optimizer(seg_model, seg_cfg)

    def det_step():
        losses = votenet_loss(det_model(det_batch), det_batch, det_model.head.mean_sizes, det_cfg.head)
        det_opt.zero_grad(set_to_none=True)
        losses.total.backward()
        det_opt.step()

    def seg_step():
        loss = F.cross_entropy(seg_model(seg_batch.sparse.tensor), seg_batch.voxel_labels, ignore_index=-1)
        seg_opt.zero_grad(set_to_none=True)
        loss.backward()
        seg_opt.step()

    det_step(), seg_step()  # warm-up
    det_t, seg_t = [], []
    for _ in range(args.repeats):
        det_t.append(_timed(det_step, device))
        seg_t.append(_timed(seg_step, device))
    print(
        f"scenes {ids}: {det_batch.points.shape[0]} points, {det_batch.sparse.tensor.num_sites} voxels, "
        f"{det_cfg.head.num_seeds} seeds, {det_cfg.head.num_proposals} proposals"
    )
    print(f"detection step  median {statistics.median(det_t):.3f} s")
    print(f"segmentation step median {statistics.median(seg_t):.3f} s")
    print(
        f"RATIO detection/segmentation step: {statistics.median(det_t) / statistics.median(seg_t):.2f}x "
        "(target <= 1.5x)"
    )

    g = torch.Generator().manual_seed(0)
    points = (torch.rand(fps_points, 3, generator=g) * torch.tensor([7.0, 6.0, 3.0])).to(device)
    queries = points[:fps_samples].clone()
    farthest_point_sample(points, fps_samples), torch.cdist(points, queries)  # warm-up
    fps_t, dense_t = [], []
    for _ in range(args.repeats):
        fps_t.append(_timed(lambda: farthest_point_sample(points, fps_samples), device))
        dense_t.append(_timed(lambda: torch.cdist(points, queries), device))
    print(
        f"FPS {fps_points} -> {fps_samples} median {statistics.median(fps_t) * 1000:.1f} ms; "
        f"cdist {fps_points} x {fps_samples} median {statistics.median(dense_t) * 1000:.1f} ms"
    )
    print(
        f"RATIO FPS/dense pass: {statistics.median(fps_t) / statistics.median(dense_t):.2f}x (target <= 5x)"
    )
    if args.tiny:
        import shutil

        shutil.rmtree(det_cfg.data.root, ignore_errors=True)


if __name__ == "__main__":
    main()
