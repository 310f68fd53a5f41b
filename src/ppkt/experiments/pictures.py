"""The pictures ``ppkt demo`` writes: what pretraining learned, and scratch vs PPKT predictions."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ppkt.data.scannet import ScanNetFrames, read_scannet_scene, scannet_split
from ppkt.eval.finetune import load_checkpoint
from ppkt.experiments.effectiveness import ExperimentConfig
from ppkt.experiments.results import EffectivenessResults
from ppkt.viz.model_figures import (
    frame_embeddings,
    load_pretrain_run,
    pretrain_feature_figures,
    segmentation_figures,
    similarity_figures,
)
from ppkt.viz.panels import hstack, save_png, titled, vstack


def demo_pictures(cfg: ExperimentConfig, results: EffectivenessResults) -> list[Path]:
    """Feature PCA and similarity of the pretrained model on a validation frame, and the
    segmentation of one validation scene by the scratch and the PPKT model side by side.

    Written to ``<out>/pictures/``; returns the paths written.
    """
    out = Path(cfg.out) / "pictures"
    root = Path(results.data_root)
    written: list[Path] = []

    # What pretraining learned, on a frame of a scene it never saw (validation split).
    model, pre_cfg, _ = load_pretrain_run(Path(cfg.out) / "pretrain")
    frames = ScanNetFrames(root, split="val", frame_skip=1)
    if len(frames):
        frame = frames[len(frames) // 2]
        emb = frame_embeddings(model, frame, pre_cfg)
        features = pretrain_feature_figures(model, frame, pre_cfg, out, embeddings=emb)
        similarity = similarity_figures(model, frame, pre_cfg, out, embeddings=emb)
        written += [features.features_png, features.features_ply, features.backbone_png]
        written.append(similarity.png)

    # Scratch vs PPKT on one validation scene, same budget and seed.
    pair = compared_runs(results)
    if pair:
        scene = read_scannet_scene(root / scannet_split(root, "val")[0])
        panels = []
        for init in ("scratch", "ppkt"):
            if init not in pair:
                continue
            seg_model, ft_cfg, class_names = load_checkpoint(pair[init] / "checkpoints" / "last.safetensors")
            seg = segmentation_figures(
                seg_model, scene, ft_cfg, class_names, out, stem=f"segmentation_{init}"
            )
            written += [seg.png, seg.ply]
            name = "FROM SCRATCH" if init == "scratch" else "PPKT PRETRAINED"
            on_all = _run_miou(results, pair[init])
            panels.append(
                titled(
                    seg.figure,
                    f"{name} (backbone lr {ft_cfg.optim.lr_backbone:g}): mIoU {100 * seg.miou:.1f} % on this "
                    f"room, {on_all} on all validation rooms",
                )
            )
        if panels:
            written.append(save_png(out / "segmentation_scratch_vs_ppkt.png", _stack_rows(panels)))
    return [Path(p) for p in written]


def compared_runs(results: EffectivenessResults) -> dict[str, Path]:
    """Run folders of the scratch and PPKT fine-tunes the pictures compare: the first budget and seed,
    each at the learning rate the summary reports for it (when one was searched)."""
    runs = [r for r in results.runs if r.mode == "finetune"]
    if not runs:
        return {}
    budget, seed = runs[0].budget, runs[0].seed
    row = next(r for r in results.rows if r.mode == "finetune" and r.budget == budget)
    chosen = {"scratch": row.lr_backbone, "ppkt": row.ppkt_lr_backbone}
    return {
        r.init: Path(r.run_dir)
        for r in runs
        if r.budget == budget and r.seed == seed and r.lr_backbone == chosen[r.init]
    }


def _run_miou(results: EffectivenessResults, run_dir: Path) -> str:
    """``"13.0 %"``: the validation mIoU the results record for the run in ``run_dir``."""
    for r in results.runs:
        if Path(r.run_dir) == Path(run_dir) and not r.diverged:
            return f"{100 * r.miou:.1f} %"
    return "n/a"


def _stack_rows(panels: list[np.ndarray]) -> np.ndarray:
    return vstack(panels) if len(panels) > 1 else hstack(panels)
