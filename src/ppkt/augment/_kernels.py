"""Compiled (numba) loops behind ``ppkt.augment`` on the CPU; see ``ppkt.utils.compiled``.

Each does what its torch counterpart does, with the same float operations in the same dtype (so
the same bits), in one pass instead of a dozen.
"""

from __future__ import annotations

import numpy as np

from ppkt.utils.compiled import njit


@njit
def crop_resize_uv(uv, flip, width, x0, y0, crop_w, crop_h, sx, sy, out_w, out_h):
    """:func:`ppkt.augment.image.augment_image`'s pixel remap: optional horizontal flip of an image
    ``width`` wide, crop at ``(x0, y0)`` of ``crop_w x crop_h``, scale by ``(sx, sy)`` to
    ``out_w x out_h``; in float64, the result rounded to float32.

    uv ``(P, 2)`` float32/64. Returns ``(new_uv (P', 2) float32 of the kept pairs, keep (P,)
    bool)``: a pair is kept when it lies in the crop and its new ``uv`` inside the output image.
    """
    n = uv.shape[0]
    keep = np.empty(n, np.bool_)
    out = np.empty((n, 2), np.float32)
    k = 0
    for i in range(n):
        u = np.float64(uv[i, 0])
        v = np.float64(uv[i, 1])
        if flip:
            u = (width - 1) - u
        u = u - x0
        v = v - y0
        inside = (u >= -0.5) & (u < crop_w - 0.5) & (v >= -0.5) & (v < crop_h - 0.5)
        nu = np.float32((u + 0.5) * sx - 0.5)
        nv = np.float32((v + 0.5) * sy - 0.5)
        # Rounding to float32 can land a border pixel exactly on the far edge: keep "inside".
        # The far bounds in float32, as torch compares a float32 tensor with a Python number.
        inside &= (
            (nu < np.float32(out_w - 0.5)) & (nv < np.float32(out_h - 0.5)) & (nu >= -0.5) & (nv >= -0.5)
        )
        keep[i] = inside
        out[k, 0] = nu
        out[k, 1] = nv
        k += inside
    return out[:k].copy(), keep
