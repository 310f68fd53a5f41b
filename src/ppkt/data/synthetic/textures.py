"""Procedural surface appearance: value noise, texture families and shared palettes.

Every texture is a pure function of a :class:`Material` and surface coordinates ``(u, v)`` in
metres on a face, evaluated for many points at once. The renderer (image pixels) and the scene
cloud sampler (mesh vertices) call the same functions, so a surface point has the same albedo in
every frame and in the labelled cloud, as in a real textured mesh.

Palettes are shared between classes on purpose (white paint on walls, doors and cabinets; the
same woods on floors, tables, desks, shelves and doors; the same fabrics on sofas, beds, chairs
and curtains), so that the mean colour of a surface does not tell its class: what separates the
classes is structure (grain, weave, panels, book spines, frames) and shape in context, which is
what a 2D network pretrained on photographs has learnt to see.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np

# ---------------------------------------------------------------------------------------------
# Noise


_HASH_X = np.uint32(374761393)
_HASH_Y = np.uint32(668265263)


def _salt(seed: int) -> np.uint32:
    return np.uint32((seed * 2654435761) & 0xFFFFFFFF)


def _finish(h: np.ndarray) -> np.ndarray:
    """Avalanche a uint32 lattice code into a float in [0, 1) (uint32 arithmetic wraps mod 2**32)."""
    h = (h ^ (h >> np.uint32(13))) * np.uint32(1274126177)
    h ^= h >> np.uint32(16)
    return (h >> np.uint32(8)).astype(np.float32) * np.float32(1.0 / 16777216.0)


def _hash01(ix: np.ndarray, iy: np.ndarray, seed: int) -> np.ndarray:
    """Deterministic pseudo-random value in [0, 1) per integer lattice point (integer hash)."""
    return _finish(ix.astype(np.uint32) * _HASH_X + iy.astype(np.uint32) * _HASH_Y + _salt(seed))


def value_noise(x: np.ndarray, y: np.ndarray, seed: int) -> np.ndarray:
    """Smooth value noise in [0, 1) at real coordinates (lattice period 1)."""
    fx = np.floor(x)
    fy = np.floor(y)
    tx = (x - fx).astype(np.float32)
    ty = (y - fy).astype(np.float32)
    # The four corners' codes differ by the per-axis multipliers: one product per axis.
    base = fx.astype(np.int32).astype(np.uint32) * _HASH_X + fy.astype(np.int32).astype(np.uint32) * _HASH_Y
    base += _salt(seed)
    sx = tx * tx * (3.0 - 2.0 * tx)
    sy = ty * ty * (3.0 - 2.0 * ty)
    a = _finish(base)
    b = _finish(base + _HASH_X)
    c = _finish(base + _HASH_Y)
    d = _finish(base + (_HASH_X + _HASH_Y))
    top = a + (b - a) * sx
    bottom = c + (d - c) * sx
    return top + (bottom - top) * sy


def cell_noise(x: np.ndarray, y: np.ndarray, seed: int) -> np.ndarray:
    """Uncorrelated value in [0, 1) per unit cell: a cheap fine grain (one hash, no interpolation)."""
    return _hash01(np.floor(x).astype(np.int32), np.floor(y).astype(np.int32), seed)


def fbm(x: np.ndarray, y: np.ndarray, seed: int, octaves: int = 3) -> np.ndarray:
    """Fractal sum of value noise, in [0, 1)."""
    total = np.zeros(np.shape(x), dtype=np.float32)
    amplitude, norm = 1.0, 0.0
    for octave in range(octaves):
        scale = 2.0**octave
        total += np.float32(amplitude) * value_noise(x * scale, y * scale, seed + 101 * octave)
        norm += amplitude
        amplitude *= 0.5
    return total / np.float32(norm)


# ---------------------------------------------------------------------------------------------
# Materials


class Family(IntEnum):
    """Base texture of a material (what covers every face)."""

    PAINT = 0
    WOOD = 1
    FABRIC = 2
    TILES = 3
    CARPET = 4
    LEATHER = 5
    METAL = 6
    PLASTIC = 7


class Decor(IntEnum):
    """Pattern drawn over the base texture on the front face of an object."""

    NONE = 0
    CABINET_DOORS = 1
    DRAWERS = 2
    DOOR_PANELS = 3
    BOOKS = 4
    PICTURE = 5
    WINDOW = 6
    SCREEN = 7
    CURTAIN_FOLDS = 8


class Face(IntEnum):
    """Which face of a primitive a point lies on, in the object's frame (front = local -y)."""

    FRONT = 0
    SIDE = 1
    TOP = 2
    BOTTOM = 3


@dataclass(frozen=True)
class Material:
    """Appearance of one part.

    Attributes:
        family: base texture family.
        color_a: ``(3,)`` main colour (sRGB in [0, 1]).
        color_b: ``(3,)`` secondary colour (grain, weave, grout, frame, ...).
        scale: pattern period in metres.
        angle: pattern orientation on the face, radians.
        seed: seed of the instance's noise.
        decor: pattern on the front face.
    """

    family: Family
    color_a: tuple[float, float, float]
    color_b: tuple[float, float, float]
    scale: float
    angle: float
    seed: int
    decor: Decor = Decor.NONE


def _hex(code: str) -> tuple[float, float, float]:
    return tuple(int(code[k : k + 2], 16) / 255.0 for k in (1, 3, 5))  # type: ignore[return-value]


# Palettes are shared across classes (see the module docstring).
PAINTS = tuple(
    _hex(c)
    for c in (
        "#eeeae2",
        "#f4f4f0",
        "#d9d4c7",
        "#c9d3d8",
        "#e3d5bd",
        "#b8bcb6",
        "#d8c8b0",
        "#a9b7a0",
        "#e6e0cf",
    )
)
WOODS = tuple(
    _hex(c) for c in ("#c49a6c", "#8b5a2b", "#a0522d", "#d8b98a", "#6b4423", "#e0c9a6", "#9c7a54", "#5c4033")
)
FABRICS = tuple(
    _hex(c)
    for c in (
        "#8a8d91",
        "#c8b9a6",
        "#3f4a5a",
        "#7a2e2e",
        "#5a6b4f",
        "#d9d2c5",
        "#4b4b4b",
        "#b07d4f",
        "#e8e4da",
        "#6e5a7e",
    )
)
DARKS = tuple(_hex(c) for c in ("#2b2b2b", "#3a3632", "#1f2328", "#4a4440", "#595959"))
METALS = tuple(_hex(c) for c in ("#b5b8bb", "#8e9296", "#d0d0cc", "#6f7275", "#c2b280"))
ALL_SURFACES = PAINTS + WOODS + FABRICS + DARKS + METALS


def jitter_color(rng: np.random.Generator, color: tuple[float, float, float], amount: float = 0.06):
    """Per-instance variation of a palette colour (brightness and a small hue shift)."""
    c = np.asarray(color, dtype=np.float64)
    c = c * rng.uniform(1.0 - amount, 1.0 + amount) + rng.normal(0.0, amount / 3.0, size=3)
    return tuple(float(x) for x in np.clip(c, 0.02, 0.98))


def make_material(
    rng: np.random.Generator,
    family: Family,
    palette: tuple[tuple[float, float, float], ...],
    *,
    secondary: tuple[tuple[float, float, float], ...] | None = None,
    scale: tuple[float, float] = (0.1, 0.3),
    decor: Decor = Decor.NONE,
) -> Material:
    color_a = jitter_color(rng, palette[int(rng.integers(len(palette)))])
    if secondary is None:
        factor = rng.uniform(0.6, 0.85)
        color_b = tuple(float(x * factor) for x in color_a)
    else:
        color_b = jitter_color(rng, secondary[int(rng.integers(len(secondary)))])
    return Material(
        family=family,
        color_a=color_a,  # type: ignore[arg-type]
        color_b=color_b,  # type: ignore[arg-type]
        scale=float(rng.uniform(*scale)),
        angle=float(rng.choice([0.0, np.pi / 2]) + rng.normal(0.0, 0.05)),
        seed=int(rng.integers(1 << 30)),
        decor=decor,
    )


# ---------------------------------------------------------------------------------------------
# Evaluation


def _mix(a, b, t: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float32)
    b = np.asarray(b, dtype=np.float32)
    return a[None, :] + (b - a)[None, :] * t[:, None]


def _base(m: Material, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    ca, sd = np.cos(m.angle), np.sin(m.angle)
    ur = (ca * u + sd * v).astype(np.float32)
    vr = (-sd * u + ca * v).astype(np.float32)
    s = np.float32(max(m.scale, 1e-3))
    fam = m.family
    if fam == Family.PAINT:
        t = 0.6 * fbm(ur / (4 * s), vr / (4 * s), m.seed, octaves=2) + 0.4 * cell_noise(
            ur * 80, vr * 80, m.seed + 7
        )
        return _mix(m.color_a, m.color_b, 0.25 * t)
    if fam == Family.WOOD:
        warp = fbm(ur / (6 * s), vr / s, m.seed, octaves=2)
        rings = np.sin((vr / (0.15 * s) + 6.0 * warp) * np.float32(2 * np.pi)) * 0.5 + 0.5
        streak = cell_noise(ur * 3.0, vr * 120.0, m.seed + 3)  # fine streaks along the grain
        t = 0.55 * rings**3 + 0.35 * streak
        # Planks: a thin dark seam every few grain periods.
        seam = (np.mod(vr / (1.2 * s + 0.05), 1.0) < 0.02).astype(np.float32)
        return _mix(m.color_a, m.color_b, np.clip(t + seam, 0, 1))
    if fam == Family.FABRIC:
        p = np.float32(0.008 + 0.015 * s)
        weave = (np.sin(ur / p) * np.sin(vr / p)) * 0.5 + 0.5
        mottle = fbm(ur / (3 * s), vr / (3 * s), m.seed, octaves=2)
        t = 0.2 * weave + 0.55 * mottle
        return _mix(m.color_a, m.color_b, t)
    if fam == Family.TILES:
        size = np.float32(0.2 + 1.5 * s)
        fu = np.mod(ur / size, 1.0)
        fv = np.mod(vr / size, 1.0)
        grout = (np.minimum(fu, fv) < 0.03).astype(np.float32)
        tile = _hash01(np.floor(ur / size).astype(np.int64), np.floor(vr / size).astype(np.int64), m.seed)
        speck = cell_noise(ur * 60, vr * 60, m.seed + 5)
        base = _mix(m.color_a, np.asarray(m.color_a) * 0.85, 0.5 * tile + 0.3 * speck)
        grout_color = np.asarray(m.color_b, dtype=np.float32) * 0.8
        return base * (1 - grout[:, None]) + grout_color[None, :] * grout[:, None]
    if fam == Family.CARPET:
        t = 0.6 * cell_noise(ur * 250, vr * 250, m.seed) + 0.4 * fbm(ur / s, vr / s, m.seed + 1, octaves=2)
        return _mix(m.color_a, m.color_b, t)
    if fam == Family.LEATHER:
        crease = np.abs(fbm(ur / (0.5 * s), vr / (0.5 * s), m.seed, octaves=2) - 0.5) * 2.0
        t = 0.6 * (1 - crease) ** 4 + 0.2 * cell_noise(ur * 150, vr * 150, m.seed + 2)
        return _mix(m.color_a, m.color_b, t)
    if fam == Family.METAL:
        t = 0.6 * value_noise(ur * 2.0, vr * 300.0, m.seed) + 0.4 * value_noise(ur * 10, vr * 10, m.seed + 1)
        return _mix(m.color_a, m.color_b, t)
    # PLASTIC
    t = 0.1 * cell_noise(ur * 40, vr * 40, m.seed)
    return _mix(m.color_a, m.color_b, t)


def _frame_mask(u, v, half_u, half_v, width) -> np.ndarray:
    return (np.abs(u) > half_u - width) | (np.abs(v) > half_v - width)


def _decor(m: Material, u, v, half_u: float, half_v: float, base: np.ndarray) -> np.ndarray:
    d = m.decor
    dark = np.asarray(m.color_b, dtype=np.float32) * 0.45
    if d == Decor.CABINET_DOORS:
        n_doors = 2 if half_u > 0.3 else 1
        seams = np.abs(np.mod((u + half_u) / (2 * half_u / n_doors) + 0.5, 1.0) - 0.5) * (
            2 * half_u / n_doors
        )
        line = (seams < 0.004) | _frame_mask(u, v, half_u, half_v, 0.012)
        handle = (np.abs(seams - 0.04) < 0.008) & (np.abs(v - 0.3 * half_v) < 0.06)
        out = base.copy()
        out[line] *= 0.55
        out[handle] = dark
        return out
    if d == Decor.DRAWERS:
        n = max(2, int(round(half_v / 0.15)))
        row = np.abs(np.mod((v + half_v) / (2 * half_v / n), 1.0) - 0.5)
        line = (row > 0.48) | _frame_mask(u, v, half_u, half_v, 0.01)
        handle = (row < 0.08) & (np.abs(u) < 0.07)
        out = base.copy()
        out[line] *= 0.55
        out[handle] = dark
        return out
    if d == Decor.DOOR_PANELS:
        out = base.copy()
        inner_u, inner_v = half_u - 0.1, half_v - 0.12
        for centre in (-0.45 * half_v, 0.45 * half_v):
            dv = np.abs(v - centre)
            ring = (np.abs(np.abs(u) - inner_u) < 0.012) & (dv < 0.4 * half_v) | (
                (np.abs(dv - 0.4 * half_v) < 0.012) & (np.abs(u) < inner_u)
            )
            out[ring & (np.abs(v) < inner_v + 0.1)] *= 0.7
        knob = (u - (half_u - 0.07)) ** 2 + (v + 0.05 * half_v) ** 2 < 0.03**2
        out[knob] = np.asarray(METALS[0], dtype=np.float32) * 0.8
        return out
    if d == Decor.BOOKS:
        # Spines of random widths and colours, of random heights, on a dark back panel.
        width = 0.025 + 0.02 * value_noise(u * 3.0, np.zeros_like(u), m.seed + 9)
        k = np.floor((u + half_u) / width + 0.3 * value_noise(u * 2, u * 0, m.seed + 4)).astype(np.int64)
        r = _hash01(k, np.zeros_like(k), m.seed)
        g = _hash01(k, np.ones_like(k), m.seed)
        pal = np.asarray(FABRICS + PAINTS + WOODS + DARKS, dtype=np.float32)
        colour = pal[(r * len(pal)).astype(np.int64) % len(pal)]
        height = 0.55 + 0.45 * g
        above = (v + half_v) / (2 * half_v) > height
        gap = np.mod((u + half_u) / width, 1.0) < 0.06
        band = np.abs((v + half_v) / (2 * half_v) - 0.7 * height) < 0.04
        colour = colour * (0.9 + 0.2 * value_noise(u * 200, v * 30, m.seed + 1))[:, None]
        colour[band] = 0.8 * colour[band] + 0.2
        colour[above | gap] = np.asarray(DARKS[0], dtype=np.float32)
        return colour
    if d == Decor.PICTURE:
        x = (u + half_u) / (2 * half_u)
        y = (v + half_v) / (2 * half_v)
        rng = np.random.default_rng(m.seed)
        cols = rng.uniform(0.05, 0.95, size=(4, 3)).astype(np.float32)
        t1 = fbm(x * 3, y * 3, m.seed + 11)
        t2 = fbm(x * 5 + 7, y * 5, m.seed + 12)
        horizon = rng.uniform(0.3, 0.7)
        sky = _mix(cols[0], cols[1], y)
        ground = _mix(cols[2], cols[3], t1)
        img = np.where((y + 0.1 * t2 < horizon)[:, None], ground, sky)
        blob = ((x - rng.uniform(0.2, 0.8)) ** 2 + (y - rng.uniform(0.3, 0.8)) ** 2) < rng.uniform(
            0.005, 0.04
        )
        img[blob] = cols[3] * 0.5 + 0.4
        frame = _frame_mask(u, v, half_u, half_v, 0.025 + 0.02 * (m.seed % 3))
        img[frame] = base[frame]
        return img
    if d == Decor.WINDOW:
        y = (v + half_v) / (2 * half_v)
        sky = _mix((0.98, 0.98, 1.0), (0.65, 0.8, 0.95), y)
        hills = y < 0.35 + 0.1 * fbm(u * 1.5, u * 0, m.seed, octaves=2)
        trees = _mix((0.35, 0.45, 0.3), (0.55, 0.6, 0.5), fbm(u * 8, v * 8, m.seed + 1))
        glass = np.where(hills[:, None], trees, sky)
        bar = _frame_mask(u, v, half_u, half_v, 0.05) | (np.abs(u) < 0.02) | (np.abs(v - 0.2 * half_v) < 0.02)
        glass[bar] = base[bar]
        return glass
    if d == Decor.SCREEN:
        inner = ~_frame_mask(u, v, half_u, half_v, 0.015)
        out = base.copy()
        glow = _mix((0.05, 0.06, 0.09), (0.25, 0.3, 0.4), np.clip((u + v) / (2 * half_u) + 0.5, 0, 1) * 0.5)
        out[inner] = glow[inner]
        return out
    if d == Decor.CURTAIN_FOLDS:
        fold = np.sin((u / 0.06 + 0.5 * value_noise(u * 5, v * 0.5, m.seed)) * np.float32(np.pi)) * 0.5 + 0.5
        return base * (0.7 + 0.3 * fold)[:, None]
    return base


def albedo(m: Material, u: np.ndarray, v: np.ndarray, face: np.ndarray, half_u, half_v) -> np.ndarray:
    """Colour of ``N`` surface points of one part.

    Args:
        m: the part's material.
        u, v: ``(N,)`` face coordinates in metres, centred on the face (``|u| <= half_u``).
        face: ``(N,)`` :class:`Face` codes; the decor is drawn on FRONT faces only.
        half_u, half_v: ``(N,)`` half extents of each point's face.

    Returns:
        ``(N, 3)`` float32 sRGB albedo in [0, 1].
    """
    u = np.asarray(u, dtype=np.float32)
    v = np.asarray(v, dtype=np.float32)
    out = _base(m, u, v)
    if m.decor != Decor.NONE and len(u):
        front = np.asarray(face) == Face.FRONT
        if front.any():
            hu = np.asarray(half_u, dtype=np.float32)[front]
            hv = np.asarray(half_v, dtype=np.float32)[front]
            # Faces of one part share extents per face; decor uses the front face's (a scalar).
            out[front] = _decor(m, u[front], v[front], float(hu.max()), float(hv.max()), out[front])
    return np.clip(out, 0.0, 1.0)
