"""``ppkt viz``: pictures a person opens (PNG, PLY); no display needed."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="figure", required=True, metavar="FIGURE")

    curves = sub.add_parser("curves", help="training curves of a run (metrics.jsonl) as PNG")
    curves.add_argument("run", type=Path, help="run folder holding metrics.jsonl (or the file itself)")
    curves.add_argument("--out", type=Path, default=None, help="PNG path (default: RUN/pictures/curves.png)")
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

    for name, text in (
        ("features", "PCA of a pretraining run's point and pixel embeddings on one frame (PNG + PLY)"),
        ("similarity", "cosine similarity from one point to every pixel and point of a frame (PNG)"),
    ):
        fig = sub.add_parser(name, help=text)
        fig.add_argument("run", type=Path, help="pretraining run folder (config.yaml + checkpoints/)")
        fig.add_argument("--frame-index", type=int, default=0, help="frame of the run's dataset")
        fig.add_argument("--out", type=Path, default=None, help="output folder (default: RUN/pictures)")
        fig.add_argument("--checkpoint", type=Path, default=None, help="checkpoint folder (default: latest)")
        fig.add_argument("--data-root", type=Path, default=None, help="override the run's data.root")
        fig.add_argument("--device", default="cpu", help="torch device (cpu, cuda, auto)")
        if name == "similarity":
            query = fig.add_mutually_exclusive_group()
            query.add_argument("--point", type=int, default=None, help="query point index")
            query.add_argument(
                "--uv",
                type=float,
                nargs=2,
                metavar=("U", "V"),
                default=None,
                help="query the point seen nearest this pixel (default: the image centre)",
            )

    seg = sub.add_parser("segmentation", help="predictions of a fine-tuned model vs ground truth (PNG + PLY)")
    seg.add_argument(
        "checkpoint", type=Path, help="fine-tuning run folder (its best checkpoint) or .safetensors"
    )
    seg.add_argument("--scene", default=None, help="scene id (default: the first of the validation split)")
    seg.add_argument("--split", default=None, help="split to pick the scene from (default: data.val_split)")
    seg.add_argument(
        "--out",
        type=Path,
        default=None,
        help="PNG path; the PLY goes beside it (default: RUN/pictures/segmentation.png)",
    )
    seg.add_argument("--data-root", type=Path, default=None, help="override the checkpoint's data.root")
    seg.add_argument("--device", default="cpu", help="torch device (cpu, cuda, auto)")
    from ppkt.cli.detection import add_viz_arguments

    add_viz_arguments(sub)  # detections: VoteNet boxes over the points


def _device(name: str):
    from ppkt.engine.runtime import resolve_device

    return resolve_device(name)


def _pretrain_frame(args: argparse.Namespace):
    """(model, config, frame) of ``args.run`` at ``args.frame_index``."""
    from dataclasses import replace

    from ppkt.train.loop import build_frames, load_run_config
    from ppkt.viz.model_figures import load_pretrain_run

    cfg = load_run_config(args.run)
    if args.data_root is not None:
        cfg = replace(cfg, data=replace(cfg.data, root=args.data_root))
    frames = build_frames(cfg)
    if not 0 <= args.frame_index < len(frames):
        raise ValueError(
            f"--frame-index {args.frame_index} out of range: the run's data has {len(frames)} frames"
        )
    model, _, folder = load_pretrain_run(args.run, args.checkpoint)
    print(f"{folder}: frame {args.frame_index} of {len(frames)}")
    return model.to(_device(args.device)), cfg, frames[args.frame_index]


def _features(args: argparse.Namespace) -> int:
    from ppkt.viz.model_figures import pretrain_feature_figures

    model, cfg, frame = _pretrain_frame(args)
    out = pretrain_feature_figures(model, frame, cfg, args.out or args.run / "pictures")
    for path in (out.features_png, out.features_ply, out.backbone_png, out.backbone_ply):
        print(f"wrote {path}")
    return 0


def _similarity(args: argparse.Namespace) -> int:
    from ppkt.viz.model_figures import similarity_figures

    model, cfg, frame = _pretrain_frame(args)
    uv = tuple(args.uv) if args.uv is not None else None
    out_dir = args.out or args.run / "pictures"
    out = similarity_figures(model, frame, cfg, out_dir, point=args.point, uv=uv)
    print(f"query point {out.query_point} at pixel ({out.query_uv[0]:.0f}, {out.query_uv[1]:.0f})")
    print(f"wrote {out.png}")
    return 0


def _segmentation(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from ppkt.eval.finetune import build_source, load_checkpoint
    from ppkt.eval.model import model_file
    from ppkt.viz.model_figures import segmentation_figures

    path = model_file(args.checkpoint)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no fine-tuning checkpoint")
    model, cfg, class_names = load_checkpoint(path)
    if args.data_root is not None:
        cfg = replace(cfg, data=replace(cfg.data, root=args.data_root))
    source = build_source(cfg.data)
    scene_id = args.scene
    if scene_id is None:
        split = args.split or cfg.data.val_split
        ids = source.scene_ids(split)
        if not ids:
            raise ValueError(f"--split {split}: the split has no scenes")
        scene_id = ids[0]
    scene = source.read(scene_id)
    run_dir = path.parent.parent if path.parent.name == "checkpoints" else path.parent
    default_dir = run_dir / "pictures"
    png = args.out or default_dir / "segmentation.png"
    out = segmentation_figures(
        model.to(_device(args.device)),
        scene,
        cfg,
        class_names or source.class_names,
        png.parent,
        stem=png.stem,
    )
    print(
        f"{scene_id}: {len(out.predicted)} points, mIoU {100 * out.miou:.1f} %, "
        f"{100 * out.accuracy:.1f} % of labelled points right"
    )
    print(f"wrote {out.png}\nwrote {out.ply}")
    return 0


def _open_dataset(path: Path, fmt: str):
    """The frames of a dataset format from the registry, opened on ``path`` with every frame kept."""
    from ppkt.data.registry import FrameRequest, detect, get_spec, open_frames

    if fmt == "auto":
        detection = detect(path)
        fmt, path = detection.format, detection.root
        if detection.note:
            print(detection.note)
    if get_spec(fmt).open_frames is None:
        raise SystemExit(
            f"ppkt viz overlay: format {fmt!r} has no frames (RGB-D and lidar+camera formats do)"
        )
    return open_frames(fmt, FrameRequest(path, split=None, frame_skip=1))


def _overlay(args: argparse.Namespace) -> int:
    import torch

    from ppkt.data.types import RGBDFrame
    from ppkt.geometry import lidar_camera_pairs, rgbd_pairs, transform_points
    from ppkt.viz.figures import camera_overlays, correspondence_overlay
    from ppkt.viz.panels import hstack, save_png

    dataset = _open_dataset(args.data, args.format)
    if len(dataset) == 0:
        raise ValueError(f"{args.data}: no usable frames")
    if not 0 <= args.index < len(dataset):
        raise ValueError(f"--index {args.index} out of range: the dataset has {len(dataset)} frames")
    item = dataset[args.index]
    if isinstance(item, RGBDFrame):
        pairs = rgbd_pairs(
            torch.from_numpy(item.depth),
            item.K_depth,
            item.K_color,
            item.color_hw,
            color_from_depth=item.color_from_depth,  # unregistered cameras (7-Scenes, rgbd-folder)
        )
        every = args.every if args.every > 0 else max(len(pairs) // 4000, 1)
        keep = slice(None, None, every)
        picture = correspondence_overlay(item.color, pairs.uv[keep].numpy(), pairs.points[keep, 2].numpy())
        picture = hstack([item.color, picture], [f"{item.scene_id}/{item.frame_id}", "points by depth"])
    else:
        if not item.images:
            raise ValueError(f"{args.data}: sample {item.sample_id} has no camera images")
        pairs = lidar_camera_pairs(item.points, item.images)
        cameras = []
        for k, camera in enumerate(item.images):
            mine = pairs.image_index == k
            pts = pairs.points[pairs.point_index[mine]]
            depth = transform_points(torch.as_tensor(camera.camera_from_lidar, dtype=pts.dtype), pts)[:, 2]
            cameras.append((camera.name, camera.image, pairs.uv[mine].numpy(), depth.numpy()))
        picture = camera_overlays(cameras)
    save_png(args.out, picture)
    print(f"wrote {args.out} ({picture.shape[1]}x{picture.shape[0]}, {len(pairs)} pairs)")
    return 0


def _curves(args: argparse.Namespace) -> int:
    from ppkt.viz.figures import read_metrics, training_curves_figure
    from ppkt.viz.panels import save_png

    path = args.run / "metrics.jsonl" if args.run.is_dir() else args.run
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no metrics file")
    out = args.out or (path.parent / "pictures" / "curves.png")
    save_png(out, training_curves_figure(read_metrics(path), args.keys))
    print(f"wrote {out}")
    return 0


def run(args: argparse.Namespace) -> int:
    handlers = {
        "curves": _curves,
        "overlay": _overlay,
        "features": _features,
        "similarity": _similarity,
        "segmentation": _segmentation,
    }
    if args.figure == "detections":
        from ppkt.cli.detection import run_viz

        return run_viz(args)
    return handlers[args.figure](args)


__all__ = ["add_arguments", "run"]
