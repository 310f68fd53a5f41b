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
from dataclasses import dataclass, replace
from pathlib import Path

from ppkt.backbones.card import load_card, spec_from_card
from ppkt.config import apply_overrides, option, rename_overrides
from ppkt.data.registry import SyntheticRooms
from ppkt.eval.detection.loop import finetune_detection
from ppkt.eval.detection.presets import get_detection_preset
from ppkt.eval.splits import LabelBudget
from ppkt.experiments.effectiveness import (
    PROTOCOL_ROOMS,
    ExperimentConfig,
    _overrides,
    _same_config,
    prepare_data,
    pretrain_backbone,
)
from ppkt.experiments.results import mean_std
from ppkt.utils.io import atomic_write_json, atomic_write_text


@dataclass(frozen=True)
class DetectionExperimentConfig:
    """The detection effectiveness protocol: data, pretraining, scene budgets, seeds."""

    out: Path = option(Path("runs/effectiveness-detection"), "output folder (runs, results.json, results.md)")
    data_root: Path | None = option(
        None, "existing ScanNet scans with instance annotations; None = synthetic rooms"
    )
    synthetic: SyntheticRooms = option(
        factory=lambda: PROTOCOL_ROOMS, doc="the synthetic rooms (80 % train, 20 % val), without data_root"
    )
    backbone: Path | None = option(
        None, "an exported PPKT backbone; None = pretrain one with pretrain_preset"
    )
    pretrain_preset: str = option("demo", "pretraining preset (ppkt.train.presets)")
    pretrain_overrides: tuple[str, ...] = option((), "pretraining overrides as 'key=value' strings")
    detection_preset: str = option("demo-detection", "detection preset (ppkt.eval.detection.presets)")
    detection_overrides: tuple[str, ...] = option((), "detection overrides as 'key=value' strings")
    budgets: tuple[LabelBudget, ...] = option(
        (LabelBudget("scenes", 0.25), LabelBudget("scenes", 1.0)),
        "scene budgets 'scenes:FRACTION': fractions of the training scenes with boxes",
    )
    seeds: tuple[int, ...] = option((0, 1, 2), "seeds of the scene splits and fine-tuning runs")
    device: str = option("auto", "torch device for every run")
    cpu_threads: int | None = option(
        1, "torch CPU threads of every run, as in the segmentation protocol (ExperimentConfig.cpu_threads)"
    )
    deterministic: bool = option(True, "deterministic algorithms in every run (same command, same table)")
    progress: bool = option(True, "progress bars")

    def __post_init__(self) -> None:
        for budget in self.budgets:
            if budget.kind != "scenes":
                raise ValueError(f"budgets: {budget.text}: detection budgets are scenes:FRACTION")

    def shared(self) -> ExperimentConfig:
        """The segmentation protocol's config for the shared data and pretraining steps."""
        return ExperimentConfig(
            out=self.out, data_root=self.data_root, synthetic=self.synthetic,
            pretrain_preset=self.pretrain_preset,
            pretrain_overrides=self.pretrain_overrides, device=self.device, cpu_threads=self.cpu_threads,
            deterministic=self.deterministic, progress=self.progress,
        )  # fmt: skip


@dataclass(frozen=True)
class DetectionRunRecord:
    """One detection fine-tune's outcome (last-step validation metrics)."""

    init: str  # "scratch" or "ppkt"
    budget: LabelBudget
    seed: int
    map25: float
    map50: float
    seconds: float
    run_dir: str

    def to_json(self) -> dict:
        """As in ``results.json`` (the budget as its text, ``scenes:0.25``)."""
        return {**dataclasses.asdict(self), "budget": self.budget.text}

    @classmethod
    def from_json(cls, data: dict) -> DetectionRunRecord:
        return cls(**{**data, "budget": scene_budget(data["budget"])})


def scene_budget(value: float | str) -> LabelBudget:
    """A budget as ``results.json`` holds it: ``scenes:0.25``, or a bare fraction (files written
    before the budgets were typed)."""
    if isinstance(value, (int, float)):
        return LabelBudget("scenes", float(value))
    return LabelBudget.parse(value)


def _detection_data(det, cfg: DetectionExperimentConfig, root: Path):
    """``det`` reading the protocol's scenes: the ScanNet scans of ``root``, or the synthetic rooms
    cached under its parent (the detection reader generates them with the same settings)."""
    if cfg.data_root is not None:
        return replace(det, data=replace(det.data, kind="scannet", root=Path(root)))
    data = replace(
        det.data,
        kind="synthetic",
        root=Path(root).parent,
        synthetic=replace(cfg.synthetic, image_hw=cfg.synthetic.render_hw()),
    )
    return replace(det, data=data)


def _detection_run(det, cfg: DetectionExperimentConfig, *, budget: LabelBudget, seed: int, out: Path):
    """``det`` on ``budget`` of the training scenes drawn with ``seed``, run in ``out`` with the
    protocol's device, threads and determinism."""
    labels = replace(
        det.labels, kind=budget.kind, budget=budget.amount, seed=seed, splits_dir=cfg.out / "splits"
    )
    run = replace(
        det.run, out=Path(out), device=cfg.device, progress=cfg.progress, cpu_threads=cfg.cpu_threads,
        deterministic=cfg.deterministic,
    )  # fmt: skip
    return replace(det, labels=labels, run=run)


def detection_config(
    cfg: DetectionExperimentConfig, root: Path, init: str, budget: LabelBudget, seed: int, backbone: Path
):
    det = _detection_data(get_detection_preset(cfg.detection_preset), cfg, root)
    det = _detection_run(det, cfg, budget=budget, seed=seed, out=cfg.out / f"{init}-{budget.slug}-seed{seed}")
    user = _overrides(cfg.detection_overrides)
    det = apply_overrides(det, user)
    # Both initialisations get the pretrained backbone's architecture (its card), as segmentation's
    # protocol does; an architecture option the user set that differs from the card is an error.
    named = rename_overrides(type(det), user)  # an old name (data.voxel_size) counts as set too
    given = {key.removeprefix("model.") for key in named if key.startswith("model.")}
    model, _ = spec_from_card(det.model, load_card(backbone), given, where=str(backbone))
    if init == "ppkt":
        model = replace(model, init=backbone)
    return replace(det, model=model)


def detection_one(
    cfg: DetectionExperimentConfig, root: Path, init: str, budget: LabelBudget, seed: int, backbone: Path
) -> DetectionRunRecord:
    """One fine-tune (or the finished identical one in its folder)."""
    import json

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


@dataclass(frozen=True)
class DetectionFigures:
    """One initialisation's figures at one budget: validation mAP (fractions in [0, 1]) over seeds.

    Attributes:
        map25: mean of the last-step mAP@0.25 (NaN: no finite run).
        map25_std: its sample standard deviation (0 for one seed).
        map50: mean of the last-step mAP@0.5.
        map50_std: its sample standard deviation.
        runs: how many runs the means are over.
    """

    map25: float
    map25_std: float
    map50: float
    map50_std: float
    runs: int


@dataclass(frozen=True)
class DetectionRow:
    """One scene budget of the summary: scratch against PPKT.

    Attributes:
        budget: the fraction of the training scenes with boxes (kind scenes).
        scratch: the randomly initialised detector's figures.
        ppkt: the figures of the detector whose backbone starts from PPKT.
    """

    budget: LabelBudget
    scratch: DetectionFigures
    ppkt: DetectionFigures

    @property
    def delta_map25(self) -> float:
        """PPKT's mAP@0.25 minus scratch's."""
        return self.ppkt.map25 - self.scratch.map25

    def to_json(self) -> dict:
        """The row as in ``results.json``: flat keys ``<init>_map25``, ``<init>_map25_std``, ..."""
        data: dict = {"budget": self.budget.text}
        for init, figures in (("scratch", self.scratch), ("ppkt", self.ppkt)):
            for key in ("map25", "map50"):
                data[f"{init}_{key}"], data[f"{init}_{key}_std"] = (
                    getattr(figures, key),
                    getattr(figures, f"{key}_std"),
                )
            data[f"{init}_runs"] = figures.runs
        data["delta_map25"] = self.delta_map25
        return data

    @classmethod
    def from_json(cls, data: dict) -> DetectionRow:
        figures = {
            init: DetectionFigures(
                *(data[f"{init}_{k}"] for k in ("map25", "map25_std", "map50", "map50_std", "runs"))
            )
            for init in ("scratch", "ppkt")
        }
        return cls(scene_budget(data["budget"]), figures["scratch"], figures["ppkt"])


@dataclass(frozen=True)
class DetectionResults:
    """What the detection protocol found: its ``results.json``.

    Attributes:
        backbone: the PPKT backbone the PPKT runs start from.
        pretrain_seconds: wall time of its pretraining and export (0 when it was given).
        runs: every fine-tune, in the order they ran.
        rows: one per scene budget.
    """

    backbone: Path
    pretrain_seconds: float
    runs: tuple[DetectionRunRecord, ...]
    rows: tuple[DetectionRow, ...]

    def to_json(self) -> dict:
        return {
            "backbone": str(self.backbone),
            "pretrain_seconds": self.pretrain_seconds,
            "runs": [r.to_json() for r in self.runs],
            "rows": [r.to_json() for r in self.rows],
        }


def summarize_detection(records: list[DetectionRunRecord]) -> list[DetectionRow]:
    """One row per budget: mean and std of mAP@0.25/0.5 for each initialisation, and PPKT - scratch."""
    rows = []
    for budget in sorted({r.budget for r in records}, key=lambda b: b.amount):
        figures = {}
        for init in ("scratch", "ppkt"):
            group = [r for r in records if r.budget == budget and r.init == init]
            map25, map25_std = mean_std([r.map25 for r in group])
            map50, map50_std = mean_std([r.map50 for r in group])
            figures[init] = DetectionFigures(map25, map25_std, map50, map50_std, len(group))
        rows.append(DetectionRow(budget, figures["scratch"], figures["ppkt"]))
    return rows


def results_markdown(rows: list[DetectionRow]) -> str:
    def cell(figures: DetectionFigures, key: str) -> str:
        return f"{100 * getattr(figures, key):.1f} ± {100 * getattr(figures, f'{key}_std'):.1f}"

    lines = [
        "| scenes with boxes | scratch mAP@0.25 | PPKT mAP@0.25 | PPKT - scratch "
        "| scratch mAP@0.5 | PPKT mAP@0.5 | seeds |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {100 * row.budget.amount:g} % | {cell(row.scratch, 'map25')} | {cell(row.ppkt, 'map25')} | "
            f"{100 * row.delta_map25:+.1f} | {cell(row.scratch, 'map50')} | {cell(row.ppkt, 'map50')} | "
            f"{row.scratch.runs} |"
        )
    return "\n".join(lines) + "\n"


def run_detection_effectiveness(cfg: DetectionExperimentConfig, log=print) -> DetectionResults:
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
                    f"{init:7s} scenes {budget.amount:g} seed {seed}: mAP@0.25 {100 * record.map25:.1f} "
                    f"({record.seconds:.0f} s)"
                )
                records.append(record)
    rows = summarize_detection(records)
    result = DetectionResults(Path(backbone), pretrain_seconds, tuple(records), tuple(rows))
    atomic_write_json(cfg.out / "results.json", result.to_json())
    atomic_write_text(cfg.out / "results.md", results_markdown(rows))
    return result
