"""Throughput of ppkt.geometry on ScanNet-sized RGB-D frames, against open3d where importable.

Per frame (640x480 depth, 1296x968 colour, ScanNet intrinsics, synthetic smooth room depth in
0.5-5 m with ~5 % holes): back-project, pair every point with its colour pixel (rgbd_pairs),
read the point colours at the pairs, voxelise at 2.5 cm. open3d does the comparable work:
RGBDImage.create_from_color_and_depth (colour already resized to the depth size, which is
*not* timed, in open3d's favour; a second open3d line times the PIL resize too) +
PointCloud.create_from_rgbd_image + voxel_down_sample.
Both run on one thread (torch.set_num_threads(1), OMP_NUM_THREADS=1).

A second set of frames is real: the Middlebury 2014 "Motorcycle" RGB-D frame shipped with
scikit-image (``ppkt.data.real_frame``), centre-cropped to 480x640, colour and depth registered
(``--real-only`` / ``--synthetic-only`` pick one set). "previous" is the same ppkt frame with the
voxelisation this code replaced (``benchmarks/_previous.py``), on the torch path. "torch path"
is ppkt with its compiled kernels switched off (what runs without numba; ``ppkt.utils.compiled``).
Three groups are timed one after the other, the jobs of each taking turns in every repeat (medians
over the repeats, so a group's ratios are measured under one load): ppkt against open3d alone, ppkt
against its torch path and the previous code, and the parts.

    python benchmarks/bench_geometry.py [--frames 20] [--repeats 5]
    python benchmarks/bench_geometry.py --strides --frames 3   # voxels kept by a depth stride

Open3D is optional and heavy; to compare without adding it to an environment, install it into
a separate folder and put that on the path for this command only, e.g.
``pip install --target /tmp/o3d open3d`` then ``PYTHONPATH=src:benchmarks:/tmp/o3d python ...``
(open3d 0.20 needs ``libusb-1.0`` and imports plotly/dash at start-up).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import math  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from ppkt.geometry import rgbd_pairs, sample_nearest, unproject_depth, voxelize  # noqa: E402
from ppkt.utils.compiled import compiled_kernels, use_compiled  # noqa: E402

K_DEPTH = np.array([[577.87, 0.0, 319.5], [0.0, 577.87, 239.5], [0.0, 0.0, 1.0]])
K_COLOR = np.array([[1170.19, 0.0, 647.75], [0.0, 1170.19, 483.75], [0.0, 0.0, 1.0]])
DEPTH_HW, COLOR_HW = (480, 640), (968, 1296)
VOXEL = 0.025


def room_depth(seed: int) -> np.ndarray:
    """Smooth surfaces (walls, floor, a box-like bump) in 0.5-5 m, sensor noise, 5 % holes."""
    rng = np.random.default_rng(seed)
    H, W = DEPTH_HW
    i = np.arange(H)[:, None] / (H - 1)
    j = np.arange(W)[None, :] / (W - 1)
    phase = rng.uniform(0, math.pi)
    depth = 3.0 + 1.5 * np.cos(math.pi * j + phase) * (1 - i) - 1.2 * i**2
    cy, cx = rng.uniform(0.3, 0.7, 2)
    depth = depth - 0.8 * np.exp(-((i - cy) ** 2 + (j - cx) ** 2) / 0.02)
    depth = np.clip(depth, 0.5, 5.0) * (1 + 0.002 * rng.standard_normal((H, W)))
    depth[rng.random((H, W)) < 0.05] = 0.0
    return depth.astype(np.float32)


def ppkt_frame(depth: torch.Tensor, color: torch.Tensor, K_depth, K_color, color_hw, voxelize_fn=voxelize):
    pairs = rgbd_pairs(depth, K_depth, K_color, color_hw)
    colors = sample_nearest(color, pairs.uv)  # open3d's clouds carry colours too
    grid, _, _ = voxelize_fn(pairs.points, VOXEL)
    assert colors.shape[0] == pairs.num_points
    return pairs.num_points, int(grid.shape[0])


def time_interleaved(jobs: dict[str, tuple], repeats: int) -> dict[str, float]:
    """Median-over-``repeats`` seconds for one pass of each job ``(fn, frames, points)`` over its
    frames (after one warm-up pass).

    Jobs take turns inside every repeat, so that on a shared machine they see the same load and
    their ratio means something even when the absolute figures wobble.
    """
    times: dict[str, list[float]] = {name: [] for name in jobs}
    for r in range(repeats + 1):
        for name, (fn, frames, _) in jobs.items():
            start = time.perf_counter()
            for frame in frames:
                fn(*frame)
            if r > 0:
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(v) for name, v in times.items()}


def _torch_path(fn):
    """``fn`` with ppkt's compiled (numba) kernels switched off: the path without numba."""

    def run(*args):
        with compiled_kernels(False):
            return fn(*args)

    return run


def real_frames(count: int):
    """The Middlebury frame, centre-cropped to 480x640: (depth, colour uint8, K)."""
    from ppkt.data.real_frame import middlebury_motorcycle_frame

    frame = middlebury_motorcycle_frame()
    h, w = frame.depth.shape
    top, left = (h - DEPTH_HW[0]) // 2, (w - DEPTH_HW[1]) // 2
    K = np.array(frame.K_depth, dtype=np.float64)
    K[0, 2] -= left
    K[1, 2] -= top
    depth = np.ascontiguousarray(frame.depth[top : top + DEPTH_HW[0], left : left + DEPTH_HW[1]])
    color = np.ascontiguousarray(frame.color[top : top + DEPTH_HW[0], left : left + DEPTH_HW[1]])
    return [(depth, color, K)] * count


def run_set(label: str, depths, colors, K_depth, K_color, color_hw, repeats: int) -> None:
    import _previous

    frames = [
        (torch.from_numpy(d), torch.from_numpy(c), K_depth, K_color, color_hw)
        for d, c in zip(depths, colors, strict=True)
    ]
    n_points, n_voxels = zip(*(ppkt_frame(*f) for f in frames), strict=True)
    points_per_frame = float(np.mean(n_points))
    pairs = [rgbd_pairs(f[0], K_depth, K_color, color_hw) for f in frames]
    clouds = [(p.points,) for p in pairs]
    lookups = [(f[1], p.uv) for f, p in zip(frames, pairs, strict=True)]
    # Three groups, each timed on its own with its jobs taking turns: the headline A/B (ppkt
    # against open3d, nothing else between them, so neither inherits the other jobs' cache and
    # heap state), ppkt against its torch path and the previous code, and the parts.
    against_open3d = {"ppkt": (ppkt_frame, frames, points_per_frame)}
    paths = {
        "ppkt": (ppkt_frame, frames, points_per_frame),
        "ppkt torch path": (_torch_path(ppkt_frame), frames, points_per_frame),
        "ppkt previous": (
            _torch_path(lambda *f: ppkt_frame(*f, voxelize_fn=_previous.voxelize)),
            frames,
            points_per_frame,
        ),
    }
    parts = {
        "unproject_depth": (lambda d, *rest: unproject_depth(d, K_depth), frames, None),
        "rgbd_pairs": (lambda d, *rest: rgbd_pairs(d, K_depth, K_color, color_hw), frames, None),
        "sample_nearest": (sample_nearest, lookups, None),
        "voxelize(2.5 cm)": (lambda p: voxelize(p, VOXEL), clouds, None),
        "voxelize, torch path": (_torch_path(lambda p: voxelize(p, VOXEL)), clouds, None),
        "previous voxelize": (lambda p: _previous.voxelize(p, VOXEL), clouds, None),
    }
    try:
        import open3d as o3d
    except ImportError as error:
        o3d = None
        print(f"open3d not importable ({error}): no comparison")
    if o3d is not None:
        from PIL import Image

        def small(color):
            if color.shape[:2] == DEPTH_HW:
                return np.ascontiguousarray(color)
            return np.asarray(Image.fromarray(color).resize(DEPTH_HW[::-1], Image.BILINEAR))

        intr = o3d.camera.PinholeCameraIntrinsic(
            DEPTH_HW[1], DEPTH_HW[0], K_depth[0, 0], K_depth[1, 1], K_depth[0, 2], K_depth[1, 2]
        )
        o3d_frames = [
            (o3d.geometry.Image(d), o3d.geometry.Image(small(c))) for d, c in zip(depths, colors, strict=True)
        ]

        def open3d_cloud(depth_img, color_img):
            rgbd = o3d.geometry.RGBDImage.create_from_color_and_depth(
                color_img, depth_img, depth_scale=1.0, depth_trunc=1e3, convert_rgb_to_intensity=False
            )
            return o3d.geometry.PointCloud.create_from_rgbd_image(rgbd, intr)

        def open3d_frame(depth_img, color_img):
            return open3d_cloud(depth_img, color_img).voxel_down_sample(VOXEL)

        o3d_points = float(np.mean([len(open3d_cloud(*f).points) for f in o3d_frames]))
        against_open3d["open3d"] = (open3d_frame, o3d_frames, o3d_points)
        parts["open3d create_from_rgbd_image"] = (open3d_cloud, o3d_frames, None)
        o3d_clouds = [(open3d_cloud(*f),) for f in o3d_frames]
        parts["open3d voxel_down_sample"] = (lambda cloud: cloud.voxel_down_sample(VOXEL), o3d_clouds, None)

    n = len(frames)
    print(
        f"{label}: {points_per_frame:.0f} points/frame, "
        f"{np.mean(n_voxels):.0f} voxels at {VOXEL * 100:.1f} cm; "
        f"compiled kernels {'on (numba)' if use_compiled() else 'off (numba missing or PPKT_NUMBA=0)'}"
    )

    def report(title: str, jobs: dict) -> dict[str, float]:
        seconds = time_interleaved(jobs, repeats)
        print(f"  {title}:")
        for name, total in seconds.items():
            line = f"    {name:30s} {1e3 * total / n:7.1f} ms/frame"
            points = jobs[name][2]
            if points is not None:
                line += f"  {n / total:6.1f} frames/s  {n * points / total / 1e6:5.2f} M points/s"
            print(line)
        return seconds

    if o3d is not None:
        a = report("ppkt against open3d (alternated, nothing between)", against_open3d)
        print(
            f"    open3d {o3d.__version__} ({o3d_points:.0f} points/frame): speed ratio ppkt / open3d "
            f"(frames/s) {a['open3d'] / a['ppkt']:.2f}x (colour pre-resized for open3d)"
        )
    b = report("ppkt paths (alternated)", paths)
    print(
        f"    ppkt torch path / ppkt (frame time): {b['ppkt torch path'] / b['ppkt']:.2f}x; "
        f"ppkt previous / ppkt: {b['ppkt previous'] / b['ppkt']:.2f}x"
    )
    c = report("parts (alternated)", parts)
    print(
        f"    voxelize torch path / compiled: {c['voxelize, torch path'] / c['voxelize(2.5 cm)']:.2f}x; "
        f"previous / compiled: {c['previous voxelize'] / c['voxelize(2.5 cm)']:.2f}x"
    )


def stride_retention(frames: int) -> None:
    """Points and 2.5 / 5 cm voxels kept when every s-th depth row and column is read
    (``data.max_depth_pixels``), as a share of the voxels of all pixels."""
    from ppkt.train.samples import strided_depth

    sets = {"real Middlebury 480x640": [(f[0], f[2]) for f in real_frames(1)]}
    sets["synthetic ScanNet-like 480x640"] = [(room_depth(s), K_DEPTH) for s in range(frames)]
    for label, depths in sets.items():
        for size in (0.025, 0.05):
            kept: dict[int, list[float]] = {s: [] for s in (1, 2, 3, 4)}
            points: dict[int, list[int]] = {s: [] for s in (1, 2, 3, 4)}
            for depth, K in depths:
                reference = None
                for s in kept:
                    d, K_s = strided_depth(depth, K, s)
                    cloud = unproject_depth(torch.from_numpy(np.ascontiguousarray(d)), torch.from_numpy(K_s))
                    cloud = cloud[0] if isinstance(cloud, tuple) else cloud
                    cloud = cloud.reshape(-1, 3)
                    cloud = cloud[cloud[:, 2] > 0]
                    voxels = set(map(tuple, voxelize(cloud, size)[0].tolist()))
                    reference = voxels if reference is None else reference
                    kept[s].append(len(voxels & reference) / len(reference))
                    points[s].append(len(cloud))
            print(
                f"{label}, {size * 100:.1f} cm: "
                + " | ".join(
                    f"stride {s}: {np.mean(points[s]):.0f} points, {100 * np.mean(kept[s]):.1f} % voxels"
                    for s in kept
                )
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--real-only", action="store_true")
    parser.add_argument("--synthetic-only", action="store_true")
    parser.add_argument("--strides", action="store_true", help="voxels kept by depth strides 1-4, then exit")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.strides:
        stride_retention(args.frames)
        return
    print(
        f"torch {torch.__version__}, threads={torch.get_num_threads()}, {args.frames} frames, "
        f"median of {args.repeats}"
    )
    if not args.real_only:
        rng = np.random.default_rng(0)
        color_full = rng.integers(0, 256, (*COLOR_HW, 3), dtype=np.uint8)
        depths = [room_depth(s) for s in range(args.frames)]
        run_set(
            f"synthetic ScanNet-like depth {DEPTH_HW}, colour {COLOR_HW}",
            depths,
            [color_full] * args.frames,
            K_DEPTH,
            K_COLOR,
            COLOR_HW,
            args.repeats,
        )
    if not args.synthetic_only:
        frames = real_frames(args.frames)
        K = frames[0][2]
        run_set(
            f"real Middlebury frame cropped to {DEPTH_HW} (registered colour)",
            [f[0] for f in frames],
            [f[1] for f in frames],
            K,
            K,
            DEPTH_HW,
            args.repeats,
        )


if __name__ == "__main__":
    main()
