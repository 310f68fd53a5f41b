"""3D backbones (SR-UNet / MinkUNet family) and per-voxel heads.

``build_backbone(name, in_channels, width=..., backend=...)`` builds from the flat registry
``BACKBONES`` (``BackboneSpec.build()`` from the settings every command's ``model`` section
shares); a backbone maps a stride-1 :class:`ppkt.sparse.SparseTensor` to per-voxel
features on the same sites and exposes ``out_channels``.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from torch import nn

from ppkt.backbones.features import INPUT_FEATURE_CHANNELS, input_features
from ppkt.backbones.heads import MLPProjectionHead, ProjectionHead, SegmentationHead
from ppkt.backbones.res16unet import LAYERS, Res16UNet
from ppkt.backbones.spec import BackboneSpec


def _res16unet(
    layers, in_channels: int, *, width: float = 1.0, backend: str = "torch", **kwargs
) -> Res16UNet:
    return Res16UNet(in_channels, layers, width=width, backend=backend, **kwargs)


BACKBONES: dict[str, Callable[..., nn.Module]] = {
    name: partial(_res16unet, layers) for name, layers in LAYERS.items()
}


def build_backbone(
    name: str, in_channels: int, *, width: float = 1.0, backend: str = "torch", **kwargs
) -> nn.Module:
    """Build a registered backbone.

    Args:
        name: a key of ``BACKBONES`` (``res16unet14``, ``res16unet18``, ``res16unet34``).
        in_channels: input feature channels (see ``INPUT_FEATURE_CHANNELS``).
        width: channel multiplier.
        backend: ``"torch"`` or ``"spconv"``.
        **kwargs: architecture options (``stem_kernel_size``, ``bn_momentum``).
    """
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; choose one of {sorted(BACKBONES)}")
    return BACKBONES[name](in_channels, width=width, backend=backend, **kwargs)


__all__ = [
    "BACKBONES",
    "BackboneSpec",
    "INPUT_FEATURE_CHANNELS",
    "MLPProjectionHead",
    "ProjectionHead",
    "Res16UNet",
    "SegmentationHead",
    "build_backbone",
    "input_features",
]
