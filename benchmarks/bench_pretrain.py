"""Time one pretraining step of a preset, split into its parts, and report peak memory.

    python benchmarks/bench_pretrain.py                      # demo preset, 5 timed steps
    python benchmarks/bench_pretrain.py --steps 10 --threads 1 --set optim.batch_size=2
    python benchmarks/bench_pretrain.py --threads 1 --ab previous          # this code / the previous one
    python benchmarks/bench_pretrain.py --threads 1 --ab real-frames       # real 640x480 / synthetic frames
    python benchmarks/bench_pretrain.py --threads 1 --preset paper --frames real --ab previous \
        --set optim.batch_size=2 teacher.weights=random

``--frames real`` reads a real RGB-D frame instead of the preset's data: Middlebury 2014
"Motorcycle" from scikit-image (``ppkt.data.real_frame``), cropped to 480x640 like a Kinect
frame, augmented differently at every index. ``--ab`` alternates whole steps (data + model + loss
+ backward + optimiser) of two variants, ``--steps`` of each after one warm-up each, and prints
the median step times and their ratio, measured in one run, whole and split into the data part
(CPU, in this process) and the model part (the device's): ``previous`` runs every other step
with the implementations this code replaced (``benchmarks/_previous.py``: all pairs embedded,
the previous voxelisation, kernel maps and colour lookup, no numba kernels, the per-offset
convolution loop); ``real-frames`` runs every other step on real frames instead of the preset's
frames (same batch size); ``algorithms`` runs the torch backend's convolutions per kernel
offset, then through the maps' dense tables (``ppkt.sparse.functional.set_conv_algorithm``);
``compiled`` runs with the numba kernels, then without (``ppkt.utils.compiled``).

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
import contextlib
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
from ppkt.train.batch import Collator
from ppkt.train.dataset import PretrainDataset
from ppkt.train.loop import build_frames, build_optimizer, pair_generator
from ppkt.train.model import build_model
from ppkt.train.pair_sampling import sample_pairs
from ppkt.train.presets import get_preset
from ppkt.train.sampler import StepBatchSampler
from ppkt.utils.compiled import compiled_kernels, use_compiled

REAL_HW = (480, 640)


def real_frames(count: int):
    """``count`` copies of the real Middlebury frame, cropped to 480x640 (centre), distinct ids."""
    import dataclasses

    import numpy as np

    from ppkt.data.real_frame import middlebury_motorcycle_frame

    frame = middlebury_motorcycle_frame()
    h, w = frame.depth.shape
    top, left = (h - REAL_HW[0]) // 2, (w - REAL_HW[1]) // 2
    K = np.array(frame.K_depth, dtype=np.float64)
    K[0, 2] -= left
    K[1, 2] -= top
    crop = (slice(top, top + REAL_HW[0]), slice(left, left + REAL_HW[1]))
    base = dataclasses.replace(
        frame, color=frame.color[crop].copy(), depth=frame.depth[crop].copy(), K_color=K, K_depth=K.copy()
    )
    return [dataclasses.replace(base, frame_id=f"crop-{i}") for i in range(count)]


def profile_step(args, cfg, device) -> int:
    """Where one step's time goes: torch.profiler's ops, and the kernel maps timed on their own."""
    from bench_sparse import _ppkt_maps

    frames = real_frames(max(16, cfg.optim.batch_size)) if args.frames == "real" else build_frames(cfg)
    model = build_model(cfg).to(device).train()
    optimizer = build_optimizer(cfg, [p for p in model.parameters() if p.requires_grad])
    dataset = PretrainDataset(frames, cfg.data, cfg.augment, cfg.model.input_features, seed=0)
    collate = Collator(cfg.model.voxel_size)
    loss_fn = PointInfoNCE(cfg.loss.tau)
    sampler = StepBatchSampler(len(frames), cfg.optim.batch_size, seed=0, total_steps=2)

    def step(keys, index):
        batch = collate([dataset[k] for k in keys]).to(device)
        pairs = sample_pairs(
            batch.pair_frame, cfg.loss.num_pairs, cfg.loss.sampling, pair_generator(0, index, 0)
        )
        emb = model(batch, pairs.index)
        loss = loss_fn(emb.points, emb.pixels, pairs.group)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return batch

    batches = list(sampler)
    step(batches[0], 0)
    start = time.perf_counter()
    with torch.profiler.profile() as prof:
        batch = step(batches[1], 1)
    total = time.perf_counter() - start
    maps_start = time.perf_counter()
    _ppkt_maps(batch.sparse.tensor.coords)
    maps = time.perf_counter() - maps_start
    print(
        f"preset {args.preset}, frames {args.frames}, batch {cfg.optim.batch_size}, "
        f"{int(batch.sparse.point_to_voxel.numel())} points, {batch.sparse.tensor.num_sites} voxels, "
        f"{batch.num_pairs} pairs; step {total:.2f} s under the profiler"
    )
    print(
        f"kernel maps of this batch, built on their own: {maps:.3f} s "
        f"= {100 * maps / total:.1f} % of the step"
    )
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.profile_rows))
    return 0


def ab_steps(args, cfg, device) -> int:
    """Alternate whole steps of two variants; print median seconds per step and the ratio."""
    import copy

    import _previous
    from ppkt.sparse.functional import set_conv_algorithm

    frames = real_frames(max(16, cfg.optim.batch_size)) if args.frames == "real" else build_frames(cfg)
    # name -> (frames, previous implementation?, torch backend's conv algorithm (None = by device),
    # numba kernels on?)
    on = use_compiled()
    variants = {"this code": (frames, False, None, on)}
    if args.ab == "previous":
        variants["previous"] = (frames, True, "offsets", False)  # the previous code: loop, no numba
    elif args.ab == "algorithms":
        variants = {
            "conv per offset": (frames, False, "offsets", on),
            "conv dense table": (frames, False, "table", on),
        }
    elif args.ab == "compiled":
        if not on:
            raise SystemExit("--ab compiled needs numba (pip install 'ppkt[fast]') and PPKT_NUMBA unset")
        variants = {"numba kernels": (frames, False, None, True), "torch path": (frames, False, None, False)}
    else:
        variants = {
            "preset frames": (build_frames(cfg), False, None, on),
            "real 640x480 frames": (real_frames(max(16, cfg.optim.batch_size)), False, None, on),
        }
    if args.reverse:  # the other variant first in every step: an order effect shows as a changed ratio
        variants = dict(reversed(variants.items()))
    model = build_model(cfg).to(device).train()
    collate = Collator(cfg.model.voxel_size)
    # One warm-up step, the timed steps, then (with --profile) one untimed step under the profiler.
    last = args.steps + 1
    # 16 frames (the first of each set), or a batch of them when the batch is larger
    count = min(max(16, cfg.optim.batch_size), *(len(v[0]) for v in variants.values()))
    sampler = StepBatchSampler(count, cfg.optim.batch_size, seed=0, total_steps=last + int(args.profile))
    loss_fn = PointInfoNCE(cfg.loss.tau)
    runs = {}
    for name, (data_frames, previous, algorithm, compiled) in variants.items():
        net = copy.deepcopy(model)
        optimizer = build_optimizer(cfg, [p for p in net.parameters() if p.requires_grad])
        dataset = PretrainDataset(data_frames, cfg.data, cfg.augment, cfg.model.input_features, seed=0)
        runs[name] = (net, optimizer, dataset, previous, algorithm, compiled)
    times: dict[str, list[float]] = {name: [] for name in runs}
    data_times: dict[str, list[float]] = {name: [] for name in runs}
    sizes: dict[str, tuple] = {}
    tables: dict[str, str] = {}
    for step, keys in enumerate(sampler):
        for name, (net, optimizer, dataset, previous, algorithm, compiled) in runs.items():
            set_conv_algorithm(algorithm)
            generator = pair_generator(0, step, 0)
            profiler = (
                torch.profiler.profile(activities=_profiler_activities(device))
                if args.profile and step == last
                else contextlib.nullcontext()
            )
            switch = _previous.previous_implementation() if previous else compiled_kernels(compiled)
            with profiler, switch:
                _sync(device)
                start = time.perf_counter()
                batch = collate([dataset[k] for k in keys]).to(device)
                _sync(device)
                data_end = time.perf_counter()
                if previous:
                    loss = _previous.all_pairs_loss(
                        net, batch, generator, cfg.loss.num_pairs, cfg.loss.tau, cfg.loss.sampling
                    )
                else:
                    pairs = sample_pairs(batch.pair_frame, cfg.loss.num_pairs, cfg.loss.sampling, generator)
                    emb = net(batch, pairs.index)
                    loss = loss_fn(emb.points, emb.pixels, pairs.group)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                _sync(device)
                end = time.perf_counter()
            if args.profile and step == last:
                tables[name] = _profile_tables(profiler, device, args.profile_rows)
            if 0 < step < last:  # the first step of each variant is a warm-up
                times[name].append(end - start)
                data_times[name].append(data_end - start)
            sparse = batch.sparse
            sizes[name] = (int(sparse.point_to_voxel.numel()), sparse.tensor.num_sites, batch.num_pairs)
    print(
        f"preset {args.preset}, device {device}, threads {torch.get_num_threads()}, "
        f"backbone {cfg.model.backbone} x{cfg.model.width}, image {cfg.data.image_hw}, "
        f"batch {cfg.optim.batch_size}, max_depth_pixels {cfg.data.max_depth_pixels}, "
        f"{args.steps} steps of each variant, alternated"
    )
    for name, values in times.items():
        points, voxels, pairs = sizes[name]
        print(
            f"  {name:22s} median {statistics.median(values):7.3f} s/step  "
            f"(steps: {', '.join(f'{v:.2f}' for v in values)}; last batch {points} points, "
            f"{voxels} voxels, {pairs} pairs)"
        )
    set_conv_algorithm(None)
    names = list(times)
    a, b = (statistics.median(v) for v in times.values())
    print(f"ratio {names[1]} / {names[0]} (step time): {b / a:.2f}x")
    # The data part (read, pairs, augmentation, voxelisation, collation, copy to the device) runs on
    # the CPU in this process; the rest is the model's work on the device. On a GPU they differ in
    # kind, so a ratio of the whole step alone cannot say which side moved.
    for part, series in (
        ("data", data_times),
        ("model", {n: [t - d for t, d in zip(times[n], data_times[n], strict=True)] for n in names}),
    ):
        a, b = (statistics.median(series[n]) for n in names)
        print(f"  {part:5s} median {names[0]} {a:.3f} s, {names[1]} {b:.3f} s; ratio {b / a:.2f}x")
    for name, table in tables.items():
        print(f"\nprofile of the last step, {name}:\n{table}")
    return 0


def _profiler_activities(device: torch.device) -> list:
    activities = [torch.profiler.ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    return activities


def _profile_tables(profiler, device: torch.device, rows: int) -> str:
    averages = profiler.key_averages()
    text = averages.table(sort_by="self_cpu_time_total", row_limit=rows)
    if device.type == "cuda":
        text += "\n" + averages.table(sort_by="self_cuda_time_total", row_limit=rows)
    return text


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
    parser.add_argument("--frames", choices=("preset", "real"), default="preset", help="see above")
    parser.add_argument(
        "--ab", choices=("previous", "real-frames", "algorithms", "compiled"), default=None, help="see above"
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="torch.profiler table of one step (after a warm-up step); with --ab, of one extra "
        "untimed step of each variant (sorted by CPU time, and by CUDA time on a GPU)",
    )
    parser.add_argument("--profile-rows", type=int, default=12)
    parser.add_argument("--reverse", action="store_true", help="with --ab: run the second variant first")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    overrides = dict(item.split("=", 1) for item in args.set)
    cfg = apply_overrides(get_preset(args.preset), {**overrides, "run.progress": "false"})
    device = torch.device(args.device)
    if args.ab is not None:
        return ab_steps(args, cfg, device)
    if args.profile:
        return profile_step(args, cfg, device)

    frames = real_frames(max(16, cfg.optim.batch_size)) if args.frames == "real" else build_frames(cfg)
    model = build_model(cfg).to(device)
    model.train()
    optimizer = build_optimizer(cfg, [p for p in model.parameters() if p.requires_grad])
    loss_fn = PointInfoNCE(cfg.loss.tau)
    dataset = PretrainDataset(frames, cfg.data, cfg.augment, cfg.model.input_features, seed=0)
    collate = Collator(cfg.model.voxel_size)
    sampler = StepBatchSampler(len(frames), cfg.optim.batch_size, seed=0, total_steps=args.steps + 1)

    cache_dir = tempfile.mkdtemp(prefix="bench_teacher_cache_")
    cache = TeacherFeatureCache(cache_dir, model.teacher.identity, tuple(cfg.data.image_hw))
    t = time.perf_counter()
    cache_teacher_features(frames, model.teacher, cache, progress=False)
    cache_s = time.perf_counter() - t
    cached_dataset = PretrainDataset(
        frames, cfg.data, cfg.augment, cfg.model.input_features, seed=0, teacher_cache=cache
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
            counts["points"].append(int(batch.sparse.point_to_voxel.numel()))
            counts["voxels"].append(batch.sparse.tensor.num_sites)
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
        f"backbone {cfg.model.backbone} x{cfg.model.width}, "
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
