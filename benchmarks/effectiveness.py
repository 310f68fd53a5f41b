"""The effectiveness benchmark: does PPKT pretraining help downstream segmentation?

Pretrains once (demo preset on the synthetic rooms unless told otherwise), then for every label
budget and seed fine-tunes from scratch and from the PPKT backbone with identical settings, plus
linear probes of a random and of the pretrained backbone. Writes results.json, results.md and
results.png (mIoU against label budget, error bars = std over seeds) and report.html (all of it
in one self-contained file; ``python -m ppkt.experiments.report RUN`` rewrites it) to --out.

    python benchmarks/effectiveness.py --out runs/effectiveness            # preset defaults, no search
    python benchmarks/effectiveness.py --seeds 0 --budgets scenes:0.0625   # one cell, quick look

The README's command (4000 pretraining steps; a learning-rate search for both initialisations,
``--set scratch_lr_grid=0.1,0.03,0.01,0.003,0.001 ppkt_lr_search=true``; the PPKT backbone
fine-tuned with its batch-norm statistics frozen, ``ppkt_overrides=model.freeze_batchnorm=true``;
linear probes at two budgets) produced the published results in benchmarks/results/effectiveness/.
The same command with ``rate_selection=heldout`` chooses the rates on 4 training rooms held out of
the labelled pool instead of on the validation rooms: benchmarks/results/effectiveness-heldout-rates/.

The objective axis (docs/objectives.md): ``--set objectives=infonce,superpixel-infonce,cosine,scene-pairs
linear_budgets=points:20,scenes:0.0625`` pretrains one backbone per objective and linearly probes
each (and a random backbone) instead of the scratch/PPKT protocol; its reduced-size run is in
benchmarks/results/objectives/.

Reported metric: validation mIoU / mAcc at the LAST fine-tuning step (no checkpoint selection on
the validation rooms). Interrupted runs resume: finished runs with the same config are reused.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from ppkt.config import apply_overrides, config_to_dict
from ppkt.experiments.effectiveness import ExperimentConfig, run_effectiveness
from ppkt.experiments.report import effectiveness_report


def main() -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--out", type=Path, default=Path("runs/effectiveness"))
    parser.add_argument("--budgets", nargs="+", default=None, help="e.g. scenes:0.0625 scenes:0.25 points:20")
    parser.add_argument("--seeds", type=int, nargs="+", default=None)
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="config overrides")
    args = parser.parse_args()
    cfg = ExperimentConfig(out=args.out)
    if args.budgets:
        cfg = apply_overrides(cfg, {"budgets": ",".join(args.budgets)})
    if args.seeds:
        cfg = apply_overrides(cfg, {"seeds": ",".join(map(str, args.seeds))})
    overrides = dict(item.split("=", 1) for item in args.set)
    cfg = apply_overrides(cfg, overrides)
    print(config_to_dict(cfg))
    started = time.perf_counter()
    run_effectiveness(cfg)
    print((cfg.out / "results.md").read_text())
    report = effectiveness_report(cfg.out)
    print(f"total wall time {time.perf_counter() - started:.0f} s; plot: {cfg.out / 'results.png'}")
    print(f"report (table, plot and pictures in one file): {report}")


if __name__ == "__main__":
    main()
