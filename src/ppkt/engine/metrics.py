"""The metrics log of a run: one JSON object a line (and TensorBoard scalars when installed).

Only the main process writes. A fresh run starts an empty file; a resumed run first drops the
lines of steps after its checkpoint (they will run again), so every step appears once.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ppkt.utils.io import atomic_write_text


class MetricsLog:
    """Append-only JSONL log of one run.

    Args:
        path: the ``.jsonl`` file.
        enabled: False on the non-main processes (every call is then a no-op).
        resume_step: the checkpoint step a resumed run starts from (None for a fresh run): lines
            with a larger ``step`` are dropped, lines without a step are kept.
        tensorboard: a folder for TensorBoard event files (None = off; ignored when TensorBoard is
            not installed).
        tensorboard_prefix: tag prefix of the scalars (``pretrain/loss``).
    """

    def __init__(
        self,
        path: Path,
        *,
        enabled: bool = True,
        resume_step: int | None = None,
        tensorboard: Path | None = None,
        tensorboard_prefix: str = "",
    ) -> None:
        self.enabled = enabled
        self.path = Path(path)
        self.prefix = tensorboard_prefix
        self.writer = None
        self.handle = None
        if not enabled:
            return
        if resume_step is None:
            atomic_write_text(self.path, "")
        elif self.path.exists():
            kept = [
                line
                for line in self.path.read_text().splitlines()
                if line.strip() and json.loads(line).get("step", 0) <= resume_step
            ]
            atomic_write_text(self.path, "".join(line + "\n" for line in kept))
        self.handle = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()
        if tensorboard is not None:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.writer = SummaryWriter(str(tensorboard))
            except ImportError:
                self.writer = None

    def write(self, record: dict[str, Any]) -> None:
        """Append ``record`` (flushed at once, so a killed run keeps its lines)."""
        if self.handle is None:
            return
        self.handle.write(json.dumps(record) + "\n")
        self.handle.flush()
        if self.writer is not None and "step" in record:
            for key, value in record.items():
                if key != "step" and isinstance(value, (int, float)) and not isinstance(value, bool):
                    self.writer.add_scalar(f"{self.prefix}{key}", value, record["step"])

    def close(self) -> None:
        if self.handle is not None:
            self.handle.close()
            self.handle = None
        if self.writer is not None:
            self.writer.close()
            self.writer = None
