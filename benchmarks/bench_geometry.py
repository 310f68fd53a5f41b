"""Throughput of ppkt.geometry on ScanNet-sized RGB-D frames, against open3d where importable.

Per frame (640x480 depth, 1296x968 colour, ScanNet intrinsics, synthetic smooth room depth in
0.5-5 m with ~5 % holes): back-project, pair every point with its colour pixel (rgbd_pairs),
read the point colours at the pairs, voxelise at 2.5 cm. open3d does the comparable work:
RGBDImage.create_from_color_and_depth (colour already resized to the depth size, which is
*not* timed, in open3d's favour; a second open3d line times the PIL resize too) +
PointCloud.create_from_rgbd_image + voxel_down_sample.
Both run on one thread (torch.set_num_threads(1), OMP_NUM_THREADS=1).

    python benchmarks/bench_geometry.py [--frames 20] [--repeats 3]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import math  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from ppkt.geometry import rgbd_pairs, sample_nearest, unproject_depth, voxelize  # noqa: E402

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


def ppkt_frame(depth: torch.Tensor, color: torch.Tensor) -> tuple[int, int]:
    pairs = rgbd_pairs(depth, K_DEPTH, K_COLOR, COLOR_HW)
    colors = sample_nearest(color, pairs.uv)  # open3d's clouds carry colours too
    grid, _, _ = voxelize(pairs.points, VOXEL)
    assert colors.shape[0] == pairs.num_points
    return pairs.num_points, int(grid.shape[0])


def time_interleaved(jobs: dict[str, tuple], repeats: int) -> dict[str, float]:
    """Best-of-``repeats`` seconds for one pass of each job ``(fn, frames, points)`` over its frames.

    Jobs take turns inside every repeat, so that on a shared machine they see the same load and
    their ratio means something even when the absolute figures wobble.
    """
    best = dict.fromkeys(jobs, float("inf"))
    for _ in range(repeats):
        for name, (fn, frames, _) in jobs.items():
            start = time.perf_counter()
            for frame in frames:
                fn(*frame)
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)

    depths = [room_depth(s) for s in range(args.frames)]
    rng = np.random.default_rng(0)
    color_full = rng.integers(0, 256, (*COLOR_HW, 3), dtype=np.uint8)
    frames = [(torch.from_numpy(d), torch.from_numpy(color_full)) for d in depths]
    n_points, n_voxels = zip(*(ppkt_frame(*f) for f in frames), strict=True)  # also warms up
    points_per_frame = float(np.mean(n_points))

    clouds = [(rgbd_pairs(d, K_DEPTH, K_COLOR, COLOR_HW).points,) for d, _ in frames]
    jobs = {
        "ppkt": (ppkt_frame, frames, points_per_frame),
        "  unproject_depth": (lambda d, c: unproject_depth(d, K_DEPTH), frames, None),
        "  rgbd_pairs": (lambda d, c: rgbd_pairs(d, K_DEPTH, K_COLOR, COLOR_HW), frames, None),
        "  voxelize(2.5 cm)": (lambda p: voxelize(p, VOXEL), clouds, None),
    }
    try:
        import open3d as o3d
    except ImportError as error:
        o3d = None
        print(f"open3d not importable ({error}): no comparison")
    if o3d is not None:
        from PIL import Image

        color_small = np.asarray(Image.fromarray(color_full).resize(DEPTH_HW[::-1], Image.BILINEAR))
        intr = o3d.camera.PinholeCameraIntrinsic(
            DEPTH_HW[1], DEPTH_HW[0], K_DEPTH[0, 0], K_DEPTH[1, 1], K_DEPTH[0, 2], K_DEPTH[1, 2]
        )
        o3d_frames = [
            (o3d.geometry.Image(d), o3d.geometry.Image(np.ascontiguousarray(color_small))) for d in depths
        ]

        def open3d_cloud(depth_img, color_img):
            rgbd = o3d.geometry.RGBDImage.create_from_color_and_depth(
                color_img, depth_img, depth_scale=1.0, depth_trunc=1e3, convert_rgb_to_intensity=False
            )
            return o3d.geometry.PointCloud.create_from_rgbd_image(rgbd, intr)

        def open3d_frame(depth_img, color_img):
            return open3d_cloud(depth_img, color_img).voxel_down_sample(VOXEL)

        o3d_points = float(np.mean([len(open3d_cloud(*f).points) for f in o3d_frames]))
        jobs["open3d"] = (open3d_frame, o3d_frames, o3d_points)

        def open3d_frame_with_resize(depth_img, color):
            # open3d needs colour and depth of one size: the resize is part of its work on ScanNet
            small = np.asarray(Image.fromarray(color).resize(DEPTH_HW[::-1], Image.BILINEAR))
            return open3d_frame(depth_img, o3d.geometry.Image(small))

        resize_frames = [(depth_img, color_full) for depth_img, _ in o3d_frames]
        jobs["open3d + colour resize"] = (open3d_frame_with_resize, resize_frames, o3d_points)
        jobs["  create_from_rgbd_image"] = (open3d_cloud, o3d_frames, None)
        o3d_clouds = [(open3d_cloud(*f),) for f in o3d_frames]
        jobs["  voxel_down_sample"] = (lambda cloud: cloud.voxel_down_sample(VOXEL), o3d_clouds, None)

    seconds = time_interleaved(jobs, args.repeats)
    n = args.frames
    print(
        f"torch {torch.__version__}, threads={torch.get_num_threads()}, {n} frames x best of {args.repeats}"
    )
    print(
        f"depth {DEPTH_HW}, colour {COLOR_HW}: {points_per_frame:.0f} points/frame, "
        f"{np.mean(n_voxels):.0f} voxels at {VOXEL * 100:.1f} cm"
    )
    for name, total in seconds.items():
        line = f"{name:26s} {1e3 * total / n:7.1f} ms/frame"
        points = jobs[name][2]
        if points is not None:
            line += f"  {n / total:6.1f} frames/s  {n * points / total / 1e6:5.2f} M points/s"
        print(line)
    if o3d is not None:
        print(f"open3d {o3d.__version__}: {o3d_points:.0f} points/frame")
        ratio = seconds["open3d"] / seconds["ppkt"]
        ratio_resize = seconds["open3d + colour resize"] / seconds["ppkt"]
        print(
            f"speed ratio ppkt / open3d (frames/s): {ratio:.2f}x with colour pre-resized for open3d, "
            f"{ratio_resize:.2f}x with the resize timed (target >= 1)"
        )


if __name__ == "__main__":
    main()
