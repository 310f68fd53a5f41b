"""The figures: feature PCA, similarity maps, correspondence overlays, segmentations, curves.

Each function takes plain arrays and returns an ``(H, W, 3)`` uint8 picture (callers save it
with :func:`ppkt.viz.panels.save_png`), so the same figure serves the CLI, the demo and tests.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ppkt.viz.colors import class_palette, colormap, label_colors
from ppkt.viz.panels import hstack, legend, vstack
from ppkt.viz.pca import fit_pca, pca_colors
from ppkt.viz.render import View, orbit_view, rasterize_points


def _as_numpy(x) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def _pixel_rows(pixel_feats: np.ndarray) -> np.ndarray:
    """``(D, h, w)`` feature map -> ``(h*w, D)`` rows."""
    d = pixel_feats.shape[0]
    return pixel_feats.reshape(d, -1).T


def _resize_nearest(image: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    h, w = image.shape[:2]
    rows = np.minimum((np.arange(hw[0]) + 0.5) * h / hw[0], h - 1).astype(int)
    cols = np.minimum((np.arange(hw[1]) + 0.5) * w / hw[1], w - 1).astype(int)
    return image[rows][:, cols]


def feature_pca_figure(
    points: np.ndarray,
    point_feats: np.ndarray | torch.Tensor,
    image: np.ndarray,
    pixel_feats: np.ndarray | torch.Tensor,
    *,
    point_colors: np.ndarray | None = None,
    view: View | None = None,
    render_hw: tuple[int, int] = (360, 480),
    center_separately: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Student point features and teacher pixel features, coloured by their principal components.

    When both live in the same embedding space (the student's projection head and the teacher's
    projection layer, both ``D``-wide) one PCA basis colours both, so matching colours mean
    matching features. Otherwise each side gets its own basis.

    Args:
        points: ``(N, 3)`` point positions.
        point_feats: ``(N, D)`` per-point features.
        image: ``(H, W, 3)`` uint8 frame.
        pixel_feats: ``(D', h, w)`` pixel feature map (any resolution; shown resized to the image).
        point_colors: optional ``(N, 3)`` uint8 RGB of the points, rendered as a reference panel.
        center_separately: with a shared basis, subtract each side's own mean first. Two
            contrastively aligned sets of embeddings usually sit apart (the "modality gap"); that
            offset would otherwise be the first principal component and paint each side in one
            flat colour. Colours then compare directions away from each side's mean.

    Returns:
        ``(figure, point_pca_colors (N, 3) uint8)``.
    """
    point_feats = _as_numpy(point_feats).astype(np.float64)
    pixel_rows = _pixel_rows(_as_numpy(pixel_feats).astype(np.float64))
    if point_feats.shape[1] == pixel_rows.shape[1]:
        if center_separately:
            point_feats = point_feats - point_feats.mean(0)
            pixel_rows = pixel_rows - pixel_rows.mean(0)
        joint = np.concatenate([point_feats, pixel_rows])
        basis = fit_pca(joint)
        point_rgb = pca_colors(point_feats, basis, scale_from=joint)
        pixel_rgb = pca_colors(pixel_rows, basis, scale_from=joint)
        titles = ("student points (shared PCA)", "teacher pixels (shared PCA)")
    else:
        point_rgb = pca_colors(point_feats)
        pixel_rgb = pca_colors(pixel_rows)
        titles = ("student points (PCA)", "teacher pixels (PCA)")
    h, w = _as_numpy(pixel_feats).shape[1:]
    pixel_image = _resize_nearest(pixel_rgb.reshape(h, w, 3), image.shape[:2])
    view = view or orbit_view(points, render_hw)
    student, _ = rasterize_points(points, point_rgb, view)
    panels, names = [image, pixel_image, student], ["frame", titles[1], titles[0]]
    if point_colors is not None:
        panels.append(rasterize_points(points, point_colors, view)[0])
        names.append("points (RGB)")
    panels = [_resize_nearest(p, (render_hw[0], int(p.shape[1] * render_hw[0] / p.shape[0]))) for p in panels]
    return hstack(panels, names), point_rgb


def similarity_figure(
    query: int,
    points: np.ndarray,
    point_feats: np.ndarray | torch.Tensor,
    image: np.ndarray,
    pixel_feats: np.ndarray | torch.Tensor,
    query_uv: tuple[float, float],
    *,
    view: View | None = None,
    render_hw: tuple[int, int] = (360, 480),
) -> np.ndarray:
    """Cosine similarity from one chosen point: to every pixel (teacher side) and every point (student).

    Teacher side: the teacher feature at the query point's pixel ``query_uv`` against all pixels.
    Student side: the query point's feature against all points. The query is marked in red.
    """
    pf = torch.as_tensor(_as_numpy(point_feats), dtype=torch.float64)
    pf = torch.nn.functional.normalize(pf, dim=1)
    point_sim = (pf @ pf[query]).numpy()
    fmap = torch.as_tensor(_as_numpy(pixel_feats), dtype=torch.float64)  # (D, h, w)
    d, h, w = fmap.shape
    H, W = image.shape[:2]
    # feature cell containing the query pixel (stride = image size / map size; conventions.md)
    ci = min(int((query_uv[1] + 0.5) * h / H), h - 1)
    cj = min(int((query_uv[0] + 0.5) * w / W), w - 1)
    rows = torch.nn.functional.normalize(fmap.reshape(d, -1).T, dim=1)
    pixel_sim = (rows @ rows[ci * w + cj]).numpy().reshape(h, w)
    pixel_heat = _resize_nearest(colormap(pixel_sim, -1.0, 1.0), (H, W)).copy()
    u, v = int(round(query_uv[0])), int(round(query_uv[1]))
    pixel_heat[max(v - 3, 0) : v + 4, max(u - 3, 0) : u + 4] = (255, 0, 0)
    view = view or orbit_view(points, render_hw)
    point_heat, _ = rasterize_points(points, colormap(point_sim, -1.0, 1.0), view)
    red = np.array([[255, 0, 0]], np.uint8)
    marker, _ = rasterize_points(points[query : query + 1], red, view, radius_px=4)
    point_heat = np.where((marker != 255).any(-1, keepdims=True), marker, point_heat)
    framed = image.copy()
    framed[max(v - 3, 0) : v + 4, max(u - 3, 0) : u + 4] = (255, 0, 0)
    panels = [framed, pixel_heat, point_heat]
    panels = [_resize_nearest(p, (render_hw[0], int(p.shape[1] * render_hw[0] / p.shape[0]))) for p in panels]
    return hstack(panels, ["query", "teacher: cosine to every pixel", "student: cosine to every point"])


def correspondence_overlay(
    image: np.ndarray, uv: np.ndarray, depth: np.ndarray, radius_px: int = 1
) -> np.ndarray:
    """Projected points drawn on the image, coloured by depth (near = dark), to check calibration."""
    out = (np.asarray(image, dtype=np.float64) * 0.5 + 127).astype(np.uint8)  # faded so points stand out
    uv = _as_numpy(uv)
    depth = _as_numpy(depth)
    if len(uv) == 0:
        return out
    colors = colormap(depth)
    order = np.argsort(-depth)  # draw far first so near points stay on top
    h, w = out.shape[:2]
    base = np.floor(uv[order] + 0.5).astype(int)
    for di in range(-radius_px, radius_px + 1):
        for dj in range(-radius_px, radius_px + 1):
            i, j = base[:, 1] + di, base[:, 0] + dj
            inside = (i >= 0) & (i < h) & (j >= 0) & (j < w)
            out[i[inside], j[inside]] = colors[order][inside]
    return out


def segmentation_figure(
    points: np.ndarray,
    predicted: np.ndarray,
    ground_truth: np.ndarray,
    class_names: Sequence[str],
    *,
    view: View | None = None,
    render_hw: tuple[int, int] = (420, 560),
) -> np.ndarray:
    """Predicted vs ground-truth labels rendered from the same viewpoint, with a class legend."""
    n = len(class_names)
    view = view or orbit_view(points, render_hw)
    pred_img, _ = rasterize_points(points, label_colors(predicted, n), view)
    gt_img, _ = rasterize_points(points, label_colors(ground_truth, n), view)
    present = sorted(set(np.unique(ground_truth).tolist()) | set(np.unique(predicted).tolist()))
    present = [c for c in present if 0 <= c < n]
    key = legend([class_names[c] for c in present], class_palette(n)[present]) if present else None
    panels = [pred_img, gt_img] + ([key] if key is not None else [])
    return hstack(panels, ["prediction", "ground truth"] + (["classes"] if key is not None else []))


def read_metrics(path: str | Path) -> list[dict]:
    """Read a run's ``metrics.jsonl`` (one JSON object per line; unreadable lines name the file)."""
    records = []
    for k, line in enumerate(Path(path).read_text().splitlines()):
        if line.strip():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}:{k + 1}: not a JSON line ({err.msg})") from err
    return records


def training_curves_figure(records: Sequence[dict], keys: Sequence[str] | None = None) -> np.ndarray:
    """Plot numeric metrics against ``step`` (one subplot per key); needs matplotlib (Agg backend)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as err:
        raise ImportError("training curves need matplotlib: pip install 'ppkt[viz]'") from err
    if keys is None:
        numeric = {k for r in records for k, v in r.items() if isinstance(v, (int, float))}
        keys = sorted(numeric - {"step", "time"})
    if not keys:
        raise ValueError("training_curves_figure: no numeric metrics to plot")
    fig, axes = plt.subplots(len(keys), 1, figsize=(7, 2.4 * len(keys)), squeeze=False, dpi=90)
    for ax, key in zip(axes[:, 0], keys, strict=True):
        xs = [r.get("step", i) for i, r in enumerate(records) if isinstance(r.get(key), (int, float))]
        ys = [r[key] for r in records if isinstance(r.get(key), (int, float))]
        ax.plot(xs, ys, lw=1.2)
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
    axes[-1, 0].set_xlabel("step")
    fig.tight_layout()
    fig.canvas.draw()
    picture = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    plt.close(fig)
    return picture


__all__ = [
    "correspondence_overlay",
    "feature_pca_figure",
    "read_metrics",
    "segmentation_figure",
    "similarity_figure",
    "training_curves_figure",
    "vstack",
]
