"""Speed of the synthetic room generator.

Prints (1) the time to render one 240x320 frame (best of 3 per frame, over several rooms),
split into ray casting + shading, depth noise and file writing, with frames/s per core from CPU
time; (2) the wall time of whole datasets (default 20 rooms x 50 frames, and the 12 x 30 demo
size) including trajectories, labelled clouds and PLY files.

    python benchmarks/bench_synth.py                       # all of it, one worker
    python benchmarks/bench_synth.py --workers 2           # datasets rendered by 2 processes
    python benchmarks/bench_synth.py --skip-datasets       # single-frame figures only
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from ppkt.data.synthetic import (
    add_depth_noise,
    camera_rays,
    camera_trajectory,
    generate_dataset,
    generate_scene,
    intrinsics_for,
    render,
    sample_scene_cloud,
)
from ppkt.data.synthetic.dataset import SynthParams, write_scene


def single_frame(hw: tuple[int, int], rooms: int, frames: int) -> None:
    K = intrinsics_for(hw)
    rays = camera_rays(K, hw)
    render_best, noise_best, cpu = [], [], []
    parts = []
    for seed in range(rooms):
        rng = np.random.default_rng(seed)
        scene = generate_scene(rng)
        parts.append(len(scene.parts))
        for pose in camera_trajectory(scene, rng, frames):
            best = np.inf
            for _ in range(3):
                t0, c0 = time.perf_counter(), time.process_time()
                frame = render(scene, K, hw, pose, rays_camera=rays)
                best = min(best, time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
            render_best.append(best)
            t0 = time.perf_counter()
            add_depth_noise(frame, rng)
            noise_best.append(time.perf_counter() - t0)
    print(f"single frame {hw[0]}x{hw[1]}, {rooms} rooms ({np.mean(parts):.0f} parts each) x {frames} views:")
    print(f"  ray cast + shade : median {1e3 * np.median(render_best):6.1f} ms  (best of 3 per view)")
    print(f"  depth noise      : median {1e3 * np.median(noise_best):6.1f} ms")
    print(
        f"  CPU time / frame : median {1e3 * np.median(cpu):6.1f} ms "
        f"-> {1 / np.median(cpu):.1f} frames/s per core"
    )
    rng = np.random.default_rng(0)
    scene = generate_scene(rng)
    t0 = time.perf_counter()
    cloud = sample_scene_cloud(scene, rng)
    print(f"  labelled cloud   : {time.perf_counter() - t0:6.2f} s for {len(cloud.points)} points")
    with tempfile.TemporaryDirectory() as tmp:
        params = SynthParams(scenes=1, frames_per_scene=frames, image_hw=hw)
        t0, c0 = time.perf_counter(), time.process_time()
        write_scene(Path(tmp), 0, params)
        wall, cpu_scene = time.perf_counter() - t0, time.process_time() - c0
    print(
        f"  one room written : {wall:6.2f} s wall, {cpu_scene:.2f} s CPU for {frames} frames + cloud "
        f"-> {frames / cpu_scene:.1f} frames/s per core all included"
    )


def dataset(scenes: int, frames: int, workers: int, hw: tuple[int, int]) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="ppkt-bench-synth-"))
    try:
        t0, c0 = time.perf_counter(), time.process_time()
        root = generate_dataset(
            tmp / "data",
            scenes=scenes,
            frames_per_scene=frames,
            seed=0,
            image_hw=hw,
            workers=workers,
            progress=False,
        )
        wall = time.perf_counter() - t0
        size = sum(f.stat().st_size for f in root.rglob("*") if f.is_file())
        print(
            f"dataset {scenes} rooms x {frames} frames at {hw[0]}x{hw[1]}, workers={workers}: "
            f"{wall:6.1f} s wall "
            f"({scenes * frames / wall:.1f} frames/s), {size / 2**20:.0f} MiB"
            + (f", {time.process_time() - c0:.1f} s CPU in this process" if workers == 1 else "")
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scenes", type=int, default=20)
    parser.add_argument("--frames-per-scene", type=int, default=50)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--skip-datasets", action="store_true")
    parser.add_argument("--height", type=int, default=240)
    parser.add_argument("--width", type=int, default=320)
    args = parser.parse_args()
    hw = (args.height, args.width)
    print(
        f"CPU cores visible: {os.cpu_count()}, "
        f"load average: {os.getloadavg()[0]:.1f} (others' jobs share them)"
    )
    single_frame(hw, rooms=4, frames=10)
    if not args.skip_datasets:
        dataset(12, 30, args.workers, hw)
        dataset(args.scenes, args.frames_per_scene, args.workers, hw)


if __name__ == "__main__":
    main()
