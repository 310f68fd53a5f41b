"""Pinhole camera maths: back-projection, rigid transforms, projection, pixel bookkeeping.

Convention (docs/conventions.md): OpenCV camera frame (x right, y down, z forward), depth is the
camera-frame z in metres, ``K = [[fx, s, cx], [0, fy, cy], [0, 0, 1]]`` in pixels of the image it
belongs to, ``uv = (column, row)`` floats with **pixel centres at integer uv** (pixel ``ij = (i, j)``
covers ``u in [j - 0.5, j + 0.5)``, ``v in [i - 0.5, i + 0.5)``), sizes are ``(H, W)``.

Every function takes and returns torch tensors, works on any device and in float32 or float64
(computations follow the dtype of the points / depth; ``K`` and transforms are cast to it, and may
be given as numpy arrays), and is differentiable in the point coordinates and depth values.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor

from ppkt.utils.compiled import use_compiled
from ppkt.utils.indexing import nonzero_rows_cols

_DEFAULT_DTYPE = torch.float32


class PinholeCamera(Protocol):
    """What geometry needs of a calibrated camera looking at a point cloud.

    Attributes:
        K: ``(3, 3)`` intrinsics (numpy array or tensor) of the camera's image.
        camera_from_lidar: ``(4, 4)`` transform from the points' frame to the camera frame.
        hw: ``(H, W)`` size of the camera's image.

    A structural type, so that geometry never imports the readers: any object with these
    attributes (``ppkt.data.CameraImage`` among them) is a camera here.
    """

    K: object
    camera_from_lidar: object

    @property
    def hw(self) -> tuple[int, int]: ...


@dataclass(frozen=True)
class Camera:
    """A calibrated camera without its pixels: exactly what geometry needs (a :class:`PinholeCamera`).

    Attributes:
        K: ``(3, 3)`` intrinsics at the image size ``hw``.
        camera_from_lidar: ``(4, 4)`` transform from the points' frame to the camera frame.
        hw: ``(H, W)`` image size.
    """

    K: object
    camera_from_lidar: object
    hw: tuple[int, int]


MIN_PROJECTION_DEPTH = 1e-6
"""Metres: points closer than this to the camera plane count as on it (never projected), so that
``x / z`` and its gradient cannot overflow for any sensible ``x``."""


def as_float_tensor(value, *, like: Tensor | None = None, name: str = "tensor") -> Tensor:
    """Convert ``value`` (tensor, numpy array, nested sequence) to a floating tensor.

    With ``like`` the result takes its dtype and device; otherwise a floating tensor keeps its
    dtype and anything else becomes float32.
    """
    if like is not None:
        out = torch.as_tensor(value, device=like.device)
        if not out.is_floating_point() and not like.is_floating_point():
            raise TypeError(f"{name}: expected floating point values, got {out.dtype}")
        return out.to(like.dtype if like.is_floating_point() else out.dtype)
    out = torch.as_tensor(value)
    if not out.is_floating_point():
        out = out.to(_DEFAULT_DTYPE)
    return out


def _intrinsics(K, like: Tensor) -> Tensor:
    """``(..., 3, 3)`` intrinsics in ``like``'s dtype/device; a 4x4 (ScanNet files) is cut to 3x3."""
    K = as_float_tensor(K, like=like, name="K")
    if K.shape[-2:] == (4, 4):
        K = K[..., :3, :3]
    if K.shape[-2:] != (3, 3):
        raise ValueError(f"K must have shape (..., 3, 3) or (..., 4, 4), got {tuple(K.shape)}")
    return K


def _check_points(points: Tensor, name: str = "points") -> None:
    if not isinstance(points, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(points).__name__}")
    if points.ndim < 2 or points.shape[-1] != 3:
        raise ValueError(f"{name} must have shape (..., N, 3), got {tuple(points.shape)}")
    if not points.is_floating_point():
        raise TypeError(f"{name} must be floating point, got {points.dtype}")


def _check_hw(image_hw: Sequence[int], name: str = "image_hw") -> tuple[int, int]:
    if len(image_hw) != 2:
        raise ValueError(f"{name} must be (H, W), got {image_hw!r}")
    H, W = int(image_hw[0]), int(image_hw[1])
    if H <= 0 or W <= 0:
        raise ValueError(f"{name} must be positive, got {(H, W)}")
    return H, W


def depth_range(min_depth: float, max_depth: float, dtype: torch.dtype) -> tuple[float, float, bool]:
    """The valid depth range as a depth image of ``dtype`` compares it: ``(min, max,
    max_inclusive)``, both bounds rounded to ``dtype`` (torch compares a tensor with a Python
    number in the tensor's dtype: 0.1 keeps a float32 depth of 0.1). A ``max_depth`` beyond the
    dtype's range rounds to infinity; infinity is never a depth, so the comparison with an
    infinite bound is strict. Every path (torch, numba) takes its bounds from here."""
    if not min_depth >= 0:
        raise ValueError(f"min_depth must be >= 0, got {min_depth}")
    low = torch.tensor(min_depth, dtype=torch.float64).to(dtype).item()
    high = torch.tensor(max_depth, dtype=torch.float64).to(dtype).item()
    return low, high, high != float("inf")


def valid_depth_mask(depth: Tensor, *, min_depth: float = 0.0, max_depth: float = float("inf")) -> Tensor:
    """``(H, W)`` bool: finite depth with ``min_depth < depth <= max_depth`` (``min_depth >= 0``).

    0 (the sensor's "no reading"), negative, NaN and infinite values are always invalid.
    """
    low, high, inclusive = depth_range(min_depth, max_depth, depth.dtype)
    # NaN fails every comparison and -inf fails "> min_depth", so two comparisons suffice.
    return (depth > low) & ((depth <= high) if inclusive else (depth < high))


def unproject_depth(
    depth: Tensor,
    K,
    *,
    min_depth: float = 0.0,
    max_depth: float = float("inf"),
) -> tuple[Tensor, Tensor]:
    """Back-project every valid pixel of a depth map to a camera-frame point.

    Pixel ``ij = (i, j)`` with depth ``z`` (its centre is ``uv = (j, i)``) gives
    ``x = (j - cx) * z / fx``, ``y = (i - cy) * z / fy`` (with a skew ``s``:
    ``x = (j - cx - s * (i - cy) / fy) * z / fx``).

    Args:
        depth: ``(H, W)`` float depth in metres (camera-frame z).
        K: ``(3, 3)`` (or ``(4, 4)``) intrinsics of the depth image.
        min_depth: pixels with ``depth <= min_depth`` are dropped (0 = no reading).
        max_depth: pixels with ``depth > max_depth`` are dropped. NaN/inf are always dropped.

    Returns:
        points_cam: ``(N, 3)`` points in the camera frame, dtype of ``depth``; differentiable
            w.r.t. ``depth``.
        ij: ``(N, 2)`` long ``(row, col)`` of the source pixels, in row-major order.
    """
    _check_depth(depth)
    valid = valid_depth_mask(depth, min_depth=min_depth, max_depth=max_depth)
    return unproject_pixels(depth, K, valid)


def _check_depth(depth: Tensor) -> None:
    if not isinstance(depth, Tensor) or depth.ndim != 2:
        raise ValueError(f"depth must be a (H, W) tensor, got {getattr(depth, 'shape', type(depth))}")
    if not depth.is_floating_point():
        raise TypeError(f"depth must be floating point metres, got {depth.dtype}")


def unproject_pixels(depth: Tensor, K, mask: Tensor) -> tuple[Tensor, Tensor]:
    """:func:`unproject_depth` of the pixels where the ``(H, W)`` bool ``mask`` is set (no
    validity test: the caller's mask decides). Returns ``(points (N, 3), ij (N, 2))``, row-major."""
    _check_depth(depth)
    K = _intrinsics(K, depth)
    if K.ndim != 2:
        raise ValueError(f"unproject_depth takes one (3, 3) K, got {tuple(K.shape)}")
    points, i, j = _unproject_rows_cols(depth, K, mask)
    return points, torch.stack((i, j), dim=1)


def _unproject_rows_cols(depth: Tensor, K: Tensor, mask: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """:func:`unproject_pixels` with the pixels as ``(N,)`` rows and columns (no ``(N, 2)`` copy).
    ``depth`` is checked by the caller."""
    H, W = depth.shape
    if tuple(mask.shape) != (H, W):
        raise ValueError(f"mask must have the depth's shape {(H, W)}, got {tuple(mask.shape)}")
    if mask.dtype != torch.bool:
        mask = mask != 0  # any nonzero value selects its pixel, as torch.nonzero reads it
    flat, i, j = nonzero_rows_cols(mask)  # row-major, as the pairs' order promises
    # index_select on the flat map is several times faster than boolean-mask indexing on CPU.
    z = depth.reshape(-1).index_select(0, flat)
    fx, skew = K[0, 0], K[0, 1]
    ray_x, ray_y = pixel_rays(K, (H, W), depth.dtype)
    ry = ray_y.index_select(0, i)
    rx = ray_x.index_select(0, j)
    if K.requires_grad or float(skew) != 0.0:  # 0 for every dataset we know; kept for general K
        rx = rx - skew * ry / fx
    if torch.is_grad_enabled() and (z.requires_grad or rx.requires_grad or ry.requires_grad):
        points = torch.stack((rx * z, ry * z, z), dim=-1)
    else:  # out= writes skip the (N, 3) stack copy; they cannot be differentiated
        points = torch.empty((z.shape[0], 3), dtype=z.dtype, device=z.device)
        torch.mul(rx, z, out=points[:, 0])
        torch.mul(ry, z, out=points[:, 1])
        points[:, 2] = z
    return points, i, j


def pixel_rays(K: Tensor, image_hw: tuple[int, int], dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """Per-column and per-row ray factors of an unskewed camera: ``(ray_x (W,), ray_y (H,))``
    with ``ray_x[j] = (j - cx) / fx`` and ``ray_y[i] = (i - cy) / fy``, so that pixel ``(i, j)``
    at depth ``z`` is ``(ray_x[j] z, ray_y[i] z, z)``: 2 small vectors instead of an (H, W) grid.
    ``K`` is a ``(3, 3)`` tensor (its dtype and device are used)."""
    H, W = image_hw
    ray_y = (torch.arange(H, device=K.device, dtype=dtype) - K[1, 2]) / K[1, 1]
    ray_x = (torch.arange(W, device=K.device, dtype=dtype) - K[0, 2]) / K[0, 0]
    return ray_x, ray_y


def transform_points(a_from_b, points_b: Tensor) -> Tensor:
    """Apply a rigid (or any affine) ``(..., 4, 4)`` transform to ``(..., N, 3)`` points.

    ``p_a = R p_b + t`` with ``a_from_b = [[R, t], [0, 1]]``; leading dimensions broadcast
    (``(B, 4, 4)`` with ``(B, N, 3)``). The transform is cast to the points' dtype and device.

    Returns:
        ``(..., N, 3)`` points in frame ``a``.
    """
    _check_points(points_b, "points_b")
    T = as_float_tensor(a_from_b, like=points_b, name="a_from_b")
    if T.shape[-2:] != (4, 4):
        raise ValueError(f"a_from_b must have shape (..., 4, 4), got {tuple(T.shape)}")
    R = T[..., :3, :3]
    t = T[..., :3, 3]
    return points_b @ R.transpose(-1, -2) + t.unsqueeze(-2)


def project_points(points_cam: Tensor, K, image_hw: Sequence[int]) -> tuple[Tensor, Tensor, Tensor]:
    """Project camera-frame points to pixel coordinates.

    ``u = fx * x / z + s * y / z + cx``, ``v = fy * y / z + cy``; pixel centres at integer ``uv``,
    so a point is in the image when ``-0.5 <= u < W - 0.5`` and ``-0.5 <= v < H - 0.5``.

    Points with ``z <= MIN_PROJECTION_DEPTH`` (1 micrometre: behind or on the camera plane) are
    never ``in_image``; their ``uv`` is computed with ``z`` replaced by 1 so that it and its
    gradient stay finite (it means nothing: always use the mask).

    Args:
        points_cam: ``(..., N, 3)`` points in the camera frame.
        K: ``(3, 3)`` or ``(..., 3, 3)`` intrinsics (``(4, 4)`` accepted and cut).
        image_hw: ``(H, W)`` of the image ``K`` belongs to.

    Returns:
        uv: ``(..., N, 2)`` pixel coordinates (column, row).
        depth: ``(..., N)`` camera-frame z.
        in_image: ``(..., N)`` bool, in front of the camera and inside the image.
    """
    _check_points(points_cam, "points_cam")
    H, W = _check_hw(image_hw)
    K = _intrinsics(K, points_cam)
    z = points_cam[..., 2]
    in_front = z > MIN_PROJECTION_DEPTH
    z_safe = torch.where(in_front, z, torch.ones_like(z))
    xn = points_cam[..., 0] / z_safe
    yn = points_cam[..., 1] / z_safe
    fx, fy = K[..., 0, 0, None], K[..., 1, 1, None]
    cx, cy, skew = K[..., 0, 2, None], K[..., 1, 2, None], K[..., 0, 1, None]
    u = fx * xn + skew * yn + cx
    v = fy * yn + cy
    uv = torch.stack((u, v), dim=-1)
    in_image = in_front & (u >= -0.5) & (u < W - 0.5) & (v >= -0.5) & (v < H - 0.5)
    return uv, z, in_image


def uv_to_ij(uv: Tensor) -> Tensor:
    """``(..., 2)`` float ``uv`` -> ``(..., 2)`` long ``ij = (floor(v + 0.5), floor(u + 0.5))``.

    The pixel whose square contains the point (pixel centres at integer ``uv``). Only meaningful
    for finite ``uv``; bounds are not checked.
    """
    return torch.floor(uv.flip(-1) + 0.5).long()


def sample_nearest(image: Tensor, uv: Tensor) -> Tensor:
    """Values of the pixels that contain ``uv`` (nearest pixel, centres at integer ``uv``).

    Args:
        image: ``(H, W)`` or ``(H, W, C)`` tensor of any dtype (e.g. a reader's uint8 RGB).
        uv: ``(N, 2)`` float pixel coordinates inside the image.

    Returns:
        ``(N,)`` or ``(N, C)`` values, dtype of ``image``.

    Raises:
        IndexError: when a ``uv`` lies outside the image.
    """
    if image.ndim not in (2, 3):
        raise ValueError(f"image must be (H, W) or (H, W, C), got {tuple(image.shape)}")
    H, W = image.shape[:2]
    if use_compiled() and _compiled_sample_ok(image, uv):
        return _sample_nearest_compiled(image, uv)
    # One flat index_select: advanced indexing image[i, j] on an (H, W, 3) uint8 image is ~20x slower.
    index_dtype = torch.int32 if H * W < 2**31 else torch.long
    cell = torch.floor(uv + 0.5).to(index_dtype)
    if uv.shape[0]:
        (u_lo, v_lo), (u_hi, v_hi) = cell.aminmax(dim=0)
        if not (u_lo >= 0 and v_lo >= 0 and u_hi < W and v_hi < H):
            raise _outside_image(H, W)
    u, v = cell[:, 0], cell[:, 1]
    flat = image.reshape(H * W, -1) if image.ndim == 3 else image.reshape(H * W)
    return flat.index_select(0, v * W + u)


def _outside_image(H: int, W: int) -> IndexError:
    """The one error of both :func:`sample_nearest` paths for a ``uv`` outside the image."""
    return IndexError(f"sample_nearest: uv outside the {H}x{W} image")


# Image dtypes the numba loop reads (numpy has them); any other goes through torch.
_NUMBA_IMAGE_DTYPES = (
    torch.uint8,
    torch.int8,
    torch.int16,
    torch.int32,
    torch.int64,
    torch.float32,
    torch.float64,
)


def _compiled_sample_ok(image: Tensor, uv: Tensor) -> bool:
    """Whether :func:`sample_nearest` can take the numba loop: CPU, no gradient to keep, numpy
    dtypes (not bfloat16), at least one point."""
    return (
        image.device.type == "cpu"
        and uv.device.type == "cpu"
        and uv.dtype in (torch.float32, torch.float64)
        and image.dtype in _NUMBA_IMAGE_DTYPES
        and not (torch.is_grad_enabled() and image.requires_grad)
        and image.shape[0] * image.shape[1] > 0
        and uv.ndim == 2
        and uv.shape[1] == 2
        and uv.shape[0] > 0
    )


def _sample_nearest_compiled(image: Tensor, uv: Tensor) -> Tensor:
    from ppkt.geometry import _kernels  # local: imports numba, only when a compiled path runs

    H, W = image.shape[:2]
    flat = image.detach().contiguous().reshape(H * W, -1).numpy()
    coords = uv.detach().contiguous().numpy()
    values, inside = _kernels.nearest_pixels(flat, coords, coords.dtype.type(0.5), H, W)
    if not inside:
        raise _outside_image(H, W)
    out = torch.from_numpy(values)
    return out if image.ndim == 3 else out.reshape(-1)


def uv_to_feature_ij(uv: Tensor, stride: int, feature_hw: Sequence[int] | None = None) -> Tensor:
    """Feature-map cell ``(row, col)`` of a stride-``stride`` map that contains pixel ``uv``.

    Cell ``k`` covers image pixels ``[k * stride, (k + 1) * stride)``, so the cell is
    ``floor(floor(uv + 0.5) / stride)`` = ``floor((uv + 0.5) / stride)`` for an integer stride.
    With ``feature_hw`` the result is clamped into the map (a map of ``floor(H / stride)`` rows
    drops the last partial cell; its pixels go to the last row).

    Returns:
        ``(..., 2)`` long ``(row, col)``.
    """
    if int(stride) != stride or stride < 1:
        raise ValueError(f"stride must be a positive integer, got {stride!r}")
    ij = torch.div(uv_to_ij(uv), int(stride), rounding_mode="floor")
    if feature_hw is not None:
        h, w = _check_hw(feature_hw, "feature_hw")
        ij = torch.stack((ij[..., 0].clamp(0, h - 1), ij[..., 1].clamp(0, w - 1)), dim=-1)
    return ij


def normalized_grid_coords(uv: Tensor, image_hw: Sequence[int]) -> Tensor:
    """Pixel ``uv`` -> ``grid`` coordinates for ``F.grid_sample(..., align_corners=False)``.

    ``x = (2u + 1) / W - 1``, ``y = (2v + 1) / H - 1`` with ``(H, W)`` the *image* size, so a
    feature map of any stride covering the image is sampled at the right place: pixel centre
    ``u = j`` of a stride-``s`` map lands at feature coordinate ``(j + 0.5) / s - 0.5``.

    Returns:
        ``(..., 2)`` (x, y) in ``[-1, 1]`` for points inside the image.
    """
    H, W = _check_hw(image_hw)
    scale = uv.new_tensor([2.0 / W, 2.0 / H])
    return (uv + 0.5) * scale - 1.0


def scale_intrinsics(K, from_hw: Sequence[int], to_hw: Sequence[int]) -> Tensor:
    """Intrinsics of an image resized from ``from_hw`` to ``to_hw``.

    With ``sx = W' / W`` and ``sy = H' / H`` a pixel moves as ``u' = (u + 0.5) * sx - 0.5``, so
    ``fx' = fx * sx``, ``cx' = (cx + 0.5) * sx - 0.5`` (likewise ``fy``, ``cy``; skew scales with
    ``sx``). Accepts ``(..., 3, 3)`` (returned as 3x3; a ``(4, 4)`` input is cut).

    Returns:
        ``(..., 3, 3)`` intrinsics, float (same dtype as a floating input tensor, else float64).
    """
    H, W = _check_hw(from_hw, "from_hw")
    H2, W2 = _check_hw(to_hw, "to_hw")
    K_t = torch.as_tensor(K)
    if not K_t.is_floating_point():
        K_t = K_t.double()
    K_t = _intrinsics(K_t, K_t)
    sx, sy = W2 / W, H2 / H
    out = K_t.clone()
    out[..., 0, 0] = K_t[..., 0, 0] * sx
    out[..., 0, 1] = K_t[..., 0, 1] * sx
    out[..., 0, 2] = (K_t[..., 0, 2] + 0.5) * sx - 0.5
    out[..., 1, 1] = K_t[..., 1, 1] * sy
    out[..., 1, 2] = (K_t[..., 1, 2] + 0.5) * sy - 0.5
    return out
