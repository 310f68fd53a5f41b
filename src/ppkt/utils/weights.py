"""Weight files (safetensors) and strict state-dict loading with explicit key maps.

Checkpoint loaders in this field often skip mismatched keys silently, so a run
"fine-tunes a pretrained model" that is in fact half random. Here every load is
strict: missing or unexpected keys raise an error that lists them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from ppkt.utils.io import atomic_write


class StateDictMismatch(KeyError):
    """Raised when a state dict does not match a module key for key and shape for shape."""

    def __init__(self, what: str, missing: list[str], unexpected: list[str], bad_shapes: list[str]):
        self.missing, self.unexpected, self.bad_shapes = missing, unexpected, bad_shapes
        lines = [f"{what}: state dict does not match the model"]
        if missing:
            lines.append(
                f"  missing keys ({len(missing)}): {', '.join(missing[:20])}"
                + (" ..." if len(missing) > 20 else "")
            )
        if unexpected:
            lines.append(
                f"  unexpected keys ({len(unexpected)}): {', '.join(unexpected[:20])}"
                + (" ..." if len(unexpected) > 20 else "")
            )
        if bad_shapes:
            lines.append(f"  shape mismatches ({len(bad_shapes)}): {', '.join(bad_shapes[:20])}")
        super().__init__("\n".join(lines))

    def __str__(self) -> str:  # KeyError quotes its message; show it plainly
        return self.args[0]


def save_weights(
    state: Mapping[str, torch.Tensor], path: str | Path, metadata: Mapping[str, str] | None = None
) -> Path:
    """Write tensors to a safetensors file atomically (contiguous CPU copies)."""
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state.items()}
    meta = {str(k): str(v) for k, v in (metadata or {}).items()}

    def write(tmp: Path) -> None:
        try:
            save_file(tensors, str(tmp), metadata=meta)
        except SafetensorError as err:
            # Its I/O errors (a full disk) are not OSErrors: raise one, so the file gets named.
            code = re.search(r"IoError\(Os \{ code: (\d+)", str(err))
            if code is None:
                raise
            raise OSError(int(code.group(1)), os.strerror(int(code.group(1)))) from err

    return atomic_write(path, write)


def load_weights(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Read a safetensors file: (tensors on CPU, metadata)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: weight file not found")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            metadata = dict(handle.metadata() or {})
            tensors = {k: handle.get_tensor(k) for k in handle.keys()}
    except Exception as err:  # safetensors raises its own error types
        raise ValueError(f"{path}: not a readable safetensors file ({err})") from err
    return tensors, metadata


def remap_keys(
    state: Mapping[str, torch.Tensor],
    *,
    strip_prefixes: tuple[str, ...] = (),
    rename: Callable[[str], str | None] | None = None,
) -> dict[str, torch.Tensor]:
    """Strip the first matching prefix of each key, then apply ``rename`` (None drops the key)."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        for prefix in strip_prefixes:
            if key.startswith(prefix):
                key = key[len(prefix) :]
                break
        if rename is not None:
            new = rename(key)
            if new is None:
                continue
            key = new
        out[key] = value
    return out


def load_state_strict(
    module: torch.nn.Module, state: Mapping[str, torch.Tensor], what: str = "model"
) -> None:
    """Load ``state`` into ``module``; any missing, unexpected or mis-shaped key is an error."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    bad_shapes = [
        f"{k} (file {tuple(state[k].shape)} vs model {tuple(own[k].shape)})"
        for k in sorted(set(own) & set(state))
        if tuple(own[k].shape) != tuple(state[k].shape)
    ]
    if missing or unexpected or bad_shapes:
        raise StateDictMismatch(what, missing, unexpected, bad_shapes)
    module.load_state_dict(dict(state), strict=True)


def torch_load_trusted_weights(path: str | Path) -> dict:
    """Read a ``.pth``/``.pt`` file with ``weights_only=True`` (never unpickles arbitrary code)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: weight file not found")
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as err:
        raise ValueError(f"{path}: cannot read as a weights-only torch checkpoint ({err})") from err
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: expected a dict of tensors, got {type(obj).__name__}")
    return obj
