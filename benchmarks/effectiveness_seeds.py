"""More label seeds for one budget of a finished effectiveness benchmark, at fixed rates.

With one labelled room, the seed decides which room is labelled, and three seeds cannot tell a
+4 gain from a +6 one. This fine-tunes scratch and PPKT for more seeds at the rates the
benchmark's search chose (read them from its results.md), in the benchmark's own run folders
(so they are reused, and a later benchmark with these seeds reuses them too), and prints every
seed and the paired gain with its standard error.

    python benchmarks/effectiveness_seeds.py runs/effectiveness scenes:0.0625 \\
        --scratch-lr 0.03 --ppkt-lr 0.003 --seeds 0 1 2 3 4 5 6 7 8 9 10 11

docs/evaluation.md, part 8, gives the figures this printed for the published benchmarks.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from ppkt.config import load_config
from ppkt.eval.splits import LabelBudget, LabelSplit, split_path
from ppkt.experiments.effectiveness import (
    ExperimentConfig,
    finetune_config,
    finetune_one,
    prepare_data,
)
from ppkt.experiments.results import mean_std


def main() -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("out", type=Path, help="the benchmark's --out folder (holds experiment.yaml)")
    parser.add_argument("budget", type=LabelBudget.parse, help="e.g. scenes:0.0625")
    parser.add_argument("--scratch-lr", type=float, required=True)
    parser.add_argument("--ppkt-lr", type=float, required=True)
    parser.add_argument("--seeds", type=int, nargs="+", required=True)
    args = parser.parse_args()
    cfg = load_config(ExperimentConfig, args.out / "experiment.yaml")
    root = prepare_data(cfg)
    backbone = args.out / "pretrain" / "backbone.safetensors"
    if not backbone.is_file():
        raise FileNotFoundError(f"{backbone}: run the benchmark first (it pretrains and exports)")
    rows = []
    for seed in args.seeds:
        common = dict(mode="finetune", budget=args.budget, seed=seed)
        scratch = finetune_one(cfg, root, init=None, lr_backbone=args.scratch_lr, **common)
        ppkt = finetune_one(cfg, root, init=backbone, lr_backbone=args.ppkt_lr, **common)
        if scratch.diverged or ppkt.diverged:
            raise FloatingPointError(f"seed {seed}: a run diverged ({scratch.run_dir}, {ppkt.run_dir})")
        splits_dir = finetune_config(cfg, root, init=None, **common).labels.splits_dir
        path = split_path(splits_dir, args.budget.kind, args.budget.amount, seed)
        split = LabelSplit.from_json(json.loads(path.read_text()))
        rows.append((seed, 100 * scratch.miou, 100 * ppkt.miou))
        rooms = " ".join(split.scenes) if args.budget.kind == "scenes" else f"{len(split.scenes)} rooms"
        print(f"seed {seed:3d}  {rooms}  scratch {rows[-1][1]:5.1f}  PPKT {rows[-1][2]:5.1f}", flush=True)
    s, p = mean_std([r[1] for r in rows]), mean_std([r[2] for r in rows])
    gain = mean_std([r[2] - r[1] for r in rows])
    ahead = sum(r[2] > r[1] for r in rows)
    print(
        f"{len(rows)} seeds: scratch {s[0]:.1f} ± {s[1]:.1f}, PPKT {p[0]:.1f} ± {p[1]:.1f}, "
        f"gain {gain[0]:+.1f} (paired std {gain[1]:.1f}, std error {gain[1] / math.sqrt(len(rows)):.1f}); "
        f"PPKT ahead in {ahead} of {len(rows)}"
    )


if __name__ == "__main__":
    main()
