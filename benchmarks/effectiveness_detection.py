"""Detection effectiveness: VoteNet from scratch vs from PPKT at two scene budgets, 3 seeds.

    python benchmarks/effectiveness_detection.py --out runs/effectiveness-detection
    python benchmarks/effectiveness_detection.py --backbone runs/pretrain/backbone.safetensors

At a size that detects on a CPU (10 cm voxels, a proposal per seed: with few proposals most
objects get no positive proposal to learn from; see docs/detection.md, "Does the head detect?"):

    python benchmarks/effectiveness_detection.py --out runs/det-10cm --seeds 0 --budgets scenes:1.0 \
        --pretrain_overrides model.voxel_size=0.1 --detection_overrides \
        run.cpu_threads=1,model.voxel_size=0.1,head.num_seeds=256,head.num_proposals=256,optim.steps=600,optim.lr_head=0.003,optim.lr_backbone=0.003

Any field of ``ppkt.experiments.effectiveness_detection.DetectionExperimentConfig`` can be set
as ``--field VALUE`` (tuples comma-separated; sections dotted, e.g. ``--synthetic.scenes 10``;
budgets as ``scenes:FRACTION``, e.g. ``--budgets scenes:0.25,scenes:1.0``). Writes results.json and
results.md into --out.
"""

from __future__ import annotations

import argparse

from ppkt.config import add_config_arguments, apply_overrides, overrides_from_namespace
from ppkt.experiments.effectiveness_detection import DetectionExperimentConfig, run_detection_effectiveness


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_config_arguments(parser, DetectionExperimentConfig)
    cfg = apply_overrides(DetectionExperimentConfig(), overrides_from_namespace(parser.parse_args()))
    result = run_detection_effectiveness(cfg)
    print(open(cfg.out / "results.md").read(), end="")
    print(f"pretraining: {result.pretrain_seconds:.0f} s; runs in {cfg.out}")


if __name__ == "__main__":
    main()
