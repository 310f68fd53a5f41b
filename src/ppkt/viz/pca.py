"""Features -> RGB through their first three principal components."""

from __future__ import annotations

import numpy as np
import torch


def fit_pca(features: torch.Tensor | np.ndarray, k: int = 3, max_samples: int = 100_000, seed: int = 0):
    """Return ``(mean (C,), basis (C,k))`` of the top-k principal directions of ``features (N,C)``.

    A fixed-seed subsample keeps the fit fast on large clouds; signs are fixed so that each
    component's largest loading is positive (otherwise colours flip between runs).
    """
    x = torch.as_tensor(np.asarray(features) if isinstance(features, np.ndarray) else features)
    x = x.detach().to(torch.float64).cpu()
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"fit_pca: expected a non-empty (N, C) array, got shape {tuple(x.shape)}")
    if x.shape[0] > max_samples:
        gen = torch.Generator().manual_seed(seed)
        x = x[torch.randperm(x.shape[0], generator=gen)[:max_samples]]
    mean = x.mean(0)
    centred = x - mean
    # SVD of the covariance is stable for C up to a few thousand.
    _, _, vh = torch.linalg.svd(centred.T @ centred / max(len(x) - 1, 1))
    basis = vh[: min(k, x.shape[1])].T.clone()
    flip = torch.sign(basis[basis.abs().argmax(0), torch.arange(basis.shape[1])])
    basis *= torch.where(flip == 0, torch.ones_like(flip), flip)
    if basis.shape[1] < k:  # fewer channels than components: pad with zero directions
        basis = torch.cat([basis, torch.zeros(basis.shape[0], k - basis.shape[1], dtype=basis.dtype)], 1)
    return mean, basis


def pca_colors(
    features: torch.Tensor | np.ndarray,
    pca: tuple[torch.Tensor, torch.Tensor] | None = None,
    *,
    scale_from: torch.Tensor | np.ndarray | None = None,
) -> np.ndarray:
    """``(N, 3)`` uint8 colours: first three principal components, each stretched to its 2-98 % range.

    Pass the same ``pca`` (and ``scale_from``) to colour two sets of features in one shared basis,
    e.g. student point embeddings and teacher pixel embeddings, so equal colours mean equal features.
    """
    x = torch.as_tensor(np.asarray(features) if isinstance(features, np.ndarray) else features)
    x = x.detach().to(torch.float64).cpu()
    if x.shape[0] == 0:
        return np.zeros((0, 3), dtype=np.uint8)
    mean, basis = pca if pca is not None else fit_pca(x)
    projected = ((x - mean) @ basis).numpy()
    reference = projected
    if scale_from is not None:
        ref = torch.as_tensor(np.asarray(scale_from) if isinstance(scale_from, np.ndarray) else scale_from)
        reference = ((ref.detach().to(torch.float64).cpu() - mean) @ basis).numpy()
    lo = np.percentile(reference, 2, axis=0)
    hi = np.percentile(reference, 98, axis=0)
    scaled = (projected - lo) / np.maximum(hi - lo, 1e-12)
    return (np.clip(scaled, 0, 1) * 255).round().astype(np.uint8)
