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

import yaml

from ppkt.config import config_to_dict
from ppkt.utils.io import atomic_write_json, atomic_write_text

OBJECTIVES: dict[str, tuple[str, ...]] = {
    "infonce": ("loss.name=infonce",),
    "cosine": ("loss.name=cosine",),
    "superpixel-infonce": ("loss.name=superpixel-infonce",),
    "scene-pairs": ("loss.name=infonce", "data.pairs=scene"),
}
"""Objective name -> pretraining overrides on top of the experiment's own."""

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
    budget: str
    seed: int
    miou: float
    macc: float
    seconds: float
    run_dir: str


def objective_config(cfg, objective: str):
    """The effectiveness config of one objective: its own folder, its pretraining overrides, the
    shared split folder."""
    if objective not in OBJECTIVES and objective != "random":
        raise ValueError(f"unknown objective {objective!r}; choose from {sorted(OBJECTIVES)}")
    out = Path(cfg.out)
    extra = OBJECTIVES.get(objective, ())
    for item in cfg.objective_overrides:
        name, sep, override = item.partition(":")
        if not sep or "=" not in override or (name not in OBJECTIVES):
            raise ValueError(
                f"objective_overrides: {item!r} is not 'OBJECTIVE:key=value' with a known objective"
            )
        if name == objective:
            extra = (*extra, override)
    if objective == "superpixel-infonce":
        extra = (*extra, f"loss.superpixel_cache={out / 'superpixels'}")
    return dataclasses.replace(
        cfg,
        out=out / objective,
        pretrain_overrides=(*cfg.pretrain_overrides, *extra),
        linear_overrides=(*cfg.linear_overrides, f"labels.splits_dir={out / 'splits'}"),
    )


def summarize_objectives(records: Sequence[ObjectiveRecord]) -> list[dict]:
    """One row per (objective, budget): mIoU / mAcc mean ± std over seeds, and the mIoU difference
    to :data:`BASELINE` at the same budget (None where it was not run)."""
    from ppkt.experiments.effectiveness import budget_label, mean_std

    rows = []
    keys = list(dict.fromkeys((r.objective, r.budget) for r in records))
    for objective, budget in keys:
        mine = [r for r in records if (r.objective, r.budget) == (objective, budget)]
        miou, miou_std = mean_std([100 * r.miou for r in mine])
        macc, macc_std = mean_std([100 * r.macc for r in mine])
        rows.append(
            {
                "objective": objective, "budget": budget, "label": budget_label(budget),
                "miou": miou, "miou_std": miou_std, "macc": macc, "macc_std": macc_std, "seeds": len(mine),
            }
        )  # fmt: skip
    for row in rows:
        base = [b for b in rows if b["objective"] == BASELINE and b["budget"] == row["budget"]]
        row["vs_infonce"] = row["miou"] - base[0]["miou"] if base else None
    return rows


def objectives_markdown(rows: Sequence[dict]) -> str:
    header = "| objective | labels | linear-probe mIoU | vs InfoNCE | mAcc | seeds |"
    lines = [header, "|---|---|---|---|---|---|"]
    for r in rows:
        delta = "–" if r["vs_infonce"] is None or r["objective"] == BASELINE else f"{r['vs_infonce']:+.1f}"
        lines.append(
            f"| {OBJECTIVE_LABELS.get(r['objective'], r['objective'])} | {r['label']} | {r['miou']:.1f} ± "
            f"{r['miou_std']:.1f} | {delta} | {r['macc']:.1f} ± {r['macc_std']:.1f} | {r['seeds']} |"
        )
    return "\n".join(lines) + "\n"


def plot_objectives(rows: Sequence[dict], path: Path) -> Path | None:
    """Grouped bars: linear-probe mIoU per objective, one group per label budget, error bars = std."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    budgets = list(dict.fromkeys(r["budget"] for r in rows))
    objectives = list(dict.fromkeys(r["objective"] for r in rows))
    fig, ax = plt.subplots(figsize=(1.6 + 1.4 * len(budgets) * len(objectives) / 2, 4.6), dpi=100)
    width = 0.8 / max(1, len(objectives))
    for k, objective in enumerate(objectives):
        xs, ys, es = [], [], []
        for b, budget in enumerate(budgets):
            row = [r for r in rows if (r["objective"], r["budget"]) == (objective, budget)]
            if row:
                xs.append(b + (k - (len(objectives) - 1) / 2) * width)
                ys.append(row[0]["miou"])
                es.append(row[0]["miou_std"])
        ax.bar(xs, ys, width, yerr=es, capsize=3, label=OBJECTIVE_LABELS.get(objective, objective))
    from ppkt.experiments.effectiveness import budget_label

    ax.set_xticks(range(len(budgets)), [f"linear probe, {budget_label(b)}" for b in budgets])
    ax.set_ylabel("val mIoU (%)")
    ax.grid(axis="y", alpha=0.3)
    # Below the axes: every bar starts at 0, so a legend inside would cover one.
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=3, frameon=False)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def run_objectives(cfg, log: Callable[..., None] = print) -> dict:
    """Pretrain with every objective of ``cfg.objectives``, probe each (and a random backbone) at
    ``cfg.linear_budgets`` x ``cfg.seeds``; write and return the results."""
    from ppkt.experiments.effectiveness import budget_label, finetune_one, prepare_data, pretrain_backbone

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

    def probe(objective: str, budget: str, seed: int) -> None:
        sub, backbone = subs[objective], backbones[objective]
        run = finetune_one(sub, root, init=backbone, mode="linear", budget=budget, seed=seed)
        records.append(ObjectiveRecord(objective, budget, seed, run.miou, run.macc, run.seconds, run.run_dir))
        log(
            f"[{len(records)}/{total}] {objective:18s} {budget_label(budget):>14s} seed {seed} "
            f"mIoU {100 * run.miou:5.1f}  mAcc {100 * run.macc:5.1f}  ({run.seconds:.0f} s)"
        )

    def write(complete: bool) -> dict:
        # Written after every objective, so a comparison stopped early leaves labelled partial results.
        rows = summarize_objectives(records)
        results = {
            "config": config_to_dict(cfg),
            "data_root": str(root),
            "complete": complete,
            "pretrain_seconds": pretrain_seconds,
            "pretrain_losses": {o: _pretrain_losses(out / o / "pretrain") for o in pretrain_seconds},
            "total_seconds": time.perf_counter() - started,
            "metric": "validation mIoU / mAcc of linear probes at the last step, mean ± std over seeds",
            "rows": rows,
            "runs": [dataclasses.asdict(r) for r in records],
        }
        atomic_write_json(out / "results.json", results)
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
