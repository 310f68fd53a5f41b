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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backbones", nargs="+", default=["res16unet18", "res16unet34"])
    parser.add_argument("--sizes", nargs="+", type=int, default=[25_000, 100_000])
    parser.add_argument("--backends", nargs="+", default=None, help="default: every available backend")
    parser.add_argument("--reps", type=int, default=2, help="timed repetitions (median reported)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed repetitions first")
    parser.add_argument("--profile", action="store_true", help="print a torch.profiler table per run")
    args = parser.parse_args()

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
