"""Reader throughput: frames/s decoding 640x480 JPEG + 16-bit PNG frames, with 0, 1, 2 DataLoader workers.

Writes a small synthetic ScanNet export (and the same frames as one .sens file) to a temporary
folder, then times ``ScanNetFrames`` and ``SensFrames`` through a torch DataLoader, plus the
cost of indexing (listing + pose files) per frame.

    python benchmarks/bench_readers.py [--frames 120] [--workers 0 1 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image
from torch.utils.data import DataLoader

from ppkt.data.scannet import ScanNetFrames
from ppkt.data.sens import SensFrames, write_sens

K = np.array([[577.6, 0.0, 319.5], [0.0, 577.6, 239.5], [0.0, 0.0, 1.0]])


def _frame(rng: np.random.Generator, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    # Smooth content compresses like a real photo; pure noise would make JPEG decoding unrealistically slow.
    yy, xx = np.mgrid[0:480, 0:640]
    color = np.stack([(xx + 3 * index) % 256, (yy + index) % 256, (xx + yy) // 5 % 256], -1).astype(np.uint8)
    color = np.clip(color.astype(np.int16) + rng.integers(-8, 8, color.shape), 0, 255).astype(np.uint8)
    depth = (1500 + 500 * np.sin(xx / 60.0) + rng.integers(0, 20, xx.shape)).astype(np.uint16)
    pose = np.eye(4)
    pose[:3, 3] = [0.01 * index, 0.0, 1.5]
    return color, depth, pose


def write_dataset(root: Path, frames: int) -> Path:
    rng = np.random.default_rng(0)
    scene = root / "scannet" / "scene0000_00"
    for folder in ("color", "depth", "pose", "intrinsic"):
        (scene / folder).mkdir(parents=True)
    K4 = np.eye(4)
    K4[:3, :3] = K
    for name in ("intrinsic_color.txt", "intrinsic_depth.txt"):
        np.savetxt(scene / "intrinsic" / name, K4, fmt="%f")
    colors, depths, poses = [], [], []
    for index in range(frames):
        color, depth, pose = _frame(rng, index)
        Image.fromarray(color).save(scene / "color" / f"{index}.jpg", quality=90)
        Image.fromarray(depth).save(scene / "depth" / f"{index}.png")
        np.savetxt(scene / "pose" / f"{index}.txt", pose, fmt="%f")
        colors.append(color)
        depths.append(depth)
        poses.append(pose)
    write_sens(root / "scene0000_00.sens", colors, depths, poses, K, K)
    return root


def _count(frame) -> int:
    return int(frame.depth.shape[0] > 0)


def time_loader(dataset, workers: int, repeats: int = 2) -> float:
    best = 0.0
    for _ in range(repeats):
        loader = DataLoader(dataset, batch_size=None, num_workers=workers, collate_fn=_count)
        start = time.perf_counter()
        n = sum(loader)
        best = max(best, n / (time.perf_counter() - start))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=120)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = write_dataset(Path(tmp), args.frames)
        start = time.perf_counter()
        frames = ScanNetFrames(root / "scannet", frame_skip=1)
        index_us = (time.perf_counter() - start) / len(frames) * 1e6
        start = time.perf_counter()
        sens = SensFrames(root / "scene0000_00.sens", frame_skip=1)
        sens_index_us = (time.perf_counter() - start) / len(sens) * 1e6
        print(f"{args.frames} frames, 640x480 JPEG (q90) colour + 16-bit PNG depth")
        print(f"indexing: exported layout {index_us:.0f} us/frame, .sens {sens_index_us:.0f} us/frame")
        print(f"{'workers':>8} {'exported fps':>14} {'.sens fps':>10}")
        for workers in args.workers:
            print(f"{workers:>8} {time_loader(frames, workers):>14.1f} {time_loader(sens, workers):>10.1f}")
        print(scannet_sized_colour(Path(tmp)))


def scannet_sized_colour(tmp: Path, repeats: int = 20) -> str:
    """Decode time of one ScanNet-sized (1296x968) JPEG at ``color_downscale`` 1, 2, 4."""
    from ppkt.data.images import read_color

    yy, xx = np.mgrid[0:968, 0:1296]
    noise = np.random.default_rng(0).integers(-8, 8, (968, 1296, 3))
    color = np.stack([xx // 3 % 256, yy // 2 % 256, (xx + yy) // 7 % 256], -1) + noise
    Image.fromarray(np.clip(color, 0, 255).astype(np.uint8)).save(tmp / "big.jpg", quality=90)
    parts = []
    for downscale in (1, 2, 4):
        start = time.perf_counter()
        for _ in range(repeats):
            read_color(tmp / "big.jpg", downscale)
        parts.append(f"1/{downscale}: {(time.perf_counter() - start) / repeats * 1e3:.1f} ms")
    return "1296x968 JPEG colour decode, color_downscale " + ", ".join(parts)


if __name__ == "__main__":
    main()
