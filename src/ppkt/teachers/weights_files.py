"""Reading teacher weight files: ``.safetensors`` or ``.pth``/``.pt``/``.tar`` (``weights_only=True``)."""

from __future__ import annotations

from pathlib import Path

import torch

from ppkt.utils.weights import load_weights, torch_load_trusted_weights


def read_checkpoint(path: str | Path) -> dict:
    """The raw top-level dict of a weight file (may hold nested dicts such as ``state_dict``)."""
    path = Path(path)
    if path.suffix == ".safetensors":
        tensors, _ = load_weights(path)
        return tensors
    return torch_load_trusted_weights(path)


def read_state_file(path: str | Path) -> dict[str, torch.Tensor]:
    """A flat ``name -> tensor`` state dict; anything else is an error naming the file."""
    state = read_checkpoint(path)
    not_tensors = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if not_tensors:
        raise ValueError(
            f"{path}: expected a flat state dict of tensors, found non-tensor entries {not_tensors[:10]}"
        )
    return state
