"""Atomic file writes: a reader (or a crash) never sees a half-written file.

Each writer writes to a temporary file in the same folder, flushes it to disk and
renames it over the target (``os.replace`` is atomic on POSIX and Windows).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_path)`` and atomically move the result to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        # mkstemp makes the file private (0600); give it the permissions a plain open() would.
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        if err.filename is None:  # a failed write or fsync (a full disk) names no file: name it
            raise type(err)(err.errno, err.strerror or str(err), str(path)) from err
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_bytes(data))


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


_SAFE_PART = re.compile(r"^[A-Za-z0-9_.\-]+$")


def cache_file(root: Path, scene_id: str, frame_id: str, suffix: str = ".safetensors") -> Path:
    """``root/scene_id/frame_id<suffix>`` for a per-frame cache; ids that could leave ``root`` or
    are not plain file names (letters, digits, ``_.-``) are a ValueError naming them."""
    for part in (scene_id, frame_id):
        if not _SAFE_PART.match(part) or part in (".", ".."):
            raise ValueError(f"cannot use {part!r} as a cache file name (letters, digits, _.- only)")
    return Path(root) / scene_id / f"{frame_id}{suffix}"
