"""Mixed precision and gradient accumulation for every loop.

``run.precision``: ``fp32`` (no autocast), ``bf16`` (autocast to bfloat16; same exponent range as
fp32, no loss scaling needed) or ``fp16`` (autocast to float16 with a gradient scaler that skips
steps whose gradients overflowed). ``optim.accumulate = k`` adds the gradients of ``k``
micro-batches, each loss divided by ``k``, before one optimiser step: the step of a batch ``k``
times larger when the loss is a mean over equal-sized micro-batches (batch norm still sees the
micro-batch).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable

import torch

PRECISIONS = ("fp32", "bf16", "fp16")
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


class Precision:
    """Autocast, backward and optimiser step of one precision on one device."""

    def __init__(self, name: str, device: torch.device) -> None:
        if name not in PRECISIONS:
            raise ValueError(f"run.precision must be one of {', '.join(PRECISIONS)}, got {name!r}")
        self.name = name
        self.device = torch.device(device)
        self.scaler = torch.amp.GradScaler(self.device.type) if name == "fp16" else None

    def autocast(self) -> contextlib.AbstractContextManager:
        """The context of the forward pass and loss (a no-op in fp32, so fp32 runs are unchanged)."""
        if self.name == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=_DTYPES[self.name])

    def backward(self, loss: torch.Tensor, accumulate: int = 1) -> None:
        """Gradients of ``loss / accumulate`` (scaled in fp16)."""
        if accumulate != 1:
            loss = loss / accumulate
        if self.scaler is not None:
            loss = self.scaler.scale(loss)
        loss.backward()

    def step(
        self,
        optimizer: torch.optim.Optimizer,
        params: Iterable[torch.nn.Parameter] = (),
        grad_clip: float | None = None,
    ) -> None:
        """Clip (on unscaled gradients) and step; in fp16 a step with inf/NaN gradients is skipped."""
        if self.scaler is not None:
            self.scaler.unscale_(optimizer)
        if grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(list(params), grad_clip)
        if self.scaler is not None:
            self.scaler.step(optimizer)
            self.scaler.update()
        else:
            optimizer.step()

    def state_dict(self) -> dict:
        return {} if self.scaler is None else self.scaler.state_dict()

    def load_state_dict(self, state: dict) -> None:
        if self.scaler is not None and state:
            self.scaler.load_state_dict(state)


def gradient_sync(net: torch.nn.Module, last_micro_batch: bool) -> contextlib.AbstractContextManager:
    """DDP all-reduces gradients on the last micro-batch of a step only (``no_sync`` before it).

    Wrap the forward pass too: DDP decides in the forward whether the backward will all-reduce.
    """
    if not last_micro_batch and isinstance(net, torch.nn.parallel.DistributedDataParallel):
        return net.no_sync()
    return contextlib.nullcontext()
