"""The two sides of PPKT pretraining in one module.

    2D: images -> frozen teacher -> UPL (1x1 conv, bilinear) sampled at the pair pixels -> (P, D)
    3D: sparse voxels -> backbone -> projection head -> voxel of each paired point       -> (P, D)

Only the 3D backbone, the 3D projection head and the UPL's 1x1 conv learn; the teacher is frozen
(its parameters do not require gradients and its forward runs under ``no_grad``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ppkt.train.config import PretrainConfig
from ppkt.train.pipeline import PretrainBatch

TRAINABLE_PARTS = ("backbone", "head", "upl")
"""The submodules saved in checkpoints (the teacher is rebuilt from its own weights)."""


@dataclass
class PairEmbeddings:
    """Embeddings of the batch's pairs, row ``k`` of each = pair ``k`` of the batch.

    Attributes:
        points: ``(P, D)`` 3D embeddings (unnormalised; the loss normalises).
        pixels: ``(P, D)`` 2D embeddings, unit norm.
        frame: ``(P,)`` long frame of each pair.
    """

    points: torch.Tensor
    pixels: torch.Tensor
    frame: torch.Tensor


class PPKTModel(nn.Module):
    """Frozen teacher + trainable UPL, trainable 3D backbone + projection head."""

    def __init__(self, teacher: nn.Module, backbone: nn.Module, embedding_dim: int) -> None:
        from ppkt.backbones import ProjectionHead
        from ppkt.teachers import UpsamplingProjection

        super().__init__()
        self.teacher = teacher
        self.upl = UpsamplingProjection(teacher.out_channels, embedding_dim)
        self.backbone = backbone
        self.head = ProjectionHead(backbone.out_channels, embedding_dim)

    def cached_teacher_features(self, batch: PretrainBatch) -> torch.Tensor:
        """``(I, C, h, w)`` teacher features of a batch read from a teacher cache: the cached maps,
        with the teacher run on the un-augmented images of the frames the cache lacks."""
        if batch.teacher_cached is None:
            raise ValueError("this batch was not built with a teacher cache")
        features = batch.teacher_features
        if batch.teacher_images is not None:
            computed = self.teacher(batch.teacher_images)
            if features is None:
                features = computed.new_zeros((batch.teacher_cached.shape[0], *computed.shape[1:]))
            features = features.to(computed.dtype)
            features[~batch.teacher_cached] = computed
        return features

    def pixel_embeddings(
        self, batch: PretrainBatch, teacher_features: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``(P, D)`` unit-norm pixel embeddings; ``teacher_features`` (I, C, h, w) skips the teacher.

        A batch built with a teacher cache samples the cached (un-augmented) maps at the pairs'
        un-augmented pixels ``pair_uv_teacher``; otherwise the teacher runs on the augmented images
        and is sampled at ``pair_uv``. Given ``teacher_features`` follow the batch's kind.
        """
        stride = getattr(self.teacher, "stride", None)
        if batch.uses_teacher_cache:
            if teacher_features is None:
                teacher_features = self.cached_teacher_features(batch)
            uv, hw = batch.pair_uv_teacher, batch.teacher_image_hw
            return self.upl.sample(teacher_features, uv, batch.pair_image, hw, stride=stride)
        if teacher_features is None:
            teacher_features = self.teacher(batch.images)
        return self.upl.sample(
            teacher_features, batch.pair_uv, batch.pair_image, batch.image_hw, stride=stride
        )

    def point_embeddings(self, batch: PretrainBatch) -> torch.Tensor:
        """``(P, D)`` embeddings of the voxel holding each paired point."""
        voxel_feats = self.backbone(batch.sparse_tensor()).feats
        voxel_emb = self.head(voxel_feats)
        return voxel_emb[batch.point_to_voxel[batch.pair_point]]

    def forward(self, batch: PretrainBatch) -> PairEmbeddings:
        return PairEmbeddings(self.point_embeddings(batch), self.pixel_embeddings(batch), batch.pair_frame)

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """Weights and buffers of the learnt parts, keys ``backbone.*``, ``head.*``, ``upl.*``."""
        return {
            f"{part}.{key}": value
            for part in TRAINABLE_PARTS
            for key, value in getattr(self, part).state_dict().items()
        }

    def load_trainable_state_dict(self, state: dict[str, torch.Tensor], what: str) -> None:
        """Strictly load :meth:`trainable_state_dict` output (any missing or extra key is an error)."""
        from ppkt.utils.weights import load_state_strict, remap_keys

        for part in TRAINABLE_PARTS:
            sub = remap_keys(
                {k: v for k, v in state.items() if k.startswith(part + ".")}, strip_prefixes=(part + ".",)
            )
            load_state_strict(getattr(self, part), sub, what=f"{what} [{part}]")
        unknown = [k for k in state if k.split(".", 1)[0] not in TRAINABLE_PARTS]
        if unknown:
            raise KeyError(f"{what}: unexpected keys {unknown[:10]}")


def build_model(cfg: PretrainConfig) -> PPKTModel:
    """Teacher (frozen, from its weights), backbone, heads, as the config says."""
    from ppkt.backbones import INPUT_FEATURE_CHANNELS, build_backbone
    from ppkt.teachers import build_teacher

    weights = None if cfg.teacher.weights is None else str(cfg.teacher.weights)
    teacher = build_teacher(cfg.teacher.name, weights=weights, stage=cfg.teacher.stage)
    backbone = build_backbone(
        cfg.student.backbone,
        INPUT_FEATURE_CHANNELS[cfg.student.input_features],
        width=cfg.student.width,
        backend=cfg.student.sparse_backend,
    )
    return PPKTModel(teacher, backbone, cfg.loss.embedding_dim)
