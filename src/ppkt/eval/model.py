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

import dataclasses
import json
from collections.abc import Collection
from pathlib import Path
from typing import TypeVar

import torch
import yaml
from torch import nn

from ppkt.backbones import SegmentationHead
from ppkt.backbones.card import card_mismatches, load_card, read_backbone_file, spec_from_card
from ppkt.config import config_from_dict, config_to_dict
from ppkt.eval.config import FinetuneConfig
from ppkt.utils.weights import load_state_strict, load_weights, save_weights

C = TypeVar("C")

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
    return SegmentationModel(
        cfg.model.build(),
        cfg.data.num_classes,
        freeze_backbone=cfg.model.mode == "linear",
        freeze_batchnorm=cfg.model.freeze_batchnorm,
    )


def load_pretrained_backbone(model: nn.Module, path: str | Path, cfg: FinetuneConfig) -> None:
    """Load an exported backbone (``ppkt export``: safetensors + card) strictly into ``model.backbone``
    (of a segmentation or detection model; only ``cfg.model`` is read, so a detection config does).

    Raises:
        ValueError: the card's backbone, width, voxel size or input features differ from ``cfg.model``.
        NonFiniteError: a tensor of the file holds NaN/inf (named in the message).
        StateDictMismatch: a backbone key is missing, unexpected or mis-shaped (all are listed).
    """
    path = Path(path)
    wrong = card_mismatches(cfg.model, load_card(path))
    if wrong:
        raise ValueError(
            f"{path}: the pretrained backbone does not match this run ({'; '.join(wrong)}); "
            "set the run's options to the card's values"
        )
    state, _ = read_backbone_file(path)
    load_state_strict(model.backbone, state, what=f"{path} (pretrained backbone)")


def with_card_spec(cfg: C, given: Collection[str]) -> tuple[C, str]:
    """A fine-tuning or detection config that starts from a pretrained file (``model.init``) takes
    the backbone spec of the file's card: ``model.backbone``, ``width``, ``voxel_size`` and
    ``input_features`` come from the card unless named in ``given`` (the dotted options the user set
    on the command line; a preset's or a --config file's values yield to the card). A set option
    that differs from the card is a ValueError naming both values. ``model.sparse_backend`` is the
    run's own choice (the weights are the same on both backends).

    Returns:
        The config, and one line naming what was taken from the card ("" when nothing changed).
    """
    if cfg.model.init is None or not Path(cfg.model.init).is_file():  # validate names a missing file
        return cfg, ""
    path = Path(cfg.model.init)
    fields = {key.removeprefix("model.") for key in given if key.startswith("model.")}
    model, changed = spec_from_card(cfg.model, load_card(path), fields, where=str(path))
    note = f"from the backbone card of {path}: {', '.join(changed)}" if changed else ""
    return dataclasses.replace(cfg, model=model), note


def model_file(path: str | Path) -> Path:
    """The fine-tuned model file ``path`` names: the file itself, or a run folder's best
    (``checkpoints/best.safetensors``); whether it exists is the caller's to check."""
    path = Path(path)
    return path / "checkpoints" / "best.safetensors" if path.is_dir() else path


def save_model_file(
    model: nn.Module, path: Path, cfg, class_names, *, config_key: str = CONFIG_METADATA_KEY, **extra
) -> None:
    """Write the model's weights with the run's config and class names in the metadata (atomic).
    ``config_key`` names the kind of checkpoint (segmentation's, or detection's
    ``ppkt_detection_config``), so that each loader refuses the other's files."""
    metadata = {
        config_key: yaml.safe_dump(config_to_dict(cfg), sort_keys=False),
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
