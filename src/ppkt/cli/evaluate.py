"""``ppkt evaluate``: mIoU, mAcc and per-class IoU of a segmentation checkpoint or run."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "checkpoint", type=Path, help="a segmentation checkpoint (.safetensors) or a run folder"
    )
    parser.add_argument("--data.root", dest="data_root", type=Path, help="dataset root (default: the run's)")
    parser.add_argument("--split", help="split to evaluate (default: the run's data.val_split)")
    parser.add_argument("--device", default="auto", help="torch device (default: %(default)s)")
    parser.add_argument("--out", type=Path, help="also write metrics.json and metrics.md into this folder")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--json", action="store_true", help="print the metrics as JSON instead of a table")


def run(args: argparse.Namespace) -> int:
    from ppkt.eval.detection.loop import is_detection_checkpoint

    if is_detection_checkpoint(args.checkpoint):  # VoteNet: per-class AP and mAP
        from ppkt.cli.detection import run_evaluate

        return run_evaluate(args)
    import json

    from ppkt.eval.finetune import evaluate_checkpoint
    from ppkt.eval.model import model_file
    from ppkt.eval.training_loop import LOG
    from ppkt.utils.io import atomic_write_json, atomic_write_text

    checkpoints = args.checkpoint / "checkpoints"
    if args.checkpoint.is_dir() and not model_file(args.checkpoint).is_file():
        if (args.checkpoint / LOG).is_file():  # only fine-tuning runs write log.jsonl
            raise ValueError(
                f"{args.checkpoint}: a fine-tuning run without a best checkpoint yet (it stopped before "
                f"its first evaluation); continue it with ppkt finetune --resume {args.checkpoint}"
            )
        if (checkpoints / "latest").exists() or any(checkpoints.glob("step_*")):
            raise ValueError(
                f"{args.checkpoint}: a pretraining run; evaluate takes a fine-tuning run or checkpoint "
                f"(ppkt export {args.checkpoint}, then ppkt finetune --init <backbone>.safetensors)"
            )
    metrics, cfg = evaluate_checkpoint(
        args.checkpoint,
        data_root=args.data_root,
        split=args.split,
        device=args.device,
        progress=not args.no_progress,
    )
    split = args.split or cfg.data.val_split
    if args.json:
        print(json.dumps({"checkpoint": str(args.checkpoint), "split": split, **metrics.to_dict()}, indent=2))
    else:
        print(f"{args.checkpoint}: split {split}, {metrics.num_points} labelled points")
        print(metrics.to_markdown(), end="")
    if args.out is not None:
        atomic_write_json(
            args.out / "metrics.json",
            {"checkpoint": str(args.checkpoint), "split": split, **metrics.to_dict()},
        )
        atomic_write_text(args.out / "metrics.md", metrics.to_markdown())
    return 0
