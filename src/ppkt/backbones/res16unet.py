"""Res16UNet (SR-UNet / MinkUNet) family of sparse residual U-Nets.

The layout follows MinkowskiEngine's ``Res16UNetBase`` as used by PointContrast and PPKT
("SR-UNet34" = Res16UNet34C), written here on :mod:`ppkt.sparse`:

    conv0p1s1 (kernel stem_kernel_size, INIT_DIM) -> bn0 -> relu                     = skip p1
    4x down:  conv{i}p{2^(i-1)}s2 (kernel 2, stride 2) -> bn{i} -> relu -> block{i}   = skips p2, p4, p8
    4x up:    convtr{i}p{2^i}s2 (transposed kernel 2) -> bntr{i} -> relu
              -> concatenate the skip of the same level -> block{i+1}
    output:   block8 features (PLANES[7] = 96 channels) on the input sites.

Blocks are ResNet BasicBlocks (two 3x3x3 submanifold convs with batch norm, residual, ReLU;
a 1x1 conv + batch norm on the residual when the width changes). Convolutions have no bias.
A width multiplier scales every channel count (``round(c * width)``).
"""

from __future__ import annotations

from torch import nn

from ppkt.sparse import BatchNorm, DownConv3d, ReLU, SparseTensor, SubmanifoldConv3d, UpConv3d, cat

INIT_DIM = 32
PLANES = (32, 64, 128, 256, 256, 128, 96, 96)
LAYERS = {
    "res16unet14": (1, 1, 1, 1, 1, 1, 1, 1),
    "res16unet18": (2, 2, 2, 2, 2, 2, 2, 2),
    "res16unet34": (2, 3, 4, 6, 2, 2, 2, 2),
}


class BasicBlock(nn.Module):
    """Residual block: conv3-bn-relu-conv3-bn (+ projected identity) -> relu."""

    def __init__(self, in_channels: int, out_channels: int, bn_momentum: float, backend: str):
        super().__init__()
        self.conv1 = SubmanifoldConv3d(in_channels, out_channels, 3, backend=backend)
        self.norm1 = BatchNorm(out_channels, momentum=bn_momentum)
        self.conv2 = SubmanifoldConv3d(out_channels, out_channels, 3, backend=backend)
        self.norm2 = BatchNorm(out_channels, momentum=bn_momentum)
        self.relu = ReLU()
        self.downsample = (
            nn.Sequential(
                SubmanifoldConv3d(in_channels, out_channels, 1, backend=backend),
                BatchNorm(out_channels, momentum=bn_momentum),
            )
            if in_channels != out_channels
            else None
        )

    def forward(self, x: SparseTensor) -> SparseTensor:
        out = self.relu(self.norm1(self.conv1(x)))
        out = self.norm2(self.conv2(out))
        residual = x if self.downsample is None else self.downsample(x)
        return self.relu(out.replace_feats(out.feats + residual.feats))


def _layer(
    in_channels: int, out_channels: int, blocks: int, bn_momentum: float, backend: str
) -> nn.Sequential:
    layers = [BasicBlock(in_channels, out_channels, bn_momentum, backend)]
    layers += [BasicBlock(out_channels, out_channels, bn_momentum, backend) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)


class Res16UNet(nn.Module):
    """Sparse residual U-Net with 4 stride-2 levels; per-voxel features on the input sites.

    Args:
        in_channels: input feature channels.
        layers: BasicBlocks per stage (8 stages: 4 encoder, 4 decoder).
        width: channel multiplier applied to ``INIT_DIM`` and ``PLANES``.
        stem_kernel_size: kernel of the first convolution (MinkowskiEngine's ``conv1_kernel_size``).
        bn_momentum: batch-norm momentum (PyTorch convention).
        backend: sparse convolution backend, ``"torch"`` or ``"spconv"``.

    Attributes:
        out_channels: channels of the output features (``round(96 * width)``).
    """

    def __init__(
        self,
        in_channels: int,
        layers: tuple[int, ...],
        *,
        width: float = 1.0,
        stem_kernel_size: int = 5,
        bn_momentum: float = 0.1,
        backend: str = "torch",
    ):
        super().__init__()
        if len(layers) != 8 or min(layers) < 1:
            raise ValueError(f"Res16UNet: layers must be 8 positive block counts, got {layers}")
        if width <= 0:
            raise ValueError(f"Res16UNet: width must be positive, got {width}")
        init = max(1, round(INIT_DIM * width))
        planes = [max(1, round(p * width)) for p in PLANES]
        m = bn_momentum
        self.in_channels = in_channels
        self.out_channels = planes[7]
        self.relu = ReLU()

        self.conv0p1s1 = SubmanifoldConv3d(in_channels, init, stem_kernel_size, backend=backend)
        self.bn0 = BatchNorm(init, momentum=m)
        self.conv1p1s2 = DownConv3d(init, init, backend=backend)
        self.bn1 = BatchNorm(init, momentum=m)
        self.block1 = _layer(init, planes[0], layers[0], m, backend)
        self.conv2p2s2 = DownConv3d(planes[0], planes[0], backend=backend)
        self.bn2 = BatchNorm(planes[0], momentum=m)
        self.block2 = _layer(planes[0], planes[1], layers[1], m, backend)
        self.conv3p4s2 = DownConv3d(planes[1], planes[1], backend=backend)
        self.bn3 = BatchNorm(planes[1], momentum=m)
        self.block3 = _layer(planes[1], planes[2], layers[2], m, backend)
        self.conv4p8s2 = DownConv3d(planes[2], planes[2], backend=backend)
        self.bn4 = BatchNorm(planes[2], momentum=m)
        self.block4 = _layer(planes[2], planes[3], layers[3], m, backend)

        self.convtr4p16s2 = UpConv3d(planes[3], planes[4], backend=backend)
        self.bntr4 = BatchNorm(planes[4], momentum=m)
        self.block5 = _layer(planes[4] + planes[2], planes[4], layers[4], m, backend)
        self.convtr5p8s2 = UpConv3d(planes[4], planes[5], backend=backend)
        self.bntr5 = BatchNorm(planes[5], momentum=m)
        self.block6 = _layer(planes[5] + planes[1], planes[5], layers[5], m, backend)
        self.convtr6p4s2 = UpConv3d(planes[5], planes[6], backend=backend)
        self.bntr6 = BatchNorm(planes[6], momentum=m)
        self.block7 = _layer(planes[6] + planes[0], planes[6], layers[6], m, backend)
        self.convtr7p2s2 = UpConv3d(planes[6], planes[7], backend=backend)
        self.bntr7 = BatchNorm(planes[7], momentum=m)
        self.block8 = _layer(planes[7] + init, planes[7], layers[7], m, backend)

    def forward(self, x: SparseTensor) -> SparseTensor:
        if x.stride != 1:
            raise ValueError(f"Res16UNet expects a stride-1 input tensor, got stride {x.stride}")
        if x.num_channels != self.in_channels:
            raise ValueError(f"Res16UNet expects {self.in_channels} input channels, got {x.num_channels}")
        out_p1 = self.relu(self.bn0(self.conv0p1s1(x)))
        out_b1p2 = self.block1(self.relu(self.bn1(self.conv1p1s2(out_p1))))
        out_b2p4 = self.block2(self.relu(self.bn2(self.conv2p2s2(out_b1p2))))
        out_b3p8 = self.block3(self.relu(self.bn3(self.conv3p4s2(out_b2p4))))
        out = self.block4(self.relu(self.bn4(self.conv4p8s2(out_b3p8))))

        out = self.relu(self.bntr4(self.convtr4p16s2(out)))
        out = self.block5(cat(out, out_b3p8))
        out = self.relu(self.bntr5(self.convtr5p8s2(out)))
        out = self.block6(cat(out, out_b2p4))
        out = self.relu(self.bntr6(self.convtr6p4s2(out)))
        out = self.block7(cat(out, out_b1p2))
        out = self.relu(self.bntr7(self.convtr7p2s2(out)))
        return self.block8(cat(out, out_p1))
