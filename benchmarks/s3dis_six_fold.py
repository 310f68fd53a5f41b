"""S3DIS 6-fold cross-validation with the ``finetune-s3dis`` preset: per-fold and mean mIoU.

    python benchmarks/s3dis_six_fold.py /data/Stanford3dDataset_v1.2_Aligned_Version \
        --out runs/s3dis-6fold [--folds Area_1,Area_5] [--set model.init=backbone.safetensors ...]

Each fold trains on the five other areas and evaluates on its own (run folders
``<out>/fold-Area_<n>``). Any config field can be overridden with ``--set section.field=value``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ppkt.config import apply_overrides
from ppkt.eval.presets import get_preset
from ppkt.experiments.s3dis_folds import format_folds, six_fold


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("root", type=Path, help="Stanford3dDataset_v1.2_Aligned_Version (or its parent)")
    parser.add_argument("--out", type=Path, default=Path("runs/s3dis-6fold"))
    parser.add_argument("--folds", default="Area_1,Area_2,Area_3,Area_4,Area_5,Area_6")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help="config override")
    args = parser.parse_args()
    overrides = {"data.root": str(args.root), "run.out": str(args.out)}
    for item in args.set:
        field, _, value = item.partition("=")
        overrides[field] = value
    cfg = apply_overrides(get_preset("finetune-s3dis"), overrides)
    results = six_fold(cfg, folds=[f.strip() for f in args.folds.split(",") if f.strip()])
    print(format_folds(results))


if __name__ == "__main__":
    main()
