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
from PIL import Image

from ppkt.viz.colors import class_palette, colormap, label_colors
from ppkt.viz.panels import caption, colorbar, hstack, legend, vstack
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
    pixel_map = _upsample_to(_as_numpy(pixel_feats).astype(np.float64), image.shape[:2])
    pixel_rows = _pixel_rows(pixel_map)
    if point_feats.shape[1] == pixel_rows.shape[1]:
        if center_separately:
            point_feats = point_feats - point_feats.mean(0)
            pixel_rows = pixel_rows - pixel_rows.mean(0)
        joint = np.concatenate([point_feats, pixel_rows])
        basis = fit_pca(joint)
        point_rgb = pca_colors(point_feats, basis, scale_from=joint)
        pixel_rgb = pca_colors(pixel_rows, basis, scale_from=joint)
        shared = True
    else:
        point_rgb = pca_colors(point_feats)
        pixel_rgb = pca_colors(pixel_rows)
        shared = False
    h, w = pixel_map.shape[1:]
    pixel_image = _resize_nearest(pixel_rgb.reshape(h, w, 3), image.shape[:2])
    view = view or orbit_view(points, render_hw)
    student, _ = rasterize_points(points, point_rgb, view)
    panels = [image, pixel_image, student]
    names = ["the image", "2D image network: pixel features", "3D network: point features"]
    if point_colors is not None:
        panels.append(rasterize_points(points, point_colors, view)[0])
        names.append("the same points in their own colours")
    panels = [_resize_nearest(p, (render_hw[0], int(p.shape[1] * render_hw[0] / p.shape[0]))) for p in panels]
    if shared:
        text = (
            "Features as colours (first 3 principal components of one PCA shared by both networks). "
            "Matching colours mean matching features: where a point has the colour of the pixels it "
            "projects to, the 3D network has learned what the image network sees there."
        )
    else:
        text = (
            "Features as colours, each network with its own PCA (their widths differ): the colours "
            "themselves do not compare, but regions that share a colour in one panel are what that "
            "network groups together."
        )
    return caption(hstack(panels, names), text), point_rgb


def _upsample_to(feature_map: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """A ``(C, h, w)`` feature map bilinearly upsampled to ``hw`` when smaller (pixel centres
    aligned, ``align_corners=False``), so a stride-16 map reads at pixel resolution, not as blocks."""
    c, h, w = feature_map.shape
    if h >= hw[0] and w >= hw[1]:
        return feature_map
    x = torch.from_numpy(np.ascontiguousarray(feature_map))[None]
    up = torch.nn.functional.interpolate(x, size=tuple(hw), mode="bilinear", align_corners=False)
    return up[0].numpy()


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
    # Each side on its own scale, from its lowest similarity to 1, with its colour bar: the teacher's
    # pixel embeddings share a large common component (all cosines above ~0.5), so on a common
    # -1..1 scale its map would look uniform and hide where the query's object is.
    pixel_lo, point_lo = _similarity_floor(pixel_sim), _similarity_floor(point_sim)
    pixel_heat = _resize_nearest(colormap(pixel_sim, pixel_lo, 1.0), (H, W)).copy()
    u, v = int(round(query_uv[0])), int(round(query_uv[1]))
    pixel_heat[max(v - 3, 0) : v + 4, max(u - 3, 0) : u + 4] = (255, 0, 0)
    view = view or orbit_view(points, render_hw)
    point_heat, _ = rasterize_points(points, colormap(point_sim, point_lo, 1.0), view)
    red = np.array([[255, 0, 0]], np.uint8)
    marker, _ = rasterize_points(points[query : query + 1], red, view, radius_px=4)
    point_heat = np.where((marker != 255).any(-1, keepdims=True), marker, point_heat)
    framed = image.copy()
    framed[max(v - 3, 0) : v + 4, max(u - 3, 0) : u + 4] = (255, 0, 0)
    panels = [framed, pixel_heat, point_heat]
    panels = [_resize_nearest(p, (render_hw[0], int(p.shape[1] * render_hw[0] / p.shape[0]))) for p in panels]
    scale = colormap(np.linspace(0.0, 1.0, 256), 0.0, 1.0)
    bar_h = render_hw[0] + 22
    panels = [
        panels[0],
        panels[1],
        colorbar(scale, pixel_lo, 1.0, "cosine", height=bar_h),
        panels[2],
        colorbar(scale, point_lo, 1.0, "cosine", height=bar_h),
    ]
    titles = [
        "the query point (red) in the image",
        "2D teacher: similarity of every pixel to it",
        "",
        "3D student: similarity of every point to it",
        "",
    ]
    figure = hstack(panels, titles)
    return caption(
        figure,
        "Cosine similarity of one point's embedding (red square) to every pixel (left, the frozen image "
        "network) and to every point (right, the 3D network). Bright = similar. After pretraining both "
        "light up the same object. Each side has its own colour scale.",
    )


def _similarity_floor(similarity: np.ndarray) -> float:
    """The lower end of a similarity map's colour scale: its 1st percentile, rounded down to 0.1."""
    finite = similarity[np.isfinite(similarity)]
    if finite.size == 0:
        return -1.0
    return float(min(np.floor(np.percentile(finite, 1) * 10) / 10, 0.9))


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


def camera_overlays(
    cameras: Sequence[tuple[str, np.ndarray, np.ndarray, np.ndarray]],
    *,
    width: int = 640,
    per_row: int = 3,
    radius_px: int = 2,
) -> np.ndarray:
    """Lidar points on every camera of a sample, readable at screen size.

    Args:
        cameras: ``(name, image (H,W,3) uint8, uv (M,2) pixels in that image, depth (M,) metres)``.
        width: each camera is shown this wide (uv scaled along), so that a 6-camera rig is not a
            4800-pixel strip of 1-pixel dots.
        per_row: cameras per row.
        radius_px: half-size of each drawn point, in shown pixels.
    """
    panels, titles = [], []
    for name, image, uv, depth in cameras:
        h, w = image.shape[:2]
        scale = min(1.0, width / w)
        shown_hw = (max(1, round(h * scale)), max(1, round(w * scale)))
        small = np.asarray(Image.fromarray(np.ascontiguousarray(image[..., :3])).resize(
            (shown_hw[1], shown_hw[0]), Image.BILINEAR
        ))  # fmt: skip
        uv_small = (_as_numpy(uv).astype(np.float64) + 0.5) * scale - 0.5  # conventions.md resize rule
        panels.append(correspondence_overlay(small, uv_small, _as_numpy(depth), radius_px=radius_px))
        titles.append(f"{name}: {len(uv)} points")
    rows = [hstack(panels[k : k + per_row], titles[k : k + per_row]) for k in range(0, len(panels), per_row)]
    return caption(vstack(rows), "Lidar points projected into each camera, coloured by depth (near: dark "
                   "purple, far: yellow). Point edges should sit on the image's object edges.")  # fmt: skip


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


def training_curves_figure(
    records: Sequence[dict], keys: Sequence[str] | None = None, *, title: str = "training curves"
) -> np.ndarray:
    """Plot numeric metrics against ``step`` (one subplot per key, titled); needs matplotlib (Agg)."""
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
        ax.set_title(f"{title}: {key}" if len(keys) == 1 else key, fontsize=10)
        ax.grid(alpha=0.3)
    axes[-1, 0].set_xlabel("step")
    if len(keys) > 1:
        fig.suptitle(title)
    fig.tight_layout()
    fig.canvas.draw()
    picture = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    plt.close(fig)
    return picture


__all__ = [
    "camera_overlays",
    "correspondence_overlay",
    "feature_pca_figure",
    "read_metrics",
    "segmentation_figure",
    "similarity_figure",
    "training_curves_figure",
    "vstack",
]
