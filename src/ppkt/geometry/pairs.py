"""Pixel-to-point pairs of one frame: which 3D point is seen at which pixel of which image.

Convention: ``uv`` = (column, row) floats with pixel centres at integer ``uv``
(docs/conventions.md); points are in the sensor frame (the depth camera for RGB-D, the lidar
for lidar + cameras). Pairs feed the teacher side (features sampled at ``uv``) and the 3D side
(features of ``points[point_index]``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from ppkt.geometry.camera import (
    PinholeCamera,
    _check_depth,
    _check_hw,
    _intrinsics,
    _unproject_rows_cols,
    as_float_tensor,
    depth_range,
    normalized_grid_coords,
    pixel_rays,
    project_points,
    transform_points,
    unproject_pixels,
    uv_to_feature_ij,
    uv_to_ij,
    valid_depth_mask,
)
from ppkt.geometry.visibility import zbuffer_visible
from ppkt.utils.compiled import use_compiled


@dataclass
class Pairs:
    """Pixel-point pairs of one frame (``P`` pairs over ``N`` points and ``len(image_hw)`` images).

    Attributes:
        points: ``(N, 3)`` float32 points in the sensor frame (depth camera / lidar).
        point_index: ``(P,)`` long, index into ``points``.
        image_index: ``(P,)`` long, index of the image the pixel belongs to. Builders of
            one-image pairs return a stride-0 view of one zero (no ``P``-long write per
            frame): read it, never write into it.
        uv: ``(P, 2)`` float32 (column, row) pixel coordinates in image ``image_index``, pixel
            centres at integer ``uv``; always inside that image.
        image_hw: ``(H, W)`` of every image, indexed by ``image_index`` (empty = unknown, then
            ``image_index`` and ``uv`` are not range-checked).
    """

    points: Tensor
    point_index: Tensor
    image_index: Tensor
    uv: Tensor
    image_hw: tuple[tuple[int, int], ...] = ()

    def __post_init__(self) -> None:
        p, pi, ii, uv = self.points, self.point_index, self.image_index, self.uv
        for name, t in (("points", p), ("point_index", pi), ("image_index", ii), ("uv", uv)):
            if not isinstance(t, Tensor):
                raise TypeError(f"Pairs.{name} must be a torch.Tensor, got {type(t).__name__}")
        if p.ndim != 2 or p.shape[1] != 3 or not p.is_floating_point():
            raise ValueError(f"Pairs.points must be (N, 3) float, got {tuple(p.shape)} {p.dtype}")
        if pi.ndim != 1 or pi.dtype != torch.long:
            raise ValueError(f"Pairs.point_index must be (P,) long, got {tuple(pi.shape)} {pi.dtype}")
        P = pi.shape[0]
        if ii.shape != (P,) or ii.dtype != torch.long:
            raise ValueError(f"Pairs.image_index must be ({P},) long, got {tuple(ii.shape)} {ii.dtype}")
        if uv.shape != (P, 2) or not uv.is_floating_point():
            raise ValueError(f"Pairs.uv must be ({P}, 2) float, got {tuple(uv.shape)} {uv.dtype}")
        devices = {t.device for t in (p, pi, ii, uv)}
        if len(devices) != 1:
            raise ValueError(f"Pairs tensors are on different devices: {sorted(map(str, devices))}")
        self.image_hw = tuple(_check_hw(hw, "Pairs.image_hw entry") for hw in self.image_hw)
        if P == 0:
            return
        # min/max reductions instead of per-pair masks: validation stays a small part of building pairs.
        lo, hi = pi.aminmax()
        if int(lo) < 0 or int(hi) >= p.shape[0]:
            raise ValueError(f"Pairs.point_index out of range [0, {p.shape[0]})")
        lo, hi = ii.aminmax()
        if int(lo) < 0:
            raise ValueError("Pairs.image_index has negative entries")
        if not self.image_hw:
            return
        if int(hi) >= len(self.image_hw):
            raise ValueError(f"Pairs.image_index out of range [0, {len(self.image_hw)})")
        groups = (
            [(self.image_hw[0], uv)]
            if len(self.image_hw) == 1
            else [(hw, uv[ii == k]) for k, hw in enumerate(self.image_hw)]
        )
        for (H, W), uv_k in groups:
            if uv_k.shape[0] == 0:
                continue
            (u_lo, v_lo), (u_hi, v_hi) = uv_k.aminmax(dim=0)
            if not (u_lo >= -0.5 and v_lo >= -0.5 and u_hi < W - 0.5 and v_hi < H - 0.5):
                raise ValueError(f"Pairs.uv has pixels outside their image of size {(H, W)} (or NaN)")

    @classmethod
    def _trusted(cls, points, point_index, image_index, uv, image_hw) -> Pairs:
        """Build without the checks, for this module's builders whose outputs are correct by
        construction (tests re-validate them): the checks add several passes over every pair."""
        pairs = cls.__new__(cls)
        pairs.points, pairs.point_index, pairs.image_index, pairs.uv = points, point_index, image_index, uv
        pairs.image_hw = tuple((int(h), int(w)) for h, w in image_hw)
        return pairs

    def __len__(self) -> int:
        """Number of pairs ``P``."""
        return int(self.point_index.shape[0])

    @property
    def num_points(self) -> int:
        return int(self.points.shape[0])

    @property
    def device(self) -> torch.device:
        return self.points.device

    def to(self, device) -> Pairs:
        """A copy on ``device``."""
        return Pairs(
            self.points.to(device),
            self.point_index.to(device),
            self.image_index.to(device),
            self.uv.to(device),
            self.image_hw,
        )

    def select(self, mask: Tensor) -> Pairs:
        """The pairs where ``mask`` (``(P,)`` bool, or long indices) is set; the points are kept."""
        if mask.dtype == torch.bool and mask.shape != (len(self),):
            raise ValueError(f"Pairs.select: bool mask must be ({len(self)},), got {tuple(mask.shape)}")
        pi, ii, uv = self.point_index[mask], self.image_index[mask], self.uv[mask]
        return Pairs(self.points, pi, ii, uv, self.image_hw)

    def pixel_ij(self) -> Tensor:
        """``(P, 2)`` long (row, col) of the pixel each pair lands in."""
        return uv_to_ij(self.uv)

    def feature_ij(self, stride: int, feature_hw: Sequence[int] | None = None) -> Tensor:
        """``(P, 2)`` long (row, col) of the stride-``stride`` feature cell containing each pixel."""
        return uv_to_feature_ij(self.uv, stride, feature_hw)

    def grid_coords(self) -> Tensor:
        """``(P, 2)`` ``grid_sample(align_corners=False)`` coordinates of each pair in its image."""
        if not self.image_hw:
            raise ValueError("Pairs.grid_coords needs image_hw")
        if len(set(self.image_hw)) == 1:
            return normalized_grid_coords(self.uv, self.image_hw[0])
        hw = torch.tensor(self.image_hw, dtype=self.uv.dtype, device=self.uv.device)[self.image_index]
        return (2 * self.uv + 1) / hw.flip(-1) - 1


def _inside_after_cast(uv: Tensor, image_hw: tuple[int, int]) -> Tensor:
    """Still inside the image once rounded to float32 (a float64 ``u`` just below ``W - 0.5`` may
    round up onto the border)."""
    uv32 = uv.float()
    H, W = image_hw
    return (uv32[:, 0] >= -0.5) & (uv32[:, 0] < W - 0.5) & (uv32[:, 1] >= -0.5) & (uv32[:, 1] < H - 0.5)


def rgbd_pairs(
    depth: Tensor,
    K_depth,
    K_color,
    color_hw: Sequence[int],
    *,
    color_from_depth=None,
    min_depth: float = 0.0,
    max_depth: float = float("inf"),
) -> Pairs:
    """Pairs of one RGB-D frame whose colour and depth images may differ in size and intrinsics.

    Every valid depth pixel (see :func:`unproject_depth`) gives a point in the depth camera frame;
    it is moved to the colour camera (``color_from_depth``, identity when None, as for ScanNet's
    registered exports) and projected with ``K_color``. Points landing outside the colour image
    are dropped from ``points`` (they would have no colour); every kept point has exactly one pair.

    Args:
        depth: ``(h, w)`` depth in metres.
        K_depth: ``(3, 3)`` intrinsics of the depth image.
        K_color: ``(3, 3)`` intrinsics of the colour image.
        color_hw: ``(H, W)`` of the colour image.
        color_from_depth: optional ``(4, 4)`` transform from the depth to the colour camera.
        min_depth, max_depth: valid depth range (exclusive / inclusive), metres.

    Returns:
        :class:`Pairs` with ``point_index = arange(N)``, ``image_index = 0``, points in row-major
        order of their depth pixels, ``image_hw = (color_hw,)``.
    """
    color_hw = _check_hw(color_hw, "color_hw")
    with torch.no_grad():
        depth = as_float_tensor(depth)
        _check_depth(depth)
        K_d, K_c = _intrinsics(K_depth, depth), _intrinsics(K_color, depth)
        if color_from_depth is not None:
            color_from_depth = as_float_tensor(color_from_depth, like=depth, name="color_from_depth")
            if torch.equal(color_from_depth, torch.eye(4, dtype=depth.dtype, device=depth.device)):
                color_from_depth = None  # registered exports (ScanNet) pass an explicit identity
        if color_from_depth is None and float(K_d[0, 1]) == 0.0 and float(K_c[0, 1]) == 0.0:
            points, uv = _registered_rgbd_pairs(depth, K_d, K_c, color_hw, min_depth, max_depth)
        else:
            valid = valid_depth_mask(depth, min_depth=min_depth, max_depth=max_depth)
            points, _ = unproject_pixels(depth, K_d, valid)
            in_color = points if color_from_depth is None else transform_points(color_from_depth, points)
            uv, _, in_image = project_points(in_color, K_c, color_hw)
            keep = in_image & _inside_after_cast(uv, color_hw)
            points, uv = points[keep], uv[keep]
        points, uv = points.float(), uv.float()
        index = torch.arange(points.shape[0], device=points.device)
        # Every pair is in the one colour image: a stride-0 view instead of P zeros to write
        # (the frame's largest allocation after the points; bench_geometry.py measures it).
        one_image = torch.zeros(1, dtype=torch.long, device=index.device).expand(index.shape[0])
        return Pairs._trusted(points, index, one_image, uv, (color_hw,))


def _registered_rgbd_pairs(
    depth: Tensor, K_d: Tensor, K_c: Tensor, color_hw: tuple[int, int], min_depth: float, max_depth: float
) -> tuple[Tensor, Tensor]:
    """Same colour and depth camera centre and axes (no skew): a depth pixel's colour ``uv`` does
    not depend on its depth, and is separable: ``u_c`` depends on the column only, ``v_c`` on the
    row only. So the colour-image test and the ``uv`` are per-column / per-row lookups, and one
    ``nonzero`` over the combined mask does all the selection (about 3x faster than projecting).
    On the CPU with numba, one compiled loop does the selection and the products (the same ones,
    so the same bits: ``ppkt.utils.compiled``)."""
    H, W = depth.shape
    Hc, Wc = color_hw
    cols = torch.arange(W, device=depth.device, dtype=depth.dtype)
    rows = torch.arange(H, device=depth.device, dtype=depth.dtype)
    u_col = (K_c[0, 0] * ((cols - K_d[0, 2]) / K_d[0, 0]) + K_c[0, 2]).float()
    v_row = (K_c[1, 1] * ((rows - K_d[1, 2]) / K_d[1, 1]) + K_c[1, 2]).float()
    col_ok = (u_col >= -0.5) & (u_col < Wc - 0.5)
    row_ok = (v_row >= -0.5) & (v_row < Hc - 0.5)
    if use_compiled() and depth.device.type == "cpu" and depth.dtype in (torch.float32, torch.float64):
        return _registered_rgbd_pairs_compiled(depth, K_d, min_depth, max_depth, row_ok, col_ok, u_col, v_row)
    valid = valid_depth_mask(depth, min_depth=min_depth, max_depth=max_depth)
    keep = valid & row_ok[:, None] & col_ok[None, :]
    points, i, j = _unproject_rows_cols(depth, K_d, keep)
    uv = torch.empty((i.shape[0], 2), dtype=torch.float32, device=depth.device)
    torch.index_select(u_col, 0, j, out=uv[:, 0])
    torch.index_select(v_row, 0, i, out=uv[:, 1])
    return points, uv


def _registered_rgbd_pairs_compiled(
    depth: Tensor,
    K_d: Tensor,
    min_depth: float,
    max_depth: float,
    row_ok: Tensor,
    col_ok: Tensor,
    u_col: Tensor,
    v_row: Tensor,
) -> tuple[Tensor, Tensor]:
    from ppkt.geometry import _kernels  # local: imports numba, only when a compiled path runs

    ray_x, ray_y = pixel_rays(K_d, depth.shape, depth.dtype)
    low, high, inclusive = depth_range(min_depth, max_depth, depth.dtype)
    array = depth.contiguous().numpy()
    scalar = array.dtype.type  # exact: the bounds are already values of depth's dtype
    points, uv = _kernels.registered_pairs(
        array,
        scalar(low),
        scalar(high),
        inclusive,
        row_ok.numpy(),
        col_ok.numpy(),
        ray_x.numpy(),
        ray_y.numpy(),
        u_col.numpy(),
        v_row.numpy(),
    )
    return torch.from_numpy(points), torch.from_numpy(uv)


def lidar_camera_pairs(
    points,
    cameras: Sequence[PinholeCamera],
    *,
    min_depth: float = 1.0,
    occlusion: bool = True,
    radius_px: int = 0,
    depth_tol: float = 0.1,
) -> Pairs:
    """Pairs of a lidar sweep with its calibrated cameras.

    Each point gives one pair per camera in whose image it lands with camera depth
    ``> min_depth`` (SLidR uses 1 m, which also drops points on the ego vehicle). With
    ``occlusion`` only the points that pass :func:`zbuffer_visible` (``radius_px``,
    ``depth_tol``) in that camera are paired, so background points seen "through" a foreground
    object are not matched to its pixels.

    Args:
        points: ``(N, 3)`` lidar-frame points (tensor or numpy array).
        cameras: :class:`~ppkt.geometry.camera.PinholeCamera` objects (``K``, ``camera_from_lidar``,
            ``hw``), e.g. a lidar sample's ``CameraImage`` list.

    Returns:
        :class:`Pairs` over all ``N`` points (points without a pair stay in ``points``), pairs
        grouped by camera and within a camera in point order, ``image_hw`` = the cameras' sizes.
    """
    with torch.no_grad():
        points = as_float_tensor(points)
        if points.ndim != 2 or points.shape[-1] != 3:
            raise ValueError(f"points must be (N, 3), got {tuple(points.shape)}")
        device = points.device
        point_index, image_index, uvs = [], [], []
        for c, cam in enumerate(cameras):
            cam_points = transform_points(cam.camera_from_lidar, points)
            uv, z, in_image = project_points(cam_points, cam.K, cam.hw)
            keep = in_image & (z > min_depth) & _inside_after_cast(uv, cam.hw)
            idx = torch.nonzero(keep).squeeze(1)
            if occlusion and idx.numel() > 0:
                visible = zbuffer_visible(
                    cam_points[idx], cam.K, cam.hw, radius_px=radius_px, depth_tol=depth_tol
                )
                idx = idx[visible]
            point_index.append(idx)
            image_index.append(torch.full_like(idx, c))
            uvs.append(uv[idx].float())
        if point_index:
            pi, ii, uv = torch.cat(point_index), torch.cat(image_index), torch.cat(uvs)
        else:
            pi = torch.zeros(0, dtype=torch.long, device=device)
            ii, uv = pi.clone(), torch.zeros(0, 2, dtype=torch.float32, device=device)
        return Pairs(points.float(), pi, ii, uv, tuple(cam.hw for cam in cameras))
