"""The detection side of ``ppkt finetune --task detection``, ``ppkt evaluate`` (on a detection
checkpoint) and ``ppkt viz detections``; the commands' own modules call in here."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_finetune_arguments(parser: argparse.ArgumentParser) -> None:
    """``--task`` and the detection config's fields that segmentation does not have (shared names,
    e.g. ``--optim.steps``, are parsed by the config the task selects)."""
    from ppkt.config import _DOC, leaf_fields
    from ppkt.eval.config import FinetuneConfig
    from ppkt.eval.detection.config import DetectionConfig
    from ppkt.eval.detection.presets import DETECTION_PRESETS

    parser.add_argument(
        "--task",
        choices=("segmentation", "detection"),
        default="segmentation",
        help="segmentation (a per-point head) or detection (VoteNet; presets "
        + ", ".join(DETECTION_PRESETS.names)
        + "); default: %(default)s",
    )
    shared = {name for name, _, _ in leaf_fields(FinetuneConfig)}
    group = parser.add_argument_group("detection config", "fields only --task detection has")
    for name, _, f in leaf_fields(DetectionConfig):
        if name not in shared:
            group.add_argument(
                f"--{name}", dest=f"cfg:{name}", default=argparse.SUPPRESS, help=f.metadata.get(_DOC, "")
            )


def run_finetune(args: argparse.Namespace) -> int:
    """``ppkt finetune --task detection`` (the command's steps: ``ppkt.cli.finetune.finetune_command``)."""
    from ppkt.cli.finetune import finetune_command
    from ppkt.config import apply_overrides, load_config, overrides_from_namespace, rename_overrides
    from ppkt.eval.detection.config import DetectionConfig, validate
    from ppkt.eval.detection.loop import finetune_detection
    from ppkt.eval.detection.presets import DETECTION_PRESETS, get_detection_preset

    overrides = rename_overrides(DetectionConfig, overrides_from_namespace(args))

    def start() -> DetectionConfig:
        preset = args.preset or "votenet-scannet"
        if not args.config and preset not in DETECTION_PRESETS:
            raise ValueError(
                f"--preset {preset} is a segmentation preset; detection presets: "
                + ", ".join(sorted(DETECTION_PRESETS))
            )
        cfg = load_config(DetectionConfig, args.config) if args.config else get_detection_preset(preset)
        return apply_overrides(cfg, overrides)

    return finetune_command(
        args, DetectionConfig, overrides, start=start, validate=validate, train=finetune_detection,
        not_with_resume=("--config", "--init", "--preset"),
    )  # fmt: skip


def run_evaluate(args: argparse.Namespace) -> int:
    """``ppkt evaluate`` on a detection checkpoint: the AP table, or JSON with ``--json``."""
    from ppkt.eval.detection.loop import evaluate_detection_checkpoint
    from ppkt.utils.io import atomic_write_json, atomic_write_text

    metrics, cfg, _ = evaluate_detection_checkpoint(
        args.checkpoint,
        data_root=args.data_root,
        split=args.split,
        device=args.device,
        progress=not args.no_progress,
    )
    split = args.split or cfg.data.val_split
    record = {"checkpoint": str(args.checkpoint), "task": "detection", "split": split, **metrics.to_dict()}
    if getattr(args, "json", False):
        print(json.dumps(record, indent=2))
    else:
        print(
            f"{args.checkpoint}: split {split}, {metrics.num_scenes} scenes, "
            f"{int(metrics.num_ground_truth.sum())} boxes"
        )
        print(metrics.to_markdown(), end="")
    if args.out is not None:
        atomic_write_json(args.out / "metrics.json", record)
        atomic_write_text(args.out / "metrics.md", metrics.to_markdown())
    return 0


def add_viz_arguments(sub) -> None:
    det = sub.add_parser(
        "detections",
        help="predicted and true 3D boxes over a scene's points (top-down) and in a photo of it (PNGs)",
    )
    det.add_argument(
        "checkpoint", type=Path, help="detection run folder (its best checkpoint) or .safetensors"
    )
    det.add_argument("--scene", default=None, help="scene id (default: the first of the split)")
    det.add_argument("--split", default=None, help="split to pick the scene from (default: data.val_split)")
    det.add_argument("--score", type=float, default=0.3, help="draw predictions scoring at least this")
    det.add_argument(
        "--out",
        type=Path,
        default=None,
        help="PNG path of the top-down picture; the photo goes beside it as <stem>_image.png "
        "(default: RUN/viz/detections.png)",
    )
    det.add_argument(
        "--frame",
        default=None,
        help="ScanNet and synthetic rooms: the frame to draw into (its name in color/; default: the "
        "frame seeing the most true box centres); SUN RGB-D has one photo a scene",
    )
    det.add_argument("--data-root", type=Path, default=None, help="override the checkpoint's data.root")
    det.add_argument("--device", default="cpu", help="torch device (cpu, cuda, auto)")


def _scene_camera(kind: str, source, scene, frame: str | None):
    """The photo of ``scene`` to draw boxes into, by data format; None (and why) without one."""
    if kind == "sunrgbd":
        from ppkt.data.sunrgbd import read_sunrgbd_camera

        return read_sunrgbd_camera(source.root, scene.scene_id), ""
    if kind in ("scannet", "synthetic"):
        from ppkt.data.scannet_boxes import read_scannet_scene_camera

        return read_scannet_scene_camera(source.root, scene.scene_id, scene.boxes, frame), ""
    return None, f"data.kind {kind} has no photos"


def run_viz(args: argparse.Namespace) -> int:
    import numpy as np

    from ppkt.data.boxes import Boxes3D
    from ppkt.eval.detection.data import InMemoryDetectionSource
    from ppkt.eval.detection.loop import (
        build_detection_source,
        evaluate_detection_checkpoint,
        load_detection_checkpoint,
    )
    from ppkt.eval.model import model_file
    from ppkt.viz.detection import detection_figure, detection_image_figure
    from ppkt.viz.panels import save_png

    path = model_file(args.checkpoint)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no detection checkpoint")
    _, cfg, class_names = load_detection_checkpoint(path)
    if args.data_root is not None:
        from dataclasses import replace

        cfg = replace(cfg, data=replace(cfg.data, root=args.data_root))
    if args.frame is not None and cfg.data.kind not in ("scannet", "synthetic"):
        raise ValueError(f"--frame is for ScanNet-layout scans, not data.kind {cfg.data.kind}")
    source = build_detection_source(cfg.data)
    scene_id = args.scene
    if scene_id is None:
        ids = source.scene_ids(args.split or cfg.data.val_split)
        if not ids:
            raise ValueError(f"split {args.split or cfg.data.val_split!r} has no scenes")
        scene_id = ids[0]
    scene = source.read(scene_id)
    if args.frame is not None:  # a wrong frame name stops before the slow evaluation
        from ppkt.data.scannet_boxes import check_scannet_frame

        check_scannet_frame(source.root, scene_id, args.frame)
    one = InMemoryDetectionSource({"scene": [scene]}, class_names)
    metrics, _, kept = evaluate_detection_checkpoint(
        path, split="scene", device=args.device, progress=False, source=one, keep_predictions=True
    )
    _, predicted, truth, points = kept[0]
    title = f"{scene_id}: mAP@0.25 {100 * metrics.map(0.25):.1f}"
    picture = detection_figure(
        points, truth, predicted.boxes, predicted.scores, class_names, score_threshold=args.score,
        title=f"{title} (solid truth, dashed predictions >= {args.score:g})",
    )  # fmt: skip
    png = (
        args.out or (args.checkpoint / "viz" if args.checkpoint.is_dir() else path.parent) / "detections.png"
    )
    save_png(png, picture)
    shown = int((predicted.scores >= args.score).sum())
    print(f"{scene_id}: {len(truth)} true boxes, {shown} predictions >= {args.score}\nwrote {png}")
    try:
        camera, why = _scene_camera(cfg.data.kind, source, scene, args.frame)
    except (OSError, ValueError) as err:
        # e.g. scans without exported frames, an undecodable image: the top-down picture stands
        from ppkt.cli import error_line

        camera, why = None, error_line(err)
    if camera is None:
        print(f"no photo: {why}")
        return 0
    # Evaluation shifts a scene so that its points start at 0 (ppkt.eval.detection.data); the
    # photo's calibration is in the reader's frame, so the predictions move back.
    origin = np.asarray(scene.points, dtype=np.float32).min(axis=0)
    boxes = predicted.boxes
    in_scene = Boxes3D(boxes.centers + origin, boxes.sizes, boxes.headings, boxes.labels, boxes.class_names)
    photo = detection_image_figure(
        camera, scene.boxes, in_scene, predicted.scores, class_names, score_threshold=args.score, title=title
    )
    photo_png = png.with_name(f"{png.stem}_image.png")
    save_png(photo_png, photo)
    print(f"wrote {photo_png} ({camera.name})")
    return 0
