#!/bin/bash
# Calibration of "auto"'s table limit: fine-tuning (memory-bound at 378k voxels) and pretraining.
set -u
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD/src:$PWD/benchmarks
timeout 150 python3 benchmarks/bench_gpu.py --steps 4 --warmup 2 --teacher-weights random --backends torch --conv-algorithms offsets,auto:25,auto:26 --json $OUT/bench_gpu_limits.json > $OUT/bench_gpu_limits.log 2>&1
echo "rc=$?"; grep "^|\|total" $OUT/bench_gpu_limits.log
