"""The objective axis of the effectiveness benchmark: which pretraining objective transfers best?

Same data, teacher, student, steps and label splits for every objective; only the objective
changes (:data:`OBJECTIVES`: PPKT's InfoNCE, cosine distillation, SLidR's superpixel InfoNCE,
and PPKT's InfoNCE on scene-level pairs). Each pretrained backbone is then linearly probed
(frozen backbone, a linear head trained on the labelled points) at every ``linear_budgets`` label
budget and seed, as is a random backbone for reference. All backbones are pretrained first, then
probed one seed at a time, and the results are written after every seed (labelled partial until
the last), so a comparison stopped early is still a comparison. The effectiveness protocol
(:mod:`ppkt.experiments.effectiveness`) provides data, pretraining, export and probing; this module
only loops over objectives and tabulates them.

Layout: ``<out>/<objective>/pretrain`` and ``<out>/<objective>/runs/...`` per objective,
``<out>/random/runs/...``, one shared ``<out>/splits`` (the same labelled points for everyone),
``<out>/superpixels`` (the superpixel cache), and ``results.{json,md,png}``. Finished runs with
the same config are reused, so an interrupted comparison continues where it stopped.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml

from ppkt.config import config_to_dict
from ppkt.eval.splits import LabelBudget
from ppkt.experiments.effectiveness import finetune_one, prepare_data, pretrain_backbone
from ppkt.experiments.results import mean_std
from ppkt.utils.io import atomic_write_json, atomic_write_text


@dataclass(frozen=True)
class Objective:
    """One pretraining objective of the axis: its loss and which pixels a point is paired with.

    Attributes:
        loss: ``loss.name`` of the pretraining config.
        pairs: ``data.pairs`` (``"frame"`` or ``"scene"``); None = the pretraining preset's.
    """

    loss: Literal["infonce", "cosine", "superpixel-infonce"]
    pairs: Literal["frame", "scene"] | None = None


OBJECTIVES: dict[str, Objective] = {
    "infonce": Objective("infonce"),
    "cosine": Objective("cosine"),
    "superpixel-infonce": Objective("superpixel-infonce"),
    "scene-pairs": Objective("infonce", pairs="scene"),
}
"""Objective name -> what it changes in the experiment's pretraining."""

OBJECTIVE_LABELS = {
    "random": "random backbone (no pretraining)",
    "infonce": "PPKT InfoNCE (frame pairs)",
    "cosine": "cosine distillation (ScaLR/OpenScene)",
    "superpixel-infonce": "superpixel InfoNCE (SLidR)",
    "scene-pairs": "PPKT InfoNCE on scene-level pairs",
}
BASELINE = "infonce"


@dataclass(frozen=True)
class ObjectiveRecord:
    """One linear probe of one objective's backbone (last-step validation metrics)."""

    objective: str
    budget: LabelBudget
    seed: int
    miou: float
    macc: float
    seconds: float
    run_dir: str

    def to_json(self) -> dict:
        return {**dataclasses.asdict(self), "budget": self.budget.text}


@dataclass(frozen=True)
class ObjectiveRow:
    """One (objective, budget) row of the comparison: linear-probe figures in percent.

    Attributes:
        objective: a name of :data:`OBJECTIVES`, or ``"random"`` (no pretraining).
        budget: the label budget of the probes.
        miou: mean over seeds of the last-step validation mIoU.
        miou_std: sample standard deviation of those.
        macc: mean of the mAcc.
        macc_std: sample standard deviation of the mAcc.
        seeds: probes averaged.
        vs_infonce: ``miou`` minus :data:`BASELINE`'s at the same budget (None where it was not run).
    """

    objective: str
    budget: LabelBudget
    miou: float
    miou_std: float
    macc: float
    macc_std: float
    seeds: int
    vs_infonce: float | None

    @property
    def label(self) -> str:
        return self.budget.label

    def to_json(self) -> dict:
        """The row as in ``results.json``."""
        data = {"objective": self.objective, "budget": self.budget.text, "label": self.label}
        return data | {k: v for k, v in dataclasses.asdict(self).items() if k not in data}

    @classmethod
    def from_json(cls, data: dict) -> ObjectiveRow:
        names = {f.name for f in dataclasses.fields(cls)} - {"budget"}
        return cls(budget=LabelBudget.parse(data["budget"]), **{k: data[k] for k in names})


@dataclass(frozen=True)
class ObjectiveResults:
    """What the objective axis found: its ``results.json``.

    Attributes:
        config: the experiment's config as saved (``config_to_dict``).
        data_root: the dataset the runs read.
        complete: every probe ran (written after each seed, so False until the last).
        pretrain_seconds: objective -> wall time of its pretraining and export.
        pretrain_losses: objective -> ``"first -> last"`` logged pretraining loss.
        total_seconds: wall time so far.
        metric: what the figures are, in words.
        rows: one per (objective, budget).
        runs: every probe, in the order they ran.
    """

    config: dict
    data_root: Path
    complete: bool
    pretrain_seconds: dict[str, float]
    pretrain_losses: dict[str, str]
    total_seconds: float
    metric: str
    rows: tuple[ObjectiveRow, ...]
    runs: tuple[ObjectiveRecord, ...]

    def to_json(self) -> dict:
        return {
            "config": self.config,
            "data_root": str(self.data_root),
            "complete": self.complete,
            "pretrain_seconds": self.pretrain_seconds,
            "pretrain_losses": self.pretrain_losses,
            "total_seconds": self.total_seconds,
            "metric": self.metric,
            "rows": [r.to_json() for r in self.rows],
            "runs": [r.to_json() for r in self.runs],
        }


def objective_config(cfg, objective: str):
    """The effectiveness config of one objective: its own folder, its loss and pairs, its own
    overrides (``objective_overrides``), the shared split folder and superpixel cache."""
    if objective not in OBJECTIVES and objective != "random":
        raise ValueError(f"unknown objective {objective!r}; choose from {sorted(OBJECTIVES)}")
    out = Path(cfg.out)
    extra: tuple[str, ...] = ()
    for item in cfg.objective_overrides:
        name, sep, override = item.partition(":")
        if not sep or "=" not in override or (name not in OBJECTIVES):
            raise ValueError(
                f"objective_overrides: {item!r} is not 'OBJECTIVE:key=value' with a known objective"
            )
        if name == objective:
            extra = (*extra, override)
    sub = dataclasses.replace(
        cfg,
        out=out / objective,
        pretrain_overrides=(*cfg.pretrain_overrides, *extra),
        splits_dir=out / "splits",
    )
    spec = OBJECTIVES.get(objective)
    if spec is None:  # the random backbone is not pretrained
        return sub
    sub = dataclasses.replace(sub, pretrain_loss=spec.loss, pretrain_pairs=spec.pairs or cfg.pretrain_pairs)
    if spec.loss == "superpixel-infonce":
        sub = dataclasses.replace(sub, superpixel_cache=out / "superpixels")
    return sub


def summarize_objectives(records: Sequence[ObjectiveRecord]) -> list[ObjectiveRow]:
    """One row per (objective, budget): mIoU / mAcc mean ± std over seeds, and the mIoU difference
    to :data:`BASELINE` at the same budget (None where it was not run)."""
    means = {}
    for key in dict.fromkeys((r.objective, r.budget) for r in records):
        mine = [r for r in records if (r.objective, r.budget) == key]
        means[key] = (
            *mean_std([100 * r.miou for r in mine]),
            *mean_std([100 * r.macc for r in mine]),
            len(mine),
        )
    rows = []
    for (objective, budget), (miou, miou_std, macc, macc_std, seeds) in means.items():
        base = means.get((BASELINE, budget))
        vs = miou - base[0] if base is not None else None
        rows.append(ObjectiveRow(objective, budget, miou, miou_std, macc, macc_std, seeds, vs))
    return rows


def objectives_markdown(rows: Sequence[ObjectiveRow]) -> str:
    header = "| objective | labels | linear-probe mIoU | vs InfoNCE | mAcc | seeds |"
    lines = [header, "|---|---|---|---|---|---|"]
    for r in rows:
        delta = "–" if r.vs_infonce is None or r.objective == BASELINE else f"{r.vs_infonce:+.1f}"
        lines.append(
            f"| {OBJECTIVE_LABELS.get(r.objective, r.objective)} | {r.label} | {r.miou:.1f} ± "
            f"{r.miou_std:.1f} | {delta} | {r.macc:.1f} ± {r.macc_std:.1f} | {r.seeds} |"
        )
    return "\n".join(lines) + "\n"


def plot_objectives(rows: Sequence[ObjectiveRow], path: Path) -> Path | None:
    """Grouped bars: linear-probe mIoU per objective, one group per label budget, error bars = std."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    budgets = list(dict.fromkeys(r.budget for r in rows))
    objectives = list(dict.fromkeys(r.objective for r in rows))
    fig, ax = plt.subplots(figsize=(1.6 + 1.4 * len(budgets) * len(objectives) / 2, 4.6), dpi=100)
    width = 0.8 / max(1, len(objectives))
    for k, objective in enumerate(objectives):
        xs, ys, es = [], [], []
        for b, budget in enumerate(budgets):
            row = [r for r in rows if (r.objective, r.budget) == (objective, budget)]
            if row:
                xs.append(b + (k - (len(objectives) - 1) / 2) * width)
                ys.append(row[0].miou)
                es.append(row[0].miou_std)
        ax.bar(xs, ys, width, yerr=es, capsize=3, label=OBJECTIVE_LABELS.get(objective, objective))
    ax.set_xticks(range(len(budgets)), [f"linear probe, {b.label}" for b in budgets])
    ax.set_ylabel("val mIoU (%)")
    ax.grid(axis="y", alpha=0.3)
    # Below the axes: every bar starts at 0, so a legend inside would cover one.
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=3, frameon=False)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def run_objectives(cfg, log: Callable[..., None] = print) -> ObjectiveResults:
    """Pretrain with every objective of ``cfg.objectives``, probe each (and a random backbone) at
    ``cfg.linear_budgets`` x ``cfg.seeds``; write and return the results."""
    started = time.perf_counter()
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "experiment.yaml", yaml.safe_dump(config_to_dict(cfg), sort_keys=False))
    unknown = [o for o in cfg.objectives if o not in OBJECTIVES]
    if unknown:
        raise ValueError(f"objectives: unknown {unknown}; choose from {sorted(OBJECTIVES)}")
    root = prepare_data(cfg)
    log(f"data: {root}")
    records: list[ObjectiveRecord] = []
    pretrain_seconds: dict[str, float] = {}
    total = len(cfg.seeds) * len(cfg.linear_budgets) * (len(cfg.objectives) + 1)

    def probe(objective: str, budget: LabelBudget, seed: int) -> None:
        sub, backbone = subs[objective], backbones[objective]
        run = finetune_one(sub, root, init=backbone, mode="linear", budget=budget, seed=seed)
        records.append(ObjectiveRecord(objective, budget, seed, run.miou, run.macc, run.seconds, run.run_dir))
        log(
            f"[{len(records)}/{total}] {objective:18s} {budget.label:>14s} seed {seed} "
            f"mIoU {100 * run.miou:5.1f}  mAcc {100 * run.macc:5.1f}  ({run.seconds:.0f} s)"
        )

    def write(complete: bool) -> ObjectiveResults:
        # Written after every objective, so a comparison stopped early leaves labelled partial results.
        rows = summarize_objectives(records)
        results = ObjectiveResults(
            config=config_to_dict(cfg),
            data_root=Path(root),
            complete=complete,
            pretrain_seconds=dict(pretrain_seconds),
            pretrain_losses={o: _pretrain_losses(out / o / "pretrain") for o in pretrain_seconds},
            total_seconds=time.perf_counter() - started,
            metric="validation mIoU / mAcc of linear probes at the last step, mean ± std over seeds",
            rows=tuple(rows),
            runs=tuple(records),
        )
        atomic_write_json(out / "results.json", results.to_json())
        partial = "" if complete else "**PARTIAL: the comparison was stopped before every run finished.**\n\n"
        atomic_write_text(out / "results.md", partial + objectives_markdown(rows))
        plot_objectives(rows, out / "results.png")
        return results

    # Every backbone first, then the probes one seed at a time over every objective: a comparison
    # stopped early still has every objective at the seeds it finished.
    subs = {o: objective_config(cfg, o) for o in (*cfg.objectives, "random")}
    backbones: dict[str, Path | None] = {"random": None}
    for objective in cfg.objectives:
        pretrained = pretrain_backbone(subs[objective], root)
        backbones[objective], seconds = pretrained.path, pretrained.seconds
        pretrain_seconds[objective] = seconds
        log(
            f"{objective}: pretrained in {seconds:.0f} s; "
            f"loss {_pretrain_losses(out / objective / 'pretrain')}"
        )
    for seed in cfg.seeds:
        for budget in cfg.linear_budgets:
            for objective in (*cfg.objectives, "random"):
                probe(objective, budget, seed)
        write(complete=False)
    return write(complete=True)


def _pretrain_losses(run_dir: Path) -> str:
    """``first -> last`` logged pretraining loss of a run (for the log)."""
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        return "n/a"
    losses = [json.loads(line)["loss"] for line in path.read_text().splitlines() if line.strip()]
    return f"{losses[0]:.3f} -> {losses[-1]:.3f}" if losses else "n/a"
