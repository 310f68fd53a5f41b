"""Read speed of the outdoor readers on full-size samples (one process, no DataLoader workers).

Writes, into a temporary folder, nuScenes-size samples (34,720 points, six 1600x900 JPEGs) and
KITTI-size frames (120,000 points, one 1242x375 PNG) with textured images, then times
``NuScenesSamples[i]`` / ``KittiObjectSamples[i]`` and ``sample_pairs`` on them.

    python benchmarks/bench_outdoor_readers.py [--samples 8]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "data"))

from outdoor_fixtures import write_kitti_object, write_nuscenes  # noqa: E402

from ppkt.data.kitti import KittiObjectSamples  # noqa: E402
from ppkt.data.lidar_common import sample_pairs  # noqa: E402
from ppkt.data.nuscenes import NuScenesSamples  # noqa: E402


def timed(samples, count: int) -> tuple[float, float, list]:
    loaded, start = [], time.perf_counter()
    for i in range(count):
        loaded.append(samples[i % len(samples)])
    read = (time.perf_counter() - start) / count
    start = time.perf_counter()
    pairs = [len(sample_pairs(s, beam_spacing_deg=samples.beam_spacing_deg)) for s in loaded]
    return read, (time.perf_counter() - start) / count, pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=8)
    args = parser.parse_args()
    import torch

    print(f"torch threads: {torch.get_num_threads()}")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_nuscenes(root / "nuscenes", samples_per_scene=args.samples // 2, num_points=34720,
                       image_hw=(900, 1600), textured=True)  # fmt: skip
        write_kitti_object(root / "kitti", frames=args.samples, num_points=120000, image_hw=(375, 1242),
                           textured=True)  # fmt: skip
        for name, samples in (
            ("nuScenes (34,720 pts, 6 x 1600x900 JPEG)", NuScenesSamples(root / "nuscenes")),
            ("KITTI object (120,000 pts, 1242x375 PNG)", KittiObjectSamples(root / "kitti")),
        ):
            read, pair_time, pairs = timed(samples, args.samples)
            print(
                f"{name}: read {1000 * read:.1f} ms/sample, sample_pairs {1000 * pair_time:.1f} ms/sample "
                f"({sum(pairs) / len(pairs):.0f} pairs)"
            )


if __name__ == "__main__":
    main()
