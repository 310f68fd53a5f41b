"""Vectorised ray casting of a synthetic room, and sampling of its labelled surface cloud.

Rays use the unnormalised camera direction ``((u - cx) / fx, (v - cy) / fy, 1)``, so the ray
parameter of a hit *is* its depth (camera-frame z). Each primitive is tested only against the
rays inside the image rectangle its bounding box projects to, which keeps a frame of a furnished
room at a few tens of milliseconds on one core.

The renderer and :func:`sample_scene_cloud` share :func:`surface_attributes` and :func:`shade`, so
a surface point has the same colour in the images and in the cloud (up to the per-frame
exposure and sensor noise of the images).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ppkt.data.synthetic.layout import CEILING, FLOOR, WALL, Part, Scene
from ppkt.data.synthetic.textures import Face, albedo

NEAR = 0.05
"""Rays hit nothing closer than this (metres)."""
_ROOM_FACES = 6  # ids 0..5: floor, ceiling, walls 0..3 (y = 0, x = Lx, y = Ly, x = 0)


@dataclass
class RenderedFrame:
    """One rendered view.

    Attributes:
        color: ``(H, W, 3)`` uint8 RGB.
        depth: ``(H, W)`` float32 camera-frame z in metres, 0 where nothing was hit.
        label: ``(H, W)`` uint8 NYU40 id of the surface seen at each pixel (0 = nothing).
        cos_incidence: ``(H, W)`` float32 ``|cos|`` of the angle between ray and surface normal
            (used to drop depth at grazing angles, as structured-light sensors do).
    """

    color: np.ndarray
    depth: np.ndarray
    label: np.ndarray
    cos_incidence: np.ndarray


@dataclass
class SceneCloud:
    """Points sampled on the visible surfaces of a scene.

    Attributes:
        points: ``(N, 3)`` float32 world coordinates, metres.
        colors: ``(N, 3)`` uint8 RGB (albedo under the scene's lights).
        nyu40: ``(N,)`` uint16 NYU40 ids.
    """

    points: np.ndarray
    colors: np.ndarray
    nyu40: np.ndarray


def _rot_z(yaw: float) -> np.ndarray:
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def surface_attributes(part: Part, local: np.ndarray):
    """Face, texture coordinates and normal of points on a part's surface.

    Args:
        part: the primitive.
        local: ``(N, 3)`` points on its surface in its own frame (centred, un-yawed).

    Returns:
        ``(face (N,) Face codes, u (N,), v (N,), half_u (N,), half_v (N,), normal_local (N, 3))``.
    """
    n = len(local)
    h = part.half
    normal = np.zeros((n, 3), dtype=np.float32)
    if part.kind == "box":
        ratio = np.abs(local) / h
        axis = np.argmax(ratio, axis=1)
        sign = np.where(local[np.arange(n), axis] >= 0, 1.0, -1.0).astype(np.float32)
        normal[np.arange(n), axis] = sign
        x, y, z = local[:, 0], local[:, 1], local[:, 2]
        face = np.where(
            axis == 2,
            np.where(sign > 0, Face.TOP, Face.BOTTOM),
            np.where((axis == 1) & (sign < 0), Face.FRONT, Face.SIDE),
        )
        u = np.where(axis == 0, y, x)
        v = np.where(axis == 2, y, z)
        half_u = np.where(axis == 0, h[1], h[0])
        half_v = np.where(axis == 2, h[1], h[2])
        return face, u, v, half_u, half_v, normal
    r, hz = h[0], h[2]
    radial = np.hypot(local[:, 0], local[:, 1])
    cap = np.abs(local[:, 2]) / hz > radial / r
    sign = np.sign(local[:, 2])
    normal[cap, 2] = sign[cap]
    side = ~cap
    safe = np.maximum(radial[side], 1e-9)
    normal[side, 0] = local[side, 0] / safe
    normal[side, 1] = local[side, 1] / safe
    face = np.where(cap, np.where(sign > 0, Face.TOP, Face.BOTTOM), Face.SIDE)
    u = np.where(cap, local[:, 0], r * np.arctan2(local[:, 1], local[:, 0]))
    v = np.where(cap, local[:, 1], local[:, 2])
    half_u = np.where(cap, r, np.pi * r)
    half_v = np.where(cap, r, hz)
    return face, u, v, half_u, half_v, normal


def _room_attributes(scene: Scene, face_id: int, world: np.ndarray):
    """Material, label, ``(u, v)``, face code, extents and normal for points on a room face."""
    lx, ly, lz = scene.room.size
    x, y, z = world[:, 0], world[:, 1], world[:, 2]
    n = len(world)
    if face_id == 0:
        return scene.room.floor, FLOOR, x, y, Face.TOP, lx / 2, ly / 2, (0.0, 0.0, 1.0)
    if face_id == 1:
        return scene.room.ceiling, CEILING, x, y, Face.BOTTOM, lx / 2, ly / 2, (0.0, 0.0, -1.0)
    w = face_id - 2
    u = [x, y, lx - x, ly - y][w]
    normal = [(0.0, 1.0, 0.0), (-1.0, 0.0, 0.0), (0.0, -1.0, 0.0), (1.0, 0.0, 0.0)][w]
    del n
    return scene.room.walls[w], WALL, u, z, Face.SIDE, [lx, ly, lx, ly][w] / 2, lz / 2, normal


def shade(scene: Scene, world: np.ndarray, normal: np.ndarray) -> np.ndarray:
    """Lambertian light level ``(N, 3)`` at surface points with unit normals ``(N, 3)``."""
    diffuse = np.zeros(len(world), dtype=np.float32)
    reach2 = np.float32((scene.room.size[2] * 1.6) ** 2)
    for light in scene.lights.astype(np.float32):
        dx, dy, dz = light[0] - world[:, 0], light[1] - world[:, 1], light[2] - world[:, 2]
        dist2 = dx * dx + dy * dy + dz * dz + np.float32(1e-12)
        cos = np.maximum((dx * normal[:, 0] + dy * normal[:, 1] + dz * normal[:, 2]) / np.sqrt(dist2), 0.0)
        diffuse += cos / (1.0 + dist2 / reach2)
    diffuse *= np.float32(1.6 / max(len(scene.lights), 1) ** 0.5)
    level = scene.ambient + (1.0 - scene.ambient) * diffuse
    return level[:, None] * scene.light_color[None, :].astype(np.float32)


def surface_colors(scene: Scene, owner: np.ndarray, world: np.ndarray):
    """Lit colour, NYU40 label and normal of surface points.

    Args:
        scene: the room.
        owner: ``(N,)`` surface of each point: room face ``0..5`` or ``6 + part index``.
        world: ``(N, 3)`` float32 points on those surfaces.

    Returns:
        ``(rgb (N, 3) float32 in [0, ~1], nyu40 (N,) uint16, normal (N, 3) float32 world)``.
    """
    n = len(world)
    owners = np.flatnonzero(np.bincount(owner)) if len(owner) else np.zeros(0, dtype=np.int64)
    # Parts that share a material are textured in one call (legs, cushions, shelves...); a
    # decor depends on the part's own front face, so decorated parts are textured alone.
    materials, group_of = [], {}
    owner_group = np.zeros(int(owners.max()) + 1 if len(owners) else 1, dtype=np.int64)
    for o in owners:
        material = _room_material(scene, int(o)) if o < _ROOM_FACES else scene.parts[o - _ROOM_FACES].material
        key = material if material.decor == 0 else (material, int(o))
        if key not in group_of:
            group_of[key] = len(materials)
            materials.append(material)
        owner_group[o] = group_of[key]
    # Sorting by (group, owner) turns every per-surface gather and scatter into a slice.
    key = owner_group[owner] * (len(owner_group) + 1) + owner
    # Small integer keys sort with numpy's radix sort (stable), far faster than a comparison sort.
    order = np.argsort(key.astype(np.uint16) if key.max(initial=0) < 65536 else key, kind="stable")
    so = owner[order]
    sw = world[order]
    u = np.empty(n, dtype=np.float32)
    v = np.empty(n, dtype=np.float32)
    hu = np.empty(n, dtype=np.float32)
    hv = np.empty(n, dtype=np.float32)
    face = np.empty(n, dtype=np.int64)
    normal = np.empty((n, 3), dtype=np.float32)
    labels = np.empty(n, dtype=np.uint16)
    bounds = np.flatnonzero(np.r_[True, so[1:] != so[:-1], True])
    for s, e in zip(bounds[:-1], bounds[1:], strict=True):
        o = int(so[s])
        if o < _ROOM_FACES:
            _, lab, fu, fv, fface, fhu, fhv, fnormal = _room_attributes(scene, o, sw[s:e])
            u[s:e], v[s:e], hu[s:e], hv[s:e] = fu - fhu, fv - fhv, fhu, fhv
            face[s:e] = int(fface)
            normal[s:e] = fnormal
        else:
            part = scene.parts[o - _ROOM_FACES]
            lab = part.nyu40
            fface, fu, fv, fhu, fhv, fnormal = surface_attributes(part, _to_local(part, sw[s:e]))
            u[s:e], v[s:e], hu[s:e], hv[s:e], face[s:e] = fu, fv, fhu, fhv, fface
            normal[s:e] = fnormal @ _rot_z(part.yaw).T.astype(np.float32)
        labels[s:e] = lab
    rgb = np.empty((n, 3), dtype=np.float32)
    group_sorted = owner_group[so]
    gb = np.flatnonzero(np.r_[True, group_sorted[1:] != group_sorted[:-1], True])
    for s, e in zip(gb[:-1], gb[1:], strict=True):
        rgb[s:e] = albedo(materials[group_sorted[s]], u[s:e], v[s:e], face[s:e], hu[s:e], hv[s:e])
    rgb *= shade(scene, sw, normal)
    out_rgb = np.empty_like(rgb)
    out_labels = np.empty_like(labels)
    out_normal = np.empty_like(normal)
    out_rgb[order], out_labels[order], out_normal[order] = rgb, labels, normal
    return out_rgb, out_labels, out_normal


def _room_material(scene: Scene, face_id: int):
    if face_id == 0:
        return scene.room.floor
    if face_id == 1:
        return scene.room.ceiling
    return scene.room.walls[face_id - 2]


def _to_local(part: Part, world: np.ndarray) -> np.ndarray:
    return ((world - part.center) @ _rot_z(part.yaw)).astype(np.float32)


def _part_corners(part: Part) -> np.ndarray:
    h = part.half
    signs = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], dtype=np.float64)
    return part.center + (signs * h) @ _rot_z(part.yaw if part.kind == "box" else 0.0).T


_BOX_EDGES = np.array([(a, b) for a in range(8) for b in range(a + 1, 8) if bin(a ^ b).count("1") == 1])


def _clip_to_near(corners: np.ndarray) -> np.ndarray:
    """Corners of a camera-frame box in front of the near plane, plus where its edges cross it.

    The image rectangle of these points bounds everything of the box that can be seen.
    """
    z = corners[:, 2]
    front = corners[z >= NEAR]
    if len(front) == 8 or not len(front):
        return front
    a, b = corners[_BOX_EDGES[:, 0]], corners[_BOX_EDGES[:, 1]]
    za, zb = a[:, 2], b[:, 2]
    crossing = (za - NEAR) * (zb - NEAR) < 0
    t = (NEAR - za[crossing]) / (zb[crossing] - za[crossing])
    cut = a[crossing] + t[:, None] * (b[crossing] - a[crossing])
    return np.concatenate([front, cut])


def camera_rays(K: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """``(H, W, 3)`` float32 camera-frame ray directions with z = 1 (pixel centres at integer uv)."""
    H, W = hw
    j = (np.arange(W, dtype=np.float64) - K[0, 2]) / K[0, 0]
    i = (np.arange(H, dtype=np.float64) - K[1, 2]) / K[1, 1]
    rays = np.empty((H, W, 3), dtype=np.float32)
    rays[..., 0] = j[None, :]
    rays[..., 1] = i[:, None]
    rays[..., 2] = 1.0
    return rays


def render(
    scene: Scene,
    K: np.ndarray,
    hw: tuple[int, int],
    world_from_camera: np.ndarray,
    *,
    rays_camera: np.ndarray | None = None,
    exposure: float = 1.0,
) -> RenderedFrame:
    """Ray-cast one view of ``scene``: colour, depth (camera z), NYU40 labels.

    Args:
        scene: the room.
        K: ``(3, 3)`` intrinsics of the ``hw`` image.
        hw: ``(H, W)``.
        world_from_camera: ``(4, 4)`` camera-to-world pose (OpenCV camera frame).
        rays_camera: optional precomputed :func:`camera_rays` for ``(K, hw)``.
        exposure: brightness gain of this frame.
    """
    H, W = hw
    rays_c = camera_rays(K, hw) if rays_camera is None else rays_camera
    R = world_from_camera[:3, :3].astype(np.float32)
    origin = world_from_camera[:3, 3].astype(np.float64)
    rays = rays_c @ R.T  # (H, W, 3) world directions, camera z = 1
    size = scene.room.size

    # Room shell, seen from inside: the exit point of the box, axis by axis.
    tbuf = np.full((H, W), np.inf, dtype=np.float32)
    ids = np.full((H, W), -1, dtype=np.int32)
    # (axis, id when the ray goes negative, id when positive): floor/ceiling, wall 3/1, wall 0/2.
    for axis, neg_id, pos_id in ((2, 0, 1), (0, 5, 3), (1, 2, 4)):
        d = rays[..., axis]
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.where(d > 0, np.float32(size[axis] - origin[axis]), np.float32(-origin[axis])) / d
        better = (t > 0) & (t < tbuf)
        tbuf[better] = t[better]
        ids[better] = np.where(d[better] > 0, pos_id, neg_id)
    camera_from_world = np.linalg.inv(world_from_camera)
    for k, part in enumerate(scene.parts):
        corners = _part_corners(part) @ camera_from_world[:3, :3].T + camera_from_world[:3, 3]
        visible = _clip_to_near(corners)
        if not len(visible):
            continue
        u = K[0, 0] * visible[:, 0] / visible[:, 2] + K[0, 2]
        v = K[1, 1] * visible[:, 1] / visible[:, 2] + K[1, 2]
        c0, c1 = max(int(np.floor(u.min())), 0), min(int(np.ceil(u.max())) + 1, W)
        r0, r1 = max(int(np.floor(v.min())), 0), min(int(np.ceil(v.max())) + 1, H)
        if c0 >= c1 or r0 >= r1:
            continue
        d = rays[r0:r1, c0:c1]
        o = _to_local(part, origin[None, :])[0]
        cy, sy = np.float32(np.cos(part.yaw)), np.float32(np.sin(part.yaw))
        dx = cy * d[..., 0] + sy * d[..., 1]
        dy = -sy * d[..., 0] + cy * d[..., 1]
        dz = d[..., 2]
        h = part.half.astype(np.float32)
        with np.errstate(divide="ignore", invalid="ignore"):
            if part.kind == "box":
                t_near = np.full(dx.shape, -np.inf, dtype=np.float32)
                t_far = np.full(dx.shape, np.inf, dtype=np.float32)
                for comp, oc, hc in ((dx, o[0], h[0]), (dy, o[1], h[1]), (dz, o[2], h[2])):
                    inv = np.float32(1.0) / comp
                    ta = (-hc - oc) * inv
                    tb = (hc - oc) * inv
                    np.maximum(t_near, np.minimum(ta, tb), out=t_near)
                    np.minimum(t_far, np.maximum(ta, tb), out=t_far)
                t = np.where((t_near <= t_far) & (t_near > NEAR), t_near, np.inf)
            else:
                r2 = h[0] * h[0]
                a = dx * dx + dy * dy
                b = 2.0 * (o[0] * dx + o[1] * dy)
                c = o[0] * o[0] + o[1] * o[1] - r2
                disc = b * b - 4.0 * a * c
                t_side = (-b - np.sqrt(np.maximum(disc, 0.0))) / (2.0 * a)
                z_side = o[2] + t_side * dz
                t = np.where((disc >= 0) & (np.abs(z_side) <= h[2]) & (t_side > NEAR), t_side, np.inf)
                if abs(o[2]) > h[2]:
                    cap_z = np.float32(np.sign(o[2]) * h[2])
                    t_cap = (cap_z - o[2]) / dz
                    xc = o[0] + t_cap * dx
                    yc = o[1] + t_cap * dy
                    ok = (t_cap > NEAR) & (xc * xc + yc * yc <= r2)
                    t = np.where(ok & (t_cap < t), t_cap, t)
        sub_t = tbuf[r0:r1, c0:c1]
        closer = t < sub_t
        sub_t[closer] = t[closer]
        ids[r0:r1, c0:c1][closer] = _ROOM_FACES + k

    depth = np.where(np.isfinite(tbuf), tbuf, 0.0).astype(np.float32)
    color = np.zeros((H * W, 3), dtype=np.float32)
    label = np.zeros(H * W, dtype=np.uint8)
    cos_inc = np.zeros(H * W, dtype=np.float32)
    flat_ids = ids.ravel()
    pix = np.flatnonzero(flat_ids >= 0)
    d = rays.reshape(-1, 3)[pix]
    world = origin.astype(np.float32) + d * depth.ravel()[pix, None]
    rgb, lab, normal = surface_colors(scene, flat_ids[pix], world)
    color[pix] = rgb
    label[pix] = lab
    cos_inc[pix] = np.abs(np.sum(d * normal, axis=1)) / np.linalg.norm(d, axis=1)
    color = np.clip(color * np.float32(exposure) * 255.0 + 0.5, 0, 255).astype(np.uint8).reshape(H, W, 3)
    return RenderedFrame(color, depth, label.reshape(H, W), cos_inc.reshape(H, W))


def add_depth_noise(frame: RenderedFrame, rng: np.random.Generator, *, max_depth: float = 8.0) -> np.ndarray:
    """Structured-light-like depth: axial noise growing with z², holes at grazing angles and edges.

    Returns a new ``(H, W)`` float32 depth (0 = invalid).
    """
    depth = frame.depth.copy()
    valid = depth > 0
    sigma = (
        0.0012 + 0.0019 * np.maximum(depth - 0.4, 0.0) ** 2
    )  # Kinect axial noise model (Nguyen et al. 2012)
    depth = depth + rng.normal(0.0, 1.0, size=depth.shape).astype(np.float32) * sigma.astype(np.float32)
    grazing = frame.cos_incidence < 0.12
    # Depth discontinuities lose a pixel now and then, as on real sensors.
    edge = np.zeros_like(valid)
    jump = np.abs(np.diff(frame.depth, axis=1)) > 0.1
    edge[:, 1:] |= jump
    edge[:, :-1] |= jump
    drop = (grazing | (edge & (rng.random(depth.shape) < 0.5)) | (rng.random(depth.shape) < 0.002)) & valid
    depth[drop | ~valid | (depth > max_depth) | (depth < 0.2)] = 0.0
    return depth.astype(np.float32)


def _face_samples(rng, hu: float, hv: float, spacing: float) -> tuple[np.ndarray, np.ndarray]:
    """Stratified points on ``[-hu, hu] x [-hv, hv]``: one jittered point per ``spacing`` cell."""
    nu = max(1, int(np.ceil(2 * hu / spacing)))
    nv = max(1, int(np.ceil(2 * hv / spacing)))
    gu, gv = np.meshgrid(np.arange(nu), np.arange(nv), indexing="ij")
    u = (gu.ravel() + rng.random(gu.size)) * (2 * hu / nu) - hu
    v = (gv.ravel() + rng.random(gv.size)) * (2 * hv / nv) - hv
    return u, v


def _surface_area(scene: Scene) -> float:
    lx, ly, lz = scene.room.size
    area = lx * ly * (2 if scene.room.has_ceiling else 1) + 2 * (lx + ly) * lz
    for p in scene.parts:
        hx, hy, hz = p.half
        if p.kind == "box":
            area += 8 * (hx * hy + hx * hz + hy * hz)
        else:
            area += 2 * np.pi * hx * hx + 4 * np.pi * hx * hz
    return float(area)


def sample_scene_cloud(
    scene: Scene, rng: np.random.Generator, *, spacing: float = 0.02, max_points: int | None = 150_000
) -> SceneCloud:
    """Sample the scene's visible surfaces, like the vertices of a reconstructed mesh.

    Points are stratified on every face at ``spacing`` metres (coarser when needed so that the
    scene stays under ``max_points``), then hidden surfaces are dropped: points inside another
    part (e.g. the floor under a cabinet, the wall behind a picture) and faces of parts that lie
    against the room shell (the bottom of furniture, the back of wall hangings).
    """
    if max_points is not None:
        spacing = max(spacing, float(np.sqrt(_surface_area(scene) / max_points)))
    lx, ly, lz = scene.room.size
    worlds, owners, locals_ = [], [], []
    # Room shell: face ids as in render().
    shells = [
        (0, lx / 2, ly / 2),
        (2, lx / 2, lz / 2),
        (3, ly / 2, lz / 2),
        (4, lx / 2, lz / 2),
        (5, ly / 2, lz / 2),
    ]
    if scene.room.has_ceiling:
        shells.insert(1, (1, lx / 2, ly / 2))
    for face_id, hu, hv in shells:
        u, v = _face_samples(rng, hu, hv, spacing)
        u, v = u + hu, v + hv
        zeros = np.zeros_like(u)
        world = {
            0: (u, v, zeros),
            1: (u, v, zeros + lz),
            2: (u, zeros, v),
            3: (zeros + lx, u, v),
            4: (lx - u, zeros + ly, v),
            5: (zeros, ly - u, v),
        }[face_id]
        worlds.append(np.stack(world, axis=1))
        owners.append(np.full(len(u), face_id))
        locals_.append(np.zeros((len(u), 3)))
    for k, part in enumerate(scene.parts):
        hx, hy, hz = part.half
        local_list = []
        if part.kind == "box":
            for axis, (ha, hb) in enumerate(((hy, hz), (hx, hz), (hx, hy))):
                for sign in (-1.0, 1.0):
                    a, b = _face_samples(rng, ha, hb, spacing)
                    pts = np.empty((len(a), 3))
                    others = [i for i in range(3) if i != axis]
                    pts[:, axis] = sign * part.half[axis]
                    pts[:, others[0]] = a
                    pts[:, others[1]] = b
                    local_list.append(pts)
        else:
            a, b = _face_samples(rng, np.pi * hx, hz, spacing)
            theta = a / hx
            local_list.append(np.stack([hx * np.cos(theta), hx * np.sin(theta), b], axis=1))
            for sign in (-1.0, 1.0):
                a, b = _face_samples(rng, hx, hx, spacing)
                keep = a * a + b * b <= hx * hx
                local_list.append(np.stack([a[keep], b[keep], np.full(keep.sum(), sign * hz)], axis=1))
        local = np.concatenate(local_list)
        worlds.append(local @ _rot_z(part.yaw).T + part.center)
        owners.append(np.full(len(local), _ROOM_FACES + k))
        locals_.append(local)
    world = np.concatenate(worlds)
    owner = np.concatenate(owners)
    local = np.concatenate(locals_)

    keep = np.ones(len(world), dtype=bool)
    eps = 0.003
    for k, part in enumerate(scene.parts):
        corners = _part_corners(part)
        lo, hi = corners.min(axis=0) - eps, corners.max(axis=0) + eps
        cand = np.flatnonzero(
            np.all((world >= lo) & (world <= hi), axis=1) & (owner != _ROOM_FACES + k) & keep
        )
        if not len(cand):
            continue
        p = _to_local(part, world[cand])
        if part.kind == "box":
            inside = np.all(np.abs(p) <= part.half + eps, axis=1)
        else:
            inside = (np.hypot(p[:, 0], p[:, 1]) <= part.half[0] + eps) & (
                np.abs(p[:, 2]) <= part.half[2] + eps
            )
        keep[cand[inside]] = False
    # Faces of parts lying against the shell (normal pointing out of the room) are never seen.
    is_part = owner >= _ROOM_FACES
    for axis, bound in ((0, 0.0), (0, lx), (1, 0.0), (1, ly), (2, 0.0), (2, lz)):
        keep &= ~(is_part & (np.abs(world[:, axis] - bound) < eps))

    world32 = world[keep].astype(np.float32)
    colors, labels, _ = surface_colors(scene, owner[keep], world32)
    rgb8 = np.clip(colors * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return SceneCloud(world32, rgb8, labels.astype(np.uint16))
