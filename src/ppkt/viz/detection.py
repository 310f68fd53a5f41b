"""Pictures of 3D detections: true and predicted boxes over the points seen from above, and the
same boxes drawn into a photo of the scene.

Both pictures colour a box by its class (``ppkt.viz.colors.class_palette``, the same colour for a
class in every picture) and tell truth from prediction by the line: solid = ground truth, dashed
= prediction.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ppkt.data.boxes import Boxes3D, SceneCamera
from ppkt.geometry.camera import project_points, transform_points
from ppkt.viz.colors import class_palette
from ppkt.viz.panels import caption, hstack, legend

BOX_EDGES = np.array(
    [[0, 1], [1, 2], [2, 3], [3, 0], [4, 5], [5, 6], [6, 7], [7, 4], [0, 4], [1, 5], [2, 6], [3, 7]]
)
"""The 12 edges of a box as pairs of :meth:`Boxes3D.corners` indices: bottom ring, top ring, uprights."""

NEAR_PLANE = 0.01
"""Metres: edges are cut where they cross ``z = NEAR_PLANE`` in the camera frame. Projecting a
point behind the camera flips it to the other side of the image (x / z changes sign), so an edge
that leaves the view behind the camera would otherwise be drawn across the whole picture."""


def box_edges_uv(
    boxes: Boxes3D, K, camera_from_world, image_hw: Sequence[int], near: float = NEAR_PLANE
) -> tuple[np.ndarray, np.ndarray]:
    """The visible pieces of every box edge in an image: ``(segments (M, 2, 2), box (M,))``.

    Each edge is clipped in 3D to the half-space in front of the near plane (``z >= near``, camera
    frame; docs/conventions.md), projected with :func:`ppkt.geometry.camera.project_points`, then
    clipped to the image rectangle ``[-0.5, W - 0.5] x [-0.5, H - 0.5]`` (pixel centres at integer
    ``uv``). ``segments[m]`` holds the ``uv`` floats of the piece's two ends, ``box[m]`` the index
    of its box; edges wholly behind the plane or outside the image give no segment.
    """
    if not near > 0:
        raise ValueError(f"near must be > 0, got {near}")
    H, W = int(image_hw[0]), int(image_hw[1])
    n = len(boxes)
    if n == 0:
        return np.zeros((0, 2, 2)), np.zeros(0, dtype=np.int64)
    corners = torch.as_tensor(boxes.corners(), dtype=torch.float64)
    cam = transform_points(camera_from_world, corners.reshape(-1, 3)).reshape(n, 8, 3)
    a, b = cam[:, BOX_EDGES[:, 0]].reshape(-1, 3), cam[:, BOX_EDGES[:, 1]].reshape(-1, 3)
    box = np.repeat(np.arange(n), len(BOX_EDGES))
    za, zb = a[:, 2:], b[:, 2:]
    seen = ((za >= near) | (zb >= near)).reshape(-1)
    # The end behind the plane moves along the edge onto it; the other end is then in front, so
    # the denominator is not zero where it is used.
    span = torch.where(zb == za, torch.ones_like(za), zb - za)
    on_plane = a + (near - za) / span * (b - a)
    a, b = torch.where(za < near, on_plane, a), torch.where(zb < near, on_plane, b)
    uv_a = project_points(a[seen], K, (H, W))[0].numpy()
    uv_b = project_points(b[seen], K, (H, W))[0].numpy()
    segments, inside = _clip_to_rectangle(uv_a, uv_b, (-0.5, -0.5, W - 0.5, H - 0.5))
    return segments[inside], box[seen][inside]


def _clip_to_rectangle(
    start: np.ndarray, end: np.ndarray, rect: tuple[float, float, float, float]
) -> tuple[np.ndarray, np.ndarray]:
    """Liang-Barsky: ``(M, 2)`` segment ends cut to ``rect = (u0, v0, u1, v1)``; returns the cut
    ``(M, 2, 2)`` segments and an ``(M,)`` mask of those with a piece inside."""
    d = end - start
    lo, hi = np.zeros(len(start)), np.ones(len(start))
    keep = np.ones(len(start), dtype=bool)
    for p, q in (
        (-d[:, 0], start[:, 0] - rect[0]),
        (d[:, 0], rect[2] - start[:, 0]),
        (-d[:, 1], start[:, 1] - rect[1]),
        (d[:, 1], rect[3] - start[:, 1]),
    ):
        parallel = p == 0
        keep &= ~(parallel & (q < 0))
        with np.errstate(divide="ignore", invalid="ignore"):
            r = np.where(parallel, 0.0, q / np.where(parallel, 1.0, p))
        lo = np.where(~parallel & (p < 0), np.maximum(lo, r), lo)
        hi = np.where(~parallel & (p > 0), np.minimum(hi, r), hi)
    keep &= lo <= hi
    segments = np.stack([start + lo[:, None] * d, start + hi[:, None] * d], axis=1)
    return segments, keep


def _dashes(segment: np.ndarray, dash: float, gap: float) -> list[np.ndarray]:
    """Pieces of one ``(2, 2)`` segment: ``dash`` pixels drawn, ``gap`` left out, from its start."""
    length = float(np.linalg.norm(segment[1] - segment[0]))
    if length == 0:
        return []
    pieces, t = [], 0.0
    while t < length:
        e = min(t + dash, length)
        pieces.append(segment[0] + (segment[1] - segment[0]) * np.array([[t], [e]]) / length)
        t = e + gap
    return pieces


def draw_boxes_in_image(
    camera: SceneCamera,
    truth: Boxes3D,
    predicted: Boxes3D,
    scores: np.ndarray,
    class_names: Sequence[str],
    *,
    score_threshold: float = 0.3,
    line_width: int | None = None,
) -> np.ndarray:
    """``camera.image`` with the boxes drawn in (same size, uint8): true boxes solid, predicted
    boxes scoring at least ``score_threshold`` dashed, each in its class colour and named (with
    the score for predictions) at its highest visible corner."""
    from PIL import Image, ImageDraw, ImageFont

    H, W = camera.hw
    width = line_width or max(2, round(max(H, W) / 320))
    dash, gap = 4.0 * width + 4, 2.0 * width + 3
    palette = class_palette(len(class_names))
    canvas = Image.fromarray(np.ascontiguousarray(camera.image[..., :3]))
    draw = ImageDraw.Draw(canvas)
    try:
        font = ImageFont.load_default(size=max(10, round(max(H, W) / 50)))
    except TypeError:  # Pillow < 10.1 has no sized default font
        font = ImageFont.load_default()
    shown = np.asarray(scores, dtype=np.float64) >= score_threshold
    for boxes, keep, dashed in ((truth, np.ones(len(truth), bool), False), (predicted, shown, True)):
        boxes = boxes.select(np.flatnonzero(keep))
        kept_scores = np.asarray(scores, dtype=np.float64)[keep] if dashed else None
        segments, owner = box_edges_uv(boxes, camera.K, camera.camera_from_world, (H, W))
        for segment, k in zip(segments, owner, strict=True):
            colour = tuple(int(c) for c in palette[int(boxes.labels[k])])
            for piece in _dashes(segment, dash, gap) if dashed else [segment]:
                # PIL truncates float coordinates; the pixel of uv is floor(uv + 0.5) (docs/conventions.md).
                a, b = np.floor(piece + 0.5).astype(int).tolist()
                draw.line([tuple(a), tuple(b)], fill=colour, width=width)
        for k in np.unique(owner):
            ends = segments[owner == k].reshape(-1, 2)
            u, v = ends[np.argmin(ends[:, 1])]
            text = class_names[int(boxes.labels[k])]
            if dashed:
                text += f" {kept_scores[k]:.2f}"
            colour = tuple(int(c) for c in palette[int(boxes.labels[k])])
            draw.text(
                (float(u), float(v) - 2), text, fill=colour, font=font, anchor="lb",
                stroke_width=1, stroke_fill=(0, 0, 0),
            )  # fmt: skip
    return np.asarray(canvas)


def detection_image_figure(
    camera: SceneCamera,
    truth: Boxes3D,
    predicted: Boxes3D,
    scores: np.ndarray,
    class_names: Sequence[str],
    *,
    score_threshold: float = 0.3,
    title: str = "",
) -> np.ndarray:
    """:func:`draw_boxes_in_image` with a caption (``title``, which line is which) and a legend of
    the classes drawn."""
    picture = draw_boxes_in_image(
        camera, truth, predicted, scores, class_names, score_threshold=score_threshold
    )
    shown = np.asarray(scores) >= score_threshold
    classes = sorted({int(c) for c in truth.labels} | {int(c) for c in predicted.labels[shown]})
    if classes:
        names = [class_names[c] for c in classes]
        picture = hstack([picture, legend(names, class_palette(len(class_names))[classes])])
    text = f"{title}\n" if title else ""
    text += f"{camera.name}: solid = ground truth, dashed = predictions scoring >= {score_threshold:g}"
    return caption(picture, text)


def detection_figure(
    points: np.ndarray,
    truth: Boxes3D,
    predicted: Boxes3D,
    scores: np.ndarray,
    class_names: Sequence[str],
    *,
    score_threshold: float = 0.3,
    title: str = "",
    max_points: int = 40000,
) -> np.ndarray:
    """``(H, W, 3)`` uint8 top-down picture: points (grey, darker = higher), true boxes (solid)
    and predicted boxes scoring at least ``score_threshold`` (dashed, with the score), in their
    class colours and named. Needs matplotlib (Agg backend)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as err:
        raise ImportError("detection pictures need matplotlib: pip install 'ppkt[viz]'") from err
    points = np.asarray(points, dtype=np.float32).reshape(-1, 3)
    if len(points) > max_points:
        points = points[np.random.default_rng(0).choice(len(points), max_points, replace=False)]
    palette = class_palette(len(class_names)) / 255.0
    fig, ax = plt.subplots(figsize=(7, 7), dpi=90)
    order = np.argsort(points[:, 2])
    ax.scatter(
        points[order, 0],
        points[order, 1],
        c=points[order, 2],
        cmap="Greys",
        s=0.5,
        vmin=-0.5,
        vmax=3.0,
        linewidths=0,
    )
    for boxes, keep, style in (
        (truth, np.ones(len(truth), dtype=bool), "-"),
        (predicted, np.asarray(scores) >= score_threshold, "--"),
    ):
        footprint = boxes.corners()[:, :4, :2]
        for k in np.flatnonzero(keep):
            colour = palette[int(boxes.labels[k])]
            ring = np.vstack([footprint[k], footprint[k][:1]])
            ax.plot(ring[:, 0], ring[:, 1], style, color=colour, lw=1.6)
            text = class_names[int(boxes.labels[k])]
            if boxes is predicted:
                text += f" {float(scores[k]):.2f}"
            ax.text(*footprint[k].max(0), text, color=colour, fontsize=7, ha="right", va="bottom")
    ax.plot([], [], "-", color="k", label="ground truth")
    ax.plot([], [], "--", color="k", label=f"predictions >= {score_threshold:g}")
    ax.legend(loc="upper right", fontsize=7)
    ax.set_aspect("equal")
    ax.set_xlabel("x (m)")
    ax.set_ylabel("y (m)")
    ax.set_title(title or "solid: ground truth, dashed: predictions (class colours)", fontsize=9)
    fig.tight_layout()
    fig.canvas.draw()
    picture = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    plt.close(fig)
    return picture
