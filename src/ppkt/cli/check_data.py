"""``ppkt check-data PATH``: index and decode a dataset, report usable and skipped frames by reason;
for ScanNet and SUN RGB-D also the 3D box annotations left out, by reason and named."""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ppkt.cli import non_negative_int, positive_int
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
        type=positive_int,
        default=None,
        help="check every k-th frame (default: what pretraining reads; ScanNet 25, others 1)",
    )
    parser.add_argument("--workers", type=non_negative_int, default=0, help="decoding worker processes")
    parser.add_argument(
        "--no-boxes",
        dest="boxes",
        action="store_false",
        help="ScanNet: skip the check of the scans' box annotations (it reads every annotated mesh)",
    )


def run(args: argparse.Namespace) -> int:
    from ppkt.data.check import scan_dataset

    # A path that is not there, or (with --strict) the first bad frame, is a one-line error (exit 2,
    # ppkt.cli.main); a scan that finds nothing usable prints its report and exits 1.
    report = scan_dataset(
        args.path,
        args.format,
        args.strict,
        frame_skip=args.frame_skip,
        workers=args.workers,
        boxes=args.boxes,
    )
    print(report.to_json() if args.json else report.format_text())
    if report.frames_usable == 0:
        print(f"ppkt check-data: no usable frame in {args.path}", file=sys.stderr)
        return 1
    return 0
