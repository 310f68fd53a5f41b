"""How many lidar-camera pairs are wrong without an occlusion test, and how many the z-buffer removes.

A street is ray-cast analytically: ground plane, parked cars (boxes), poles and a row of building
facades. A 32-beam lidar on the roof (nuScenes LIDAR_TOP position) scans it; a front and a
front-left camera (nuScenes positions, 1600x900, f = 1266) look at it. Because the lidar sits
higher and further back than the cameras, it sees ground and facade points that a car hides from
a camera: projected, those points land on the car's pixels ("wrong pairs"). Ground truth: cast
the camera's own ray to the point; a pair is wrong when that ray hits something > 0.2 m before it.

    python benchmarks/bench_lidar_occlusion.py [--hw 900 1600] [--hw 224 416]

Prints, per image size and setting, pairs kept, the wrong-pair rate and the share of correct pairs
lost.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from ppkt.data.types import CameraImage
from ppkt.geometry import lidar_camera_pairs

LIDAR_POSITION = np.array([0.94, 0.0, 1.84])
CAMERAS = {
    "CAM_FRONT": (np.array([1.70, 0.0, 1.51]), 0.0),
    "CAM_FRONT_LEFT": (np.array([1.52, 0.49, 1.51]), 55.0),
}


def street(rng) -> np.ndarray:
    """Axis-aligned boxes (min xyz, max xyz), ego frame: x forward, y left, z up."""
    boxes = []
    for side in (-1, 1):
        x = 4.0
        while x < 45:
            if rng.random() < 0.8:
                length = rng.uniform(4.0, 5.0)
                y = side * rng.uniform(3.0, 4.0)
                boxes.append([x, y - 0.9, 0.0, x + length, y + 0.9, rng.uniform(1.4, 1.9)])
                x += length
            x += rng.uniform(1.0, 3.0)
        for x in np.arange(6, 45, 9.0):
            boxes.append([x, side * 5.5 - 0.1, 0, x + 0.2, side * 5.5 + 0.1, 5.0])  # poles
        boxes.append([0.0, side * 9.0, 0.0, 60.0, side * 9.0 + side * 2.0, 15.0])  # facades
    boxes = np.array(boxes)
    lo, hi = np.minimum(boxes[:, :3], boxes[:, 3:]), np.maximum(boxes[:, :3], boxes[:, 3:])
    return np.concatenate([lo, hi], 1)


def first_hit(origin: np.ndarray, directions: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Distance along unit ``directions`` from ``origin`` to the first surface (inf: none)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = 1.0 / directions
        t1 = (boxes[None, :, :3] - origin) * inv[:, None, :]
        t2 = (boxes[None, :, 3:] - origin) * inv[:, None, :]
    t_near = np.nanmax(np.minimum(t1, t2), axis=2)
    t_far = np.nanmin(np.maximum(t1, t2), axis=2)
    hit = (t_far >= t_near) & (t_far > 0) & (t_near > 1e-6)
    t_box = np.where(hit, t_near, np.inf).min(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        t_ground = np.where(directions[:, 2] < 0, -origin[2] / directions[:, 2], np.inf)
    return np.minimum(t_box, t_ground)


def lidar_scan(boxes: np.ndarray, rng) -> np.ndarray:
    elevation = np.deg2rad(np.linspace(-30.67, 10.67, 32))
    azimuth = np.deg2rad(np.arange(-90, 150, 0.2))  # the half facing the two cameras
    el, az = np.meshgrid(elevation, azimuth, indexing="ij")
    d = np.stack([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)], -1).reshape(-1, 3)
    t = np.concatenate([first_hit(LIDAR_POSITION, chunk, boxes) for chunk in np.array_split(d, 16)])
    keep = np.isfinite(t) & (t < 70)
    t = t[keep] + rng.normal(0, 0.02, keep.sum())
    return LIDAR_POSITION + d[keep] * t[:, None]  # lidar frame = ego axes, origin kept in ego here


def camera(name: str, hw: tuple[int, int]) -> tuple[CameraImage, np.ndarray]:
    position, yaw_deg = CAMERAS[name]
    yaw = np.deg2rad(yaw_deg)
    yaw_rot = np.array([[np.cos(yaw), -np.sin(yaw), 0], [np.sin(yaw), np.cos(yaw), 0], [0, 0, 1]])
    ego_from_camera_rot = yaw_rot @ np.array([[0.0, 0, 1], [-1, 0, 0], [0, -1, 0]])
    camera_from_ego = np.eye(4)
    camera_from_ego[:3, :3] = ego_from_camera_rot.T
    camera_from_ego[:3, 3] = -ego_from_camera_rot.T @ position
    scale = hw[1] / 1600
    K = np.array(
        [
            [1266 * scale, 0, (800 + 0.5) * scale - 0.5],
            [0, 1266 * scale, (450 + 0.5) * scale - 0.5],
            [0, 0, 1],
        ]
    )
    return CameraImage(np.zeros((*hw, 3), np.uint8), K, camera_from_ego, name), position


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hw", type=int, nargs=2, action="append", help="image size H W (repeatable)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--radius", type=int, nargs="+", default=[0, 1, 2, 4, 8], help="z-buffer radii (px)")
    parser.add_argument("--tol", type=float, nargs="+", default=[0.1, 0.5, 2.0], help="depth tolerances (m)")
    args = parser.parse_args()
    sizes = [tuple(hw) for hw in args.hw] if args.hw else [(900, 1600), (224, 416)]
    rng = np.random.default_rng(args.seed)
    boxes = street(rng)
    points = lidar_scan(boxes, rng)
    print(f"{len(points)} lidar points, {len(boxes)} boxes")
    settings = [("no occlusion test", False, 0, 0.1)] + [
        (f"z-buffer radius {r} px, tol {tol} m", True, r, tol) for r in args.radius for tol in args.tol
    ]
    for hw in sizes:
        cams = [camera(name, hw) for name in CAMERAS]
        # Ground truth per (point, camera): is the point the first surface on the camera's ray?
        correct = []
        for _cam, position in cams:
            offset = points - position
            dist = np.linalg.norm(offset, axis=1)
            t = np.concatenate(
                [first_hit(position, chunk, boxes) for chunk in np.array_split(offset / dist[:, None], 16)]
            )
            correct.append(t >= dist - 0.2)
        print(f"\nimage {hw[0]}x{hw[1]}:")
        print(f"  {'setting':34s} {'pairs':>7s} {'wrong':>7s} {'correct lost':>13s}")
        reference = None
        for label, occlusion, radius, tol in settings:
            pairs = lidar_camera_pairs(
                torch.from_numpy(points).float(),
                [c for c, _ in cams],
                min_depth=1.0,
                occlusion=occlusion,
                radius_px=radius,
                depth_tol=tol,
            )
            pi, ii = pairs.point_index.numpy(), pairs.image_index.numpy()
            ok = np.array([correct[i][p] for p, i in zip(pi, ii, strict=True)], dtype=bool)
            if reference is None:
                reference = int(ok.sum())
            wrong, lost = 100 * (1 - ok.mean()), 100 * (1 - ok.sum() / reference)
            print(f"  {label:34s} {len(pi):7d} {wrong:6.2f}% {lost:12.2f}%")


if __name__ == "__main__":
    main()
