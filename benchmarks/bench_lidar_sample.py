"""Time of one lidar + camera training sample (``ppkt.train.samples.lidar_sample``).

A nuScenes-sized sample: 34,720 lidar points around the car, six 900x1600 cameras at the
fixture's nuScenes poses (tests/data/outdoor_fixtures.py geometry, f = 1266). Prints the median
time of the whole sample at the training size (resize, pairs with the beam-spacing occlusion
radius, augmentation), and, for comparison, of the pairs alone computed at full resolution
(``ppkt.data.lidar_common.sample_pairs``) and at the training size.

    python benchmarks/bench_lidar_sample.py [--hw 224 416] [--repeat 5] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from ppkt.data.lidar_common import HDL32_BEAM_SPACING_DEG, occlusion_radius_px, sample_pairs
from ppkt.data.types import CameraImage, LidarCameraSample
from ppkt.geometry import lidar_camera_pairs, scale_intrinsics
from ppkt.train.config import AugmentConfig, DataConfig
from ppkt.train.samples import lidar_sample


def nuscenes_like_sample(rng: np.random.Generator) -> LidarCameraSample:
    # 32 beams x 1085 azimuths over a street-like range profile (lidar frame: x right, y forward, z up).
    elevation = np.deg2rad(np.linspace(10.67, -30.67, 32))[:, None]
    azimuth = np.linspace(-np.pi, np.pi, 1085, endpoint=False)[None, :]
    rng_m = np.minimum(1.84 / np.maximum(np.sin(-elevation), 1e-3), rng.uniform(5, 40, (32, 1085)))
    points = np.stack(
        [
            rng_m * np.cos(elevation) * np.sin(azimuth),
            rng_m * np.cos(elevation) * np.cos(azimuth),
            rng_m * np.sin(elevation) + 0 * azimuth,
        ],
        axis=-1,
    ).reshape(-1, 3)
    K = np.array([[1266.0, 0, 799.5], [0, 1266.0, 449.5], [0, 0, 1]])
    images = []
    for yaw in (0.0, -55.0, -110.0, 180.0, 110.0, 55.0):
        a = np.deg2rad(yaw)
        # camera x right, y down, z forward; forward = lidar y rotated by yaw about z.
        forward = np.array([-np.sin(a), np.cos(a), 0.0])
        right = np.array([np.cos(a), np.sin(a), 0.0])
        down = np.array([0.0, 0.0, -1.0])
        camera_from_lidar = np.eye(4)
        camera_from_lidar[:3, :3] = np.stack([right, down, forward])
        camera_from_lidar[:3, 3] = [0.0, 0.3, -0.8]
        image = rng.integers(0, 255, (900, 1600, 3), dtype=np.uint8)
        images.append(CameraImage(image, K, camera_from_lidar, f"cam{yaw:.0f}"))
    return LidarCameraSample(points.astype(np.float32), None, images, None, "bench")


def median_ms(fn, repeat: int) -> float:
    fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hw", type=int, nargs=2, default=(224, 416))
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    hw = tuple(args.hw)
    sample = nuscenes_like_sample(np.random.default_rng(0))
    data = DataConfig(kind="nuscenes", image_hw=hw)
    augment = AugmentConfig(crop_scale_min=0.3)
    rng = np.random.default_rng(0)

    def whole() -> None:
        lidar_sample(sample, data, augment, "constant", rng, beam_spacing_deg=HDL32_BEAM_SPACING_DEG)

    small = [
        CameraImage(
            np.broadcast_to(np.zeros((1, 1, 3), np.uint8), (*hw, 3)),
            scale_intrinsics(torch.as_tensor(c.K), c.hw, hw).numpy(),
            c.camera_from_lidar,
            c.name,
        )
        for c in sample.images
    ]
    radius = occlusion_radius_px(small[0].K, HDL32_BEAM_SPACING_DEG)
    points = torch.from_numpy(sample.points)
    pairs_small = lidar_camera_pairs(points, small, min_depth=1.0, radius_px=radius, depth_tol=2.0)
    pairs_full = sample_pairs(sample, beam_spacing_deg=HDL32_BEAM_SPACING_DEG)
    print(f"{sample.points.shape[0]} points, 6 cameras 900x1600 -> {hw[0]}x{hw[1]}, {args.threads} thread(s)")
    print(f"whole lidar_sample at {hw[0]}x{hw[1]}: {median_ms(whole, args.repeat):.0f} ms")
    t_small = median_ms(
        lambda: lidar_camera_pairs(points, small, min_depth=1.0, radius_px=radius, depth_tol=2.0), args.repeat
    )
    t_full = median_ms(lambda: sample_pairs(sample, beam_spacing_deg=HDL32_BEAM_SPACING_DEG), args.repeat)
    print(f"pairs at {hw[0]}x{hw[1]} (radius {radius} px): {t_small:.0f} ms, {len(pairs_small)} pairs")
    full_radius = occlusion_radius_px(sample.images[0].K, HDL32_BEAM_SPACING_DEG)
    print(f"pairs at 900x1600 (radius {full_radius} px): {t_full:.0f} ms, {len(pairs_full)} pairs")


if __name__ == "__main__":
    main()
