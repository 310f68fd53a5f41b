"""``ppkt demo``: the whole method on embedded data, on a CPU, in minutes.

Generates (or reuses) synthetic rooms, pretrains a small SR-UNet with PPKT, fine-tunes it and a
randomly initialised twin on a small label budget (the twin with each backbone learning rate of a
small grid; PPKT with each rate too, its batch-norm statistics frozen), prints both at their best
rate side by side, and writes pictures to the run folder. Runs the same code as
``benchmarks/effectiveness.py``, with one budget and fewer steps.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from ppkt.experiments.demo import SIZES, sizes_help


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ppkt.cli import non_negative_int, positive_int

    parser.add_argument(
        "--out", type=Path, default=Path("runs/demo"), help="run folder (default: %(default)s)"
    )
    parser.add_argument(
        "--size",
        choices=sorted(SIZES, key=list(SIZES).index),
        default="default",
        help=f"how much data and how many steps (default: %(default)s): {sizes_help()}",
    )
    parser.add_argument(
        "--budget", default="points:20", help="label budget, 'scenes:F' or 'points:N' (default: %(default)s)"
    )
    parser.add_argument(
        "--seeds", type=non_negative_int, nargs="+", default=[0], help="seeds of split and fine-tuning"
    )
    parser.add_argument(
        "--pretrain-steps", type=positive_int, default=None, help="override the size's pretraining steps"
    )
    parser.add_argument(
        "--finetune-steps", type=positive_int, default=None, help="override the size's fine-tuning steps"
    )
    parser.add_argument(
        "--scratch-lr-grid",
        type=float,
        nargs="*",
        default=None,
        help="backbone learning rates tried for the scratch run, and for PPKT too unless "
        "--no-ppkt-lr-search, where PPKT takes scratch's best (default: the size's, 0.01 0.001; "
        "none = the preset's 0.1 for both)",
    )
    parser.add_argument(
        "--ppkt-lr-search",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="fine-tune PPKT at every rate of the grid too and report each initialisation at its own "
        "best rate, as the benchmark does (--no-ppkt-lr-search: PPKT at scratch's best rate only; "
        "default: %(default)s)",
    )
    parser.add_argument(
        "--ppkt-batchnorm",
        choices=["frozen", "train"],
        default="frozen",
        help="batch-norm statistics of the pretrained backbone while it is fine-tuned: kept as "
        "pretrained (frozen) or re-estimated from each batch (default: %(default)s)",
    )
    parser.add_argument(
        "--linear-probe", action="store_true", help="also linear-probe both backbones, same budget"
    )
    parser.add_argument(
        "--device", default="auto", help="torch device (default: cuda if available, else cpu)"
    )
    parser.add_argument("--no-pictures", action="store_true", help="skip writing the pictures")


def demo_config(args: argparse.Namespace):
    """The protocol's config of the flags; a bad ``--budget`` is a ValueError naming it."""
    from ppkt.eval.splits import LabelBudget
    from ppkt.experiments.effectiveness import PROTOCOL_ROOMS, ExperimentConfig

    size = SIZES[args.size]
    grid = size.lr_grid if args.scratch_lr_grid is None else args.scratch_lr_grid
    try:
        budget = LabelBudget.parse(args.budget)
    except ValueError as err:
        raise ValueError(f"--budget {args.budget}: {err}") from None
    return ExperimentConfig(
        out=args.out,
        synthetic=replace(PROTOCOL_ROOMS, scenes=size.rooms, frames_per_scene=size.frames_per_room),
        pretrain_steps=args.pretrain_steps or size.pretrain_steps,
        finetune_steps=args.finetune_steps or size.finetune_steps,
        budgets=(budget,),
        seeds=tuple(args.seeds),
        scratch_lr_grid=tuple(grid),
        ppkt_lr_search=args.ppkt_lr_search,
        ppkt_overrides=("model.freeze_batchnorm=true",) if args.ppkt_batchnorm == "frozen" else (),
        linear_probes=args.linear_probe,
        linear_budgets=(budget,),
        device=args.device,
    )


def check_runs(cfg) -> None:
    """Validate the config of every run the demo will start, before minutes of data and pretraining.

    Raises ValueError naming the flag (``--budget``, ``--scratch-lr-grid``) and the config field.
    """
    from ppkt.eval.config import validate as validate_finetune
    from ppkt.experiments.effectiveness import finetune_config, pretrain_config
    from ppkt.train.config import validate as validate_pretrain

    root = Path(".")  # where the data will be; not read here
    validate_pretrain(pretrain_config(cfg, root))
    runs = [("finetune", b, lr) for b in cfg.budgets for lr in (cfg.scratch_lr_grid or (None,))]
    if cfg.linear_probes:
        runs += [("linear", b, None) for b in cfg.linear_budgets]
    for mode, budget, lr in runs:
        for seed in cfg.seeds:
            try:
                ft = finetune_config(
                    cfg, root, init=None, mode=mode, budget=budget, seed=seed, lr_backbone=lr
                )
                validate_finetune(ft)
            except ValueError as err:
                flags = f"--budget {budget.text}" + ("" if lr is None else f", --scratch-lr-grid {lr:g}")
                raise ValueError(f"{flags}: {err}") from err


def run(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except FileExistsError as err:  # an earlier run in --out with other settings: never overwritten
        print(f"ppkt demo: {err}")
        return 2
    except KeyboardInterrupt:
        print(
            f"\nppkt demo: stopped (Ctrl-C). Finished runs are kept in {args.out}; the same command "
            "continues from them.",
            flush=True,
        )
        return 130


def _run(args: argparse.Namespace) -> int:
    import dataclasses
    import time

    from ppkt.experiments.demo import (
        DemoProgress,
        demo_explanation,
        demo_table,
        format_duration,
        written_files,
    )
    from ppkt.experiments.effectiveness import run_effectiveness
    from ppkt.experiments.report import write_html_report

    started, started_at = time.perf_counter(), time.time()
    cfg = demo_config(args)
    check_runs(cfg)
    size = SIZES[args.size]
    if args.pretrain_steps or args.finetune_steps:
        size = dataclasses.replace(
            size,
            pretrain_steps=args.pretrain_steps or size.pretrain_steps,
            finetune_steps=args.finetune_steps or size.finetune_steps,
        )
    size = dataclasses.replace(size, lr_grid=cfg.scratch_lr_grid)
    headline = f"ppkt demo --size {args.size}, writing to {cfg.out}"
    if size.smoke:
        headline += ": a SMOKE RUN (checks that every stage runs; its numbers mean nothing)"
    print(headline)
    steps_changed = (
        " (for its own step counts, not those you set)" if args.pretrain_steps or args.finetune_steps else ""
    )
    print(f"measured time of this size{steps_changed}: {size.measured}")
    progress = DemoProgress(size, pictures=not args.no_pictures)
    results = run_effectiveness(cfg, report=progress)
    table = demo_table(results.rows, smoke=size.smoke)
    explanation = demo_explanation(results.rows, size, validation_rooms=_validation_rooms(results.data_root))
    progress.pictures_starting()
    pictures = []
    if not args.no_pictures:
        from ppkt.experiments.pictures import demo_pictures

        # the side-by-side segmentation holds the two single ones
        singles = ("segmentation_scratch.png", "segmentation_ppkt.png")
        pictures = [p for p in demo_pictures(cfg, results) if p.name not in singles]
    title = f"ppkt demo --size {args.size}" + (" (SMOKE RUN: the numbers mean nothing)" if size.smoke else "")
    write_html_report(cfg.out / "report.html", title=title, table=table, metric=results.metric,
                      runs=results.runs, explanation=explanation, pictures=pictures)  # fmt: skip
    progress.pictures_done()
    print()
    if size.smoke:
        print("SMOKE RUN: the numbers below mean nothing.")
    print(table)
    print(explanation)
    print()
    print(f"files in {cfg.out}:")
    for line in written_files(cfg.out, since=started_at):
        print(line)
    reused = sum(r.reused for r in results.runs) + results.pretrain_reused
    note = f" ({reused} of {len(results.runs) + 1} runs reused from an earlier run)" if reused else ""
    print(f"done in {format_duration(time.perf_counter() - started)}{note}")
    return 0


def _validation_rooms(data_root: Path) -> int:
    split = Path(data_root) / "scannetv2_val.txt"
    return len(split.read_text().split()) if split.is_file() else 0


__all__ = ["SIZES", "add_arguments", "demo_config", "run"]
