"""Frozen 2D teachers, the upsampling feature projection layer (UPL), and a teacher feature cache.

teacher = build_teacher("efficientnet_lite0")      # frozen; (B,3,H,W) in [0,1] -> (B,C,h,w)
upl = UpsamplingProjection(teacher.out_channels, 128)
pixel_features = upl.sample(teacher(images), uv, batch_index, image_hw)   # (P,128), unit norm
"""

from ppkt.teachers.base import (
    IMAGENET_NORMALIZATION,
    SYMMETRIC_NORMALIZATION,
    Normalization,
    Stage,
    Teacher,
)
from ppkt.teachers.cache import StaleCacheError, TeacherFeatureCache, cache_teacher_features
from ppkt.teachers.projection import UpsamplingProjection
from ppkt.teachers.registry import DEFAULT_TEACHER, TEACHERS, build_teacher
from ppkt.teachers.vit import TeacherUnavailable, ViTTeacher

__all__ = [
    "DEFAULT_TEACHER",
    "IMAGENET_NORMALIZATION",
    "SYMMETRIC_NORMALIZATION",
    "TEACHERS",
    "Normalization",
    "Stage",
    "StaleCacheError",
    "Teacher",
    "TeacherFeatureCache",
    "TeacherUnavailable",
    "UpsamplingProjection",
    "ViTTeacher",
    "build_teacher",
    "cache_teacher_features",
]
