"""``ppkt pretrain``: pretrain a 3D backbone with pixel-to-point InfoNCE.

ppkt pretrain --preset demo --run.out runs/demo
ppkt pretrain --preset paper --data.root /data/scannet --teacher.weights resnet50.pth
ppkt pretrain --resume runs/demo                     # continue where it stopped
ppkt pretrain --config runs/demo/config.yaml --run.out runs/again   # rerun a saved config
torchrun --nproc_per_node=4 -m ppkt pretrain --preset paper ...
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ppkt.config import add_config_arguments
    from ppkt.train.config import PretrainConfig
    from ppkt.train.presets import PRESETS

    parser.add_argument(
        "--preset", default="demo", choices=PRESETS.names,
        help="starting config (default demo); " + PRESETS.help(),
    )  # fmt: skip
    parser.add_argument(
        "--config", type=Path, default=None, help="start from a saved config.yaml instead of a preset"
    )
    parser.add_argument(
        "--resume",
        type=Path,
        default=None,
        metavar="RUN",
        help="continue the run in folder RUN from its latest checkpoint (its config.yaml; overrides apply)",
    )
    parser.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    add_config_arguments(parser, PretrainConfig, "pretraining config")


def _check_steps_left(cfg, run_dir: Path) -> None:
    """A resumed run asked for no more steps than it has done would exit 0 having done nothing."""
    from ppkt.train.checkpoint import latest_checkpoint

    latest = latest_checkpoint(run_dir)
    done = int(latest.name.removeprefix("step_")) if latest and latest.name.startswith("step_") else 0
    if cfg.optim.epochs is None and cfg.optim.steps <= done:
        raise ValueError(
            f"optim.steps = {cfg.optim.steps}: {run_dir} has already done {done} steps; "
            "ask for more to continue it"
        )


def run(args: argparse.Namespace) -> int:
    import yaml

    from ppkt.config import apply_overrides, config_to_dict, load_config, overrides_from_namespace
    from ppkt.train.config import PretrainConfig, validate
    from ppkt.train.loop import NonFiniteLossError, config_with_resume, pretrain
    from ppkt.train.presets import get_preset

    overrides = overrides_from_namespace(args)
    # Bad values, files and folders raise; ppkt.cli.main turns them into one line (exit 2).
    if args.resume is not None and args.config is not None:
        raise ValueError("--resume reads the run's own config.yaml; drop --config")
    if args.resume is not None:
        cfg = config_with_resume(args.resume, overrides)  # run.out = the folder, wherever it moved
        _check_steps_left(cfg, args.resume)
    else:
        start = load_config(PretrainConfig, args.config) if args.config else get_preset(args.preset)
        cfg = apply_overrides(start, overrides)
    validate(cfg)
    if args.print_config:
        print(yaml.safe_dump(config_to_dict(cfg), sort_keys=False), end="")
        return 0
    try:
        result = pretrain(cfg, resume=args.resume is not None)
    except NonFiniteLossError as err:
        print(f"ppkt pretrain: {err}", file=sys.stderr)
        return 1
    losses = list(result.losses.values())
    if losses:
        head, tail = losses[: max(1, len(losses) // 10)], losses[-max(1, len(losses) // 10) :]
        print(
            f"pretrained {result.step} steps in {result.seconds:.0f} s; "
            f"loss {sum(head) / len(head):.4f} (first {len(head)}) -> {sum(tail) / len(tail):.4f} "
            f"(last {len(tail)}); skipped frames: "
            f"{result.skipped_frames}; checkpoint: {result.checkpoint}"
        )
    return 0
