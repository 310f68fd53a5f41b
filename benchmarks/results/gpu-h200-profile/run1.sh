#!/bin/bash
# Device checks for issue 23 (one go): where the CUDA step went slower, the batched kernel-map
# reads, and detection's ratios.
set -u
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD/src:$PWD/benchmarks
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.is_available())"
job() { name=$1; lim=$2; shift 2; S=$SECONDS; timeout $lim "$@" > $OUT/$name.log 2>&1; rc=$?
  echo "== $name rc=$rc $((SECONDS-S)) s"; grep -v "it/s\]\|frame/s\]\|USDT\|^---\|^ *Name " $OUT/$name.log | grep -v "^\s*$" | head -${HEADN:-12}; }
python3 - <<'PY' > $OUT/maps_equal.log 2>&1; echo "== maps_equal rc=$?"; cat $OUT/maps_equal.log
import torch
from bench_sparse import room_coords
from ppkt.sparse.kernel_map import submanifold_map
c = room_coords(100000).cuda()
for k in (3, 5):
    a, b = submanifold_map(c, 1, k, batched=False), submanifold_map(c, 1, k, batched=True)
    same = torch.equal(a.in_index, b.in_index) and torch.equal(a.out_index, b.out_index) and torch.equal(a.offset_counts, b.offset_counts)
    print(f"cuda k{k}: batched map equals per-offset map: {same}")
PY
HEADN=8 job pretrain_demo_ab 100 python3 benchmarks/bench_pretrain.py --device cuda --ab previous --steps 8 --profile --profile-rows 25 --set teacher.weights=random
HEADN=8 job pretrain_demo_ab_t1 100 python3 benchmarks/bench_pretrain.py --device cuda --threads 1 --ab previous --steps 8 --set teacher.weights=random
HEADN=6 job maps_cuda 90 python3 benchmarks/bench_sparse.py --maps --device cuda --sizes 25000 100000 --repeats 5
HEADN=8 job detection_cuda 120 python3 benchmarks/bench_detection.py --device cuda --repeats 3
HEADN=8 job pretrain_paper_ab 150 python3 benchmarks/bench_pretrain.py --device cuda --preset paper --ab previous --steps 4 --profile --profile-rows 25 --set teacher.weights=random optim.batch_size=8 data.kind=synthetic
