"""ResNet-18/34/50/101 teachers whose state-dict keys match torchvision's exactly.

ResNet-50's last stage (layer4, 2048 channels, stride 32) is the paper's teacher. Weights come from
a file the user gives: a torchvision checkpoint, or a self-supervised ResNet-50 (MoCo v2, DINO,
anything saved with a ``model.``/``backbone.`` prefix). :func:`resnet_backbone_state` turns such a
file into torchvision keys with explicit rules; heads are dropped and listed in the log, and a
missing or unexpected backbone key is an error that lists it. Nothing is ever downloaded.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ppkt.teachers.base import IMAGENET_NORMALIZATION, Stage, Teacher, select_stage
from ppkt.teachers.weights_files import read_checkpoint
from ppkt.utils.weights import load_state_strict, remap_keys

log = logging.getLogger(__name__)


def _conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin: int, width: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = _conv3x3(cin, width, stride)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = _conv3x3(width, width)
        self.bn2 = nn.BatchNorm2d(width)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        identity = x if self.downsample is None else self.downsample(x)
        return F.relu(y + identity)


class Bottleneck(nn.Module):
    """torchvision's "ResNet v1.5" bottleneck: the stride sits in the 3x3 conv."""

    expansion = 4

    def __init__(self, cin: int, width: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = _conv3x3(width, width, stride)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, width * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(width * 4)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        y = F.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        identity = x if self.downsample is None else self.downsample(x)
        return F.relu(y + identity)


RESNET_LAYOUTS: dict[int, tuple[type[BasicBlock] | type[Bottleneck], tuple[int, int, int, int]]] = {
    18: (BasicBlock, (2, 2, 2, 2)),
    34: (BasicBlock, (3, 4, 6, 3)),
    50: (Bottleneck, (3, 4, 6, 3)),
    101: (Bottleneck, (3, 4, 23, 3)),
}


class ResNet(nn.Module):
    """The torchvision ResNet layout; ``num_classes=None`` builds it without ``fc``."""

    def __init__(self, depth: int, num_classes: int | None = None):
        super().__init__()
        block, repeats = RESNET_LAYOUTS[depth]
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        cin = 64
        self.layer_channels: list[int] = []
        for index, (width, count) in enumerate(zip((64, 128, 256, 512), repeats, strict=True)):
            stride = 1 if index == 0 else 2
            downsample = None
            if stride != 1 or cin != width * block.expansion:
                downsample = nn.Sequential(
                    nn.Conv2d(cin, width * block.expansion, 1, stride=stride, bias=False),
                    nn.BatchNorm2d(width * block.expansion),
                )
            blocks = [block(cin, width, stride, downsample)]
            cin = width * block.expansion
            blocks += [block(cin, width) for _ in range(count - 1)]
            setattr(self, f"layer{index + 1}", nn.Sequential(*blocks))
            self.layer_channels.append(cin)
        self.fc = nn.Linear(cin, num_classes) if num_classes is not None else None
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def features_until(self, x: torch.Tensor, last_layer: int) -> torch.Tensor:
        x = self.maxpool(F.relu(self.bn1(self.conv1(x))))
        for index in range(1, last_layer + 1):
            x = getattr(self, f"layer{index}")(x)
        return x

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        if self.fc is None:
            raise RuntimeError("this ResNet has no classifier (its weights had no 1000-class fc)")
        return self.fc(self.features_until(x, 4).mean(dim=(2, 3)))


# --- turning checkpoints into torchvision keys -------------------------------------------------

# Containers that wrap the state dict, tried in this order (DINO: the EMA teacher is the one to use).
CONTAINER_KEYS = ("state_dict", "teacher", "model", "student", "module")
# Prefixes stripped from every key (the first that matches), longest first.
BACKBONE_PREFIXES = (
    "module.encoder_q.",  # MoCo v1/v2 (query encoder)
    "module.backbone.",  # DINO student, DataParallel-wrapped
    "encoder_q.",
    "backbone.",  # DINO teacher, mmcv/mmselfsup
    "module.",  # DataParallel
    "model.",
    "encoder.",
)
# Keys (before stripping) of other networks and buffers of the method.
OTHER_NETWORK_PREFIXES = (
    "module.encoder_k.",  # MoCo key encoder (a momentum copy)
    "encoder_k.",
    "module.queue",
    "queue",
)
# Keys (after stripping) that belong to heads.
HEAD_PREFIXES = (
    "head.",  # DINO projection head
    "projector.",
    "predictor.",
    "projection_head.",
    "prototypes.",
    "fc.",  # MoCo v2 MLP head (fc.0/fc.2) or a non-ImageNet fc; an ImageNet fc is kept, see below
)


@dataclass
class BackboneState:
    """A checkpoint converted to torchvision ResNet keys.

    Attributes:
        state: backbone tensors (``conv1.weight`` ... ``layer4.*``), plus ``fc.weight``/``fc.bias``
            when the file holds a 1000-class ImageNet classifier.
        dropped: original keys of heads and other networks that were left out.
        container: the nested dict the weights came from (``"state_dict"``, ``"teacher"``, ...) or "".
    """

    state: dict[str, torch.Tensor]
    dropped: list[str] = field(default_factory=list)
    container: str = ""


def resnet_backbone_state(raw: Mapping, *, what: str = "checkpoint") -> BackboneState:
    """Unwrap, strip prefixes and drop heads (rules above); tensors only, no loading yet."""
    container = ""
    for key in CONTAINER_KEYS:
        inner = raw.get(key)
        if isinstance(inner, Mapping) and any(isinstance(v, torch.Tensor) for v in inner.values()):
            raw, container = inner, key
            break
    tensors = {k: v for k, v in raw.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise ValueError(f"{what}: no tensors found (top-level keys: {sorted(raw)[:20]})")
    other = [k for k in tensors if k.startswith(OTHER_NETWORK_PREFIXES)]
    kept: dict[str, torch.Tensor] = {}
    original: dict[str, str] = {}  # stripped key -> key in the file, for messages
    for key, value in tensors.items():
        if key in other:
            continue
        (new,) = remap_keys({key: value}, strip_prefixes=BACKBONE_PREFIXES)
        if new in original:
            raise ValueError(f"{what}: keys {original[new]!r} and {key!r} both map to {new!r}")
        original[new], kept[new] = key, value
    fc_weight, fc_bias = kept.get("fc.weight"), kept.get("fc.bias")
    keep_fc = (
        fc_weight is not None and fc_bias is not None and fc_weight.ndim == 2 and fc_weight.shape[0] == 1000
    )
    state: dict[str, torch.Tensor] = {}
    dropped = list(other)
    for key, value in kept.items():
        if key.startswith(HEAD_PREFIXES) and not (keep_fc and key in ("fc.weight", "fc.bias")):
            dropped.append(original[key])
        else:
            state[key] = value
    return BackboneState(state, sorted(dropped), container)


def summarize_dropped(dropped: list[str]) -> str:
    """Dropped keys grouped by rule: ``"module.encoder_k.* (102), module.queue* (2)"``."""
    groups: dict[str, int] = {}
    for key in dropped:
        group = key
        for prefix in OTHER_NETWORK_PREFIXES:
            if key.startswith(prefix):
                group = prefix + "*"
                break
        else:
            for head in HEAD_PREFIXES:
                at = key.find(head)
                if at == 0 or (at > 0 and key[at - 1] == "."):
                    group = key[: at + len(head)] + "*"
                    break
        groups[group] = groups.get(group, 0) + 1
    return ", ".join(f"{g} ({n})" for g, n in groups.items())


def load_resnet_weights(net: ResNet, path: str | Path) -> BackboneState:
    """Load a torchvision/MoCo/DINO checkpoint strictly into ``net`` (built without ``fc``)."""
    converted = resnet_backbone_state(read_checkpoint(path), what=str(path))
    if converted.dropped:
        log.info(
            "%s: dropped %d keys of heads and other networks: %s",
            path,
            len(converted.dropped),
            summarize_dropped(converted.dropped),
        )
    if "fc.weight" in converted.state:
        net.fc = nn.Linear(converted.state["fc.weight"].shape[1], 1000)
    load_state_strict(net, converted.state, what=f"{path} (ResNet backbone keys)")
    return converted


DEFAULT_RESNET_STAGE = "layer4"


class ResNetTeacher(Teacher):
    """A frozen ResNet; stages ``layer1``..``layer4`` (strides 4, 8, 16, 32; default layer4)."""

    def __init__(self, depth: int, net: ResNet, stage: str | None, weights_source: str):
        stages = {
            f"layer{i + 1}": Stage(f"layer{i + 1}", channels, 4 * 2**i)
            for i, channels in enumerate(net.layer_channels)
        }
        chosen = select_stage(f"resnet{depth}", stages, stage, DEFAULT_RESNET_STAGE)
        super().__init__(f"resnet{depth}", chosen, IMAGENET_NORMALIZATION, weights_source)
        self.stages = stages
        self.net = net
        self._last_layer = int(chosen.name.removeprefix("layer"))
        self._freeze()

    def extract(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.features_until(x, self._last_layer)

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        """ImageNet-1k logits ``(B, 1000)``; only when the weights had an ImageNet ``fc``."""
        with torch.no_grad():
            return self.net.logits(self._prepare(images))


def build_resnet(depth: int, *, weights: str | Path | None = None, stage: str | None = None) -> ResNetTeacher:
    """``weights``: a .pth/.pt/.tar/.safetensors file, or ``"random"`` (must be asked for explicitly)."""
    if weights is None:
        raise ValueError(
            f"resnet{depth}: no weights given. ppkt never downloads weights: pass weights=FILE "
            "(a torchvision, MoCo v2 or DINO ResNet checkpoint, .pth or .safetensors), "
            "or weights='random' for an untrained network"
        )
    net = ResNet(depth)
    source = "random"
    if weights != "random":
        load_resnet_weights(net, weights)
        source = str(weights)
    return ResNetTeacher(depth, net, stage, source)
