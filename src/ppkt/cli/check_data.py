"""``ppkt check-data PATH``: index and decode a dataset, report usable and skipped frames by reason."""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ppkt.data.registry import DATASETS

    parser.add_argument("path", help="dataset root, a scene / sequence folder, or a .sens file")
    checkable = [name for name, spec in DATASETS.items() if spec.detect is not None]
    parser.add_argument(
        "--format",
        default="auto",
        choices=["auto", *checkable],
        help="dataset format (default: detected, also one folder above or below PATH)",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--strict", action="store_true", help="stop at the first bad frame with its error")
    parser.add_argument(
        "--frame-skip",
        type=int,
        default=None,
        help="check every k-th frame (default: what pretraining reads; ScanNet 25, others 1)",
    )
    parser.add_argument("--workers", type=int, default=0, help="decoding worker processes")


def run(args: argparse.Namespace) -> int:
    from ppkt.data.check import scan_dataset
    from ppkt.data.report import FrameError

    try:
        report = scan_dataset(
            args.path, args.format, args.strict, frame_skip=args.frame_skip, workers=args.workers
        )
    except (FrameError, FileNotFoundError, ValueError) as err:
        print(f"ppkt check-data: {err}", file=sys.stderr)
        return 1
    print(report.to_json() if args.json else report.format_text())
    if report.frames_usable == 0:
        print(f"ppkt check-data: no usable frame in {args.path}", file=sys.stderr)
        return 1
    return 0
