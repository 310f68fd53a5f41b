"""``ppkt export RUN [--out FILE]``: the pretrained 3D backbone as safetensors + a JSON card."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", type=Path, metavar="RUN", help="pretraining run folder")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        metavar="FILE",
        help="output .safetensors (default RUN/backbone.safetensors); the card goes to FILE with .json",
    )


def run(args: argparse.Namespace) -> int:
    from ppkt.engine import NonFiniteError
    from ppkt.train.export import card_path_for, export_backbone
    from ppkt.utils.weights import StateDictMismatch

    try:
        out, card = export_backbone(args.run_dir, args.out)
    except (FileNotFoundError, ValueError, StateDictMismatch, NonFiniteError) as err:
        print(f"ppkt export: {err}", file=sys.stderr)
        return 2
    print(
        f"wrote {out} ({card.spec.backbone} width {card.spec.width}, {card.steps} steps, "
        f"teacher {card.teacher}) "
        f"and {card_path_for(out)}"
    )
    return 0
