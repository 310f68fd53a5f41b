"""``ppkt finetune``: train a segmentation head on a (pretrained or random) backbone.

ppkt finetune --preset finetune-scannet --data.root /data/scannet --init runs/pre/backbone.safetensors
    (--init: model.backbone, width, voxel_size and input_features come from the file's card unless given)
ppkt finetune --resume runs/ft                        # continue where it stopped
torchrun --nproc_per_node=4 -m ppkt finetune --preset finetune-scannet ...
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ppkt.config import add_config_arguments
    from ppkt.eval.config import FinetuneConfig
    from ppkt.eval.detection.presets import DETECTION_PRESETS
    from ppkt.eval.presets import PRESETS

    parser.add_argument(
        "--preset",
        choices=PRESETS.names + DETECTION_PRESETS.names,
        default=None,
        help="starting config (default: finetune-scannet; with --task detection: votenet-scannet); "
        + PRESETS.help()
        + "; "
        + DETECTION_PRESETS.help(),
    )
    parser.add_argument("--config", type=Path, help="start from a saved config.yaml instead of a preset")
    parser.add_argument(
        "--init",
        type=Path,
        help="pretrained backbone (ppkt export output); same as --model.init. model.backbone, width, "
        "voxel_size and input_features come from its card unless given",
    )
    parser.add_argument(
        "--resume",
        type=Path,
        default=None,
        metavar="RUN",
        help="continue the run in folder RUN from its latest checkpoint (its config.yaml; overrides apply)",
    )
    parser.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    add_config_arguments(parser, FinetuneConfig)
    # Detection (VoteNet): --task detection and its config fields.
    from ppkt.cli.detection import add_finetune_arguments

    add_finetune_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from ppkt.config import apply_overrides, load_config, overrides_from_namespace, rename_overrides
    from ppkt.eval.config import FinetuneConfig, validate
    from ppkt.eval.finetune import finetune
    from ppkt.eval.presets import get_preset, pretrained_recipe

    if args.task == "detection":
        from ppkt.cli.detection import run_finetune

        return run_finetune(args)
    overrides = rename_overrides(FinetuneConfig, overrides_from_namespace(args))

    def start() -> FinetuneConfig:
        preset = args.preset or "finetune-scannet"
        cfg = load_config(FinetuneConfig, args.config) if args.config else get_preset(preset)
        return apply_overrides(cfg, overrides)

    def recipe(cfg: FinetuneConfig) -> tuple[FinetuneConfig, str]:
        # A saved config is taken as it is; a preset takes the recipe of the backbone's pretraining.
        return pretrained_recipe(cfg, overrides) if args.config is None and args.resume is None else (cfg, "")

    def report(result) -> None:
        if result.skipped_batches:
            print(f"skipped {result.skipped_batches} training batches without any labelled voxel")

    return finetune_command(
        args, FinetuneConfig, overrides, start=start, validate=validate, train=finetune,
        not_with_resume=("--config", "--init"), adjust=recipe, report=report,
    )  # fmt: skip


def finetune_command(
    args: argparse.Namespace,
    config_class: type,
    overrides: dict[str, str],
    *,
    start: Callable[[], Any],
    validate: Callable[[Any], None],
    train: Callable[..., Any],
    not_with_resume: tuple[str, ...],
    adjust: Callable[[Any], tuple[Any, str]] | None = None,
    report: Callable[[Any], None] | None = None,
) -> int:
    """What ``ppkt finetune`` does for every task: the config (``--resume``: the run's own, else
    ``start()``), ``--init`` and its card's spec, ``--print-config``, the run, its NaN/inf stop (exit 1)
    and the result. Bad values, files and folders raise; ppkt.cli.main turns them into one line (exit 2).

    Args:
        config_class: the task's config (segmentation's or detection's).
        start: a fresh run's config (preset or ``--config``, with the overrides).
        validate: the task's config check.
        train: the task's run (``cfg, resume=...``), returning a result with ``run_dir``,
            ``best_step`` and ``best`` (metrics with ``to_markdown``).
        not_with_resume: options ``--resume`` refuses (it reads the run's own config.yaml).
        adjust: a last change to the config and a note on it (segmentation's pretrained recipe).
        report: prints the task's own lines of the result, after the run line.
    """
    import dataclasses

    import yaml

    from ppkt.config import config_to_dict
    from ppkt.engine import NonFiniteError
    from ppkt.eval.model import with_card_spec
    from ppkt.eval.training_loop import config_with_resume

    given = [o for o in not_with_resume if getattr(args, o.lstrip("-").replace("-", "_"))]
    if args.resume is not None and given:
        named = ", ".join(not_with_resume[:-1]) + " and " + not_with_resume[-1]
        raise ValueError(f"--resume reads the run's own config.yaml; drop {named}")
    cfg = config_with_resume(args.resume, overrides, config_class) if args.resume is not None else start()
    if args.init is not None:
        cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, init=args.init))
    # Notes go to stderr under --print-config, so that its stdout stays a loadable config.
    notes = sys.stderr if args.print_config else sys.stdout
    if args.resume is None:  # a resumed run's config already holds its card's spec
        cfg, note = with_card_spec(cfg, overrides)
        if note:
            print(note, file=notes)
    if adjust is not None:
        cfg, note = adjust(cfg)
        if note:
            print(note, file=notes)
    validate(cfg)
    if args.print_config:
        print(yaml.safe_dump(config_to_dict(cfg), sort_keys=False), end="")
        return 0
    try:
        result = train(cfg, resume=args.resume is not None)
    except NonFiniteError as err:
        print(f"ppkt finetune: {err}", file=sys.stderr)
        return 1
    print(f"run: {result.run_dir}  best step {result.best_step}")
    if report is not None:
        report(result)
    print(result.best.to_markdown(), end="")
    return 0
