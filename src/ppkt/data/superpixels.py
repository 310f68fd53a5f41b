"""Image superpixels for SLidR's superpixel-pooled loss, and their cache.

:func:`slic_superpixels` is a small deterministic SLIC (Achanta et al., "SLIC Superpixels Compared
to State-of-the-Art Superpixel Methods", TPAMI 2012), the segmentation SLidR uses (150 segments per
nuScenes image), in PyTorch: cluster centres start on a regular grid, each pixel joins the nearest
of the 3x3 grid cells' centres by ``|colour difference|^2 + (compactness * distance / S)^2`` (S =
grid step), centres move to their members' mean, repeated. It works in RGB rather than CIELAB and
does not enforce connectivity (a segment may be split in pieces); it is a function of the image
alone, so a cache never goes stale. scikit-image's ``slic`` is what SLidR calls; it is not a
dependency here (the tests compare the two where scikit-image is installed).

:class:`SuperpixelCache` stores one label map per frame, keyed like the teacher feature cache
(``<root>/<scene_id>/<frame_id>.safetensors``, a ``manifest.json`` pinning the method and the
image size); files are written atomically, so DataLoader workers may fill it concurrently.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open

from ppkt.geometry import uv_to_ij
from ppkt.utils.io import atomic_write_json, cache_file
from ppkt.utils.weights import save_weights

SLIC_ITERATIONS = 10
"""SLIC's authors report convergence within 10 iterations for most images."""
SLIC_COMPACTNESS = 0.1
"""Weight of the spatial term, in units of RGB distance (colours in [0, 1]) per grid step."""
CACHE_FORMAT = 1


def slic_superpixels(
    image: torch.Tensor,
    num_segments: int,
    *,
    compactness: float = SLIC_COMPACTNESS,
    iterations: int = SLIC_ITERATIONS,
) -> torch.Tensor:
    """``(H, W)`` long superpixel labels ``0 .. S-1`` (no empty label; ``S`` is at most the grid's
    ``ny * nx`` cells, about ``num_segments``) of a ``(3, H, W)`` float RGB image in ``[0, 1]``.

    Deterministic: the same image gives the same labels (float64 NumPy on the CPU).
    """
    if image.ndim != 3 or image.shape[0] != 3:
        raise ValueError(f"slic_superpixels: image must be (3, H, W), got {tuple(image.shape)}")
    if num_segments < 1:
        raise ValueError(f"slic_superpixels: num_segments must be >= 1, got {num_segments}")
    _, H, W = image.shape
    # NumPy, single-threaded: small per-pixel arrays, where torch's thread pool only adds overhead.
    color = image.detach().to("cpu", torch.float64).reshape(3, -1).t().numpy()  # (HW, 3)
    ny = max(1, min(H, round(math.sqrt(num_segments * H / W))))
    nx = max(1, min(W, round(num_segments / ny)))
    step = math.sqrt(H * W / (ny * nx))
    ys, xs = np.meshgrid(np.arange(H, dtype=np.float64), np.arange(W, dtype=np.float64), indexing="ij")
    xy = np.stack([xs.ravel(), ys.ravel()], axis=1)  # (HW, 2)
    cell_y = np.minimum((ys.ravel() * ny / H).astype(np.int64), ny - 1)
    cell_x = np.minimum((xs.ravel() * nx / W).astype(np.int64), nx - 1)
    # Centres start at the middle of their grid cell, with the colour of the pixel there.
    cy = (np.arange(ny) + 0.5) * H / ny - 0.5
    cx = (np.arange(nx) + 0.5) * W / nx - 0.5
    gx, gy = np.meshgrid(cx, cy, indexing="xy")
    centre_xy = np.stack([gx.ravel(), gy.ravel()], axis=1)
    start = np.rint(centre_xy).astype(np.int64)
    centre_color = color[start[:, 1] * W + start[:, 0]].copy()
    # Each pixel may only join the centres of its own and the 8 neighbouring grid cells.
    offsets = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
    candidates = np.stack(
        [np.clip(cell_y + dy, 0, ny - 1) * nx + np.clip(cell_x + dx, 0, nx - 1) for dy, dx in offsets], axis=1
    )  # (HW, 9)
    spatial_weight = (compactness / step) ** 2
    rows = np.arange(H * W)
    labels = candidates[:, 4]
    for _ in range(max(1, iterations)):
        d_color = ((color[:, None, :] - centre_color[candidates]) ** 2).sum(-1)
        d_space = ((xy[:, None, :] - centre_xy[candidates]) ** 2).sum(-1)
        labels = candidates[rows, np.argmin(d_color + spatial_weight * d_space, axis=1)]
        counts = np.bincount(labels, minlength=ny * nx).astype(np.float64)
        occupied = counts > 0
        for centres, values in ((centre_xy, xy), (centre_color, color)):
            sums = np.stack(
                [
                    np.bincount(labels, weights=values[:, c], minlength=ny * nx)
                    for c in range(values.shape[1])
                ],
                1,
            )
            centres[occupied] = sums[occupied] / counts[occupied, None]
    _, compact = np.unique(labels, return_inverse=True)
    return torch.from_numpy(compact.reshape(H, W).astype(np.int64))


def superpixels_at(labels: torch.Tensor, uv: torch.Tensor) -> torch.Tensor:
    """``(P,)`` long label of the pixel holding each ``uv (P, 2)`` in an ``(H, W)`` label map."""

    ij = uv_to_ij(uv)
    H, W = labels.shape
    return labels[ij[:, 0].clamp(0, H - 1), ij[:, 1].clamp(0, W - 1)].long()


def method_identity(num_segments: int) -> str:
    return f"ppkt-slic(segments={num_segments},compactness={SLIC_COMPACTNESS},iterations={SLIC_ITERATIONS})"


@dataclass(frozen=True)
class Superpixels:
    """How a dataset computes (and optionally caches) the superpixels of its images.

    Attributes:
        num_segments: SLIC segments per image.
        cache_root: folder of a :class:`SuperpixelCache`, or None to compute every time.
    """

    num_segments: int
    cache_root: Path | None = None

    def labels(
        self, image: torch.Tensor, scene_id: str, frame_id: str, image_hw: tuple[int, int]
    ) -> torch.Tensor:
        """``(H, W)`` labels of ``image (3, H, W)`` (the un-augmented frame at ``image_hw``)."""
        if self.cache_root is None:
            return slic_superpixels(image, self.num_segments)
        cache = SuperpixelCache(self.cache_root, method_identity(self.num_segments), image_hw)
        labels = cache.get(scene_id, frame_id)
        if labels is None:
            labels = slic_superpixels(image, self.num_segments)
            cache.put(scene_id, frame_id, labels)
        return labels


class SuperpixelCache:
    """Per-frame superpixel label maps under ``root`` for one method and image size.

    Raises ValueError on opening a cache written with another method or image size (naming both).
    """

    def __init__(self, root: str | Path, method: str, image_hw: tuple[int, int]) -> None:
        self.root = Path(root)
        self.manifest = {
            "format": CACHE_FORMAT,
            "method": method,
            "image_hw": [int(image_hw[0]), int(image_hw[1])],
        }
        path = self.root / "manifest.json"
        if path.is_file():
            try:
                found = json.loads(path.read_text())
            except (OSError, ValueError) as err:
                raise ValueError(f"{path}: unreadable superpixel cache manifest ({err})") from err
            diffs = [
                f"{k}: cache has {found.get(k)!r}, requested {v!r}"
                for k, v in self.manifest.items()
                if found.get(k) != v
            ]
            if diffs:
                raise ValueError(
                    f"{path}: superpixel cache made with other settings ({'; '.join(diffs)}); "
                    "use another folder"
                )
        else:
            atomic_write_json(path, self.manifest)

    def path(self, scene_id: str, frame_id: str) -> Path:
        return cache_file(self.root, scene_id, frame_id)

    def get(self, scene_id: str, frame_id: str) -> torch.Tensor | None:
        """The cached ``(H, W)`` long labels, or None when the frame is not cached."""
        path = self.path(scene_id, frame_id)
        if not path.is_file():
            return None
        try:
            with safe_open(str(path), framework="pt", device="cpu") as handle:
                labels = handle.get_tensor("labels").long()
        except Exception as err:  # safetensors raises its own error types
            raise ValueError(f"{path}: unreadable cached superpixels ({err})") from err
        if list(labels.shape) != self.manifest["image_hw"]:
            raise ValueError(
                f"{path}: superpixels of size {tuple(labels.shape)}, expected {self.manifest['image_hw']}"
            )
        return labels

    def put(self, scene_id: str, frame_id: str, labels: torch.Tensor) -> Path:
        """Store ``(H, W)`` labels (int32), atomically."""
        if list(labels.shape) != self.manifest["image_hw"]:
            raise ValueError(
                f"{scene_id}/{frame_id}: labels {tuple(labels.shape)}, cache is {self.manifest['image_hw']}"
            )
        return save_weights(
            {"labels": labels.to(torch.int32).contiguous()},
            self.path(scene_id, frame_id),
            {"method": self.manifest["method"]},
        )


__all__ = ["SuperpixelCache", "Superpixels", "method_identity", "slic_superpixels", "superpixels_at"]
