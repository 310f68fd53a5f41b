"""Profile one fine-tuning step (bench_gpu's finetune-scannet runner) per conv algorithm."""

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, "benchmarks")
import bench_gpu
from ppkt.data.synthetic import ensure_dataset
from ppkt.sparse.functional import set_conv_algorithm

p = argparse.ArgumentParser()
p.add_argument("--device", default="cuda")
p.add_argument("--batch", type=int, default=8)
p.add_argument("--small", action="store_true")
p.add_argument("--rows", type=int, default=14)
a = p.parse_args()
dev = torch.device(a.device)
args = argparse.Namespace(width=0.25 if a.small else 1.0, voxel_size=0.2 if a.small else None)
with tempfile.TemporaryDirectory() as tmp:
    root = ensure_dataset(
        scenes=2,
        frames_per_scene=4,
        image_hw=(48, 64) if a.small else (480, 640),
        cache_dir=Path(tmp),
        max_points=60_000,
    )
    for alg in ("offsets", "table"):
        set_conv_algorithm(alg)
        step, _ = bench_gpu._finetune_runner(args, root, "torch", "fp32", a.batch, dev)
        for _ in range(2):
            step()
        b = bench_gpu._BATCHES["finetune", a.batch][0]
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        with torch.profiler.profile(
            activities=[torch.profiler.ProfilerActivity.CPU]
            + ([torch.profiler.ProfilerActivity.CUDA] if dev.type == "cuda" else [])
        ) as prof:
            step()
            if dev.type == "cuda":
                torch.cuda.synchronize()
        print(
            f"== {alg}: {time.perf_counter() - t:.3f} s under the profiler; "
            f"{b.sparse.tensor.num_sites} voxels"
        )
        key = "self_cuda_time_total" if dev.type == "cuda" else "self_cpu_time_total"
        print(prof.key_averages().table(sort_by=key, row_limit=a.rows, max_name_column_width=60))
