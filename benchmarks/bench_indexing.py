"""The CPU index primitives of ``ppkt.utils.indexing`` (numpy) against torch's, on a frame's data.

Inputs: the synthetic ScanNet-like 480x640 depth frame of ``bench_geometry.py`` (its valid-depth
mask, its points' 2.5 cm voxel keys and their runs) and the stride-1 coarsening offsets of
``bench_sparse.py``'s 100k-voxel room. Each pair of jobs returns the same tensors (checked first);
they take turns in every repeat, medians are printed with their ratio. One thread.

    python benchmarks/bench_indexing.py [--repeats 21]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import torch  # noqa: E402

from bench_geometry import COLOR_HW, K_COLOR, K_DEPTH, room_depth  # noqa: E402
from bench_sparse import room_coords  # noqa: E402
from ppkt.geometry import rgbd_pairs  # noqa: E402
from ppkt.utils.indexing import flat_nonzero, nonzero_rows_cols, stable_sort_ints  # noqa: E402


def _time_pair(a, b, repeats: int) -> tuple[float, float]:
    ta, tb = [], []
    for r in range(repeats + 1):
        for fn, out in ((a, ta), (b, tb)):
            start = time.perf_counter()
            fn()
            if r > 0:
                out.append(time.perf_counter() - start)
    return statistics.median(ta), statistics.median(tb)


def _same(x, y) -> None:
    for u, v in zip(x, y, strict=True):
        assert torch.equal(u, v)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=21)
    args = parser.parse_args()
    torch.set_num_threads(1)

    depth = torch.from_numpy(room_depth(0))
    mask = depth > 0
    points = rgbd_pairs(depth, K_DEPTH, K_COLOR, COLOR_HW).points
    cell = torch.div(points, 0.025).floor_()
    cell -= cell.amin(0)
    extent = (cell.amax(0) + 1).long().tolist()
    key = (cell.double() @ torch.tensor([extent[1] * extent[2], extent[2], 1.0], dtype=torch.float64)).int()
    run_start = torch.ones(len(key), dtype=torch.bool)
    torch.ne(key[1:], key[:-1], out=run_start[1:])
    run_key = key[run_start]
    coords = room_coords(100_000)
    local = torch.div(coords[:, 1:], 1, rounding_mode="floor") % 2
    offset = (local[:, 0] * 2 + local[:, 1]) * 2 + local[:, 2]

    def torch_rows_cols():
        ij = torch.nonzero(mask)
        return ij[:, 0] * mask.shape[1] + ij[:, 1], ij[:, 0], ij[:, 1]

    def torch_groups():
        groups = [(offset == j).nonzero().squeeze(1) for j in range(8)]
        return torch.cat(groups), torch.tensor([g.numel() for g in groups])

    def numpy_groups():
        return stable_sort_ints(offset)[1], torch.bincount(offset, minlength=8)

    jobs = {
        f"flat nonzero of the depth mask ({mask.numel()} pixels)": (
            lambda: (flat_nonzero(mask),),
            lambda: (mask.reshape(-1).nonzero().squeeze(1),),
        ),
        "nonzero rows, cols and flat index of the depth mask": (
            lambda: nonzero_rows_cols(mask),
            torch_rows_cols,
        ),
        f"stable argsort of the frame's {len(run_key)} voxel-key runs": (
            lambda: stable_sort_ints(run_key),
            lambda: torch.sort(run_key, stable=True),
        ),
        f"coarsening pairs grouped by offset ({len(offset)} sites)": (numpy_groups, torch_groups),
    }
    print(f"torch {torch.__version__}, 1 thread, median of {args.repeats} alternated repeats")
    for name, (ours, theirs) in jobs.items():
        _same(ours(), theirs())
        t_ours, t_torch = _time_pair(ours, theirs, args.repeats)
        print(
        print(
            f"  {name}: numpy path {1e3 * t_ours:.2f} ms, torch {1e3 * t_torch:.2f} ms, "
            f"torch / numpy {t_torch / t_ours:.2f}x"
        )
        )


if __name__ == "__main__":
    main()
