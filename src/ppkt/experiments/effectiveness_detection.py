"""Does 2D knowledge transfer help detection? VoteNet fine-tuned from scratch and from PPKT.

The detection mode of the effectiveness protocol (``ppkt.experiments.effectiveness``), sharing
its data and pretraining steps: :func:`~ppkt.experiments.effectiveness.prepare_data` (synthetic
rooms by default) and :func:`~ppkt.experiments.effectiveness.pretrain_backbone` (PPKT pretraining
on the training scenes' frames, then ``ppkt export``), or an already exported ``backbone``. Then,
for every scene budget and seed, one detection fine-tune (``demo-detection`` by default) from
scratch and one from the PPKT backbone, with the same preset, steps, rates and split file; the
**last-step** validation mAP@0.25 and mAP@0.5 of each (no checkpoint selection on the validation
scenes), summarised as mean and sample standard deviation over seeds.

Every run folder is reused when its ``metrics.json`` exists and its saved config equals the one
it would run with, so an interrupted benchmark continues where it stopped.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

from ppkt.config import apply_overrides, option
from ppkt.experiments.effectiveness import (
    ExperimentConfig,
    _overrides,
    _same_config,
    mean_std,
    prepare_data,
    pretrain_backbone,
)
from ppkt.utils.io import atomic_write_json, atomic_write_text


@dataclass(frozen=True)
class DetectionExperimentConfig:
    """The detection effectiveness protocol: data, pretraining, scene budgets, seeds."""

    out: Path = option(Path("runs/effectiveness-detection"), "output folder (runs, results.json, results.md)")
    data_root: Path | None = option(
        None, "existing ScanNet scans with instance annotations; None = synthetic rooms"
    )
    synthetic_scenes: int = option(20, "synthetic rooms (80 % train, 20 % val)")
    synthetic_frames_per_scene: int = option(12, "RGB-D frames rendered per room (pretraining frames)")
    synthetic_seed: int = option(0, "seed of the synthetic rooms")
    image_hw: tuple[int, int] = option((120, 160), "render size of the synthetic frames (H, W)")
    backbone: Path | None = option(
        None, "an exported PPKT backbone; None = pretrain one with pretrain_preset"
    )
    pretrain_preset: str = option("demo", "pretraining preset (ppkt.train.presets)")
    pretrain_overrides: tuple[str, ...] = option((), "pretraining overrides as 'key=value' strings")
    detection_preset: str = option("demo-detection", "detection preset (ppkt.eval.detection.presets)")
    detection_overrides: tuple[str, ...] = option((), "detection overrides as 'key=value' strings")
    budgets: tuple[float, ...] = option((0.25, 1.0), "fractions of the training scenes with boxes")
    seeds: tuple[int, ...] = option((0, 1, 2), "seeds of the scene splits and fine-tuning runs")
    device: str = option("auto", "torch device for every run")
    progress: bool = option(True, "progress bars")

    def shared(self) -> ExperimentConfig:
        """The segmentation protocol's config for the shared data and pretraining steps."""
        return ExperimentConfig(
            out=self.out, data_root=self.data_root, synthetic_scenes=self.synthetic_scenes,
            synthetic_frames_per_scene=self.synthetic_frames_per_scene, synthetic_seed=self.synthetic_seed,
            image_hw=self.image_hw, pretrain_preset=self.pretrain_preset,
            pretrain_overrides=self.pretrain_overrides, device=self.device, progress=self.progress,
        )  # fmt: skip


@dataclass(frozen=True)
class DetectionRunRecord:
    """One detection fine-tune's outcome (last-step validation metrics)."""

    init: str  # "scratch" or "ppkt"
    budget: float
    seed: int
    map25: float
    map50: float
    seconds: float
    run_dir: str


def detection_config(
    cfg: DetectionExperimentConfig, root: Path, init: str, budget: float, seed: int, backbone: Path
):
    from ppkt.eval.detection.presets import get_detection_preset

    data = (
        {"data.kind": "scannet", "data.root": str(root)}
        if cfg.data_root is not None
        else {
            "data.kind": "synthetic",
            "data.root": str(root.parent),
            "data.synthetic_scenes": str(cfg.synthetic_scenes),
            "data.synthetic_frames_per_scene": str(cfg.synthetic_frames_per_scene),
            "data.synthetic_seed": str(cfg.synthetic_seed),
            "data.synthetic_image_hw": ",".join(str(x) for x in cfg.image_hw),
        }  # fmt: skip
    )
    run = cfg.out / f"{init}-scenes{budget:g}-seed{seed}"
    det = apply_overrides(
        get_detection_preset(cfg.detection_preset),
        {
            **data,
            "labels.budget": str(budget),
            "labels.seed": str(seed),
            "labels.splits_dir": str(cfg.out / "splits"),
            "run.out": str(run),
            "run.device": cfg.device,
            "run.progress": str(cfg.progress),
            **_overrides(cfg.detection_overrides),
        },  # fmt: skip
    )
    if init == "ppkt":
        det = dataclasses.replace(det, model=dataclasses.replace(det.model, init=backbone))
    return det


def detection_one(
    cfg: DetectionExperimentConfig, root: Path, init: str, budget: float, seed: int, backbone: Path
) -> DetectionRunRecord:
    """One fine-tune (or the finished identical one in its folder)."""
    import json

    from ppkt.eval.detection.loop import finetune_detection

    det = detection_config(cfg, root, init, budget, seed, backbone)
    run_dir = Path(det.run.out)
    metrics = run_dir / "metrics.json"
    timing = run_dir / "timing.json"
    if not (metrics.is_file() and timing.is_file() and _same_config(run_dir, det)):
        started = time.perf_counter()
        finetune_detection(det, overwrite=True)  # not finished, or other settings: start over
        atomic_write_json(timing, {"seconds": time.perf_counter() - started})
    last = json.loads(metrics.read_text())["last"]

    def num(x):
        return float("nan") if x is None else float(x)

    return DetectionRunRecord(
        init, budget, seed, num(last["mAP@0.25"]), num(last["mAP@0.5"]),
        float(json.loads(timing.read_text())["seconds"]), str(run_dir),
    )  # fmt: skip


def summarize_detection(records: list[DetectionRunRecord]) -> list[dict]:
    """One row per budget: mean and std of mAP@0.25/0.5 for each initialisation, and PPKT - scratch."""
    rows = []
    for budget in sorted({r.budget for r in records}):
        row: dict = {"budget": budget}
        for init in ("scratch", "ppkt"):
            group = [r for r in records if r.budget == budget and r.init == init]
            for key in ("map25", "map50"):
                mean, std = mean_std([getattr(r, key) for r in group])
                row[f"{init}_{key}"], row[f"{init}_{key}_std"] = mean, std
            row[f"{init}_runs"] = len(group)
        row["delta_map25"] = row["ppkt_map25"] - row["scratch_map25"]
        rows.append(row)
    return rows


def results_markdown(rows: list[dict]) -> str:
    def cell(row, init, key):
        return f"{100 * row[f'{init}_{key}']:.1f} ± {100 * row[f'{init}_{key}_std']:.1f}"

    lines = [
        "| scenes with boxes | scratch mAP@0.25 | PPKT mAP@0.25 | PPKT - scratch "
        "| scratch mAP@0.5 | PPKT mAP@0.5 | seeds |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {100 * row['budget']:g} % | {cell(row, 'scratch', 'map25')} | {cell(row, 'ppkt', 'map25')} | "
            f"{100 * row['delta_map25']:+.1f} | {cell(row, 'scratch', 'map50')} | "
            f"{cell(row, 'ppkt', 'map50')} | "
            f"{row['scratch_runs']} |"
        )
    return "\n".join(lines) + "\n"


def run_detection_effectiveness(cfg: DetectionExperimentConfig, log=print) -> dict:
    """The whole protocol; writes ``results.json`` and ``results.md`` into ``cfg.out``."""
    cfg.out.mkdir(parents=True, exist_ok=True)
    root = prepare_data(cfg.shared())
    if cfg.backbone is not None:
        backbone, pretrain_seconds = Path(cfg.backbone), 0.0
    else:
        pretrained = pretrain_backbone(cfg.shared(), root)
        backbone, pretrain_seconds = pretrained.path, pretrained.seconds
    log(f"backbone: {backbone}")
    records = []
    for budget in cfg.budgets:
        for seed in cfg.seeds:
            for init in ("scratch", "ppkt"):
                record = detection_one(cfg, root, init, budget, seed, backbone)
                log(
                    f"{init:7s} scenes {budget:g} seed {seed}: mAP@0.25 {100 * record.map25:.1f} "
                    f"({record.seconds:.0f} s)"
                )
                records.append(record)
    rows = summarize_detection(records)
    result = {
        "backbone": str(backbone),
        "pretrain_seconds": pretrain_seconds,
        "runs": [dataclasses.asdict(r) for r in records],
        "rows": rows,
    }
    atomic_write_json(cfg.out / "results.json", result)
    atomic_write_text(cfg.out / "results.md", results_markdown(rows))
    return result
