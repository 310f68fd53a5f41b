"""Reader throughput of every RGB-D format: frames/s decoding the same 640x480 frames in each layout.

Writes one small sequence of synthetic frames in the on-disk layout of every RGB-D kind of the
registry (ScanNet export, ScanNet ``.sens``, 7-Scenes, TUM RGB-D, rgbd-folder) to a temporary
folder, opens each through ``ppkt.data.registry.open_frames`` (as ``ppkt pretrain`` does) and
times a pass over its frames, the kinds alternated over ``--rounds`` rounds (best round kept,
and the ratio to the ScanNet export in the same run, since the machine may be busy). Then the
DataLoader worker scaling of the ScanNet export and ``.sens``, and the decode time of a
ScanNet-sized colour JPEG at ``color_downscale`` 1, 2, 4.

    python benchmarks/bench_readers.py [--frames 40] [--rounds 3] [--workers 0 1 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image
from torch.utils.data import DataLoader

from ppkt.data.registry import FrameRequest, open_frames
from ppkt.data.rgbd_folder import write_rgbd_folder
from ppkt.data.sens import write_sens

K = np.array([[585.0, 0.0, 320.0], [0.0, 585.0, 240.0], [0.0, 0.0, 1.0]])  # 7-Scenes' K, for every kind


def _frame(rng: np.random.Generator, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    # Smooth content compresses like a real photo; pure noise would make JPEG decoding unrealistically slow.
    yy, xx = np.mgrid[0:480, 0:640]
    color = np.stack([(xx + 3 * index) % 256, (yy + index) % 256, (xx + yy) // 5 % 256], -1).astype(np.uint8)
    color = np.clip(color.astype(np.int16) + rng.integers(-8, 8, color.shape), 0, 255).astype(np.uint8)
    depth = (1500 + 500 * np.sin(xx / 60.0) + rng.integers(0, 20, xx.shape)).astype(np.uint16)
    pose = np.eye(4)
    pose[:3, 3] = [0.01 * index, 0.0, 1.5]
    return color, depth, pose


def _quaternion(R: np.ndarray) -> list[float]:
    w = np.sqrt(max(1e-12, 1.0 + np.trace(R))) / 2
    return [(R[2, 1] - R[1, 2]) / (4 * w), (R[0, 2] - R[2, 0]) / (4 * w), (R[1, 0] - R[0, 1]) / (4 * w), w]


def write_datasets(root: Path, frames: int) -> dict[str, Path]:
    """The same frames in every RGB-D layout; returns kind -> dataset root."""
    rng = np.random.default_rng(0)
    data = [_frame(rng, i) for i in range(frames)]
    colors, depths, poses = (list(x) for x in zip(*data, strict=True))
    roots = {kind: root / kind for kind in ("scannet", "scannet-sens", "7scenes", "tum", "rgbd-folder")}
    scene = roots["scannet"] / "scene0000_00"
    for folder in ("color", "depth", "pose", "intrinsic"):
        (scene / folder).mkdir(parents=True)
    K4 = np.eye(4)
    K4[:3, :3] = K
    for name in ("intrinsic_color.txt", "intrinsic_depth.txt"):
        np.savetxt(scene / "intrinsic" / name, K4, fmt="%f")
    seven = roots["7scenes"] / "chess" / "seq-01"
    seven.mkdir(parents=True)
    tum = roots["tum"] / "rgbd_dataset_freiburg1_xyz"
    (tum / "rgb").mkdir(parents=True)
    (tum / "depth").mkdir()
    rgb_list, depth_list, gt = [], [], []
    for i, (color, depth, pose) in enumerate(data):
        Image.fromarray(color).save(scene / "color" / f"{i}.jpg", quality=90)
        Image.fromarray(depth).save(scene / "depth" / f"{i}.png")
        np.savetxt(scene / "pose" / f"{i}.txt", pose, fmt="%f")
        Image.fromarray(color).save(seven / f"frame-{i:06d}.color.png")  # 7-Scenes ships PNG colour
        Image.fromarray(depth).save(seven / f"frame-{i:06d}.depth.png")
        np.savetxt(seven / f"frame-{i:06d}.pose.txt", pose, fmt="%f")
        t = 100.0 + i / 30
        Image.fromarray(color).save(tum / "rgb" / f"{t:.6f}.png")  # TUM too
        Image.fromarray((depth.astype(np.uint32) * 5).clip(0, 65534).astype(np.uint16)).save(
            tum / "depth" / f"{t:.6f}.png"
        )
        rgb_list.append(f"{t:.6f} rgb/{t:.6f}.png")
        depth_list.append(f"{t:.6f} depth/{t:.6f}.png")
        q = _quaternion(pose[:3, :3])
        gt.append(f"{t:.6f} {' '.join(f'{v:.6f}' for v in pose[:3, 3])} {' '.join(f'{v:.7f}' for v in q)}")
    (tum / "rgb.txt").write_text("\n".join(rgb_list) + "\n")
    (tum / "depth.txt").write_text("\n".join(depth_list) + "\n")
    (tum / "groundtruth.txt").write_text("\n".join(gt) + "\n")
    write_sens(roots["scannet-sens"] / "scene0000_00.sens", colors, depths, poses, K, K)
    write_rgbd_folder(roots["rgbd-folder"] / "capture", colors, depths, K, K, poses)
    return roots


def _count(frame) -> int:
    return int(frame.depth.shape[0] > 0)


def frames_per_second(dataset, workers: int = 0) -> float:
    loader = DataLoader(dataset, batch_size=None, num_workers=workers, collate_fn=_count)
    start = time.perf_counter()
    n = sum(loader)
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        roots = write_datasets(Path(tmp), args.frames)
        datasets, index_us = {}, {}
        for kind, root in roots.items():
            open_frames(kind, FrameRequest(root, frame_skip=1))  # imports the reader: not indexing cost
            start = time.perf_counter()
            datasets[kind] = open_frames(kind, FrameRequest(root, frame_skip=1))
            index_us[kind] = (time.perf_counter() - start) / len(datasets[kind]) * 1e6
        best = dict.fromkeys(datasets, 0.0)
        for _ in range(args.rounds):  # kinds alternated, so that a busy moment hits them all alike
            for kind, dataset in datasets.items():
                best[kind] = max(best[kind], frames_per_second(dataset))
        print(f"{args.frames} frames of 640x480 colour + 16-bit PNG depth per kind, 1 process, ", end="")
        print(f"best of {args.rounds} rounds")
        print(f"{'kind':>13} {'frames/s':>9} {'vs scannet':>11} {'index us/frame':>15}  colour")
        formats = {"scannet": "JPEG q90", "scannet-sens": "JPEG q95 in .sens", "rgbd-folder": "JPEG q95"}
        for kind, fps in best.items():
            ratio = fps / best["scannet"]
            print(
                f"{kind:>13} {fps:>9.1f} {ratio:>11.2f} {index_us[kind]:>15.0f}  {formats.get(kind, 'PNG')}"
            )
        print(f"{'workers':>8} {'scannet fps':>12} {'.sens fps':>10}")
        for workers in args.workers:
            scannet = frames_per_second(datasets["scannet"], workers)
            sens = frames_per_second(datasets["scannet-sens"], workers)
            print(f"{workers:>8} {scannet:>12.1f} {sens:>10.1f}")
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
