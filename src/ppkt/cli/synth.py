"""``ppkt synth OUT``: render synthetic indoor rooms in the ScanNet exported-frames layout."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ppkt.cli import positive_float, positive_int

    parser.add_argument("out", type=Path, help="output folder (must not exist or be empty)")
    parser.add_argument(
        "--scenes", type=positive_int, default=12, help="number of rooms (default: %(default)s)"
    )
    parser.add_argument(
        "--frames-per-scene",
        type=positive_int,
        default=30,
        help="frames rendered per room (default: %(default)s)",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="master seed (room k uses [seed, k]) (default: %(default)s)"
    )
    parser.add_argument(
        "--height", type=positive_int, default=240, help="image height (default: %(default)s)"
    )
    parser.add_argument("--width", type=positive_int, default=320, help="image width (default: %(default)s)")
    parser.add_argument("--no-depth-noise", action="store_true", help="write noise-free depth")
    parser.add_argument("--no-ceiling", action="store_true", help="rooms without a ceiling")
    parser.add_argument(
        "--point-spacing", type=positive_float, default=0.02, help="scene cloud sample spacing, metres"
    )
    parser.add_argument(
        "--max-points",
        type=positive_int,
        default=150_000,
        help="cap on points per scene cloud (default: %(default)s)",
    )
    parser.add_argument("--no-labels", action="store_true", help="do not write per-pixel label/<i>.png")
    parser.add_argument(
        "--workers",
        type=positive_int,
        default=1,
        help="processes rendering rooms in parallel (default: %(default)s)",
    )
    parser.add_argument("--preview", action="store_true", help="also write OUT/preview.png (a contact sheet)")


def run(args: argparse.Namespace) -> int:
    from ppkt.data.synthetic import generate_dataset, write_preview

    if min(args.height, args.width) < 8:
        raise ValueError(f"--height/--width: images must be at least 8x8, got {args.height}x{args.width}")
    root = generate_dataset(
        args.out,
        scenes=args.scenes,
        frames_per_scene=args.frames_per_scene,
        seed=args.seed,
        image_hw=(args.height, args.width),
        depth_noise=not args.no_depth_noise,
        ceiling=not args.no_ceiling,
        point_spacing=args.point_spacing,
        max_points=args.max_points,
        write_labels=not args.no_labels,
        workers=args.workers,
    )
    print(f"wrote {args.scenes} rooms x {args.frames_per_scene} frames to {root}")
    if args.preview:
        print(f"preview: {write_preview(root, root / 'preview.png')}")
    return 0
