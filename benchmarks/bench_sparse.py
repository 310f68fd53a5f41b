"""Forward+backward speed and memory of the sparse U-Nets on a synthetic room, per backend.

Points are sampled on the surfaces of a synthetic room (floor, ceiling, four walls, a few boxes:
surfaces, as in real scans, not a filled volume) and voxelised at 2.5 cm. The room is scaled so
that the voxel count is close to each target. Each (backbone, size, backend) runs in a fresh
process, so the peak-memory figure (maxrss growth over the process's baseline) is its own.

Achieved GFLOP/s counts 2 * MACs from the kernel maps actually used (forward) and 2 * 2 * MACs
for the backward (input and weight gradients); a dense float32 matmul measured in the same run
gives the machine's reference figure.

    python benchmarks/bench_sparse.py                       # 18 and 34 at 25k and 100k voxels
    python benchmarks/bench_sparse.py --sizes 25000 --backbones res16unet34 --profile

Ratios measured in one process (alternating the variants, ``--repeats`` times, medians), one
torch thread (spconv 2.3 on CPU is wrong with more):

    python benchmarks/bench_sparse.py --maps       # kernel maps: this code / previous / spconv's
    python benchmarks/bench_sparse.py --ab         # networks: torch backend / spconv, / dense GEMM
    python benchmarks/bench_sparse.py --batched    # one padded bmm over offsets / per-offset loop
    python benchmarks/bench_sparse.py --algorithms --device cuda --backbones res16unet14 --width 0.5
                                                   # torch backend: per-offset loop / dense table

``--maps`` builds every map a Res16UNet forward uses (kernel 5 and 3 at stride 1, kernel 3 at
strides 2-16, four coarsenings) with this code, with the previous implementation
(``benchmarks/_previous.py``) and with spconv's own ``get_indice_pairs`` (same maps: submanifold
k5/k3 per level, k2 s2 coarsenings), when spconv imports. ``--ab`` times forward and
forward+backward of each backbone with the torch backend and with the spconv backend (spconv's
forward kernels on ppkt's maps; the backward is always ppkt's), and a dense float32 matmul
``(n, 512) @ (512, 512)`` with the same multiply-accumulates as the sparse forward.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import statistics
import time

import torch

VOXEL = 0.025


def room_points(scale: float, seed: int = 0) -> torch.Tensor:
    """Points on the surfaces of a box-shaped room with furniture-like boxes, metres."""
    g = torch.Generator().manual_seed(seed)
    size = torch.tensor([6.0, 5.0, 3.0]) * scale
    density = 4000  # points per square metre: every 2.5 cm voxel of a surface gets several

    def box_surface(lo: torch.Tensor, hi: torch.Tensor, skip_bottom: bool) -> list[torch.Tensor]:
        faces = []
        extent = hi - lo
        for axis in range(3):
            for side in (0, 1):
                if skip_bottom and axis == 2 and side == 0:
                    continue
                a, b = [i for i in range(3) if i != axis]
                area = float(extent[a] * extent[b])
                n = max(1, int(area * density))
                p = torch.empty(n, 3)
                p[:, a] = lo[a] + torch.rand(n, generator=g) * extent[a]
                p[:, b] = lo[b] + torch.rand(n, generator=g) * extent[b]
                p[:, axis] = lo[axis] if side == 0 else hi[axis]
                faces.append(p)
        return faces

    parts = box_surface(torch.zeros(3), size, skip_bottom=False)
    for _ in range(8):
        centre = torch.rand(3, generator=g) * size
        half = (0.2 + torch.rand(3, generator=g) * 0.6) * torch.tensor([1.0, 1.0, 0.8]) * scale
        lo = torch.maximum(centre - half, torch.zeros(3))
        lo[2] = 0.0
        hi = torch.minimum(lo + 2 * half, size)
        parts += box_surface(lo, hi, skip_bottom=True)
    return torch.cat(parts)


def room_coords(target: int) -> torch.Tensor:
    from ppkt.geometry import voxelize

    scale = 1.0
    for _ in range(4):
        coords, _, _ = voxelize(room_points(scale), VOXEL)
        scale *= (target / coords.shape[0]) ** 0.5
    coords, _, _ = voxelize(room_points(scale), VOXEL)
    return torch.cat([torch.zeros(len(coords), 1, dtype=torch.long), coords], 1)


def count_macs(net: torch.nn.Module, x) -> int:
    from ppkt.sparse import DownConv3d, SubmanifoldConv3d, UpConv3d

    total = 0

    def hook(module, inputs, output):
        nonlocal total
        t = inputs[0]
        c_in, c_out = module.in_channels, module.out_channels
        if isinstance(module, SubmanifoldConv3d):
            if module.kernel_size == 1:
                total += t.num_sites * c_in * c_out
            else:
                total += t.cache.submanifold(t.stride, module.kernel_size).num_macs(c_in, c_out)
        elif isinstance(module, DownConv3d):
            total += t.cache.downsampling(t.stride).kernel_map.num_macs(c_in, c_out)
        elif isinstance(module, UpConv3d):
            total += t.cache.downsampling(t.stride // 2).kernel_map.num_macs(c_in, c_out)

    handles = [
        m.register_forward_hook(hook)
        for m in net.modules()
        if isinstance(m, SubmanifoldConv3d | DownConv3d | UpConv3d)
    ]
    with torch.no_grad():
        net(x)
    for h in handles:
        h.remove()
    return total


def dense_matmul_gflops(n: int = 2048, reps: int = 5) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    start = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n**3 * reps / (time.perf_counter() - start) / 1e9


def _run_one(args: tuple) -> dict:
    name, target, backend, reps, warmup, profile = args
    from ppkt.backbones import build_backbone
    from ppkt.sparse import SparseTensor

    torch.manual_seed(0)
    coords = room_coords(target)
    feats = torch.rand(len(coords), 3) - 0.5
    net = build_backbone(name, 3, backend=backend).train()
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    macs = count_macs(net, SparseTensor(coords, feats))
    times, map_times = [], []
    for i in range(reps + warmup):
        start = time.perf_counter()
        x = SparseTensor(coords, feats)
        # Time the kernel maps separately (they are built lazily inside the first layers).
        x.cache.submanifold(1, 5)
        s = 1
        for _ in range(4):
            x.cache.submanifold(s, 3)
            x.cache.downsampling(s)
            s *= 2
        x.cache.submanifold(s, 3)
        maps_done = time.perf_counter()
        out = net(x)
        out.feats.square().mean().backward()
        net.zero_grad(set_to_none=True)
        if i >= warmup:
            times.append(time.perf_counter() - start)
            map_times.append(maps_done - start)
    peak_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base_rss) / 1024
    table = None
    if profile:
        with torch.profiler.profile() as prof:
            out = net(SparseTensor(coords, feats))
            out.feats.square().mean().backward()
        table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=14)
    t = statistics.median(times)
    return {
        "name": name,
        "voxels": len(coords),
        "backend": backend,
        "seconds": t,
        "map_seconds": statistics.median(map_times),
        "gflops": 6 * macs / t / 1e9,
        "gmacs": macs / 1e9,
        "peak_mb": peak_mb,
        "profile": table,
    }


def _median_times(jobs: dict, repeats: int) -> dict[str, float]:
    """Median seconds of each job, the jobs taking turns in every repeat (after one warm-up)."""
    times: dict[str, list[float]] = {name: [] for name in jobs}
    for r in range(repeats + 1):
        for name, fn in jobs.items():
            start = time.perf_counter()
            fn()
            if r > 0:
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(v) for name, v in times.items()}


def _ppkt_maps(coords: torch.Tensor) -> None:
    from ppkt.sparse import CoordinateCache

    cache = CoordinateCache(coords)
    cache.submanifold(1, 5)
    s = 1
    for _ in range(4):
        cache.submanifold(s, 3)
        cache.downsampling(s)
        s *= 2
    cache.submanifold(s, 3)


def _previous_maps(coords: torch.Tensor) -> None:
    import _previous

    _previous.submanifold_map(coords, 1, 5)
    s = 1
    for _ in range(4):
        _previous.submanifold_map(coords, s, 3)
        coords = _previous.downsample_map(coords, s).coarse_coords
        s *= 2
    _previous.submanifold_map(coords, s, 3)


def _spconv_maps(coords: torch.Tensor) -> None:
    from spconv.core import ConvAlgo
    from spconv.pytorch import ops

    idx = coords.clone()
    idx[:, 1:] -= idx[:, 1:].min(0).values
    shape = (idx[:, 1:].max(0).values + 1).tolist()
    ind = idx.int()
    batch = int(ind[:, 0].max()) + 1
    ones, zeros = [1, 1, 1], [0, 0, 0]
    ops.get_indice_pairs(ind, batch, shape, ConvAlgo.Native, [5] * 3, ones, [2] * 3, ones, zeros, True)
    for level in range(5):
        ops.get_indice_pairs(ind, batch, shape, ConvAlgo.Native, [3] * 3, ones, ones, ones, zeros, True)
        if level == 4:
            break
        out = ops.get_indice_pairs(ind, batch, shape, ConvAlgo.Native, [2] * 3, [2] * 3, zeros, ones, zeros)
        ind = out[0]
        shape = [(d + 1) // 2 for d in shape]


def _table_reads_maps(coords: torch.Tensor, batched: bool) -> None:
    """The stride-1 kernel-5 and kernel-3 maps with the table read offset by offset or batched."""
    from ppkt.sparse.kernel_map import submanifold_map

    submanifold_map(coords, 1, 5, batched=batched)
    submanifold_map(coords, 1, 3, batched=batched)
    if coords.device.type == "cuda":
        torch.cuda.synchronize()


def maps_section(sizes: list[int], repeats: int, device: str = "cpu") -> None:
    from ppkt.sparse import spconv_available

    print(f"kernel maps of one Res16UNet forward (k5 + k3 at stride 1, k3 at 2-16, 4 coarsenings), {device}")
    for size in sizes:
        coords = room_coords(size).to(device)
        jobs = {"this code": lambda c=coords: _ppkt_maps(c)}
        if device == "cpu":
            jobs["previous"] = lambda c=coords: _previous_maps(c)
            if spconv_available():
                jobs["spconv"] = lambda c=coords: _spconv_maps(c)
        # The table read per offset (the CPU default) against all offsets at once (the default
        # elsewhere: one host sync per map instead of one per offset).
        jobs["k5+k3, table per offset"] = lambda c=coords: _table_reads_maps(c, False)
        jobs["k5+k3, table batched"] = lambda c=coords: _table_reads_maps(c, True)
        t = _median_times(jobs, repeats)
        line = ", ".join(f"{name} {1e3 * v:.1f} ms" for name, v in t.items())
        ratios = ", ".join(
            f"{name} / this code {v / t['this code']:.2f}x"
            for name, v in t.items()
            if name in ("previous", "spconv")
        )
        per_offset, batched = t["k5+k3, table per offset"], t["k5+k3, table batched"]
        ratios += f"{', ' if ratios else ''}table per offset / batched {per_offset / batched:.2f}x"
        print(f"  {len(coords)} voxels: {line}; {ratios}", flush=True)


def ab_section(backbones: list[str], sizes: list[int], width: float, repeats: int) -> None:
    print(f"networks (width {width}): median seconds, this process, alternated")
    for name in backbones:
        for size in sizes:
            _ab_one(name, size, width, repeats)


def _ab_one(name: str, size: int, width: float, repeats: int) -> None:
    from ppkt.backbones import build_backbone
    from ppkt.sparse import SparseTensor, set_backend, spconv_available

    torch.manual_seed(0)
    coords = room_coords(size)
    feats = torch.rand(len(coords), 3) - 0.5
    net = build_backbone(name, 3, width=width).train()
    macs = count_macs(net, SparseTensor(coords, feats))
    a, b = torch.randn(max(1, round(macs / 512**2)), 512), torch.randn(512, 512)

    def fwd(backend: str):
        set_backend(net, backend)
        with torch.no_grad():
            net(SparseTensor(coords, feats))

    def fwd_bwd(backend: str):
        set_backend(net, backend)
        net(SparseTensor(coords, feats)).feats.square().mean().backward()
        net.zero_grad(set_to_none=True)

    jobs = {"torch fwd": lambda: fwd("torch"), "torch fwd+bwd": lambda: fwd_bwd("torch")}
    if spconv_available():
        jobs |= {"spconv fwd": lambda: fwd("spconv"), "spconv fwd+bwd": lambda: fwd_bwd("spconv")}
    jobs["dense GEMM, same MACs"] = lambda: a @ b
    t = _median_times(jobs, repeats)
    print(f"  {name} x{width}, {len(coords)} voxels, {macs / 1e9:.2f} GMAC forward:")
    print("    " + ", ".join(f"{k} {v:.3f} s" for k, v in t.items()))
    line = f"    torch fwd / dense GEMM {t['torch fwd'] / t['dense GEMM, same MACs']:.2f}x"
    if spconv_available():
        line += (
            f"; torch / spconv: fwd {t['torch fwd'] / t['spconv fwd']:.2f}x, "
            f"fwd+bwd {t['torch fwd+bwd'] / t['spconv fwd+bwd']:.2f}x"
        )
    print(line, flush=True)


def algorithms_section(
    backbones: list[str], sizes: list[int], width: float, repeats: int, device: str
) -> None:
    """The torch backend's algorithms, fwd+bwd of whole networks on ``device``: a gather, product
    and scatter-add per kernel offset, one gather and one product through the map's dense table,
    and auto (the table for small layers; ``ppkt.sparse.functional.set_conv_algorithm``). Maps and
    tables are built inside every step, as in training (a new batch has new maps)."""
    from ppkt.backbones import build_backbone
    from ppkt.sparse import SparseTensor
    from ppkt.sparse.functional import CONV_ALGORITHMS, set_conv_algorithm

    dev = torch.device(device)
    print(f"torch backend on {device}: per-offset loop / dense table / auto (fwd+bwd, median, alternated)")
    for name in backbones:
        for size in sizes:
            torch.manual_seed(0)
            coords = room_coords(size).to(dev)
            feats = (torch.rand(len(coords), 3) - 0.5).to(dev)
            net = build_backbone(name, 3, width=width).to(dev).train()
            outputs = {}

            def step(algorithm: str, net=net, coords=coords, feats=feats, outputs=outputs):
                set_conv_algorithm(algorithm)
                out = net(SparseTensor(coords, feats)).feats
                out.square().mean().backward()
                outputs[algorithm] = out.detach()
                net.zero_grad(set_to_none=True)
                if dev.type == "cuda":
                    torch.cuda.synchronize(dev)

            try:
                t = _median_times({a: (lambda a=a: step(a)) for a in CONV_ALGORITHMS}, repeats)
            finally:
                set_conv_algorithm(None)
            gap = (outputs["offsets"] - outputs["table"]).abs().max().item()
            print(
                f"  {name} x{width}, {len(coords)} voxels: "
                + ", ".join(f"{a} {1e3 * v:.1f} ms" for a, v in t.items())
                + "; "
                + ", ".join(f"offsets / {a} {t['offsets'] / t[a]:.2f}x" for a in CONV_ALGORITHMS[1:])
                + f" (max |difference| of the outputs {gap:.1e})",
                flush=True,
            )


def batched_section(repeats: int) -> None:
    """One padded ``bmm`` over the non-centre offsets (one gather, one scatter) against the loop."""
    from ppkt.sparse.functional import conv_forward_torch
    from ppkt.sparse.kernel_map import submanifold_map

    coords = room_coords(25_000)
    km = submanifold_map(coords, 1, 3)
    centre = km.identity_offset
    ks = [k for k in range(km.kernel_volume) if k != centre]
    counts = km.offset_counts.tolist()
    starts = torch.cumsum(km.offset_counts, 0) - km.offset_counts
    n_max = max(counts[k] for k in ks)
    in_tab = torch.zeros(len(ks), n_max, dtype=torch.long)
    out_tab = torch.full((len(ks), n_max), km.num_out, dtype=torch.long)
    for r, k in enumerate(ks):
        a, n = int(starts[k]), counts[k]
        in_tab[r, :n] = km.in_index[a : a + n]
        out_tab[r, :n] = km.out_index[a : a + n]

    def batched(feats, weight):
        out = feats.new_zeros(km.num_out + 1, weight.shape[2])  # the last row takes the padding
        rows = feats.index_select(0, in_tab.view(-1)).view(len(ks), n_max, -1)
        out.index_add_(0, out_tab.view(-1), torch.bmm(rows, weight[ks]).view(-1, weight.shape[2]))
        return out[:-1].addmm_(feats, weight[centre])

    print(
        f"padded bmm over offsets / per-offset loop, kernel 3, {len(coords)} voxels, "
        f"{km.in_index.numel()} pairs, {len(ks) * n_max + km.num_in} after padding"
    )
    for c in (16, 48, 96):
        feats, weight = torch.randn(km.num_in, c), torch.randn(27, c, c)
        torch.testing.assert_close(batched(feats, weight), conv_forward_torch(feats, weight, km))
        t = _median_times(
            {
                "loop": lambda f=feats, w=weight: conv_forward_torch(f, w, km),
                "bmm": lambda f=feats, w=weight: batched(f, w),
            },
            repeats,
        )
        print(
            f"  C={c}: loop {1e3 * t['loop']:.1f} ms, bmm {1e3 * t['bmm']:.1f} ms, "
            f"bmm / loop {t['bmm'] / t['loop']:.2f}x"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backbones", nargs="+", default=["res16unet18", "res16unet34"])
    parser.add_argument("--sizes", nargs="+", type=int, default=[25_000, 100_000])
    parser.add_argument("--backends", nargs="+", default=None, help="default: every available backend")
    parser.add_argument("--reps", type=int, default=2, help="timed repetitions (median reported)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed repetitions first")
    parser.add_argument("--profile", action="store_true", help="print a torch.profiler table per run")
    parser.add_argument("--maps", action="store_true", help="kernel maps: this code / previous / spconv")
    parser.add_argument(
        "--device", default="cpu", help="device of --maps and --algorithms (previous and spconv: cpu only)"
    )
    parser.add_argument("--ab", action="store_true", help="torch / spconv backend / dense GEMM, one process")
    parser.add_argument("--batched", action="store_true", help="padded bmm over offsets / per-offset loop")
    parser.add_argument(
        "--algorithms", action="store_true", help="torch backend: per-offset loop / dense table, on --device"
    )
    parser.add_argument("--width", type=float, default=1.0, help="backbone width for --ab / --algorithms")
    parser.add_argument("--repeats", type=int, default=3, help="alternated repeats for --maps/--ab/--batched")
    args = parser.parse_args()
    if args.maps or args.ab or args.batched or args.algorithms:
        torch.set_num_threads(1)
        print(f"torch {torch.__version__}, {torch.get_num_threads()} thread, voxel {VOXEL} m")
        if args.maps:
            maps_section(args.sizes, args.repeats, args.device)
        if args.ab:
            ab_section(args.backbones, args.sizes, args.width, args.repeats)
        if args.batched:
            batched_section(args.repeats)
        if args.algorithms:
            algorithms_section(args.backbones, args.sizes, args.width, args.repeats, args.device)
        return

    from ppkt.sparse import spconv_available

    backends = args.backends or (["torch", "spconv"] if spconv_available() else ["torch"])
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, voxel {VOXEL} m")
    print(f"dense float32 matmul 2048^3: {dense_matmul_gflops():.1f} GFLOP/s")
    print(
        f"{'backbone':<12} {'voxels':>7} {'backend':<7} {'fwd+bwd s':>9} {'maps s':>7} {'GMAC fwd':>8} "
        f"{'GFLOP/s':>8} {'peak MB':>8}"
    )
    ctx = mp.get_context("spawn")
    results = {}
    for name in args.backbones:
        for size in args.sizes:
            for backend in backends:
                with ctx.Pool(1) as pool:
                    r = pool.apply(_run_one, ((name, size, backend, args.reps, args.warmup, args.profile),))
                results[(name, size, backend)] = r
                print(
                    f"{r['name']:<12} {r['voxels']:>7} {r['backend']:<7} {r['seconds']:>9.2f} "
                    f"{r['map_seconds']:>7.2f} {r['gmacs']:>8.2f} {r['gflops']:>8.1f} {r['peak_mb']:>8.0f}",
                    flush=True,
                )
                if r["profile"]:
                    print(r["profile"])
    if "spconv" in backends and "torch" in backends:
        for (name, size, backend), r in results.items():
            if backend == "torch":
                ref = results[(name, size, "spconv")]
                print(
                    f"{name} {r['voxels']} voxels: torch / spconv time = {r['seconds'] / ref['seconds']:.2f}"
                )


if __name__ == "__main__":
    main()
