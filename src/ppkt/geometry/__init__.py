"""Camera geometry and pixel-to-point correspondences (pure PyTorch, any device, float32/float64).

Convention (docs/conventions.md): OpenCV camera frame, depth = camera z in metres, ``a_from_b``
4x4 transforms, ``(H, W)`` sizes, ``uv`` = (column, row) floats with **pixel centres at integer
uv**, ``ij`` = (row, column) longs. See docs/geometry.md.
"""

from ppkt.geometry.camera import (
    Camera,
    normalized_grid_coords,
    project_points,
    sample_nearest,
    scale_intrinsics,
    transform_points,
    unproject_depth,
    unproject_pixels,
    uv_to_feature_ij,
    uv_to_ij,
    valid_depth_mask,
)
from ppkt.geometry.pairs import Pairs, lidar_camera_pairs, rgbd_pairs
from ppkt.geometry.visibility import CLIP2SCENE_ABS_TOL, OPENSCENE_REL_TOL, visible_in_depth, zbuffer_visible
from ppkt.geometry.voxel import voxelize

__all__ = [
    "Camera",
    "CLIP2SCENE_ABS_TOL",
    "OPENSCENE_REL_TOL",
    "Pairs",
    "lidar_camera_pairs",
    "normalized_grid_coords",
    "project_points",
    "rgbd_pairs",
    "sample_nearest",
    "scale_intrinsics",
    "transform_points",
    "unproject_depth",
    "unproject_pixels",
    "uv_to_feature_ij",
    "uv_to_ij",
    "valid_depth_mask",
    "visible_in_depth",
    "voxelize",
    "zbuffer_visible",
]
