"""Time one pretraining step of a preset, split into its parts, and report peak memory.

    python benchmarks/bench_pretrain.py                      # demo preset, 5 timed steps
    python benchmarks/bench_pretrain.py --steps 10 --threads 1 --set optim.batch_size=2

Parts: data (read + pairs + augmentation + voxelisation + collation, in this process), teacher
(uncached forward; cached = reading the frames' features from a TeacherFeatureCache written
for the benchmark), UPL sampling, 3D forward (backbone + head + gather at the pairs), loss,
backward, optimiser step. Median over the timed steps after one warm-up step. Peak memory is
the process's maximum resident set (CPU) or torch's peak allocation (CUDA).
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
import time

import torch

from ppkt.config import apply_overrides
from ppkt.losses import PointInfoNCE
from ppkt.train.loop import build_frames, build_optimizer, pair_generator
from ppkt.train.model import build_model
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
    loss_fn = PointInfoNCE(cfg.loss.num_pairs, cfg.loss.tau, sampling=cfg.loss.sampling)
    dataset = PretrainDataset(frames, cfg.data, cfg.augment, cfg.student.input_features, seed=0)
    collate = Collator(cfg.student.voxel_size)
    sampler = StepBatchSampler(len(frames), cfg.optim.batch_size, seed=0, total_steps=args.steps + 1)

    cache = None
    try:
        from ppkt.teachers import TeacherFeatureCache

        cache_dir = tempfile.mkdtemp(prefix="bench_teacher_cache_")
        cache = TeacherFeatureCache(cache_dir, model.teacher.identity, tuple(cfg.data.image_hw))
    except ImportError:
        pass

    parts: dict[str, list[float]] = {}
    counts: dict[str, list[int]] = {"frames": [], "points": [], "voxels": [], "pairs": []}

    def timed(name: str, fn):
        _sync(device)
        t = time.perf_counter()
        out = fn()
        _sync(device)
        parts.setdefault(name, []).append(time.perf_counter() - t)
        return out

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    for step, keys in enumerate(sampler):
        batch = timed("data", lambda keys=keys: collate([dataset[k] for k in keys]))
        batch = batch.to(device)
        features = timed("teacher (uncached)", lambda batch=batch: model.teacher(batch.images))
        if cache is not None:
            names = [n.split("/", 1) for n in batch.names]
            for (scene, frame), f in zip(names, features, strict=True):
                cache.put(scene, frame, f)
            timed(
                "teacher (cached read)",
                lambda names=names: torch.stack([cache.get(s, f) for s, f in names]).to(device).float(),
            )
        pixels = timed(
            "UPL sample", lambda batch=batch, features=features: model.pixel_embeddings(batch, features)
        )
        points = timed("3D forward", lambda batch=batch: model.point_embeddings(batch))
        loss = timed(
            "loss",
            lambda p=points, q=pixels, b=batch, s=step: loss_fn(p, q, b.pair_frame, pair_generator(0, s, 0)),
        )
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

    print(
        f"preset {args.preset}, device {device}, threads {torch.get_num_threads()}, "
        f"backbone {cfg.student.backbone} x{cfg.student.width}, "
        f"teacher {cfg.teacher.name}/{cfg.teacher.stage}, "
        f"image {cfg.data.image_hw}, batch {cfg.optim.batch_size}, {args.steps} timed steps"
    )
    print(
        "per step (median): "
        + ", ".join(f"{k} {int(statistics.median(v))}" for k, v in counts.items())
        + f", loss {loss.item():.3f}"
    )
    train_parts = [k for k in parts if k != "teacher (cached read)"]
    total = sum(statistics.median(parts[k]) for k in train_parts)
    for name, values in parts.items():
        med = statistics.median(values)
        share = f"{100 * med / total:5.1f} %" if name in train_parts else "  (alt)"
        print(f"  {name:24s} {1000 * med:9.1f} ms  {share}")
    print(f"  {'step total (uncached)':24s} {1000 * total:9.1f} ms  -> {1 / total:.2f} steps/s")
    if "teacher (cached read)" in parts:
        cached_total = (
            total
            - statistics.median(parts["teacher (uncached)"])
            + statistics.median(parts["teacher (cached read)"])
        )
        print(
            f"  {'step total (cached)':24s} {1000 * cached_total:9.1f} ms  -> {1 / cached_total:.2f} steps/s"
        )
    if device.type == "cuda":
        print(f"peak GPU memory: {torch.cuda.max_memory_allocated(device) / 2**20:.0f} MiB")
    rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"peak process memory (max RSS): {rss_kib / 1024:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
