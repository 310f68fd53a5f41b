"""Optional ViT teachers (DINOv2 from the local torch.hub cache, timm models from a local file).

ScaLR-style teachers are ViTs: their output is a sequence of tokens, ``prefix`` tokens (class,
registers) followed by one token per ``patch x patch`` pixel block in row-major order. The adapter
pads the image at the bottom/right to a multiple of the patch size (so ``h = ceil(H / patch)``
like the convolutional teachers), drops the prefix tokens and reshapes the patch tokens to a
``(B, C, h, w)`` map of stride ``patch``.

Nothing is downloaded: DINOv2 needs the hub repository *and* the checkpoint already in the torch
hub cache (``torch.hub.get_dir()``), timm needs to be installed and a weights file given.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ppkt.teachers.base import IMAGENET_NORMALIZATION, Normalization, Stage, Teacher, select_stage
from ppkt.teachers.weights_files import read_state_file
from ppkt.utils.weights import load_state_strict


class TeacherUnavailable(ImportError):
    """An optional teacher whose code or weights are not installed locally."""


def patch_tokens_to_map(
    tokens: torch.Tensor, grid_hw: tuple[int, int], num_prefix_tokens: int
) -> torch.Tensor:
    """``(B, prefix + h*w, C)`` tokens -> ``(B, C, h, w)``, dropping the ``prefix`` first tokens."""
    h, w = grid_hw
    patches = tokens[:, num_prefix_tokens:]
    if patches.shape[1] != h * w:
        raise ValueError(
            f"expected {h}x{w}={h * w} patch tokens after {num_prefix_tokens} prefix tokens, "
            f"got {patches.shape[1]}"
        )
    return patches.reshape(tokens.shape[0], h, w, tokens.shape[2]).permute(0, 3, 1, 2).contiguous()


class ViTTeacher(Teacher):
    """Wraps a ViT-like module with ``forward_features(x)`` returning either a dict with
    ``"x_norm_patchtokens"`` (DINOv2: ``(B, h*w, C)``) or a token tensor ``(B, prefix + h*w, C)`` (timm,
    ``num_prefix_tokens`` given). One stage, ``"last"``; stride = patch size."""

    def __init__(
        self,
        name: str,
        model: nn.Module,
        *,
        patch_size: int,
        embed_dim: int,
        normalization: Normalization = IMAGENET_NORMALIZATION,
        num_prefix_tokens: int = 1,
        weights_source: str = "random",
        stage: str | None = None,
    ):
        stages = {"tokens": Stage("tokens", embed_dim, patch_size)}
        chosen = select_stage(name, stages, stage, "tokens")
        super().__init__(name, chosen, normalization, weights_source)
        self.stages = stages
        self.model = model
        self.patch_size = patch_size
        self.num_prefix_tokens = num_prefix_tokens
        self._freeze()

    def extract(self, x: torch.Tensor) -> torch.Tensor:
        p = self.patch_size
        h, w = -(-x.shape[-2] // p), -(-x.shape[-1] // p)
        # Zero after normalisation = the mean colour; the last row/column of patches is partly padding.
        x = F.pad(x, (0, w * p - x.shape[-1], 0, h * p - x.shape[-2]))
        out = self.model.forward_features(x)
        if isinstance(out, dict):
            return patch_tokens_to_map(out["x_norm_patchtokens"], (h, w), 0)
        return patch_tokens_to_map(out, (h, w), self.num_prefix_tokens)


DINOV2_MODELS = {  # name -> (embed dim, checkpoint file name in <hub dir>/checkpoints)
    "dinov2_vits14": (384, "dinov2_vits14_pretrain.pth"),
    "dinov2_vitb14": (768, "dinov2_vitb14_pretrain.pth"),
    "dinov2_vitl14": (1024, "dinov2_vitl14_pretrain.pth"),
}


def dinov2_repo_dir() -> Path:
    return Path(torch.hub.get_dir()) / "facebookresearch_dinov2_main"


def build_dinov2(
    model_name: str, *, weights: str | Path | None = None, stage: str | None = None
) -> ViTTeacher:
    """DINOv2 from the local hub cache; ``weights`` None = the cached checkpoint, a file, or "random"."""
    repo = dinov2_repo_dir()
    if not (repo / "hubconf.py").is_file():
        raise TeacherUnavailable(
            f"{model_name}: the DINOv2 hub repository is not in the local torch hub cache ({repo}); "
            "ppkt never downloads at run time: fetch it once with "
            "torch.hub.load('facebookresearch/dinov2', ...) on a machine with internet access"
        )
    embed_dim, file_name = DINOV2_MODELS[model_name]
    model = torch.hub.load(str(repo), model_name, source="local", pretrained=False)
    source = "random"
    if weights != "random":
        path = Path(weights) if weights is not None else Path(torch.hub.get_dir()) / "checkpoints" / file_name
        if not path.is_file():
            raise TeacherUnavailable(f"{model_name}: checkpoint {path} not found (no download at run time)")
        load_state_strict(model, read_state_file(path), what=str(path))
        source = str(path)
    return ViTTeacher(
        model_name,
        model,
        patch_size=14,
        embed_dim=embed_dim,
        num_prefix_tokens=0,
        weights_source=source,
        stage=stage,
    )


def build_timm_teacher(
    model_name: str, *, weights: str | Path | None = None, stage: str | None = None
) -> ViTTeacher:
    """A timm ViT (``timm:<model name>``) with weights from a local file, or ``"random"``."""
    try:
        import timm  # optional; never a dependency (it pulls a CUDA torch)
    except ImportError as err:
        raise TeacherUnavailable(f"timm:{model_name}: timm is not installed") from err
    if weights is None:
        raise ValueError(
            f"timm:{model_name}: pass weights=FILE (no download at run time) or weights='random'"
        )
    kwargs: dict = {"dynamic_img_size": True, "num_classes": 0}
    if weights != "random":
        if not Path(weights).is_file():
            raise FileNotFoundError(f"{weights}: weight file not found")
        kwargs.update(pretrained=True, pretrained_cfg_overlay={"file": str(weights)})
    model = timm.create_model(model_name, **kwargs)
    cfg = getattr(model, "pretrained_cfg", {}) or {}
    norm = Normalization(
        tuple(cfg.get("mean", IMAGENET_NORMALIZATION.mean)), tuple(cfg.get("std", IMAGENET_NORMALIZATION.std))
    )
    patch = model.patch_embed.patch_size
    return ViTTeacher(
        f"timm:{model_name}",
        model,
        patch_size=int(patch[0] if isinstance(patch, tuple) else patch),
        embed_dim=int(model.num_features),
        normalization=norm,
        num_prefix_tokens=int(getattr(model, "num_prefix_tokens", 1)),
        weights_source="random" if weights == "random" else str(weights),
        stage=stage,
    )
