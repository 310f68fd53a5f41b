"""``ppkt finetune``: train a segmentation head on a (pretrained or random) backbone.

ppkt finetune --preset finetune-scannet --data.root /data/scannet --init runs/pre/backbone.safetensors
    (--init: model.backbone, width, voxel_size and input_features come from the file's card unless given)
ppkt finetune --resume runs/ft                        # continue where it stopped
torchrun --nproc_per_node=4 -m ppkt finetune --preset finetune-scannet ...
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


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
    import dataclasses

    import yaml

    from ppkt.config import (
        apply_overrides,
        config_to_dict,
        load_config,
        overrides_from_namespace,
        rename_overrides,
    )
    from ppkt.engine import NonFiniteError
    from ppkt.eval.config import FinetuneConfig, validate
    from ppkt.eval.finetune import config_with_resume, finetune
    from ppkt.eval.model import with_card_spec
    from ppkt.eval.presets import get_preset, pretrained_recipe

    if args.task == "detection":
        from ppkt.cli.detection import run_finetune

        return run_finetune(args)
    overrides = rename_overrides(FinetuneConfig, overrides_from_namespace(args))
    # Bad values, files and folders raise; ppkt.cli.main turns them into one line (exit 2).
    if args.resume is not None and (args.config is not None or args.init is not None):
        raise ValueError("--resume reads the run's own config.yaml; drop --config and --init")
    if args.resume is not None:
        cfg = config_with_resume(args.resume, overrides)
    else:
        preset = args.preset or "finetune-scannet"
        cfg = load_config(FinetuneConfig, args.config) if args.config else get_preset(preset)
        cfg = apply_overrides(cfg, overrides)
    if args.init is not None:
        cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, init=args.init))
    if args.resume is None:  # a resumed run's config already holds its card's spec
        cfg, note = with_card_spec(cfg, overrides)
        if note:
            print(note, file=sys.stderr if args.print_config else sys.stdout)
    if args.config is None and args.resume is None:  # a saved config is taken as it is
        cfg, recipe = pretrained_recipe(cfg, overrides)
        if recipe:
            print(recipe, file=sys.stderr if args.print_config else sys.stdout)
    validate(cfg)
    if args.print_config:
        print(yaml.safe_dump(config_to_dict(cfg), sort_keys=False), end="")
        return 0
    try:
        result = finetune(cfg, resume=args.resume is not None)
    except NonFiniteError as err:
        print(f"ppkt finetune: {err}", file=sys.stderr)
        return 1
    print(f"run: {result.run_dir}  best step {result.best_step}")
    if result.skipped_batches:
        print(f"skipped {result.skipped_batches} training batches without any labelled voxel")
    print(result.best.to_markdown(), end="")
    return 0
