"""``ppkt finetune``: train a segmentation head on a (pretrained or random) backbone."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ppkt.config import add_config_arguments
    from ppkt.eval.config import FinetuneConfig
    from ppkt.eval.detection.presets import DETECTION_PRESETS
    from ppkt.eval.presets import PRESETS

    parser.add_argument(
        "--preset",
        choices=sorted(PRESETS) + sorted(DETECTION_PRESETS),
        default=None,
        help="starting config (default: finetune-scannet; with --task detection: votenet-scannet)",
    )
    parser.add_argument("--config", type=Path, help="start from a saved config.yaml instead of a preset")
    parser.add_argument(
        "--init", type=Path, help="pretrained backbone (ppkt export output); same as --model.init"
    )
    parser.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    add_config_arguments(parser, FinetuneConfig)
    # Detection (VoteNet): --task detection and its config fields.
    from ppkt.cli.detection import add_finetune_arguments

    add_finetune_arguments(parser)


def run(args: argparse.Namespace) -> int:
    import dataclasses

    import yaml

    from ppkt.config import apply_overrides, config_to_dict, load_config, overrides_from_namespace
    from ppkt.eval.config import FinetuneConfig
    from ppkt.eval.finetune import finetune
    from ppkt.eval.presets import get_preset

    if args.task == "detection":
        from ppkt.cli.detection import run_finetune

        return run_finetune(args)
    cfg = (
        load_config(FinetuneConfig, args.config)
        if args.config
        else get_preset(args.preset or "finetune-scannet")
    )
    cfg = apply_overrides(cfg, overrides_from_namespace(args))
    if args.init is not None:
        cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, init=args.init))
    if args.print_config:
        print(yaml.safe_dump(config_to_dict(cfg), sort_keys=False), end="")
        return 0
    result = finetune(cfg)
    print(f"run: {result.run_dir}  best step {result.best_step}")
    if result.skipped_batches:
        print(f"skipped {result.skipped_batches} training batches without any labelled voxel")
    print(result.best.to_markdown(), end="")
    return 0
