"""Detection on a GPU: point operations agree with the CPU, and a short demo-detection run trains.

    python benchmarks/check_detection_cuda.py --steps 100 --out runs/detection-cuda

1. FPS, ball query, rotated IoU and NMS on CUDA against the same calls on the CPU;
2. ``demo-detection`` on CUDA for ``--steps`` steps (evaluating every half), printing the AP table
   and the seconds per step.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import torch

from ppkt.eval.detection.loop import finetune_detection
from ppkt.eval.detection.presets import demo_detection
from ppkt.geometry.point_ops import ball_query, box_iou_3d, farthest_point_sample, nms_3d


def check_point_ops(device: torch.device) -> None:
    g = torch.Generator().manual_seed(0)
    pts = torch.rand(2, 5000, 3, generator=g) * 5
    fps_cpu = farthest_point_sample(pts, 256)
    fps_gpu = farthest_point_sample(pts.to(device), 256).cpu()
    print(f"FPS: {(fps_cpu == fps_gpu).float().mean().item() * 100:.1f} % of 2x256 indices equal")
    idx_c, cnt_c = ball_query(pts, pts[:, :100], 0.3, 16)
    idx_g, cnt_g = ball_query(pts.to(device), pts[:, :100].to(device), 0.3, 16)
    print(
        f"ball query: indices equal {torch.equal(idx_c, idx_g.cpu())}, "
        f"counts equal {torch.equal(cnt_c, cnt_g.cpu())}"
    )
    boxes = torch.cat(
        [
            torch.rand(300, 3, generator=g) * 4,
            0.2 + torch.rand(300, 3, generator=g),
            torch.rand(300, 1, generator=g) * 6 - 3,
        ],
        1,
    )
    iou_c, iou_g = box_iou_3d(boxes, boxes), box_iou_3d(boxes.to(device), boxes.to(device)).cpu()
    print(f"rotated IoU: max |cpu - cuda| {(iou_c - iou_g).abs().max().item():.2e}")
    scores = torch.rand(300, generator=g)
    keep_c = nms_3d(boxes, scores, 0.25)
    keep_g = nms_3d(boxes.to(device), scores.to(device), 0.25).cpu()
    print(f"NMS: kept {len(keep_c)} on cpu, equal on cuda {torch.equal(keep_c, keep_g)}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--out", type=Path, default=Path("runs/detection-cuda"))
    args = parser.parse_args()
    device = torch.device("cuda")
    print(torch.cuda.get_device_name(0), torch.__version__)
    check_point_ops(device)
    cfg = demo_detection()
    cfg = replace(
        cfg,
        optim=replace(cfg.optim, steps=args.steps),
        run=replace(cfg.run, out=args.out, device="cuda", eval_every=max(args.steps // 2, 1), progress=False),
    )
    started = time.perf_counter()
    result = finetune_detection(cfg)
    seconds = time.perf_counter() - started
    train = [json.loads(x) for x in (args.out / "log.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in train if r["event"] == "train"]
    vals = [(r["step"], r["mAP@0.25"], r["mAP@0.5"]) for r in train if r["event"] == "val"]
    print(
        f"demo-detection {args.steps} steps on cuda: {seconds:.0f} s in all "
        f"({seconds / args.steps:.2f} s/step incl. evaluation)"
    )
    print(f"loss first {losses[0]:.2f} last {losses[-1]:.2f}; validation (step, mAP@0.25, mAP@0.5): {vals}")
    print(result.best.to_markdown())


if __name__ == "__main__":
    main()
