"""Where a run executes: device, process group, seeds, CPU threads, deterministic kernels.

Every loop calls :func:`setup_runtime` once; nothing else in ppkt picks a device or joins a
process group. Under ``torchrun`` (``WORLD_SIZE`` > 1) the process joins the default group
(nccl on CUDA, gloo on CPU) and uses ``cuda:LOCAL_RANK``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ppkt.utils.seed import seed_everything


@dataclass(frozen=True)
class DistInfo:
    """This process's place in the run: ``rank`` of ``world_size`` (``local_rank`` on its host)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def device_kind(name: str) -> str:
    """``cuda`` or ``cpu``: the kind of device ``name`` (``auto``, ``cpu``, ``cuda``, ``cuda:1``) means here."""
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name).type


def init_distributed(kind: str) -> DistInfo:
    """Join the process group when started by torchrun (``WORLD_SIZE`` > 1)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if kind == "cuda" else "gloo")
    return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def resolve_device(name: str, info: DistInfo | None = None) -> torch.device:
    """The torch device of ``name``; ``auto`` is CUDA when available; under torchrun a bare
    ``cuda`` means this process's ``cuda:LOCAL_RANK``."""
    info = info or DistInfo()
    name = device_kind(name) if name == "auto" else name
    if name == "cuda" and info.world_size > 1:
        name = f"cuda:{info.local_rank}"
    device = torch.device(name)
    if device.type == "cuda":
        # set_device refuses a bare "cuda" (no index) in recent torch: name the current device.
        if device.index is None:
            device = torch.device("cuda", torch.cuda.current_device())
        torch.cuda.set_device(device)
    return device


@dataclass(frozen=True)
class Runtime:
    """The resolved place of a run: its device and its process group."""

    device: torch.device
    dist: DistInfo

    @property
    def is_main(self) -> bool:
        return self.dist.is_main

    @property
    def distributed(self) -> bool:
        return self.dist.world_size > 1

    def all_true(self, flag: bool) -> bool:
        """``flag`` on every process (one all-reduce under torchrun), so all ranks take the same branch."""
        if not self.distributed:
            return flag
        t = torch.tensor([1.0 if flag else 0.0], device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.MIN)
        return bool(t.item() > 0)

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    @contextlib.contextmanager
    def main_first(self) -> Iterator[None]:
        """Run the block on the main process first, then on the others (which then find what it
        wrote: generated data, split files) instead of writing the same files at once."""
        if not self.distributed:
            yield
            return
        if self.is_main:
            try:
                yield
            except BaseException:
                # The others wait for the main process: tell them it failed, or they would wait
                # forever at a barrier (the main process's own error says what went wrong).
                self.all_true(False)
                raise
            self.all_true(True)
        else:
            if not self.all_true(True):
                raise RuntimeError(
                    "the main process (rank 0) failed while preparing the run's data or files; "
                    "its error says why"
                )
            yield


def apply_threads_and_determinism(device: torch.device, cpu_threads: int | None, deterministic: bool) -> None:
    """Set torch's CPU threads (None = leave torch's default) and ask for deterministic kernels."""
    if cpu_threads is not None:
        torch.set_num_threads(cpu_threads)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        if device.type == "cuda":
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.backends.cudnn.benchmark = False


def setup_runtime(device: str, *, seed: int | None, cpu_threads: int | None, deterministic: bool) -> Runtime:
    """Join the process group (torchrun), pick the device, seed every RNG (``seed`` None = don't),
    set CPU threads and deterministic kernels. Call once at the start of a run."""

    info = init_distributed(device_kind(device))
    dev = resolve_device(device, info)
    if seed is not None:
        seed_everything(seed)
    apply_threads_and_determinism(dev, cpu_threads, deterministic)
    return Runtime(dev, info)
