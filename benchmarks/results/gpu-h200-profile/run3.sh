#!/bin/bash
# Device checks, third go: the dense-table convolution at the paper's batch (24 frames) and in
# fine-tuning, fp32 and bf16, steps/s and peak memory, against the per-offset loop.
set -u
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD/src:$PWD/benchmarks
job() { name=$1; lim=$2; shift 2; S=$SECONDS; timeout $lim "$@" > $OUT/$name.log 2>&1; rc=$?
  echo "== $name rc=$rc $((SECONDS-S)) s"; grep -v "it/s\]\|frame/s\]\|USDT\|Warn\|warn_once" $OUT/$name.log | tail -${TAILN:-6}; }
TAILN=13 job bench_gpu_algorithms 150 python3 benchmarks/bench_gpu.py --steps 5 --warmup 2 --teacher-weights random --backends torch --conv-algorithms offsets,table --json $OUT/bench_gpu_algorithms.json
TAILN=5 job pretrain_paper_b24_algorithms 130 python3 benchmarks/bench_pretrain.py --device cuda --preset paper --ab algorithms --steps 3 --set teacher.weights=random optim.batch_size=24 data.kind=synthetic
