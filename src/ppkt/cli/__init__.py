"""The ``ppkt`` command: thin wrappers that parse a config and call library functions.

Each subcommand lives in ``ppkt.cli.<module>`` and defines ``add_arguments(parser)``
and ``run(args) -> int``. Only commands whose module is present are listed, and a
module is imported only when its command runs, so ``ppkt --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys

from ppkt import __version__

# name -> (module under ppkt.cli, one-line description). Order is the order of the pipeline.
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("demo", "generate synthetic rooms, pretrain, fine-tune scratch vs PPKT, print the table"),
    "synth": ("synth", "render synthetic indoor RGB-D scenes in the ScanNet layout"),
    "check-data": ("check_data", "validate a dataset and report usable and skipped frames by reason"),
    "cache-teacher": ("cache_teacher", "precompute frozen 2D teacher features for a dataset"),
    "pretrain": ("pretrain", "pretrain a 3D backbone with pixel-to-point InfoNCE"),
    "export": ("export", "write the pretrained 3D backbone of a run as safetensors + card"),
    "finetune": ("finetune", "train a segmentation head (linear probe or full fine-tune)"),
    "evaluate": ("evaluate", "evaluate a segmentation checkpoint: mIoU, mAcc, per-class IoU"),
    "compare": ("compare", "print evaluation runs side by side with mean and std over seeds"),
    "viz": ("viz", "write pictures: feature PCA, similarity maps, overlays, segmentations, curves"),
}


def available_commands() -> dict[str, tuple[str, str]]:
    return {
        name: spec
        for name, spec in COMMANDS.items()
        if importlib.util.find_spec(f"ppkt.cli.{spec[0]}") is not None
    }


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ppkt",
        description="Pretrain 3D point-cloud networks with knowledge from frozen 2D image networks (PPKT).",
    )
    parser.add_argument("--version", action="version", version=f"ppkt {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_line) in available_commands().items():
        # Defer the module import: build a lazily-filled subparser.
        sub_parser = sub.add_parser(name, help=help_line, description=help_line, add_help=False)
        sub_parser.set_defaults(_module=module)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if not argv:
        parser.print_help()
        return 0
    name = argv[0]
    commands = available_commands()
    if name not in commands:
        parser.parse_args(argv)  # prints help, version, or a usage error
        return 2
    module_name, help_line = commands[name]
    module = importlib.import_module(f"ppkt.cli.{module_name}")
    sub_parser = argparse.ArgumentParser(prog=f"ppkt {name}", description=help_line)
    module.add_arguments(sub_parser)
    args = sub_parser.parse_args(argv[1:])
    return int(module.run(args) or 0)
