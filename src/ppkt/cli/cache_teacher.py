"""``ppkt cache-teacher DATA_ROOT``: precompute frozen 2D teacher features of RGB-D frames (any format)."""

from __future__ import annotations

import argparse
from pathlib import Path


class _DefaultsHelp(argparse.HelpFormatter):
    """``(default: X)`` after each option's help, unless the help already says it or there is none
    (argparse's ArgumentDefaultsHelpFormatter printed "(default: ...) (default: None)")."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        unset = action.default is None or action.default is False or action.default == argparse.SUPPRESS
        if "default" in text or not action.option_strings or unset:
            return text
        return f"{text} (default: %(default)s)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ppkt.cli import non_negative_int, positive_int

    parser.formatter_class = _DefaultsHelp
    parser.add_argument("data_root", type=Path, help="dataset root of an RGB-D format (docs/datasets.md)")
    parser.add_argument(
        "--format",
        default="auto",
        help="RGB-D format: scannet, scannet-sens, 7scenes, tum, rgbd-folder (default: detect); "
        "the run's data.kind",
    )
    parser.add_argument(
        "--teacher", default="efficientnet_lite0", help="teacher name (ppkt.teachers.TEACHERS)"
    )
    parser.add_argument(
        "--weights",
        default=None,
        help="teacher weight file (.pth/.safetensors) or 'random' (default: the teacher's own)",
    )
    parser.add_argument("--stage", default=None, help="teacher stage (default: its last stage)")
    parser.add_argument(
        "--image-size",
        type=positive_int,
        nargs=2,
        default=(240, 320),
        metavar=("H", "W"),
        help="teacher input size (default: 240 320)",
    )
    parser.add_argument(
        "--frame-skip",
        type=positive_int,
        default=25,
        help="every k-th frame (the paper: 25); use the run's data.frame_skip",
    )
    parser.add_argument(
        "--split", default=None, choices=["train", "val"], help="ScanNet: scenes of scannetv2_<split>.txt (default: every scene)"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="cache folder (default: DATA_ROOT/teacher_cache/<teacher>_<stage>_HxW)",
    )
    parser.add_argument("--batch-size", type=positive_int, default=8, help="frames per teacher forward")
    parser.add_argument("--workers", type=non_negative_int, default=0, help="image decoding worker processes")
    parser.add_argument(
        "--device", default="cpu", help="torch device of the teacher (cpu, cuda, cuda:1, ...)"
    )
    parser.add_argument("--overwrite", action="store_true", help="recompute frames that are already cached")


def _single(frame):  # DataLoader collate for batch_size=None: keep the RGBDFrame as it is
    return frame


def run(args: argparse.Namespace) -> int:
    import torch

    from ppkt.data.registry import FrameRequest, detect, get_spec, open_frames
    from ppkt.teachers import TeacherFeatureCache, build_teacher, cache_teacher_features

    image_hw = (int(args.image_size[0]), int(args.image_size[1]))
    try:
        teacher = build_teacher(args.teacher, weights=args.weights, stage=args.stage).to(args.device)
    except (ImportError, KeyError) as err:  # an unknown teacher or one whose package is missing
        raise ValueError(f"--teacher {args.teacher}: {err.args[0] if err.args else err}") from err
    kind, root = args.format, args.data_root
    if kind == "auto":
        detection = detect(root)
        kind, root = detection.format, detection.root
        print(f"format: {kind}" + (f" ({detection.note})" if detection.note else ""))
    if get_spec(kind).modality != "rgbd" or get_spec(kind).open_frames is None:
        raise ValueError(f"{root}: the teacher cache holds RGB-D frames, not {kind} data")
    frames = open_frames(kind, FrameRequest(root, split=args.split, frame_skip=args.frame_skip))
    out = (
        args.out
        or args.data_root
        / "teacher_cache"
        / f"{teacher.name}_{teacher.stage}_{image_hw[0]}x{image_hw[1]}"
    )
    cache = TeacherFeatureCache(out, teacher.identity, image_hw)
    skipped = frames.report.frames_skipped
    print(
        f"{len(frames)} frames from {args.data_root}"
        + (f" ({skipped} skipped: {frames.report.skipped})" if skipped else "")
    )
    if len(frames) == 0:
        raise ValueError(f"{args.data_root}: no usable frame")
    loader = torch.utils.data.DataLoader(
        frames, batch_size=None, num_workers=args.workers, collate_fn=_single
    )
    # A bad frame ends the run with its error (ppkt.cli.main); what is cached so far stays and a
    # rerun continues from there.
    stats = cache_teacher_features(
        loader, teacher, cache, batch_size=args.batch_size, overwrite=args.overwrite, total=len(frames)
    )
    print(
        f"teacher {teacher.identity}: {stats.written} frames written, {stats.already_cached} already cached "
        f"-> {cache.root} (features {teacher.out_channels} x {teacher.feature_hw(image_hw)} fp16)"
    )
    return 0
