"""What the effectiveness protocol writes to ``results.json``, as typed records.

One :class:`RunRecord` per fine-tuning / probing run, one :class:`EffectivenessRow` per (mode,
budget) of the summary, and :class:`EffectivenessResults` around them. Each has ``to_json`` (the
layout of ``results.json``, unchanged since the rows were dicts) and ``from_json``, which also
reads the older files of ``benchmarks/results/`` (their rows lack the keys added since: the rate
PPKT was reported at, the held-out scores, whether a run was reused).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ppkt.eval.splits import LabelBudget

INITS = ("scratch", "ppkt")
"""The two initialisations every row compares: random weights and the PPKT backbone."""


@dataclass(frozen=True)
class RunRecord:
    """One fine-tuning / probing run's outcome (last-step validation metrics, fractions in [0, 1])."""

    init: str  # "scratch" or "ppkt"
    mode: str  # "finetune" or "linear"
    budget: LabelBudget
    seed: int
    miou: float
    macc: float
    overall_accuracy: float
    seconds: float
    run_dir: str
    lr_backbone: float | None = None  # the backbone learning rate of a fine-tuning run
    diverged: bool = False  # a searched rate's run stopped on a non-finite loss; its metrics are NaN
    selection_miou: float | None = None  # rate_selection heldout: last-step mIoU on the held-out scenes
    reused: bool = False  # read from a finished run of an earlier invocation; ``seconds`` are that run's

    def to_json(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        data["budget"] = self.budget.text
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunRecord:
        """A run of ``results.json``; keys added since the first files take their defaults."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names and k != "budget"},
                   budget=LabelBudget.parse(data["budget"]))  # fmt: skip


@dataclass(frozen=True)
class InitFigures:
    """One initialisation's figures in a row, in percent, over the seeds at its reported rate.

    Attributes:
        miou: mean over seeds of the last-step validation mIoU (NaN: no finite run).
        miou_std: sample standard deviation of those (0 for one seed).
        macc: mean of the mAcc.
        macc_std: sample standard deviation of the mAcc.
        seeds: how many runs the means are over.
        lr_search: fine-tuning rows: backbone learning rate (``"0.01"``) -> mean mIoU of every rate
            tried, on the scenes that chose the rate (NaN: a seed diverged); None for linear probes.
        lr_val: where rates were chosen on held-out training scenes: the same means on the
            validation scenes; None otherwise.
    """

    miou: float
    miou_std: float
    macc: float
    macc_std: float
    seeds: int
    lr_search: dict[str, float] | None = None
    lr_val: dict[str, float] | None = None


@dataclass(frozen=True)
class EffectivenessRow:
    """One (mode, budget) row of the summary: scratch against PPKT.

    Attributes:
        mode: ``"finetune"`` or ``"linear"`` (probe).
        budget: the label budget.
        scratch: the randomly initialised network's figures.
        ppkt: the PPKT-pretrained network's figures.
        lr_backbone: fine-tuning rows: the backbone learning rate scratch is reported at.
        ppkt_lr_backbone: fine-tuning rows: the rate PPKT is reported at.
        ppkt_at_scratch_lr: where PPKT was fine-tuned at several rates: mean and std (%) of its mIoU
            at the rate scratch is reported at; None otherwise.
    """

    mode: str
    budget: LabelBudget
    scratch: InitFigures
    ppkt: InitFigures
    lr_backbone: float | None = None
    ppkt_lr_backbone: float | None = None
    ppkt_at_scratch_lr: tuple[float, float] | None = None

    @property
    def label(self) -> str:
        return self.budget.label

    @property
    def gain_miou(self) -> float:
        """PPKT's mIoU minus scratch's (points)."""
        return self.ppkt.miou - self.scratch.miou

    @property
    def gain_at_scratch_lr_miou(self) -> float | None:
        """PPKT's mIoU at scratch's rate minus scratch's (None where PPKT was not searched)."""
        if self.ppkt_at_scratch_lr is None:
            return None
        return self.ppkt_at_scratch_lr[0] - self.scratch.miou

    def figures(self, init: str) -> InitFigures:
        if init not in INITS:
            raise ValueError(f"initialisation {init!r}: expected one of {INITS}")
        return self.scratch if init == "scratch" else self.ppkt

    def to_json(self) -> dict[str, Any]:
        """The row as in ``results.json``: flat keys ``<init>_miou``, ``<init>_lr_search``, ..."""
        data: dict[str, Any] = {"mode": self.mode, "budget": self.budget.text, "label": self.label}
        if self.mode == "finetune":
            for init in INITS:
                figures = self.figures(init)
                if figures.lr_search is not None:
                    data[f"{init}_lr_search"] = dict(figures.lr_search)
                if figures.lr_val is not None:
                    data[f"{init}_lr_val"] = dict(figures.lr_val)
            data["lr_backbone"] = self.lr_backbone
            data["ppkt_lr_backbone"] = self.ppkt_lr_backbone
        for init in INITS:
            figures = self.figures(init)
            data[f"{init}_miou"], data[f"{init}_miou_std"] = figures.miou, figures.miou_std
            data[f"{init}_macc"], data[f"{init}_macc_std"] = figures.macc, figures.macc_std
            data[f"{init}_seeds"] = figures.seeds
        data["gain_miou"] = self.gain_miou
        if self.ppkt_at_scratch_lr is not None:
            data["ppkt_at_scratch_lr_miou"], data["ppkt_at_scratch_lr_miou_std"] = self.ppkt_at_scratch_lr
            data["gain_at_scratch_lr_miou"] = self.gain_at_scratch_lr_miou
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> EffectivenessRow:
        """A row of ``results.json``, of this layout or an older one.

        Files written before PPKT had a rate of its own (no ``ppkt_lr_backbone``) fine-tuned PPKT at
        scratch's rate, so that is the rate read for it.
        """
        budget = LabelBudget.parse(data["budget"])
        figures = {
            init: InitFigures(
                miou=float(data[f"{init}_miou"]),
                miou_std=float(data[f"{init}_miou_std"]),
                macc=float(data[f"{init}_macc"]),
                macc_std=float(data[f"{init}_macc_std"]),
                seeds=int(data[f"{init}_seeds"]),
                lr_search=data.get(f"{init}_lr_search"),
                lr_val=data.get(f"{init}_lr_val"),
            )
            for init in INITS
        }
        at = None
        if "ppkt_at_scratch_lr_miou" in data:
            at = (float(data["ppkt_at_scratch_lr_miou"]), float(data["ppkt_at_scratch_lr_miou_std"]))
        return cls(
            mode=data["mode"],
            budget=budget,
            scratch=figures["scratch"],
            ppkt=figures["ppkt"],
            lr_backbone=data.get("lr_backbone"),
            ppkt_lr_backbone=data.get("ppkt_lr_backbone", data.get("lr_backbone")),
            ppkt_at_scratch_lr=at,
        )


@dataclass(frozen=True)
class EffectivenessResults:
    """What one run of the protocol found: ``results.json``.

    Attributes:
        config: the experiment's config as saved (``config_to_dict``; older files may hold fields
            that have since been renamed, so it is kept as written).
        data_root: the dataset the runs read.
        pretrain_seconds: wall time of pretraining and export (of the earlier run when reused).
        pretrain_reused: the pretrained backbone was a finished run of an earlier invocation.
        total_seconds: wall time of the whole protocol.
        metric: what the figures are, in words.
        rows: the summary, one row per (mode, budget).
        runs: every run, in the order they ran.
    """

    config: dict[str, Any]
    data_root: Path
    pretrain_seconds: float
    pretrain_reused: bool
    total_seconds: float
    metric: str
    rows: tuple[EffectivenessRow, ...]
    runs: tuple[RunRecord, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "config": self.config,
            "data_root": str(self.data_root),
            "pretrain_seconds": self.pretrain_seconds,
            "pretrain_reused": self.pretrain_reused,
            "total_seconds": self.total_seconds,
            "metric": self.metric,
            "rows": [r.to_json() for r in self.rows],
            "runs": [r.to_json() for r in self.runs],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> EffectivenessResults:
        return cls(
            config=data.get("config", {}),
            data_root=Path(data.get("data_root", "")),
            pretrain_seconds=float(data.get("pretrain_seconds", math.nan)),
            pretrain_reused=bool(data.get("pretrain_reused", False)),
            total_seconds=float(data.get("total_seconds", math.nan)),
            metric=data.get("metric", ""),
            rows=tuple(EffectivenessRow.from_json(r) for r in data.get("rows", [])),
            runs=tuple(RunRecord.from_json(r) for r in data.get("runs", [])),
        )


def read_results(path: str | Path) -> EffectivenessResults:
    """An effectiveness ``results.json`` (this layout or an older one); one line naming the file
    and the problem if it is not one."""
    import json

    path = Path(path)
    try:
        data = json.loads(path.read_text())
        if any("objective" in r for r in data.get("rows", [])):
            raise ValueError("the objective axis's results, not the scratch/PPKT protocol's")
        return EffectivenessResults.from_json(data)
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        problem = f"missing key {err}" if isinstance(err, KeyError) else str(err)
        raise ValueError(f"{path}: not an effectiveness results file ({problem})") from None


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation of the finite values (NaN = a diverged or empty run)."""
    values = [v for v in values if not math.isnan(v)]
    if not values:
        return float("nan"), float("nan")
    mean = sum(values) / len(values)
    var = sum((v - mean) ** 2 for v in values) / (len(values) - 1) if len(values) > 1 else 0.0
    return mean, math.sqrt(var)
