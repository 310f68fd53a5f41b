"""Pictures of 3D detections: true and predicted boxes over the points, seen from above."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ppkt.data.boxes import Boxes3D


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
    """``(H, W, 3)`` uint8 top-down picture: points (grey, darker = higher), true boxes (green,
    class name) and predicted boxes scoring at least ``score_threshold`` (red, dashed, class and
    score). Needs matplotlib (Agg backend)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as err:
        raise ImportError("detection pictures need matplotlib: pip install 'ppkt[viz]'") from err
    points = np.asarray(points, dtype=np.float32).reshape(-1, 3)
    if len(points) > max_points:
        points = points[np.random.default_rng(0).choice(len(points), max_points, replace=False)]
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
    for boxes, keep, colour, style in (
        (truth, np.ones(len(truth), dtype=bool), "tab:green", "-"),
        (predicted, np.asarray(scores) >= score_threshold, "tab:red", "--"),
    ):
        footprint = boxes.corners()[:, :4, :2]
        for k in np.flatnonzero(keep):
            ring = np.vstack([footprint[k], footprint[k][:1]])
            ax.plot(ring[:, 0], ring[:, 1], style, color=colour, lw=1.4)
            text = class_names[int(boxes.labels[k])]
            if boxes is predicted:
                text += f" {float(scores[k]):.2f}"
            ax.text(*footprint[k].max(0), text, color=colour, fontsize=7, ha="right", va="bottom")
    ax.set_aspect("equal")
    ax.set_xlabel("x (m)")
    ax.set_ylabel("y (m)")
    ax.set_title(title or "green: ground truth, red dashed: predictions", fontsize=9)
    fig.tight_layout()
    fig.canvas.draw()
    picture = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    plt.close(fig)
    return picture
