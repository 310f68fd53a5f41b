"""The backbone spec: the settings that say which 3D network a run builds and what it reads.

One frozen dataclass shared by the pretraining student, the fine-tuning and detection models
(their ``model`` config sections extend it, so the options are ``--model.backbone``,
``--model.width``, ``--model.voxel_size``, ``--model.input_features`` and
``--model.sparse_backend`` in every command) and the backbone card of an exported file
(``ppkt.backbones.card``), which is how fine-tuning knows what a pretrained file needs.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

from torch import nn

from ppkt.backbones.features import INPUT_FEATURE_CHANNELS
from ppkt.config import RangeCheck, option

InputFeatures = Literal["rgb", "xyzrgb", "constant"]
SparseBackend = Literal["torch", "spconv"]


@dataclass(frozen=True)
class BackboneSpec:
    """Which sparse 3D backbone, at which width, on which voxels and input features.

    ``backbone``, ``width`` and ``input_features`` fix the weights' shapes; ``voxel_size`` is what
    the weights were trained on (a pretrained backbone is fine-tuned with the same); the
    ``sparse_backend`` only says how the convolutions run (the weights are the same on both).
    """

    backbone: str = option("res16unet34", "3D backbone in ppkt.backbones.BACKBONES")
    width: float = option(1.0, "channel width multiplier of the backbone")
    voxel_size: float = option(0.025, "voxel edge in metres (paper 2.5 cm)")
    input_features: InputFeatures = option(
        "rgb", "per-point input features: rgb, xyzrgb (centred coordinates + rgb) or constant (geometry only)"
    )
    sparse_backend: SparseBackend = option(
        "torch", "sparse convolution backend: torch (any device) or spconv (CUDA, needs spconv installed)"
    )

    @property
    def in_channels(self) -> int:
        """Input feature channels of ``input_features``."""
        return INPUT_FEATURE_CHANNELS[self.input_features]

    @property
    def spec(self) -> BackboneSpec:
        """The spec fields alone (a ``model`` config section that extends this class holds more)."""
        return BackboneSpec(**{f.name: getattr(self, f.name) for f in dataclasses.fields(BackboneSpec)})

    def build(self) -> nn.Module:
        """The backbone, freshly initialised (draws from torch's global generator)."""
        # local: cycle with ppkt.backbones (the package imports this module first)
        from ppkt.backbones import build_backbone

        return build_backbone(self.backbone, self.in_channels, width=self.width, backend=self.sparse_backend)


SPEC_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(BackboneSpec))
# What a pretrained file's weights depend on (the backend only says how they run).
WEIGHT_FIELDS: tuple[str, ...] = ("backbone", "width", "voxel_size", "input_features")


def check_backbone_spec(check: RangeCheck, spec: BackboneSpec, section: str = "model") -> None:
    """Record the spec's impossible values on the ``RangeCheck`` of the config whose ``section``
    holds it (every command's ``validate`` calls this)."""
    # local: cycle with ppkt.backbones (the package imports this module first)
    from ppkt.backbones import BACKBONES

    check.require(f"{section}.backbone", spec.backbone in BACKBONES, f"one of {sorted(BACKBONES)}")
    check.number(f"{section}.width", low=0, low_open=True)
    check.number(f"{section}.voxel_size", low=0, low_open=True)
    check.require(
        f"{section}.input_features", spec.input_features in INPUT_FEATURE_CHANNELS, "rgb, xyzrgb or constant"
    )
    check.require(f"{section}.sparse_backend", spec.sparse_backend in ("torch", "spconv"), "torch or spconv")
