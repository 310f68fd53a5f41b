"""What a reader found in a dataset: frames found, frames usable, skips by reason with examples.

Every reader fills a :class:`DataReport` while it indexes its files (missing files, invalid
poses) and ``ppkt check-data`` adds what only decoding finds (corrupt images, size mismatches,
empty depth). A problem is a :class:`FrameError` naming the file and the reason; in strict mode
the first one is raised, otherwise it is counted and the frame is left out.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

# Skip reasons. Plain strings so that other readers (outdoor) can add their own.
MISSING_FILE = "missing file"
UNDECODABLE = "undecodable image"
SIZE_MISMATCH = "size mismatch"
INVALID_POSE = "invalid pose"
MISSING_POSE = "missing pose"
EMPTY_DEPTH = "empty depth"
BAD_INTRINSICS = "bad intrinsics"
TRUNCATED = "truncated file"
UNMATCHED = "unmatched timestamp"
NO_DEPTH_IN_RANGE = "no depth within range"
BAD_DEPTH_SCALE = "bad depth scale"
UNREADABLE = "unreadable"
"""Anything else that failed (an unexpected exception, an unreadable folder or list file)."""

MAX_EXAMPLES = 5
"""Example paths kept per skip reason."""


def every_kth_frame(k: int) -> str:
    """``"every frame"``, ``"every 2nd frame"``, ``"every 25th frame"``: a reader's frame skip in words."""
    if k == 1:
        return "every frame"
    suffix = "th" if 10 <= k % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(k % 10, "th")
    return f"every {k}{suffix} frame"


class FrameError(ValueError):
    """A frame (or a whole file) that cannot be used; the message names the file and the reason."""

    def __init__(self, path: object, reason: str, detail: str = ""):
        self.path = str(path)
        self.reason = reason
        self.detail = detail
        super().__init__(f"{self.path}: {reason}" + (f" ({detail})" if detail else ""))

    def __reduce__(self):
        # Rebuild from the fields so the error survives DataLoader worker pickling.
        return (FrameError, (self.path, self.reason, self.detail))


@dataclass
class DataReport:
    """Counts of one dataset scan.

    Attributes:
        root: the dataset path that was scanned.
        format: dataset format name (``"scannet"``, ``"tum"``, ...).
        frames_found: frames (or samples) considered, after frame subsampling.
        frames_usable: frames that passed every check done so far.
        skipped: reason -> number of frames left out for that reason.
        examples: reason -> up to ``MAX_EXAMPLES`` messages ``"path: reason (detail)"``.
        notes: dataset-level remarks (defaults used, subsampling, ...).
        decoded: whether images were decoded (``ppkt check-data``) or only files listed (indexing).
    """

    root: str
    format: str
    frames_found: int = 0
    frames_usable: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    decoded: bool = False

    @property
    def frames_skipped(self) -> int:
        return sum(self.skipped.values())

    def add_skip(self, error: FrameError, count: int = 1) -> None:
        """Count ``count`` frames left out for ``error`` (one example kept)."""
        self.skipped[error.reason] = self.skipped.get(error.reason, 0) + count
        examples = self.examples.setdefault(error.reason, [])
        if len(examples) < MAX_EXAMPLES:
            examples.append(str(error))

    def to_dict(self) -> dict:
        out = asdict(self)
        out["frames_skipped"] = self.frames_skipped
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def format_text(self) -> str:
        lines = [
            f"dataset: {self.root}",
            f"format: {self.format}",
            f"frames found: {self.frames_found}",
            f"frames usable: {self.frames_usable}" + ("" if self.decoded else " (files listed, not decoded)"),
            f"frames skipped: {self.frames_skipped}",
        ]
        for reason, count in sorted(self.skipped.items(), key=lambda kv: -kv[1]):
            lines.append(f"  {reason}: {count}")
            lines += [f"    e.g. {example}" for example in self.examples.get(reason, [])]
        lines += [f"note: {note}" for note in self.notes]
        return "\n".join(lines)
