"""Running a block of torch CPU work with a given number of threads."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def torch_threads(threads: int | None, device: torch.device | str = "cpu") -> Iterator[None]:
    """Run the block with ``threads`` torch CPU threads, restoring the previous count after.

    Nothing changes off the CPU, with ``threads=None``, or when the count is already ``threads``.
    Used around loops of many small operations, where every parallel region's barrier costs more
    than the work it splits, and much more when the machine is busy and a thread is descheduled.
    """
    if torch.device(device).type != "cpu" or threads is None or threads == torch.get_num_threads():
        yield
        return
    if threads < 1:
        raise ValueError(f"torch_threads: threads must be >= 1 or None, got {threads}")
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
