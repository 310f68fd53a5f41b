"""``ppkt compare``: fine-tuning runs side by side, mean and std over seeds."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "runs", nargs="+", type=Path, help="run folders (each with config.yaml and metrics.json)"
    )
    parser.add_argument(
        "--which",
        choices=("best", "last"),
        default="best",
        help="checkpoint of each run (default: %(default)s)",
    )


def run(args: argparse.Namespace) -> int:
    from ppkt.eval.compare import format_comparison, group_runs, load_run

    groups = group_runs([load_run(p) for p in args.runs])
    print(format_comparison(groups, which=args.which), end="")
    return 0
