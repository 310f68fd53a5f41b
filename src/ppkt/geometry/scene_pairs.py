"""Scene-level pairs: a reconstructed scene cloud paired with the pixels of many posed frames.

PPKT pairs each frame's own depth points with its own image, so the 3D network only ever sees
single-view fragments, while fine-tuning sees whole reconstructed scenes. OpenScene (Peng et al.,
CVPR 2023) instead projects the scene's point cloud into every posed frame and keeps, per frame,
the points that the frame's depth map confirms are visible (occlusion test against the measured
depth); Concerto and DITR pair whole scenes with views the same way. Here the test is
:func:`ppkt.geometry.visibility.visible_in_depth`; its tolerance defaults to
:data:`SCENE_DEPTH_ABS_TOL` + :data:`SCENE_DEPTH_REL_TOL` of the depth.

Frames: points in the world frame of the scene (ScanNet's ``_vh_clean_2.ply``);
``world_from_camera`` the depth camera's pose; colour camera = ``color_from_depth`` applied to
the depth camera frame (docs/conventions.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from ppkt.geometry.camera import _check_hw, project_points, transform_points
from ppkt.geometry.pairs import Pairs
from ppkt.geometry.visibility import visible_in_depth

SCENE_DEPTH_ABS_TOL = 0.05
"""Metres (CLIP2Scene's tolerance, :data:`ppkt.geometry.CLIP2SCENE_ABS_TOL`)."""
SCENE_DEPTH_REL_TOL = 0.02
"""Fraction of the depth: reconstructed vertices and per-pixel depth disagree by more at grazing
angles and at range (OpenScene allows 25 %, which lets points well behind thin occluders through)."""


@dataclass(frozen=True)
class PosedView:
    """One posed RGB-D view used to pair a scene cloud.

    Attributes:
        depth: ``(h, w)`` float depth in metres (0 / non-finite = no reading).
        K_depth: ``(3, 3)`` intrinsics of ``depth``.
        K_color: ``(3, 3)`` intrinsics of the colour image at ``image_hw`` (the pairs' pixels).
        world_from_camera: ``(4, 4)`` pose of the depth camera.
        color_from_depth: ``(4, 4)`` depth camera frame -> colour camera frame.
    """

    depth: Tensor
    K_depth: Tensor
    K_color: Tensor
    world_from_camera: Tensor
    color_from_depth: Tensor


def scene_view_pairs(
    points_world: Tensor,
    views: Sequence[PosedView],
    image_hw: Sequence[int],
    *,
    abs_tol: float = SCENE_DEPTH_ABS_TOL,
    rel_tol: float = SCENE_DEPTH_REL_TOL,
) -> Pairs:
    """Pairs between ``points_world (N, 3)`` and the pixels of every view where they are visible.

    A point is paired with view ``k`` when it passes the depth test in view ``k``'s depth map and
    projects inside its colour image (``image_hw``); it is paired once per view that sees it.
    Points seen by no view stay in the cloud unpaired. Returns :class:`Pairs` over the world-frame
    points, ``image_index`` = the view, pairs grouped by view and in point order within a view.
    """
    if points_world.ndim != 2 or points_world.shape[1] != 3:
        raise ValueError(f"scene_view_pairs: points_world must be (N, 3), got {tuple(points_world.shape)}")
    H, W = _check_hw(image_hw)
    points = points_world.detach().to(torch.float64)
    point_index, image_index, uvs = [], [], []
    for k, view in enumerate(views):
        world_from_camera = torch.as_tensor(view.world_from_camera, dtype=torch.float64)
        depth_from_world = torch.linalg.inv(world_from_camera)
        in_depth_cam = transform_points(depth_from_world, points)
        seen = visible_in_depth(
            in_depth_cam, torch.as_tensor(view.K_depth, dtype=torch.float64), torch.as_tensor(view.depth),
            abs_tol=abs_tol, rel_tol=rel_tol,
        )  # fmt: skip
        in_color_cam = transform_points(
            torch.as_tensor(view.color_from_depth, dtype=torch.float64), in_depth_cam
        )
        uv, _, in_image = project_points(
            in_color_cam, torch.as_tensor(view.K_color, dtype=torch.float64), (H, W)
        )
        index = torch.nonzero(seen & in_image).squeeze(1)
        point_index.append(index)
        image_index.append(torch.full_like(index, k))
        uvs.append(uv[index].float())
    if not views:
        empty = torch.zeros(0, dtype=torch.long)
        return Pairs(points_world.float(), empty, empty.clone(), torch.zeros(0, 2), ())
    return Pairs(
        points_world.float(),
        torch.cat(point_index),
        torch.cat(image_index),
        torch.cat(uvs),
        tuple((H, W) for _ in views),
    )
