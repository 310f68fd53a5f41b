"""The segmentation model of the downstream loops and its files.

``SegmentationModel`` = a sparse 3D backbone + a per-voxel linear head. Its checkpoint files
(``best.safetensors``, ``last.safetensors``) carry the run's config and class names in their
metadata, so ``ppkt evaluate`` needs only the file. A pretrained backbone (``ppkt export``) is
loaded strictly, after its card, its sha256 and the finiteness of every tensor are checked.

Modes (see :mod:`ppkt.eval.finetune`):

* ``finetune``: backbone and head trained, each with its own learning rate.
* ``linear``: the ``backbone`` submodule is frozen by name: its parameters get no gradient, it
  stays in eval mode (batch-norm statistics are not updated) and runs under ``no_grad``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
import yaml
from torch import nn

from ppkt.backbones.card import load_card, read_backbone_file
from ppkt.config import config_from_dict, config_to_dict
from ppkt.eval.config import FinetuneConfig
from ppkt.utils.weights import load_state_strict, load_weights, save_weights

CONFIG_METADATA_KEY = "ppkt_finetune_config"
CLASS_NAMES_METADATA_KEY = "class_names"


class SegmentationModel(nn.Module):
    """``backbone`` (sparse U-Net) + ``head`` (per-voxel linear classifier).

    Args:
        backbone: module mapping a SparseTensor to per-voxel features (``out_channels``).
        num_classes: number of classes.
        freeze_backbone: linear probing: the backbone is frozen (see module docstring).
        freeze_batchnorm: the backbone's batch norms normalise with their stored statistics and
            never update them, also while the backbone trains (their scale and shift still learn).
    """

    def __init__(
        self,
        backbone: nn.Module,
        num_classes: int,
        *,
        freeze_backbone: bool = False,
        freeze_batchnorm: bool = False,
    ):
        super().__init__()
        from ppkt.backbones import SegmentationHead

        self.backbone = backbone
        self.head = SegmentationHead(backbone.out_channels, num_classes)
        self.freeze_batchnorm = freeze_batchnorm
        self.freeze_backbone = False
        self.set_backbone_frozen(freeze_backbone)

    def set_backbone_frozen(self, frozen: bool) -> None:
        """Freeze (no grad, eval-mode batch norm) or release the backbone."""
        self.freeze_backbone = frozen
        self.backbone.requires_grad_(not frozen)
        self.train(self.training)

    def train(self, mode: bool = True) -> SegmentationModel:
        super().train(mode)
        if self.freeze_backbone:
            self.backbone.eval()  # keep batch-norm statistics frozen
        elif self.freeze_batchnorm:
            for module in self.backbone.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    module.eval()
        return self

    def forward(self, tensor) -> torch.Tensor:
        """``(M, num_classes)`` logits on the sites of the input SparseTensor."""
        if self.freeze_backbone:
            with torch.no_grad():
                feats = self.backbone(tensor).feats
        else:
            feats = self.backbone(tensor).feats
        return self.head(feats)


def build_model(cfg: FinetuneConfig) -> SegmentationModel:
    from ppkt.backbones import INPUT_FEATURE_CHANNELS, build_backbone

    backbone = build_backbone(
        cfg.model.backbone,
        INPUT_FEATURE_CHANNELS[cfg.data.input_features],
        width=cfg.model.width,
        backend=cfg.model.backend,
    )
    return SegmentationModel(
        backbone,
        cfg.data.num_classes,
        freeze_backbone=cfg.model.mode == "linear",
        freeze_batchnorm=cfg.model.freeze_batchnorm,
    )


def load_pretrained_backbone(model: SegmentationModel, path: str | Path, cfg: FinetuneConfig) -> None:
    """Load an exported backbone (``ppkt export``: safetensors + card) strictly into ``model.backbone``.

    Raises:
        ValueError: the card's backbone, width, voxel size or input features differ from ``cfg``.
        NonFiniteError: a tensor of the file holds NaN/inf (named in the message).
        StateDictMismatch: a backbone key is missing, unexpected or mis-shaped (all are listed).
    """
    path = Path(path)
    card = load_card(path)
    expected = {
        "backbone": cfg.model.backbone,
        "width": float(cfg.model.width),
        "voxel_size": float(cfg.data.voxel_size),
        "input_features": cfg.data.input_features,
    }
    found = {
        "backbone": card.backbone,
        "width": float(card.width),
        "voxel_size": float(card.voxel_size),
        "input_features": card.input_features,
    }
    wrong = [
        f"{key}: checkpoint {found[key]!r} vs config {expected[key]!r}"
        for key in expected
        if (
            not math.isclose(found[key], expected[key], rel_tol=1e-6)
            if isinstance(expected[key], float)
            else found[key] != expected[key]
        )
    ]
    if wrong:
        raise ValueError(
            f"{path}: the pretrained backbone does not match this run ({'; '.join(wrong)}); "
            "set the run's options to the card's values"
        )
    state, _ = read_backbone_file(path)
    load_state_strict(model.backbone, state, what=f"{path} (pretrained backbone)")


def save_model_file(model: SegmentationModel, path: Path, cfg: FinetuneConfig, class_names, **extra) -> None:
    """Write the model's weights with the run's config and class names in the metadata (atomic)."""
    metadata = {
        CONFIG_METADATA_KEY: yaml.safe_dump(config_to_dict(cfg), sort_keys=False),
        CLASS_NAMES_METADATA_KEY: json.dumps(list(class_names)),
        **{k: str(v) for k, v in extra.items()},
    }
    save_weights(model.state_dict(), path, metadata=metadata)


def load_checkpoint(path: str | Path) -> tuple[SegmentationModel, FinetuneConfig, tuple[str, ...]]:
    """A segmentation checkpoint written by :func:`finetune`: (model in eval mode, config, class names)."""
    path = Path(path)
    state, metadata = load_weights(path)
    if CONFIG_METADATA_KEY not in metadata:
        raise ValueError(f"{path}: not a ppkt segmentation checkpoint (no {CONFIG_METADATA_KEY!r} metadata)")
    cfg = config_from_dict(FinetuneConfig, yaml.safe_load(metadata[CONFIG_METADATA_KEY]), where=str(path))
    model = build_model(cfg)
    load_state_strict(model, state, what=str(path))
    class_names = tuple(json.loads(metadata.get(CLASS_NAMES_METADATA_KEY, "[]")))
    return model.eval(), cfg, class_names
