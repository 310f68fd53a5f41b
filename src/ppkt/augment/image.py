"""Image augmentation of pretraining: horizontal flip and random resized crop, with the pairs' pixel
coordinates remapped (pixel centres at integer ``uv``, docs/conventions.md)."""

from __future__ import annotations

import numpy as np
import torch

from ppkt.augment.config import AugmentConfig
from ppkt.data.images import resize_image
from ppkt.utils.compiled import use_compiled


def augment_image(
    image: torch.Tensor,
    uv: torch.Tensor,
    cfg: AugmentConfig,
    out_hw: tuple[int, int],
    rng: np.random.Generator,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Horizontal flip and random resized crop of one image; remap pixel coordinates.

    Args:
        image: ``(3, H, W)`` float.
        uv: ``(P, 2)`` pixel coordinates in ``image``.
        out_hw: output size.

    Returns:
        (new image ``(3, *out_hw)``, new ``uv`` of the kept pairs ``(P', 2)``, kept ``(P,)`` bool).
    """
    H, W = int(image.shape[1]), int(image.shape[2])
    flip = cfg.hflip > 0 and rng.random() < cfg.hflip
    if flip:
        image = image.flip(-1)
    side = float(rng.uniform(cfg.crop_scale_min, 1.0))
    crop_h = max(1, min(H, round(side * H)))
    crop_w = max(1, min(W, round(side * W)))
    y0 = int(rng.integers(0, H - crop_h + 1))
    x0 = int(rng.integers(0, W - crop_w + 1))
    image = image[:, y0 : y0 + crop_h, x0 : x0 + crop_w]
    sx, sy = out_hw[1] / crop_w, out_hw[0] / crop_h
    if (
        use_compiled()
        and uv.device.type == "cpu"
        and uv.dtype in (torch.float32, torch.float64)
        and uv.ndim == 2
        and uv.shape[1] == 2
        and not (torch.is_grad_enabled() and uv.requires_grad)  # the loop keeps no gradient
    ):
        from ppkt.augment import _kernels  # local: imports numba, only when a compiled path runs

        coords = uv.detach().contiguous().numpy()
        new_uv, keep = _kernels.crop_resize_uv(
            coords, flip, W, x0, y0, crop_w, crop_h, sx, sy, out_hw[1], out_hw[0]
        )
        return resize_image(image, out_hw), torch.from_numpy(new_uv), torch.from_numpy(keep)
    uv = uv.double()
    if flip:
        uv = torch.stack([(W - 1) - uv[:, 0], uv[:, 1]], dim=1)
    u, v = uv[:, 0] - x0, uv[:, 1] - y0
    keep = (u >= -0.5) & (u < crop_w - 0.5) & (v >= -0.5) & (v < crop_h - 0.5)
    new_uv = torch.stack([(u + 0.5) * sx - 0.5, (v + 0.5) * sy - 0.5], dim=1).float()
    # Rounding to float32 can land a border pixel exactly on the far edge: keep the promise "inside".
    keep &= (new_uv[:, 0] < out_hw[1] - 0.5) & (new_uv[:, 1] < out_hw[0] - 0.5)
    keep &= (new_uv[:, 0] >= -0.5) & (new_uv[:, 1] >= -0.5)
    return resize_image(image, out_hw), new_uv[keep], keep
