"""``ppkt demo``: the whole method on embedded data, on a CPU, in minutes.

Generates (or reuses) synthetic rooms, pretrains a small SR-UNet with PPKT, fine-tunes it and a
randomly initialised twin on a small label budget (the twin with each backbone learning rate of a
small grid; PPKT with each rate too, its batch-norm statistics frozen), prints both at their best
rate side by side, and writes pictures to the run folder. Runs the same code as
``benchmarks/effectiveness.py``, with one budget and fewer steps.
"""

from __future__ import annotations

import argparse
from pathlib import Path

# size -> (rooms, frames per room, pretraining steps, fine-tuning steps)
SIZES: dict[str, tuple[int, int, int, int]] = {
    "tiny": (6, 4, 20, 30),  # a smoke test: checks that everything runs, the numbers mean nothing
    "small": (12, 8, 150, 200),
    "default": (20, 12, 400, 400),
    "long": (32, 16, 1500, 1000),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ppkt.cli import non_negative_int, positive_int

    parser.add_argument(
        "--out", type=Path, default=Path("runs/demo"), help="run folder (default: %(default)s)"
    )
    parser.add_argument(
        "--size",
        choices=sorted(SIZES, key=list(SIZES).index),
        default="default",
        help="how much data and how many steps: tiny (1 min, smoke test), small, default (~15 min on "
        "2 CPU cores), long (default: %(default)s)",
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
        default=[0.01, 0.001],
        help="backbone learning rates tried for the scratch run, and for PPKT too unless "
        "--no-ppkt-lr-search, where PPKT takes scratch's best (default: %(default)s; none = the "
        "preset's 0.1 for both)",
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
    from ppkt.experiments.effectiveness import ExperimentConfig

    scenes, frames, pre_steps, ft_steps = SIZES[args.size]
    pre_steps = args.pretrain_steps or pre_steps
    ft_steps = args.finetune_steps or ft_steps
    return ExperimentConfig(
        out=args.out,
        synthetic_scenes=scenes,
        synthetic_frames_per_scene=frames,
        pretrain_overrides=(f"optim.steps={pre_steps}", f"run.checkpoint_every={max(pre_steps // 4, 1)}"),
        finetune_overrides=(f"optim.steps={ft_steps}", f"run.eval_every={ft_steps}"),
        linear_overrides=(f"optim.steps={ft_steps}", f"run.eval_every={ft_steps}"),
        budgets=(args.budget,),
        seeds=tuple(args.seeds),
        scratch_lr_grid=tuple(args.scratch_lr_grid),
        ppkt_lr_search=args.ppkt_lr_search,
        ppkt_overrides=("model.freeze_batchnorm=true",) if args.ppkt_batchnorm == "frozen" else (),
        linear_probes=args.linear_probe,
        linear_budgets=(args.budget,),
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
                flags = f"--budget {budget}" + ("" if lr is None else f", --scratch-lr-grid {lr:g}")
                raise ValueError(f"{flags}: {err}") from err


def run(args: argparse.Namespace) -> int:
    import time

    from ppkt.experiments.effectiveness import run_effectiveness

    started = time.perf_counter()
    cfg = demo_config(args)
    check_runs(cfg)
    print(f"ppkt demo ({args.size}): writing to {cfg.out}")
    results = run_effectiveness(cfg)
    print()
    print((cfg.out / "results.md").read_text(), end="")
    if not args.no_pictures:
        from ppkt.experiments.pictures import demo_pictures

        for path in demo_pictures(cfg, results):
            print(f"picture: {path}")
    print(f"done in {time.perf_counter() - started:.0f} s; results in {cfg.out}/results.md")
    return 0


__all__ = ["SIZES", "add_arguments", "demo_config", "run"]
