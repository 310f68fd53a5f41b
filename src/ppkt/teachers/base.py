"""The teacher contract: a frozen 2D network that maps RGB images to a feature map.

A teacher takes images ``(B, 3, H, W)`` float RGB in ``[0, 1]`` (the same input for every
teacher), normalises them the way its weights were trained, and returns ``(B, C, h, w)``
features of one chosen stage, ``h = ceil(H / stride)`` for the convolutional teachers. It never
trains: its parameters do not require gradients, its forward runs under ``torch.no_grad()``, and it
stays in eval mode (frozen BatchNorm statistics) even when a parent module calls ``.train()``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import torch
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Normalization:
    """How a teacher's weights expect their input: ``(x - mean) / std`` per RGB channel.

    ``x`` is the image in ``[0, 1]``. ImageNet torchvision weights use the ImageNet statistics;
    TF EfficientNet-Lite weights use ``mean = std = 0.5`` (inputs in ``[-1, 1]``).
    """

    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def apply(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` in ``[0, 1]`` -> normalised, same dtype and device."""
        mean = torch.tensor(self.mean, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
        return (images - mean) / std


IMAGENET_NORMALIZATION = Normalization(IMAGENET_MEAN, IMAGENET_STD)
SYMMETRIC_NORMALIZATION = Normalization((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))


@dataclass(frozen=True)
class Stage:
    """A selectable output of a teacher: its channel count and stride (input pixels per cell)."""

    name: str
    channels: int
    stride: int


def state_sha256(module: nn.Module) -> str:
    """sha256 over a module's state dict (names, shapes, dtypes and bytes, in key order)."""
    digest = hashlib.sha256()
    for key, value in module.state_dict().items():
        tensor = value.detach().to("cpu").contiguous().reshape(-1)
        digest.update(key.encode())
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(str(tensor.dtype).encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


class Teacher(nn.Module):
    """Base class of the frozen 2D teachers.

    Subclasses build their network, load weights, then call :meth:`_freeze`, and implement
    :meth:`extract` (normalised images -> features of ``self.stage``). Attributes:

    - ``name``: registry name (``"efficientnet_lite0"``, ``"resnet50"``, ...).
    - ``stage``: the selected :class:`Stage` name; ``out_channels`` and ``stride`` are its own.
    - ``normalization``: the :class:`Normalization` applied inside :meth:`forward`.
    - ``weights_source``: where the weights came from (a path, a package, or ``"random"``).
    - ``identity``: ``"<name>/<stage>/<sha256[:16] of the state dict>"``, so caches and checkpoint
      cards detect another teacher, stage or set of weights.
    """

    stages: dict[str, Stage]

    def __init__(self, name: str, stage: Stage, normalization: Normalization, weights_source: str):
        super().__init__()
        self.name = name
        self.stage = stage.name
        self.out_channels = stage.channels
        self.stride = stage.stride
        self.normalization = normalization
        self.weights_source = weights_source
        self._identity: str | None = None

    def _freeze(self) -> None:
        # Hash the weights as loaded, so a later .half() or .to(device) keeps the identity.
        self._identity = f"{self.name}/{self.stage}/{state_sha256(self)[:16]}"
        self.requires_grad_(False)
        self.train(False)
        # NHWC convolutions: 1.15x (ResNet-50) to 1.5x (EfficientNet-Lite0) faster on CPU (oneDNN).
        self.to(memory_format=torch.channels_last)

    def train(self, mode: bool = True) -> Teacher:
        # A parent's .train() must not switch BatchNorm back to batch statistics.
        return super().train(False)

    @property
    def identity(self) -> str:
        if self._identity is None:
            raise RuntimeError(f"{type(self).__name__} must call _freeze() at the end of __init__")
        return self._identity

    def _prepare(self, images: torch.Tensor) -> torch.Tensor:
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"{self.name}: expected images (B, 3, H, W), got {tuple(images.shape)}")
        if not images.is_floating_point():
            raise TypeError(f"{self.name}: expected float images in [0, 1], got {images.dtype}")
        param = next(self.parameters(), None)
        if param is not None:
            images = images.to(dtype=param.dtype, device=param.device)
        return self.normalization.apply(images).contiguous(memory_format=torch.channels_last)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` RGB in ``[0, 1]`` -> ``(B, out_channels, h, w)`` features."""
        with torch.no_grad():
            return self.extract(self._prepare(images)).contiguous()

    def extract(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def feature_hw(self, image_hw: tuple[int, int]) -> tuple[int, int]:
        """Feature map size for an input of size ``image_hw`` (``ceil(H / stride)``)."""
        return (-(-image_hw[0] // self.stride), -(-image_hw[1] // self.stride))

    def extra_repr(self) -> str:
        return f"name={self.name}, stage={self.stage}, out_channels={self.out_channels}, stride={self.stride}"


def select_stage(name: str, stages: dict[str, Stage], stage: str | None, default: str) -> Stage:
    """Resolve a stage name (None or ``"last"`` -> ``default``) or raise listing the choices."""
    key = default if stage in (None, "last") else stage
    if key not in stages:
        raise ValueError(f"{name}: unknown stage {stage!r}; choose one of {sorted(stages)} or 'last'")
    return stages[key]
