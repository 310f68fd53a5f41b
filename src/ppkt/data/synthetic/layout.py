"""Random indoor rooms assembled from primitives: walls, floor, ceiling and furniture.

A room is an axis-aligned box ``[0, Lx] x [0, Ly] x [0, Lz]`` (world z up, floor at z = 0) seen
from inside. Furniture objects are groups of parts (boxes with a yaw, vertical cylinders), each
part with a NYU40 label and a :class:`~ppkt.data.synthetic.textures.Material`. Objects rest on the
floor or hang on walls; footprints on a 5 cm floor grid and rectangles in each wall's plane keep
them from interpenetrating.

Object frames: x along the object's width, y along its depth with the **front at local -y**
(the side one uses: drawers, seat, screen), z up from the floor. Wall-backed objects put their
back (local +y) against the wall.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ppkt.data.synthetic.textures import (
    DARKS,
    FABRICS,
    METALS,
    PAINTS,
    WOODS,
    Decor,
    Family,
    Material,
    make_material,
)

# NYU40 ids used by the generator (ScanNet's .labels.ply convention).
WALL, FLOOR, CABINET, BED, CHAIR, SOFA, TABLE, DOOR, WINDOW, BOOKSHELF, PICTURE = (
    1,
    2,
    3,
    4,
    5,
    6,
    7,
    8,
    9,
    10,
    11,
)
DESK, CURTAIN, PILLOW, CEILING, OTHERFURNITURE = 14, 16, 18, 22, 39

GRID_STEP = 0.05
"""Floor occupancy grid resolution, metres."""
FOOTPRINT_GAP = 0.03
"""Smallest gap between the footprints of two floor objects, metres."""


@dataclass
class Part:
    """One primitive in world coordinates.

    Attributes:
        kind: "box" (yawed box) or "cylinder" (vertical axis).
        center: ``(3,)`` centre of the primitive's bounding box, world frame.
        half: ``(3,)`` half extents in the object frame; for a cylinder ``(radius, radius, half height)``.
        yaw: rotation about world z from object frame to world, radians.
        nyu40: NYU40 class id.
        material: appearance.
        instance: id of the object it belongs to (0 = the room itself).
    """

    kind: str
    center: np.ndarray
    half: np.ndarray
    yaw: float
    nyu40: int
    material: Material
    instance: int


@dataclass
class Room:
    """The room shell.

    Attributes:
        size: ``(3,)`` ``(Lx, Ly, Lz)`` in metres.
        floor: floor material.
        walls: materials of walls 0..3 (y = 0, x = Lx, y = Ly, x = 0).
        ceiling: ceiling material.
        has_ceiling: when False, rays leaving through the top hit nothing (depth 0).
    """

    size: np.ndarray
    floor: Material
    walls: tuple[Material, Material, Material, Material]
    ceiling: Material
    has_ceiling: bool = True


@dataclass
class Scene:
    """A furnished room with its lights.

    Attributes:
        room: the shell.
        parts: furniture primitives.
        lights: ``(L, 3)`` point light positions, world frame.
        light_color: ``(3,)`` tint of the light.
        ambient: ambient light level.
        footprints: ``(K, 5)`` floor footprints of the objects ``(x, y, half_x, half_y, yaw)``, used
            to keep the camera out of furniture.
    """

    room: Room
    parts: list[Part]
    lights: np.ndarray
    light_color: np.ndarray
    ambient: float
    footprints: np.ndarray = field(default_factory=lambda: np.zeros((0, 5)))

    def footprint_distance(self, xy: np.ndarray) -> np.ndarray:
        """Distance (metres) from ``(N, 2)`` floor points to the nearest object footprint."""
        xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
        best = np.full(len(xy), np.inf)
        for x, y, hx, hy, yaw in self.footprints:
            c, s = np.cos(yaw), np.sin(yaw)
            d = xy - (x, y)
            lx = np.abs(c * d[:, 0] + s * d[:, 1]) - hx
            ly = np.abs(-s * d[:, 0] + c * d[:, 1]) - hy
            outside = np.hypot(np.maximum(lx, 0), np.maximum(ly, 0))
            inside = np.minimum(np.maximum(lx, ly), 0)
            best = np.minimum(best, outside + inside)
        return best


# ---------------------------------------------------------------------------------------------
# Object builders: lists of local parts (kind, centre, half extents, nyu40, material).

_LocalPart = tuple[str, tuple[float, float, float], tuple[float, float, float], int, Material]


@dataclass
class _Object:
    parts: list[_LocalPart]
    half_x: float
    half_y: float
    height: float


def _box(cx, cy, z0, hx, hy, hz, label, mat) -> _LocalPart:
    return ("box", (cx, cy, z0 + hz), (hx, hy, hz), label, mat)


def _cyl(cx, cy, z0, r, hz, label, mat) -> _LocalPart:
    return ("cylinder", (cx, cy, z0 + hz), (r, r, hz), label, mat)


def _wood_or_paint(rng, decor=Decor.NONE) -> Material:
    if rng.random() < 0.65:
        return make_material(rng, Family.WOOD, WOODS, scale=(0.05, 0.15), decor=decor)
    return make_material(rng, Family.PAINT, PAINTS + DARKS, scale=(0.1, 0.4), decor=decor)


def _upholstery(rng) -> Material:
    if rng.random() < 0.7:
        return make_material(rng, Family.FABRIC, FABRICS, scale=(0.1, 0.4))
    return make_material(rng, Family.LEATHER, FABRICS + DARKS, scale=(0.1, 0.3))


def _legs(half_x, half_y, height, inset, leg, round_legs, label, mat) -> list[_LocalPart]:
    parts = []
    for sx in (-1, 1):
        for sy in (-1, 1):
            x, y = sx * (half_x - inset - leg), sy * (half_y - inset - leg)
            if round_legs:
                parts.append(_cyl(x, y, 0.0, leg, height / 2, label, mat))
            else:
                parts.append(_box(x, y, 0.0, leg, leg, height / 2, label, mat))
    return parts


def build_table(rng, coffee: bool = False) -> _Object:
    mat = _wood_or_paint(rng)
    height = rng.uniform(0.38, 0.5) if coffee else rng.uniform(0.72, 0.78)
    top = rng.uniform(0.025, 0.05)
    if not coffee and rng.random() < 0.25:
        r = rng.uniform(0.4, 0.6)
        leg_mat = mat if rng.random() < 0.5 else make_material(rng, Family.METAL, METALS + DARKS)
        parts = [
            _cyl(0, 0, height - top, r, top / 2, TABLE, mat),
            _cyl(0, 0, 0.03, rng.uniform(0.03, 0.06), (height - top - 0.03) / 2, TABLE, leg_mat),
            _cyl(0, 0, 0.0, rng.uniform(0.2, 0.3), 0.015, TABLE, leg_mat),
        ]
        return _Object(parts, r, r, height)
    hx = rng.uniform(0.45, 0.6) if coffee else rng.uniform(0.4, 0.9)
    hy = rng.uniform(0.25, 0.4) if coffee else rng.uniform(0.3, 0.5)
    leg_mat = mat if rng.random() < 0.6 else make_material(rng, Family.METAL, METALS + DARKS)
    parts = [_box(0, 0, height - top, hx, hy, top / 2, TABLE, mat)]
    parts += _legs(
        hx,
        hy,
        height - top,
        rng.uniform(0.0, 0.06),
        rng.uniform(0.02, 0.035),
        rng.random() < 0.4,
        TABLE,
        leg_mat,
    )
    return _Object(parts, hx, hy, height)


def build_desk(rng) -> _Object:
    mat = _wood_or_paint(rng)
    hx, hy, height = rng.uniform(0.5, 0.8), rng.uniform(0.3, 0.4), rng.uniform(0.72, 0.76)
    top = rng.uniform(0.025, 0.04)
    parts = [_box(0, 0, height - top, hx, hy, top / 2, DESK, mat)]
    panel = 0.02
    if rng.random() < 0.5:
        parts += [
            _box(sx * (hx - panel), 0, 0, panel, hy - 0.01, (height - top) / 2, DESK, mat) for sx in (-1, 1)
        ]
    else:
        # Drawer block on one side, a panel on the other.
        side = rng.choice([-1, 1])
        block = rng.uniform(0.18, 0.25)
        drawers = make_material(rng, mat.family, (mat.color_a,), decor=Decor.DRAWERS)
        parts.append(_box(side * (hx - block), 0, 0, block, hy - 0.01, (height - top) / 2, DESK, drawers))
        parts.append(_box(-side * (hx - panel), 0, 0, panel, hy - 0.01, (height - top) / 2, DESK, mat))
    if rng.random() < 0.6:
        parts += build_monitor(rng, x=rng.uniform(-0.3, 0.3) * hx, y=0.35 * hy, z0=height)
    return _Object(parts, hx, hy, height)


def build_monitor(rng, x: float, y: float, z0: float) -> list[_LocalPart]:
    body = make_material(rng, Family.PLASTIC, DARKS + METALS[:2])
    screen = make_material(rng, Family.PLASTIC, DARKS, decor=Decor.SCREEN)
    w, h = rng.uniform(0.22, 0.35), rng.uniform(0.15, 0.22)
    stand = rng.uniform(0.08, 0.14)
    return [
        _box(x, y, z0, 0.1, 0.08, 0.006, OTHERFURNITURE, body),
        _box(x, y + 0.02, z0 + 0.012, 0.025, 0.012, stand / 2, OTHERFURNITURE, body),
        _box(x, y - 0.01, z0 + stand, w, 0.015, h, OTHERFURNITURE, screen),
    ]


def build_chair(rng) -> _Object:
    seat_h = rng.uniform(0.42, 0.48)
    hx = rng.uniform(0.2, 0.26)
    hy = hx * rng.uniform(0.9, 1.1)
    seat_t = rng.uniform(0.03, 0.08)
    frame = _wood_or_paint(rng) if rng.random() < 0.6 else make_material(rng, Family.PLASTIC, PAINTS + DARKS)
    seat = frame if rng.random() < 0.4 else _upholstery(rng)
    back_h = rng.uniform(0.35, 0.5)
    back_t = rng.uniform(0.02, 0.06)
    parts = [
        _box(0, 0, seat_h - seat_t, hx, hy, seat_t / 2, CHAIR, seat),
        _box(0, hy - back_t, seat_h, hx, back_t, back_h / 2, CHAIR, seat),
    ]
    if rng.random() < 0.3:  # office chair: pedestal and star-like base as a disc
        metal = make_material(rng, Family.METAL, METALS + DARKS)
        parts += [
            _cyl(0, 0, 0.06, 0.025, (seat_h - seat_t - 0.06) / 2, CHAIR, metal),
            _cyl(0, 0, 0.0, rng.uniform(0.22, 0.28), 0.03, CHAIR, metal),
        ]
        return _Object(parts, max(hx, 0.28), max(hy, 0.28), seat_h + back_h)
    parts += _legs(
        hx, hy, seat_h - seat_t, 0.005, rng.uniform(0.012, 0.022), rng.random() < 0.5, CHAIR, frame
    )
    return _Object(parts, hx, hy, seat_h + back_h)


def build_sofa(rng, seats: int, label: int = SOFA) -> _Object:
    mat = _upholstery(rng)
    hx = 0.3 * seats + rng.uniform(0.15, 0.3)
    hy = rng.uniform(0.4, 0.5)
    seat_h, back_h, arm_h = rng.uniform(0.4, 0.46), rng.uniform(0.75, 0.9), rng.uniform(0.55, 0.65)
    arm_w, back_t = rng.uniform(0.08, 0.16), rng.uniform(0.12, 0.2)
    parts = [
        _box(0, 0, 0.05, hx, hy, (seat_h - 0.15) / 2, label, mat),
        _box(0, hy - back_t, seat_h - 0.1, hx, back_t, (back_h - seat_h + 0.1) / 2, label, mat),
    ]
    parts += [
        _box(
            sx * (hx - arm_w),
            -back_t,
            seat_h - 0.1,
            arm_w,
            hy - back_t,
            (arm_h - seat_h + 0.1) / 2,
            label,
            mat,
        )
        for sx in (-1, 1)
    ]
    inner = hx - 2 * arm_w
    for k in range(seats):
        w = inner / seats
        cx = -inner + w * (2 * k + 1)
        parts.append(_box(cx, -back_t, seat_h - 0.1 + 0.001, w - 0.005, hy - back_t - 0.01, 0.05, label, mat))
    feet = make_material(rng, Family.WOOD, WOODS + DARKS)
    parts += _legs(hx, hy, 0.05, 0.03, 0.025, False, label, feet)
    return _Object(parts, hx, hy, back_h)


def build_bed(rng) -> _Object:
    hx = rng.choice([0.45, 0.7, 0.8, 0.9]) + rng.uniform(0.0, 0.05)
    hy = rng.uniform(0.98, 1.06)
    frame = _wood_or_paint(rng) if rng.random() < 0.7 else _upholstery(rng)
    sheet = make_material(rng, Family.FABRIC, FABRICS + PAINTS[:3], scale=(0.2, 0.6))
    frame_h, mattress = rng.uniform(0.2, 0.35), rng.uniform(0.18, 0.25)
    head_t, head_h = rng.uniform(0.04, 0.08), rng.uniform(0.8, 1.15)
    parts = [
        _box(0, -head_t, 0.0, hx, hy - head_t, frame_h / 2, BED, frame),
        _box(0, -head_t, frame_h, hx - 0.03, hy - head_t - 0.03, mattress / 2, BED, sheet),
        _box(0, hy - head_t, 0.0, hx, head_t, head_h / 2, BED, frame),
    ]
    pillow = make_material(rng, Family.FABRIC, PAINTS[:3] + FABRICS, scale=(0.1, 0.3))
    n_pillows = 1 if hx < 0.6 else 2
    for k in range(n_pillows):
        px = 0.0 if n_pillows == 1 else (k - 0.5) * hx
        parts.append(
            _box(
                px,
                hy - 2 * head_t - 0.22,
                frame_h + mattress,
                min(0.3, hx / n_pillows - 0.05),
                0.18,
                0.06,
                PILLOW,
                pillow,
            )
        )
    return _Object(parts, hx, hy, head_h)


def build_cabinet(rng, kind: str) -> _Object:
    if kind == "nightstand":
        hx, hy, h = rng.uniform(0.2, 0.3), rng.uniform(0.18, 0.25), rng.uniform(0.45, 0.65)
        decor = Decor.DRAWERS
    elif kind == "wardrobe":
        hx, hy, h = rng.uniform(0.4, 0.8), rng.uniform(0.25, 0.32), rng.uniform(1.8, 2.2)
        decor = Decor.CABINET_DOORS
    else:
        hx, hy, h = rng.uniform(0.3, 0.7), rng.uniform(0.2, 0.3), rng.uniform(0.6, 1.2)
        decor = rng.choice([Decor.CABINET_DOORS, Decor.DRAWERS])
    body = _wood_or_paint(rng, decor=decor)
    parts = [_box(0, 0, 0.04, hx, hy, (h - 0.04) / 2, CABINET, body)]
    plinth = make_material(rng, body.family, (body.color_b,))
    parts.append(_box(0, 0.01, 0.0, hx - 0.01, hy - 0.01, 0.02, CABINET, plinth))
    return _Object(parts, hx, hy, h)


def build_bookshelf(rng) -> _Object:
    hx, hy, h = rng.uniform(0.3, 0.6), rng.uniform(0.13, 0.2), rng.uniform(1.0, 2.1)
    board = 0.018
    mat = _wood_or_paint(rng)
    parts = [_box(sx * (hx - board / 2), 0, 0, board / 2, hy, h / 2, BOOKSHELF, mat) for sx in (-1, 1)]
    parts.append(_box(0, hy - 0.005, 0, hx - board, 0.005, h / 2, BOOKSHELF, mat))
    n = max(2, int(h / rng.uniform(0.3, 0.4)))
    spacing = (h - board) / n
    for k in range(n + 1):
        parts.append(_box(0, -0.005, k * spacing, hx - board, hy - 0.005, board / 2, BOOKSHELF, mat))
    inner_w = hx - board
    for k in range(n):
        if rng.random() < 0.15:
            continue
        fill = rng.uniform(0.4, 1.0)
        row_hx = inner_w * fill
        cx = rng.uniform(-inner_w + row_hx, inner_w - row_hx)
        row_h = min(spacing - board - 0.02, rng.uniform(0.18, 0.3))
        books = make_material(rng, Family.PAINT, DARKS, decor=Decor.BOOKS)
        depth = min(hy - 0.02, rng.uniform(0.08, 0.12))
        parts.append(
            _box(cx, hy - 0.01 - depth, k * spacing + board, row_hx, depth, row_h / 2, BOOKSHELF, books)
        )
    return _Object(parts, hx, hy, h)


def build_lamp(rng) -> _Object:
    metal = make_material(rng, Family.METAL, METALS + DARKS)
    shade = make_material(rng, Family.FABRIC, PAINTS[:4] + FABRICS[1:2], scale=(0.05, 0.15))
    h = rng.uniform(1.3, 1.7)
    r = rng.uniform(0.15, 0.22)
    parts = [
        _cyl(0, 0, 0, rng.uniform(0.12, 0.16), 0.015, OTHERFURNITURE, metal),
        _cyl(0, 0, 0.03, 0.012, (h - 0.3 - 0.03) / 2, OTHERFURNITURE, metal),
        _cyl(0, 0, h - 0.3, r, 0.15, OTHERFURNITURE, shade),
    ]
    return _Object(parts, r, r, h)


def build_bin(rng) -> _Object:
    mat = make_material(
        rng, Family.PLASTIC if rng.random() < 0.5 else Family.METAL, METALS + DARKS + FABRICS[:3]
    )
    r, h = rng.uniform(0.12, 0.18), rng.uniform(0.3, 0.45)
    return _Object([_cyl(0, 0, 0, r, h / 2, OTHERFURNITURE, mat)], r, r, h)


# ---------------------------------------------------------------------------------------------
# Placement


class _Layout:
    """Bookkeeping of what is placed: floor grid, wall-plane rectangles, output parts."""

    def __init__(self, rng: np.random.Generator, size: np.ndarray):
        self.rng = rng
        self.size = size
        nx, ny = int(np.ceil(size[0] / GRID_STEP)), int(np.ceil(size[1] / GRID_STEP))
        xs = (np.arange(nx) + 0.5) * GRID_STEP
        ys = (np.arange(ny) + 0.5) * GRID_STEP
        self.cells = np.stack(np.meshgrid(xs, ys, indexing="ij"), axis=-1)  # (nx, ny, 2)
        self.occupied = np.zeros((nx, ny), dtype=bool)
        self.wall_rects: list[list[tuple[float, float, float, float]]] = [[], [], [], []]
        self.parts: list[Part] = []
        self.footprints: list[tuple[float, float, float, float, float]] = []
        self.next_instance = 1

    # Wall w: (origin, direction along the wall, inward normal, length).
    def wall_frame(self, w: int):
        lx, ly = self.size[0], self.size[1]
        return [
            (np.array([0.0, 0.0]), np.array([1.0, 0.0]), np.array([0.0, 1.0]), lx),
            (np.array([lx, 0.0]), np.array([0.0, 1.0]), np.array([-1.0, 0.0]), ly),
            (np.array([lx, ly]), np.array([-1.0, 0.0]), np.array([0.0, -1.0]), lx),
            (np.array([0.0, ly]), np.array([0.0, -1.0]), np.array([1.0, 0.0]), ly),
        ][w]

    def _footprint_mask(self, x, y, hx, hy, yaw, margin) -> np.ndarray:
        c, s = np.cos(yaw), np.sin(yaw)
        d = self.cells - (x, y)
        lx = c * d[..., 0] + s * d[..., 1]
        ly = -s * d[..., 0] + c * d[..., 1]
        return (np.abs(lx) <= hx + margin) & (np.abs(ly) <= hy + margin)

    def _corners(self, x, y, hx, hy, yaw) -> np.ndarray:
        c, s = np.cos(yaw), np.sin(yaw)
        local = np.array([[-hx, -hy], [hx, -hy], [hx, hy], [-hx, hy]])
        return local @ np.array([[c, s], [-s, c]]) + (x, y)

    def _wall_spans(self, corners: np.ndarray, z0: float, z1: float, reach: float = 0.15):
        """Rectangles ``(wall, s0, s1, z0, z1)`` that an object near a wall covers in its plane."""
        spans = []
        for w in range(4):
            origin, along, normal, _ = self.wall_frame(w)
            rel = corners - origin
            if (rel @ normal).min() < reach:
                s = rel @ along
                spans.append((w, float(s.min()), float(s.max()), z0, z1))
        return spans

    def _rects_free(self, spans, gap: float = 0.02) -> bool:
        for w, s0, s1, z0, z1 in spans:
            for r0, r1, q0, q1 in self.wall_rects[w]:
                if s0 < r1 + gap and r0 < s1 + gap and z0 < q1 + gap and q0 < z1 + gap:
                    return False
        return True

    def try_floor_object(self, obj: _Object, x: float, y: float, yaw: float) -> bool:
        corners = self._corners(x, y, obj.half_x, obj.half_y, yaw)
        eps = 1e-6
        if corners[:, 0].min() < -eps or corners[:, 1].min() < -eps:
            return False
        if corners[:, 0].max() > self.size[0] + eps or corners[:, 1].max() > self.size[1] + eps:
            return False
        mask = self._footprint_mask(x, y, obj.half_x, obj.half_y, yaw, FOOTPRINT_GAP)
        if (mask & self.occupied).any():
            return False
        spans = self._wall_spans(corners, 0.0, obj.height)
        if not self._rects_free(spans):
            return False
        self.occupied |= self._footprint_mask(x, y, obj.half_x, obj.half_y, yaw, 0.0)
        for w, s0, s1, z0, z1 in spans:
            self.wall_rects[w].append((s0, s1, z0, z1))
        self.footprints.append((x, y, obj.half_x, obj.half_y, yaw))
        self._emit(obj, np.array([x, y, 0.0]), yaw)
        return True

    def try_wall_item(self, obj: _Object, w: int, s: float, z0: float, swing: float = 0.0) -> bool:
        """Hang a thin object (depth ``2*half_y``) on wall ``w`` at ``s`` along it, bottom at ``z0``."""
        origin, along, normal, length = self.wall_frame(w)
        if s - obj.half_x < 0.05 or s + obj.half_x > length - 0.05 or z0 + obj.height > self.size[2] - 0.02:
            return False
        spans = [(w, s - obj.half_x, s + obj.half_x, z0, z0 + obj.height)]
        if not self._rects_free(spans):
            return False
        yaw = float(np.arctan2(normal[0], -normal[1]))
        centre = origin + along * s + normal * obj.half_y
        if swing > 0:
            swing_centre = origin + along * s + normal * (swing / 2)
            mask = self._footprint_mask(*swing_centre, obj.half_x, swing / 2, yaw, 0.0)
            if (mask & self.occupied).any():
                return False
            self.occupied |= mask
        self.wall_rects[w].append(spans[0][1:])
        self._emit(obj, np.array([centre[0], centre[1], z0]), yaw)
        return True

    def try_against_wall(self, obj: _Object, w: int | None = None, s: float | None = None) -> bool:
        w = int(self.rng.integers(4)) if w is None else w
        origin, along, normal, length = self.wall_frame(w)
        if length < 2 * obj.half_x + 0.02:
            return False
        s = self.rng.uniform(obj.half_x, length - obj.half_x) if s is None else s
        yaw = float(np.arctan2(normal[0], -normal[1]))
        centre = origin + along * s + normal * obj.half_y
        return self.try_floor_object(obj, float(centre[0]), float(centre[1]), yaw)

    def _emit(self, obj: _Object, position: np.ndarray, yaw: float) -> None:
        c, s = np.cos(yaw), np.sin(yaw)
        for kind, centre, half, label, material in obj.parts:
            lx, ly, lz = centre
            world = np.array([position[0] + c * lx - s * ly, position[1] + s * lx + c * ly, position[2] + lz])
            self.parts.append(
                Part(
                    kind, world, np.asarray(half, dtype=np.float64), yaw, label, material, self.next_instance
                )
            )
        self.next_instance += 1


def _retry(rng, attempts: int, place) -> bool:
    return any(place() for _ in range(attempts))


def _door(rng) -> _Object:
    w, h, t = rng.uniform(0.8, 0.95) / 2, rng.uniform(2.0, 2.1), 0.04
    return _Object(
        [_box(0, 0, 0, w, t / 2, h / 2, DOOR, _wood_or_paint(rng, decor=Decor.DOOR_PANELS))], w, t / 2, h
    )


def _window(rng, height: float) -> _Object:
    w, t = rng.uniform(0.5, 0.9), 0.05
    frame = make_material(rng, Family.PAINT, PAINTS[:3] + METALS[:1] + WOODS[:1], decor=Decor.WINDOW)
    return _Object([_box(0, 0, 0, w, t / 2, height / 2, WINDOW, frame)], w, t / 2, height)


def _picture(rng) -> _Object:
    w, h, t = rng.uniform(0.15, 0.5), rng.uniform(0.15, 0.4), rng.uniform(0.015, 0.04)
    frame = make_material(
        rng,
        Family.WOOD if rng.random() < 0.5 else Family.PAINT,
        WOODS + DARKS + PAINTS[:2],
        decor=Decor.PICTURE,
    )
    return _Object([_box(0, 0, 0, w, t / 2, h, PICTURE, frame)], w, t / 2, 2 * h)


def _curtain(rng, material: Material, width: float, height: float) -> _Object:
    t = rng.uniform(0.04, 0.08)
    return _Object([_box(0, 0, 0, width / 2, t / 2, height / 2, CURTAIN, material)], width / 2, t / 2, height)


ROOM_TYPES = ("bedroom", "living", "office")


def generate_scene(rng: np.random.Generator, *, ceiling: bool = True) -> Scene:
    """A random furnished room (bedroom, living room or office)."""
    size = np.array([rng.uniform(3.5, 7.0), rng.uniform(3.0, 6.0), rng.uniform(2.5, 3.0)])
    if size[1] > size[0]:
        size[:2] = size[1::-1]
    room_type = ROOM_TYPES[int(rng.integers(len(ROOM_TYPES)))]
    floor_kind = rng.choice(["wood", "tiles", "carpet"], p=[0.5, 0.25, 0.25])
    if floor_kind == "wood":
        floor = make_material(rng, Family.WOOD, WOODS, scale=(0.1, 0.2))
    elif floor_kind == "tiles":
        floor = make_material(
            rng, Family.TILES, PAINTS + WOODS[3:4], secondary=PAINTS + DARKS, scale=(0.0, 0.3)
        )
    else:
        floor = make_material(rng, Family.CARPET, FABRICS, scale=(0.2, 0.5))
    paint = make_material(rng, Family.PAINT, PAINTS, scale=(0.2, 0.6))
    walls = [paint] * 4
    if rng.random() < 0.3:  # an accent wall
        walls[int(rng.integers(4))] = make_material(rng, Family.PAINT, PAINTS + FABRICS[:3], scale=(0.2, 0.6))
    room = Room(
        size, floor, tuple(walls), make_material(rng, Family.PAINT, PAINTS[:3], scale=(0.3, 0.6)), ceiling
    )

    lay = _Layout(rng, size)
    # Doors and windows first: they constrain everything else.
    for _ in range(1 if rng.random() < 0.8 else 2):
        door = _door(rng)
        _retry(
            rng,
            20,
            lambda door=door: lay.try_wall_item(
                door, int(rng.integers(4)), rng.uniform(0.5, 7.0), 0.0, swing=0.9
            ),
        )
    curtain_material = make_material(
        rng, Family.FABRIC, FABRICS + PAINTS[:3], scale=(0.1, 0.3), decor=Decor.CURTAIN_FOLDS
    )
    for _ in range(int(rng.integers(1, 3))):
        sill = rng.uniform(0.8, 1.0)
        top = min(size[2] - 0.25, rng.uniform(2.0, 2.3))
        window = _window(rng, top - sill)
        w, s = int(rng.integers(4)), None

        def place_window(window=window, sill=sill):
            nonlocal w, s
            w, s = int(rng.integers(4)), float(rng.uniform(0.6, 6.5))
            return lay.try_wall_item(window, w, s, sill)

        if _retry(rng, 20, place_window) and rng.random() < 0.5:
            width = rng.uniform(0.25, 0.5)
            for side in (-1, 1):
                curtain = _curtain(rng, curtain_material, width, top + 0.1)
                _, along, normal, _ = lay.wall_frame(w)
                pos = s + side * (window.half_x + width / 2 + 0.03)
                origin = lay.wall_frame(w)[0] + along * pos + normal * curtain.half_y
                yaw = float(np.arctan2(normal[0], -normal[1]))
                lay.try_floor_object(curtain, float(origin[0]), float(origin[1]), yaw)

    # Big furniture against walls.
    wall_items: list = []
    free_items: list = []
    if room_type == "bedroom":
        wall_items += [build_bed(rng)]
        wall_items += [build_cabinet(rng, "nightstand") for _ in range(int(rng.integers(0, 3)))]
        if rng.random() < 0.7:
            wall_items.append(build_cabinet(rng, "wardrobe"))
        if rng.random() < 0.6:
            wall_items.append(build_desk(rng))
        if rng.random() < 0.4:
            wall_items.append(build_bookshelf(rng))
        free_items += [build_lamp(rng)] if rng.random() < 0.5 else []
        free_items += [build_chair(rng)] if rng.random() < 0.5 else []
    elif room_type == "living":
        wall_items += [build_sofa(rng, int(rng.integers(2, 4)))]
        wall_items += [build_bookshelf(rng) for _ in range(int(rng.integers(0, 3)))]
        wall_items += [build_cabinet(rng, "cabinet") for _ in range(int(rng.integers(1, 3)))]
        free_items += [build_table(rng, coffee=True)]
        free_items += [build_sofa(rng, 1, label=CHAIR) for _ in range(int(rng.integers(0, 3)))]
        free_items += [build_lamp(rng)] if rng.random() < 0.6 else []
        if rng.random() < 0.5:
            free_items.append("dining")
    else:
        wall_items += [build_desk(rng) for _ in range(int(rng.integers(2, 5)))]
        wall_items += [build_bookshelf(rng) for _ in range(int(rng.integers(1, 3)))]
        wall_items += [build_cabinet(rng, "cabinet") for _ in range(int(rng.integers(0, 3)))]
        free_items += ["dining"] if rng.random() < 0.5 else []
        free_items += [build_bin(rng) for _ in range(int(rng.integers(0, 3)))]
    for obj in wall_items:
        placed = _retry(rng, 25, lambda obj=obj: lay.try_against_wall(obj))
        if placed and obj.parts[0][3] == DESK:
            _chair_at(lay, rng)
    for obj in free_items:
        if isinstance(obj, str):
            _dining_set(lay, rng)
            continue
        _retry(rng, 25, lambda obj=obj: lay.try_floor_object(obj, *_random_pose(rng, size)))
    for _ in range(int(rng.integers(1, 4))):
        picture = _picture(rng)
        _retry(
            rng,
            15,
            lambda p=picture: lay.try_wall_item(
                p, int(rng.integers(4)), rng.uniform(0.4, 6.5), rng.uniform(1.2, 1.8) - p.height / 2
            ),
        )

    n_lights = int(rng.integers(1, 3))
    lights = np.stack(
        [
            rng.uniform(0.25, 0.75, n_lights) * size[0],
            rng.uniform(0.25, 0.75, n_lights) * size[1],
            np.full(n_lights, size[2] - 0.15),
        ],
        axis=1,
    )
    tint = np.array([1.0, rng.uniform(0.93, 1.0), rng.uniform(0.82, 1.0)])
    return Scene(
        room,
        lay.parts,
        lights,
        tint,
        float(rng.uniform(0.35, 0.5)),
        np.asarray(lay.footprints, dtype=np.float64).reshape(-1, 5),
    )


def _random_pose(rng, size) -> tuple[float, float, float]:
    yaw = float(
        rng.choice([0.0, np.pi / 2, np.pi, -np.pi / 2]) if rng.random() < 0.6 else rng.uniform(-np.pi, np.pi)
    )
    return float(rng.uniform(0.3, size[0] - 0.3)), float(rng.uniform(0.3, size[1] - 0.3)), yaw


def _chair_at(lay: _Layout, rng) -> None:
    """A chair in front of the desk just placed, facing it."""
    x, y, hx, hy, yaw = lay.footprints[-1]
    chair = build_chair(rng)
    c, s = np.cos(yaw), np.sin(yaw)
    dist = hy + chair.half_y + FOOTPRINT_GAP + rng.uniform(0.02, 0.2)
    pos = (x + s * dist, y - c * dist)  # local -y of the desk
    lay.try_floor_object(chair, pos[0], pos[1], yaw + np.pi + rng.normal(0.0, 0.2))


def _dining_set(lay: _Layout, rng) -> None:
    table = build_table(rng)
    pose = None
    for _ in range(25):
        candidate = _random_pose(rng, lay.size)
        if lay.try_floor_object(table, *candidate):
            pose = candidate
            break
    if pose is None:
        return
    x, y, yaw = pose
    c, s = np.cos(yaw), np.sin(yaw)
    for side in range(4):
        if rng.random() < 0.35:
            continue
        chair = build_chair(rng)
        local_dir = [(0, -1), (0, 1), (-1, 0), (1, 0)][side]
        reach = (
            (table.half_y if side < 2 else table.half_x)
            + chair.half_y
            + FOOTPRINT_GAP
            + rng.uniform(0.02, 0.15)
        )
        dx, dy = local_dir[0] * reach, local_dir[1] * reach
        px, py = x + c * dx - s * dy, y + s * dx + c * dy
        # The chair's front (local -y) faces the table centre.
        facing = float(np.arctan2(x - px, -(y - py)))
        lay.try_floor_object(chair, px, py, facing + rng.normal(0.0, 0.15))
