"""Side-by-side comparison of fine-tuning runs, with mean and standard deviation over seeds.

Runs are grouped by their resolved config **minus the seeds** (``labels.seed``, ``run.seed``)
and minus settings that do not change the result (``run.*`` bookkeeping, loader workers, scene
cache, split folder). Within a group the metric's mean and sample standard deviation (``ddof=1``;
"-" for a single run) are reported over the runs. The table's columns are the config keys that
differ between groups, so "scratch vs pretrained at each label budget" shows ``model.init`` and
``labels.budget`` and nothing else.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ppkt.config import config_from_dict, config_to_dict
from ppkt.eval.config import FinetuneConfig

SEED_KEYS = ("labels.seed", "run.seed")
IGNORED_KEYS = (
    "run.out",
    "run.eval_every",
    "run.log_every",
    "run.device",
    "run.progress",
    "data.num_workers",
    "data.cache_scenes",
    "labels.splits_dir",
    "origin",
)
METRICS = ("miou", "macc", "overall_accuracy")


def _flatten(data: dict, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, f"{name}."))
        else:
            out[name] = tuple(value) if isinstance(value, list) else value
    return out


@dataclass(frozen=True)
class RunRecord:
    """One finished run: its flattened config and its metrics.

    Attributes:
        path: the run folder.
        config: flattened config (``"labels.budget" -> 0.05``).
        metrics: ``metrics.json`` of the run.
    """

    path: Path
    config: dict[str, Any]
    metrics: dict[str, Any]

    @property
    def seed(self) -> tuple:
        return tuple(self.config.get(k) for k in SEED_KEYS)

    def value(self, metric: str, which: str = "best") -> float:
        v = self.metrics[which].get(metric)
        return math.nan if v is None else float(v)


def load_run(path: str | Path) -> RunRecord:
    """Read ``config.yaml`` and ``metrics.json`` of a run folder.

    The config is read as a :class:`FinetuneConfig` (old names of renamed options become the new
    ones, missing keys take their defaults) so that runs saved before and after a rename, with the
    same settings, fall in one group."""
    path = Path(path)
    config_path, metrics_path = path / "config.yaml", path / "metrics.json"
    for p in (config_path, metrics_path):
        if not p.is_file():
            raise FileNotFoundError(f"{p}: not found (is {path} a finished ppkt finetune run?)")
    try:
        config = yaml.safe_load(config_path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ValueError(f"{config_path}: not valid YAML ({str(err).splitlines()[0]})") from err
    config = config_to_dict(config_from_dict(FinetuneConfig, config, where=str(config_path)))
    try:
        metrics = json.loads(metrics_path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{metrics_path}: not valid JSON ({err})") from err
    return RunRecord(path, _flatten(config), metrics)


@dataclass(frozen=True)
class RunGroup:
    """Runs that differ only by seed.

    Attributes:
        settings: the group's value of every config key that differs between groups.
        runs: the runs of the group.
    """

    settings: dict[str, Any]
    runs: tuple[RunRecord, ...]

    def values(self, metric: str, which: str = "best") -> list[float]:
        return [r.value(metric, which) for r in self.runs]

    def mean_std(self, metric: str, which: str = "best") -> tuple[float, float]:
        values = self.values(metric, which)
        mean = statistics.fmean(values)
        std = statistics.stdev(values) if len(values) > 1 else math.nan
        return mean, std


def group_runs(runs: Sequence[RunRecord]) -> list[RunGroup]:
    """Group runs by config minus seeds; groups keep the order of their first run."""
    if not runs:
        return []

    def key_of(run: RunRecord) -> tuple:
        return tuple(
            sorted(
                (k, repr(v)) for k, v in run.config.items() if k not in SEED_KEYS and k not in IGNORED_KEYS
            )
        )

    groups: dict[tuple, list[RunRecord]] = {}
    for run in runs:
        groups.setdefault(key_of(run), []).append(run)
    all_keys = sorted({k for run in runs for k in run.config} - set(SEED_KEYS) - set(IGNORED_KEYS))
    varying = [k for k in all_keys if len({repr(r.config.get(k)) for r in runs}) > 1]
    out = []
    for members in groups.values():
        seeds = [r.seed for r in members]
        if len(set(seeds)) != len(seeds):
            dup = sorted({str(s) for s in seeds if seeds.count(s) > 1})
            raise ValueError(
                f"runs {[str(r.path) for r in members]} have the same config and seeds {dup}: "
                "the same run given twice?"
            )
        out.append(RunGroup({k: members[0].config.get(k) for k in varying}, tuple(members)))
    return out


def format_comparison(groups: Sequence[RunGroup], *, which: str = "best") -> str:
    """A markdown table: varying settings, number of seeds, mIoU / mAcc / overall accuracy (%)."""
    if not groups:
        return "(no runs)\n"
    keys = list(groups[0].settings)

    def cell(group: RunGroup, metric: str) -> str:
        mean, std = group.mean_std(metric, which)
        if math.isnan(mean):
            return "n/a"
        return f"{100 * mean:.2f}" + ("" if math.isnan(std) else f" ± {100 * std:.2f}")

    def show(value: Any) -> str:
        return "scratch" if value is None else str(value)

    header = [*keys, "seeds", "mIoU", "mAcc", "overall acc"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(keys) + "---:|---:|---:|---:|"]
    for g in groups:
        row = [show(g.settings[k]) for k in keys]
        row += [str(len(g.runs)), cell(g, "miou"), cell(g, "macc"), cell(g, "overall_accuracy")]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + f"\n\nmean ± sample std over seeds, {which} checkpoint of each run\n"
