"""``ppkt viz``: pictures a person opens (PNG, PLY); no display needed."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="figure", required=True, metavar="FIGURE")

    curves = sub.add_parser("curves", help="training curves of a run (metrics.jsonl) as PNG")
    curves.add_argument("run", type=Path, help="run folder holding metrics.jsonl (or the file itself)")
    curves.add_argument("--out", type=Path, default=None, help="PNG path (default: RUN/curves.png)")
    curves.add_argument("--keys", nargs="*", default=None, help="metrics to plot (default: all numeric)")

    overlay = sub.add_parser("overlay", help="projected points on the image, coloured by depth")
    overlay.add_argument("data", type=Path, help="dataset root (any format check-data knows)")
    overlay.add_argument("--format", default="auto", help="dataset format (default: detect)")
    overlay.add_argument("--index", type=int, default=0, help="frame / sample index in the dataset")
    overlay.add_argument("--out", type=Path, default=Path("overlay.png"), help="PNG path")
    overlay.add_argument(
        "--every",
        type=int,
        default=0,
        help="draw every k-th point (default: about 4000 points, image stays visible)",
    )


def _open_dataset(path: Path, fmt: str):
    """The reader of a dataset format, opened on ``path`` with every frame kept."""
    from ppkt.data.check import detect_format

    fmt = detect_format(path) if fmt == "auto" else fmt
    if fmt == "scannet":
        from ppkt.data.scannet import ScanNetFrames

        return ScanNetFrames(path, frame_skip=1)
    if fmt == "7scenes":
        from ppkt.data.rgbd_sequences import SevenScenesFrames

        return SevenScenesFrames(path)
    if fmt == "tum":
        from ppkt.data.rgbd_sequences import TumFrames

        return TumFrames(path)
    if fmt == "nuscenes":
        from ppkt.data.nuscenes import NuScenesSamples

        versions = sorted(p.name for p in path.glob("v1.0-*") if p.is_dir())
        return NuScenesSamples(path, version=versions[0] if versions else "v1.0-mini")
    if fmt == "kitti":
        from ppkt.data.kitti import KittiObjectSamples

        return KittiObjectSamples(path)
    if fmt == "kitti-raw":
        from ppkt.data.kitti import KittiRawSamples

        return KittiRawSamples(path)
    if fmt == "semantickitti":
        from ppkt.data.semantickitti import SemanticKittiSamples

        return SemanticKittiSamples(path, with_labels=False, with_images=True)
    raise SystemExit(f"ppkt viz overlay: format {fmt!r} has no overlay (RGB-D and lidar+camera formats do)")


def _overlay(args: argparse.Namespace) -> int:
    import torch

    from ppkt.data.types import RGBDFrame
    from ppkt.geometry import lidar_camera_pairs, rgbd_pairs, transform_points
    from ppkt.viz.figures import correspondence_overlay
    from ppkt.viz.panels import hstack, save_png, vstack

    dataset = _open_dataset(args.data, args.format)
    if len(dataset) == 0:
        raise SystemExit(f"{args.data}: no usable frames")
    if not 0 <= args.index < len(dataset):
        raise SystemExit(f"--index {args.index} out of range: the dataset has {len(dataset)} frames")
    item = dataset[args.index]
    if isinstance(item, RGBDFrame):
        pairs = rgbd_pairs(torch.from_numpy(item.depth), item.K_depth, item.K_color, item.color_hw)
        every = args.every if args.every > 0 else max(len(pairs) // 4000, 1)
        keep = slice(None, None, every)
        picture = correspondence_overlay(item.color, pairs.uv[keep].numpy(), pairs.points[keep, 2].numpy())
        picture = hstack([item.color, picture], [f"{item.scene_id}/{item.frame_id}", "points by depth"])
    else:
        if not item.images:
            raise SystemExit(f"{args.data}: sample {item.sample_id} has no camera images")
        pairs = lidar_camera_pairs(item.points, item.images)
        panels = []
        for k, camera in enumerate(item.images):
            mine = pairs.image_index == k
            pts = pairs.points[pairs.point_index[mine]]
            depth = transform_points(torch.as_tensor(camera.camera_from_lidar, dtype=pts.dtype), pts)[:, 2]
            panels.append(correspondence_overlay(camera.image, pairs.uv[mine].numpy(), depth.numpy()))
        rows = [
            hstack(panels[k : k + 3], [c.name for c in item.images[k : k + 3]])
            for k in range(0, len(panels), 3)
        ]
        picture = vstack(rows)
    save_png(args.out, picture)
    print(f"wrote {args.out} ({picture.shape[1]}x{picture.shape[0]}, {len(pairs)} pairs)")
    return 0


def _curves(args: argparse.Namespace) -> int:
    from ppkt.viz.figures import read_metrics, training_curves_figure
    from ppkt.viz.panels import save_png

    path = args.run / "metrics.jsonl" if args.run.is_dir() else args.run
    if not path.is_file():
        raise SystemExit(f"{path}: no metrics file")
    out = args.out or (path.parent / "curves.png")
    save_png(out, training_curves_figure(read_metrics(path), args.keys))
    print(f"wrote {out}")
    return 0


def run(args: argparse.Namespace) -> int:
    if args.figure == "curves":
        return _curves(args)
    return _overlay(args)


__all__ = ["add_arguments", "run"]
