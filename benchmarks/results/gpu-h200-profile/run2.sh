#!/bin/bash
# Device checks, second go: the torch backend's dense-table convolution against the per-offset
# loop on CUDA, the A/B order effect, and the data part with numba on the GPU host.
set -u
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD/src:$PWD/benchmarks
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
python3 -c "import torch, numba; from ppkt.utils.compiled import use_compiled; print('torch', torch.__version__, 'numba', numba.__version__, 'compiled path', use_compiled())" 2>&1 | tail -1
job() { name=$1; lim=$2; shift 2; S=$SECONDS; timeout $lim "$@" > $OUT/$name.log 2>&1; rc=$?
  echo "== $name rc=$rc $((SECONDS-S)) s"; grep -v "it/s\]\|frame/s\]\|USDT\|Warn\|warn_once" $OUT/$name.log | tail -${TAILN:-6}; }
TAILN=4 job sparse_algorithms_demo 60 python3 benchmarks/bench_sparse.py --algorithms --device cuda --backbones res16unet14 --width 0.5 --sizes 25000 100000 --repeats 5
TAILN=4 job sparse_algorithms_paper 90 python3 benchmarks/bench_sparse.py --algorithms --device cuda --backbones res16unet34 --sizes 100000 400000 --repeats 3
TAILN=5 job pretrain_demo_algorithms 80 python3 benchmarks/bench_pretrain.py --device cuda --ab algorithms --steps 8 --set teacher.weights=random
TAILN=5 job pretrain_demo_previous_reversed 80 python3 benchmarks/bench_pretrain.py --device cuda --ab previous --reverse --steps 8 --set teacher.weights=random
TAILN=5 job pretrain_paper_algorithms 150 python3 benchmarks/bench_pretrain.py --device cuda --preset paper --ab algorithms --steps 4 --set teacher.weights=random optim.batch_size=8 data.kind=synthetic
