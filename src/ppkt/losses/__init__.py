"""Losses, one per file; each is a function of the two embeddings it is given."""

from ppkt.losses.cosine_distillation import CosineDistillation
from ppkt.losses.point_infonce import PointInfoNCE
from ppkt.losses.superpixel_infonce import SuperpixelInfoNCE, segment_mean

__all__ = ["CosineDistillation", "PointInfoNCE", "SuperpixelInfoNCE", "segment_mean"]
