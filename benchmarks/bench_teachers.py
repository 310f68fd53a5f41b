"""Teacher throughput on CPU and the speed-up of reading cached features instead of recomputing.

    python benchmarks/bench_teachers.py                       # all conv teachers, 240x320 and 480x640
    python benchmarks/bench_teachers.py --teachers efficientnet_lite0@stride16 resnet50 --sizes 240x320

Prints images/s of each teacher's default stage (random weights for teachers without bundled ones;
speed does not depend on the values), then for each teacher at each size the time to read one
frame's fp16 features from a TeacherFeatureCache vs one forward pass, measured in the same run.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch

from ppkt.teachers import TEACHERS, TeacherFeatureCache, TeacherUnavailable, build_teacher


def _time_per_call(fn, min_time: float, min_calls: int = 2) -> float:
    fn()  # warm-up (allocations, oneDNN kernel selection)
    calls, start = 0, time.perf_counter()
    while calls < min_calls or time.perf_counter() - start < min_time:
        fn()
        calls += 1
    return (time.perf_counter() - start) / calls


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    default = [n for n in TEACHERS if not n.startswith("dinov2")] + ["efficientnet_lite0@stride16"]
    parser.add_argument("--teachers", nargs="+", default=default, help="names, or name@stage")
    parser.add_argument("--sizes", nargs="+", default=["240x320", "480x640"])
    parser.add_argument("--batch", type=int, default=4, help="images per forward")
    parser.add_argument("--min-time", type=float, default=2.0, help="seconds of timing per measurement")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (1: on a shared, oversubscribed machine more threads spin and run far slower)",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch}, CPU")
    print(
        f"{'teacher':<20}{'stage':<10}{'size':>9}{'features':>18}{'img/s':>9}{'read/s':>10}{'speed-up':>10}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for spec in args.teachers:
            name, _, stage = spec.partition("@")
            try:
                weights = None if name.startswith("efficientnet") else "random"
                try:
                    teacher = build_teacher(name, weights=weights, stage=stage or None)
                except ImportError:  # a sister EfficientNet-Lite package is not installed
                    teacher = build_teacher(name, weights="random", stage=stage or None)
            except TeacherUnavailable as err:
                print(f"{spec:<20}skipped: {err}")
                continue
            for hw in sizes:
                images = torch.rand(args.batch, 3, *hw)
                forward = _time_per_call(lambda t=teacher, x=images: t(x), args.min_time) / args.batch
                cache = TeacherFeatureCache(f"{tmp}/{spec}_{hw[0]}x{hw[1]}", teacher.identity, hw)
                # Read speed depends only on the shape; random ResNet-101 activations overflow float16.
                features = torch.randn_like(teacher(images[:1])[0])
                for i in range(16):
                    cache.put("scene0000_00", f"{i:06d}", features)
                ids = iter(f"{i % 16:06d}" for i in range(10**9))
                read = _time_per_call(lambda c=cache, i=ids: c.get("scene0000_00", next(i)), 0.5, 16)
                shape = "x".join(str(s) for s in features.shape)
                print(
                    f"{name:<20}{teacher.stage:<10}{f'{hw[0]}x{hw[1]}':>9}{shape:>18}{1 / forward:>9.1f}"
                    f"{1 / read:>10.0f}{forward / read:>9.0f}x"
                )


if __name__ == "__main__":
    main()
