#!/bin/bash
# Device checks, fourth go: "auto" (the dense table for layers up to 2^28 gathered elements, the
# per-offset loop above) against both algorithms, in whole steps and in networks of rising size.
set -u
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD/src:$PWD/benchmarks
job() { name=$1; lim=$2; shift 2; S=$SECONDS; timeout $lim "$@" > $OUT/$name.log 2>&1; rc=$?
  echo "== $name rc=$rc $((SECONDS-S)) s"; grep -v "it/s\]\|frame/s\]\|USDT\|Warn\|warn_once" $OUT/$name.log | tail -${TAILN:-6}; }
TAILN=5 job sparse_algorithms_34 100 python3 benchmarks/bench_sparse.py --algorithms --device cuda --backbones res16unet34 --sizes 200000 400000 800000 --repeats 3
TAILN=17 job bench_gpu_auto 170 python3 benchmarks/bench_gpu.py --steps 5 --warmup 2 --teacher-weights random --backends torch --conv-algorithms offsets,table,auto --json $OUT/bench_gpu_auto.json
