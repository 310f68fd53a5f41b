"""The two sides of PPKT pretraining in one module.

    2D: images -> frozen teacher -> UPL (1x1 conv, bilinear) sampled at the pair pixels -> (S, D)
    3D: sparse voxels -> backbone -> voxel of each paired point -> projection head      -> (S, D)

for the ``S`` pairs the loss uses (``ppkt.train.pair_sampling``), not for every pair of the batch.

Only the 3D backbone, the 3D projection head and the UPL's 1x1 conv learn; the teacher is frozen
(its parameters do not require gradients and its forward runs under ``no_grad``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ppkt.backbones import MLPProjectionHead, ProjectionHead
from ppkt.teachers import UpsamplingProjection, build_teacher
from ppkt.train.batch import PretrainBatch
from ppkt.train.config import PretrainConfig
from ppkt.utils.weights import load_state_strict, remap_keys

TRAINABLE_PARTS = ("backbone", "head", "upl")
"""The submodules saved in checkpoints (the teacher is rebuilt from its own weights)."""


@dataclass
class PairEmbeddings:
    """Embeddings of the chosen pairs: row ``k`` of each = pair ``pair_index[k]`` of the batch
    (pair ``k`` when all pairs are embedded).

    Attributes:
        points: ``(S, D)`` 3D embeddings (unnormalised; the loss normalises).
        pixels: ``(S, D)`` 2D embeddings, unit norm.
        frame: ``(S,)`` long frame of each pair.
    """

    points: torch.Tensor
    pixels: torch.Tensor
    frame: torch.Tensor


def _select(values: torch.Tensor, index: torch.Tensor | None) -> torch.Tensor:
    return values if index is None else values[index.to(values.device)]


class PPKTModel(nn.Module):
    """Frozen teacher + trainable UPL, trainable 3D backbone + projection head.

    Args:
        embedding_dim: width of both embeddings (ignored with ``pixel_target="teacher"``).
        pixel_target: ``"upl"``: the pixel side is the teacher's map through the trainable UPL (PPKT,
            SLidR: contrastive losses); ``"teacher"``: the pixel side is the frozen teacher feature
            itself (the UPL is a frozen identity, so it is only unit-normalised and upsampled) and
            the 3D head maps to the teacher's width; cosine distillation regresses it (ScaLR,
            OpenScene), and a trainable target would let both sides collapse.
        head: ``"linear"`` (PPKT) or ``"mlp"`` (:class:`ppkt.backbones.MLPProjectionHead`).
    """

    def __init__(
        self,
        teacher: nn.Module,
        backbone: nn.Module,
        embedding_dim: int,
        *,
        pixel_target: str = "upl",
        head: str = "linear",
    ) -> None:
        super().__init__()
        if pixel_target not in ("upl", "teacher"):
            raise ValueError(f"pixel_target must be 'upl' or 'teacher', got {pixel_target!r}")
        if head not in ("linear", "mlp"):
            raise ValueError(f"head must be 'linear' or 'mlp', got {head!r}")
        self.teacher = teacher
        self.pixel_target = pixel_target
        if pixel_target == "teacher":
            embedding_dim = teacher.out_channels
        self.upl = UpsamplingProjection(teacher.out_channels, embedding_dim)
        if pixel_target == "teacher":
            with torch.no_grad():
                self.upl.proj.weight.copy_(torch.eye(embedding_dim)[:, :, None, None])
                self.upl.proj.bias.zero_()
            self.upl.requires_grad_(False)
        self.backbone = backbone
        head_type = ProjectionHead if head == "linear" else MLPProjectionHead
        self.head = head_type(backbone.out_channels, embedding_dim)

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
        self,
        batch: PretrainBatch,
        teacher_features: torch.Tensor | None = None,
        pair_index: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``(S, D)`` unit-norm pixel embeddings of the pairs ``pair_index`` (S,) (None: all P pairs);
        ``teacher_features`` (I, C, h, w) skips the teacher.

        A batch built with a teacher cache samples the cached (un-augmented) maps at the pairs'
        un-augmented pixels ``pair_uv_teacher``; otherwise the teacher runs on the augmented images
        and is sampled at ``pair_uv``. Given ``teacher_features`` follow the batch's kind.
        """
        stride = getattr(self.teacher, "stride", None)
        pair_image = _select(batch.pair_image, pair_index)
        if batch.uses_teacher_cache:
            if teacher_features is None:
                teacher_features = self.cached_teacher_features(batch)
            uv, hw = _select(batch.pair_uv_teacher, pair_index), batch.teacher_image_hw
            return self.upl.sample(teacher_features, uv, pair_image, hw, stride=stride)
        if teacher_features is None:
            teacher_features = self.teacher(batch.images)
        uv = _select(batch.pair_uv, pair_index)
        return self.upl.sample(teacher_features, uv, pair_image, batch.image_hw, stride=stride)

    def point_embeddings(self, batch: PretrainBatch, pair_index: torch.Tensor | None = None) -> torch.Tensor:
        """``(S, D)`` embeddings of the voxel holding the point of each pair ``pair_index`` (S,)
        (None: all P pairs). The projection head runs on those voxels only (it is per voxel)."""
        voxel_feats = self.backbone(batch.sparse.tensor).feats
        voxels = batch.sparse.point_to_voxel[_select(batch.pair_point, pair_index)]
        return self.head(voxel_feats[voxels])

    def forward(self, batch: PretrainBatch, pair_index: torch.Tensor | None = None) -> PairEmbeddings:
        """Embeddings of the pairs ``pair_index`` (S,) long (from
        :func:`ppkt.train.pair_sampling.sample_pairs`; None: every pair of the batch)."""
        return PairEmbeddings(
            self.point_embeddings(batch, pair_index),
            self.pixel_embeddings(batch, pair_index=pair_index),
            _select(batch.pair_frame, pair_index),
        )

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """Weights and buffers of the learnt parts, keys ``backbone.*``, ``head.*``, ``upl.*``."""
        return {
            f"{part}.{key}": value
            for part in TRAINABLE_PARTS
            for key, value in getattr(self, part).state_dict().items()
        }

    def load_trainable_state_dict(self, state: dict[str, torch.Tensor], what: str) -> None:
        """Strictly load :meth:`trainable_state_dict` output (any missing or extra key is an error)."""
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
    weights = None if cfg.teacher.weights is None else str(cfg.teacher.weights)
    teacher = build_teacher(cfg.teacher.name, weights=weights, stage=cfg.teacher.stage)
    backbone = cfg.model.build()
    # local: cycle with ppkt.train.objectives (it imports PairEmbeddings from here)
    from ppkt.train.objectives import pixel_target

    return PPKTModel(
        teacher, backbone, cfg.loss.embedding_dim, pixel_target=pixel_target(cfg.loss), head=cfg.loss.head
    )
