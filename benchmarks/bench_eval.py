"""Time the evaluation of one 100k-point scene on CPU, stage by stage.

Stages: input features + voxelisation + voxel labels (the batch), the network forward, and the
map back to the original points + confusion-matrix update. The scene is a synthetic room
(``ppkt.data.synthetic``, the pretraining demo's dataset) cut to exactly ``--points`` points.

    python benchmarks/bench_eval.py                      # demo model: res16unet14 x0.5, 5 cm
    python benchmarks/bench_eval.py --backbone res16unet34 --width 1 --voxel 0.025   # paper size
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from ppkt.data.synthetic import ensure_dataset
from ppkt.data.types import LabeledScene
from ppkt.eval.config import EvalDataConfig, FinetuneConfig, ModelConfig
from ppkt.eval.data import ScanNetSceneSource, collate_scenes, scene_sample
from ppkt.eval.finetune import build_model
from ppkt.eval.metrics import ConfusionMatrix


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--backbone", default="res16unet14")
    parser.add_argument("--width", type=float, default=0.5)
    parser.add_argument("--voxel", type=float, default=0.05)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    root = ensure_dataset(scenes=6, frames_per_scene=8, seed=0, image_hw=(120, 160), progress=False)
    source = ScanNetSceneSource(root)
    scene = source.read(source.scene_ids("val")[0])
    if scene.num_points < args.points:
        raise SystemExit(f"the synthetic scene has only {scene.num_points} points")
    keep = np.sort(np.random.default_rng(0).choice(scene.num_points, args.points, replace=False))
    scene = LabeledScene(
        scene.points[keep], scene.colors[keep], scene.labels[keep], scene.scene_id, scene.class_names
    )

    cfg = FinetuneConfig(
        data=EvalDataConfig(num_classes=20),
        model=ModelConfig(
            backbone=args.backbone, width=args.width, voxel_size=args.voxel, input_features="rgb"
        ),
    )
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    times: dict[str, list[float]] = {"batch": [], "forward": [], "map+metrics": [], "total": []}
    cpu_times: list[float] = []
    num_voxels = 0
    for _ in range(args.repeats):
        c0 = time.process_time()
        t0 = time.perf_counter()
        batch = collate_scenes([scene_sample(scene, "rgb", 20)], args.voxel, 20)
        t1 = time.perf_counter()
        with torch.no_grad():
            logits = model(batch.sparse.tensor)
        t2 = time.perf_counter()
        pred = logits.argmax(dim=1)[batch.sparse.point_to_voxel]
        cm = ConfusionMatrix(20)
        cm.update(pred, batch.point_labels)
        cm.compute()
        t3 = time.perf_counter()
        cpu_times.append(time.process_time() - c0)
        num_voxels = batch.sparse.tensor.num_sites
        for name, value in zip(times, (t1 - t0, t2 - t1, t3 - t2, t3 - t0), strict=True):
            times[name].append(value)
    print(
        f"scene {args.points} points -> {num_voxels} voxels at {args.voxel} m; "
        f"{args.backbone} x{args.width}; torch threads {torch.get_num_threads()}; median of {args.repeats}"
    )
    for name, values in times.items():
        print(f"  {name:12s} {statistics.median(values):7.3f} s wall")
    # CPU time of this process (all its threads): the figure that does not depend on other load
    print(f"  total CPU    {statistics.median(cpu_times):7.3f} s (process time, all threads)")


if __name__ == "__main__":
    main()
