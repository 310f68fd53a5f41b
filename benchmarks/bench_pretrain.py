"""Time one pretraining step of a preset, split into its parts, and report peak memory.

    python benchmarks/bench_pretrain.py                      # demo preset, 5 timed steps
    python benchmarks/bench_pretrain.py --steps 10 --threads 1 --set optim.batch_size=2

Parts: data (read + pairs + augmentation + voxelisation + collation, in this process), teacher,
UPL sampling, 3D forward (backbone + head + gather at the pairs), loss, backward, optimiser step.
The same steps run twice: with the teacher forward on the augmented images, then through a
TeacherFeatureCache written for the benchmark (``teacher.cache``: the dataset reads each frame's
cached map, the teacher runs only on frames the cache lacks, none here). Median over the timed
steps after one warm-up step. Peak memory is the process's maximum resident set (CPU) or torch's
peak allocation (CUDA).
"""

from __future__ import annotations

import argparse
import resource
import shutil
import statistics
import sys
import tempfile
import time

import torch

from ppkt.config import apply_overrides
from ppkt.losses import PointInfoNCE
from ppkt.teachers import TeacherFeatureCache, cache_teacher_features
from ppkt.train.loop import build_frames, build_optimizer, pair_generator
from ppkt.train.model import build_model
from ppkt.train.pair_sampling import sample_pairs
from ppkt.train.pipeline import Collator, PretrainDataset, StepBatchSampler
from ppkt.train.presets import get_preset


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--preset", default="demo")
    parser.add_argument("--steps", type=int, default=5, help="timed steps (after one warm-up step)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="config overrides")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    overrides = dict(item.split("=", 1) for item in args.set)
    cfg = apply_overrides(get_preset(args.preset), {**overrides, "run.progress": "false"})
    device = torch.device(args.device)

    frames = build_frames(cfg)
    model = build_model(cfg).to(device)
    model.train()
    optimizer = build_optimizer(cfg, [p for p in model.parameters() if p.requires_grad])
    loss_fn = PointInfoNCE(cfg.loss.tau)
    dataset = PretrainDataset(frames, cfg.data, cfg.augment, cfg.student.input_features, seed=0)
    collate = Collator(cfg.student.voxel_size)
    sampler = StepBatchSampler(len(frames), cfg.optim.batch_size, seed=0, total_steps=args.steps + 1)

    cache_dir = tempfile.mkdtemp(prefix="bench_teacher_cache_")
    cache = TeacherFeatureCache(cache_dir, model.teacher.identity, tuple(cfg.data.image_hw))
    t = time.perf_counter()
    cache_teacher_features(frames, model.teacher, cache, progress=False)
    cache_s = time.perf_counter() - t
    cached_dataset = PretrainDataset(
        frames, cfg.data, cfg.augment, cfg.student.input_features, seed=0, teacher_cache=cache
    )

    def run_steps(data: PretrainDataset, cached: bool) -> tuple[dict[str, list[float]], dict, float]:
        """Time each part of ``args.steps`` steps (after one warm-up step) on ``data``."""
        parts: dict[str, list[float]] = {}
        counts: dict[str, list[int]] = {"frames": [], "points": [], "voxels": [], "pairs": []}

        def timed(name: str, fn):
            _sync(device)
            t = time.perf_counter()
            out = fn()
            _sync(device)
            parts.setdefault(name, []).append(time.perf_counter() - t)
            return out

        loss = torch.zeros(())
        for step, keys in enumerate(sampler):
            batch = timed("data", lambda keys=keys: collate([data[k] for k in keys]))
            batch = batch.to(device)
            if cached:
                features = timed("teacher (cache)", lambda b=batch: model.cached_teacher_features(b))
            else:
                features = timed("teacher", lambda b=batch: model.teacher(b.images))
            generator = pair_generator(0, step, 0)
            pairs = timed(
                "pair sampling",
                lambda b=batch, g=generator: sample_pairs(
                    b.pair_frame, cfg.loss.num_pairs, cfg.loss.sampling, g
                ),
            )
            pixels = timed(
                "UPL sample", lambda b=batch, f=features, i=pairs.index: model.pixel_embeddings(b, f, i)
            )
            points = timed("3D forward", lambda b=batch, i=pairs.index: model.point_embeddings(b, i))
            loss = timed("loss", lambda p=points, q=pixels, g=pairs.group: loss_fn(p, q, g))
            optimizer.zero_grad(set_to_none=True)
            timed("backward", loss.backward)
            timed("optimizer", optimizer.step)
            counts["frames"].append(batch.batch_size)
            counts["points"].append(int(batch.point_to_voxel.numel()))
            counts["voxels"].append(int(batch.coords.shape[0]))
            counts["pairs"].append(batch.num_pairs)
            if step == 0:  # warm-up: first calls build caches and allocate
                parts.clear()
                for v in counts.values():
                    v.clear()
        return parts, counts, float(loss.item())

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    parts, counts, loss = run_steps(dataset, cached=False)
    cached_parts, _, _ = run_steps(cached_dataset, cached=True)
    shutil.rmtree(cache_dir, ignore_errors=True)

    print(
        f"preset {args.preset}, device {device}, threads {torch.get_num_threads()}, "
        f"backbone {cfg.student.backbone} x{cfg.student.width}, "
        f"teacher {cfg.teacher.name}/{cfg.teacher.stage}, "
        f"image {cfg.data.image_hw}, batch {cfg.optim.batch_size}, {args.steps} timed steps"
    )
    print(
        "per step (median): "
        + ", ".join(f"{k} {int(statistics.median(v))}" for k, v in counts.items())
        + f", loss {loss:.3f}"
    )
    print(f"writing the teacher cache of {len(frames)} frames: {cache_s:.1f} s")
    totals = {}
    for label, timings in (("uncached", parts), ("cached", cached_parts)):
        total = sum(statistics.median(v) for v in timings.values())
        totals[label] = total
        print(f"{label} teacher" + (" (data includes reading the cache):" if label == "cached" else ":"))
        for name, values in timings.items():
            med = statistics.median(values)
            print(f"  {name:24s} {1000 * med:9.1f} ms  {100 * med / total:5.1f} %")
        print(f"  {'step total':24s} {1000 * total:9.1f} ms  -> {1 / total:.2f} steps/s")
    print(f"speed-up of a step with the cache: {totals['uncached'] / totals['cached']:.2f}x")
    if device.type == "cuda":
        print(f"peak GPU memory: {torch.cuda.max_memory_allocated(device) / 2**20:.0f} MiB")
    rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"peak process memory (max RSS): {rss_kib / 1024:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
