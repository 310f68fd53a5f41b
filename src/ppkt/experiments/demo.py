"""``ppkt demo``: the effectiveness protocol at one label budget, sized to run on a CPU, and what it
prints: stages with an overall ETA, one table in words, and the files it wrote.

The sizes and their measured times live here, once: ``ppkt demo --help``, the docs and the
README quote :data:`SIZES`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ppkt.experiments.effectiveness import (
    ExperimentConfig,
    PretrainedBackbone,
    ProtocolLog,
    run_label,
    run_outcome,
)
from ppkt.experiments.results import EffectivenessRow, RunRecord


@dataclass(frozen=True)
class DemoSize:
    """One ``ppkt demo --size``: data, steps, and what it was measured to cost.

    Attributes:
        rooms: synthetic rooms (80 % train, 20 % validation).
        frames_per_room: RGB-D frames rendered per room (the pretraining frames).
        pretrain_steps: PPKT pretraining steps (batch 4 frames).
        finetune_steps: steps of every fine-tuning run (batch 2 rooms).
        lr_grid: backbone learning rates both initialisations are fine-tuned with.
        smoke: the run only checks that every stage works; its numbers mean nothing.
        measured: the measured time, with the machine and the command (or "not re-measured").
    """

    rooms: int
    frames_per_room: int
    pretrain_steps: int
    finetune_steps: int
    lr_grid: tuple[float, ...]
    smoke: bool
    measured: str


SIZES: dict[str, DemoSize] = {
    "tiny": DemoSize(
        rooms=6, frames_per_room=4, pretrain_steps=8, finetune_steps=10, lr_grid=(0.001,), smoke=True,
        measured="34 CPU-seconds (user+sys), 2 min 46 s wall on a shared, loaded 2-core CPU, rooms "
        "generated (/usr/bin/time -v ppkt demo --size tiny)",
    ),
    "small": DemoSize(
        rooms=12, frames_per_room=8, pretrain_steps=150, finetune_steps=200, lr_grid=(0.01, 0.001),
        smoke=False,
        measured="435 CPU-seconds (user+sys), 18 min 48 s wall on a shared 2-core CPU under load (load "
        "average about 4 from other jobs), rooms cached (/usr/bin/time -v ppkt demo --size small)",
    ),
    "default": DemoSize(
        rooms=20, frames_per_room=12, pretrain_steps=400, finetune_steps=400, lr_grid=(0.01, 0.001),
        smoke=False,
        measured="11 min 51 s wall, 727 CPU-seconds, on a quiet 2-core CPU with the rooms cached "
        "(/usr/bin/time -v ppkt demo)",
    ),
    "long": DemoSize(
        rooms=32, frames_per_room=16, pretrain_steps=1500, finetune_steps=1000, lr_grid=(0.01, 0.001),
        smoke=False,
        measured="2573 CPU-seconds (user+sys), 47 min 39 s wall on a shared 2-core CPU under load (load "
        "average about 3-4 from other jobs), rooms generated (/usr/bin/time -v ppkt demo --size long)",
    ),
}  # fmt: skip


def sizes_help() -> str:
    """The ``--size`` help text: what each size is and its measured time."""
    parts = []
    for name, size in SIZES.items():
        what = "smoke run, numbers meaningless" if size.smoke else f"{size.rooms} rooms"
        parts.append(
            f"{name} ({what}; {size.pretrain_steps} pretraining + {size.finetune_steps} fine-tuning steps; "
            f"time: {size.measured})"
        )
    return "; ".join(parts)


# ------------------------------------------------------------------------------------ progress and ETA
# Reference costs (seconds of wall time on a quiet 2-core CPU) from which the first ETA is estimated;
# the ETA then rescales them by the speed measured on this machine as stages finish. Measured with
# --size default (SIZES, rooms cached): pretraining 400 steps in 5 min 40 s, each fine-tuning run of
# 400 steps 88-93 s, 11 min 51 s in all; the pictures cost is an estimate. A frame: --size long
# rendered its 512 frames at about 41 frames/s on the loaded machine (0.15 s, the earlier estimate,
# made the ETA after the rooms 4x too short: "9 min left" before 45 min of work).
REF_FRAME_S = 0.025  # rendering one synthetic frame
REF_PRETRAIN_STEP_S = 0.85  # one pretraining step of the demo preset
REF_FINETUNE_STEP_S = 0.21  # one fine-tuning step of demo-finetune
REF_RUN_OVERHEAD_S = 6.0  # reading the rooms, building the model, the final evaluation
REF_PICTURES_S = 15.0  # pictures and report


def format_duration(seconds: float) -> str:
    """``"45 s"``, ``"3 min 05 s"``, ``"1 h 02 min"``."""
    if not math.isfinite(seconds):
        return "?"
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


STAGES = ("synthetic rooms", "PPKT pretraining", "fine-tuning", "pictures and report")


class DemoProgress(ProtocolLog):
    """Prints stage k/n and an overall ETA across the demo's stages.

    The ETA is the reference cost of the work left (``REF_*``), times the speed measured so far on
    this machine (wall time / reference cost of the work done here). Work reused from an earlier run
    takes no time and teaches nothing about the speed.
    """

    def __init__(
        self,
        size: DemoSize,
        *,
        pictures: bool = True,
        log: Callable[[str], None] = print,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        super().__init__(log)
        self.size = size
        self.pictures = pictures
        self.clock = clock
        self.stage_index = 0
        self.reference_left = 0.0
        self.reference_done = 0.0  # reference cost of the work actually done here
        self.seconds_done = 0.0  # and its wall time
        self._since = clock()
        self.run_reference = 0.0

    # -- the cost model
    def planned(self, cfg: ExperimentConfig, total_runs: int) -> None:
        super().planned(cfg, total_runs)
        frames = cfg.synthetic.scenes * cfg.synthetic.frames_per_scene
        self.run_reference = REF_RUN_OVERHEAD_S + self.size.finetune_steps * REF_FINETUNE_STEP_S
        self.stage_reference = [
            frames * REF_FRAME_S,
            self.size.pretrain_steps * REF_PRETRAIN_STEP_S,
            total_runs * self.run_reference,
            REF_PICTURES_S if self.pictures else 0.0,
        ]
        self.reference_left = sum(self.stage_reference)
        self._start_stage(1, f"{cfg.synthetic.scenes} rooms x {cfg.synthetic.frames_per_scene} frames")

    def eta(self) -> float:
        """Seconds left, estimated."""
        speed = self.seconds_done / self.reference_done if self.reference_done > 0 else 1.0
        return self.reference_left * speed

    def _finish_work(self, reference: float, reused: bool) -> None:
        now = self.clock()
        if not reused:
            self.reference_done += reference
            self.seconds_done += now - self._since
        self.reference_left = max(self.reference_left - reference, 0.0)
        self._since = now

    def _start_stage(self, index: int, what: str) -> None:
        self.stage_index = index
        self._since = self.clock()
        self.log(f"[stage {index}/{len(STAGES)}] {STAGES[index - 1]}: {what}  (all stages: about "
                 f"{format_duration(self.eta())} left)")  # fmt: skip

    # -- the protocol's events
    def data_ready(self, root: Path, reused: bool) -> None:
        self._finish_work(self.stage_reference[0], reused)
        self.log(f"  {'reused from the cache' if reused else 'generated'}: {root}")

    def pretraining(self, steps: int) -> None:
        self._start_stage(2, f"{steps} steps")

    def pretrained(self, backbone: PretrainedBackbone) -> None:
        self._finish_work(self.stage_reference[1], backbone.reused)
        if backbone.reused:
            self.log(
                f"  reused: {backbone.path} (finished by an earlier run of this command, which took "
                f"{format_duration(backbone.seconds)})"
            )
        else:
            self.log(f"  done in {format_duration(backbone.seconds)}: {backbone.path}")
        self._start_stage(
            3,
            f"{self.total_runs} runs of {self.size.finetune_steps} steps (from scratch and from PPKT, "
            f"backbone lr {', '.join(f'{lr:g}' for lr in self.size.lr_grid)})",
        )

    def run_done(self, record: RunRecord, done: int) -> None:
        self._finish_work(self.run_reference, record.reused)
        self.log(f"  [{done}/{self.total_runs}] {run_label(record)} {run_outcome(record)}  "
                 f"(all stages: about {format_duration(self.eta())} left)")  # fmt: skip

    def pictures_starting(self) -> None:
        what = "pictures of what pretraining learned, predictions, " if self.pictures else ""
        self._start_stage(4, f"{what}report.html")

    def pictures_done(self) -> None:
        self._finish_work(self.stage_reference[3], reused=False)


# ------------------------------------------------------------------------------------ the table
def _cell(mean: float, std: float, seeds: int) -> str:
    if math.isnan(mean):
        return "n/a"
    return f"{mean:.1f}" if seeds < 2 else f"{mean:.1f} ± {std:.1f}"


def _seeds(n: int) -> str:
    return "1 seed" if n == 1 else f"{n} seeds"


def demo_table(rows: Sequence[EffectivenessRow], *, smoke: bool) -> str:
    """One Markdown table: labels, scratch mIoU, PPKT mIoU, gain, seeds (each at its chosen rate).

    A smoke run's gain is not printed: its numbers mean nothing.
    """
    lines = [
        "| labels | from scratch (mIoU %) | PPKT pretrained (mIoU %) | gain | seeds |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        n = min(r.scratch.seeds, r.ppkt.seeds)
        label = r.label + (", linear probe" if r.mode == "linear" else "")
        if smoke:
            gain = "(smoke run)"
        elif math.isnan(r.gain_miou):
            gain = "n/a"
        else:
            gain = f"{r.gain_miou:+.1f}"
        lines.append(
            f"| {label} | {_cell(r.scratch.miou, r.scratch.miou_std, n)} "
            f"| {_cell(r.ppkt.miou, r.ppkt.miou_std, n)} | {gain} | {_seeds(n)} |"
        )
    return "\n".join(lines) + "\n"


def _rates(row: EffectivenessRow, init: str) -> str:
    search = row.figures(init).lr_search or {}
    best = row.lr_backbone if init == "scratch" else row.ppkt_lr_backbone
    if best is None:
        return ""
    tried = ", ".join(f"{lr}: {'diverged' if math.isnan(m) else f'{m:.1f}'}" for lr, m in search.items())
    return f"{best:g}" + (f" (tried {tried})" if len(search) > 1 else "")


def demo_explanation(rows: Sequence[EffectivenessRow], size: DemoSize, *, validation_rooms: int) -> str:
    """What the table means, in words (a smoke run: that it means nothing)."""
    if size.smoke:
        return (
            f"SMOKE RUN: {size.pretrain_steps} pretraining and {size.finetune_steps} fine-tuning steps only "
            "check that every stage runs. These numbers mean nothing; do not read a gain into them. "
            "For a result, run `ppkt demo` (--size default)."
        )
    fine = [r for r in rows if r.mode == "finetune"]
    lines = [
        f"mIoU: the mean over the classes of the overlap (intersection over union, %) between predicted "
        f"and true labels of every point of the {validation_rooms} validation rooms, at the last "
        "fine-tuning step. Both networks are identical except for their starting weights: random "
        "(from scratch) or PPKT-pretrained on the rooms' images with no labels.",
    ]
    if fine:
        r = fine[0]
        lines.append(
            f"Each is reported at its better backbone learning rate, chosen on the validation rooms: "
            f"scratch {_rates(r, 'scratch')}; PPKT {_rates(r, 'ppkt')}."
        )
        if r.ppkt_at_scratch_lr is not None and not math.isnan(r.ppkt_at_scratch_lr[0]):
            lines.append(
                f"PPKT at scratch's rate: {r.ppkt_at_scratch_lr[0]:.1f} ({r.gain_at_scratch_lr_miou:+.1f})."
            )
    lines.append(
        "How good is good: on these rooms, with this network, 20 labelled points per room give about "
        "13 mIoU from scratch and 18.5 from PPKT, and every label of the 16 training rooms about 21 and "
        "28 (the effectiveness benchmark: 4000 pretraining steps, 3 seeds; "
        "benchmarks/results/effectiveness/results.md)."
    )
    seeds = min((min(r.scratch.seeds, r.ppkt.seeds) for r in rows), default=0)
    lines.append(
        "The gain is PPKT's mIoU minus scratch's: positive means what the 3D network learned from the 2D "
        f"image network helps with few labels. With {_seeds(seeds)} and {size.pretrain_steps} pretraining "
        "steps, a difference of a point or two is within the spread between seeds (the benchmark's "
        "standard deviations are 0.3 to 3.4 points); more seeds: --seeds 0 1 2."
    )
    return "\n".join(lines)


# ------------------------------------------------------------------------------------ the files
FILE_NOTES = {
    "results.md": "the full table: every rate tried, mAcc",
    "results.json": "every run's metrics, the chosen rates, timings",
    "results.png": "mIoU plot",
    "report.html": "table, plot and pictures in one file: open it in a browser",
    "experiment.yaml": "the protocol's full config",
    "pretrain": "the pretraining run (config, checkpoints, metrics, exported backbone)",
    "runs": "one folder per fine-tuning run (config, checkpoints, metrics)",
    "splits": "the labelled points of each seed",
    "pictures": "pictures",
}


def written_files(out: Path, since: float) -> list[str]:
    """Lines listing what is in the run folder ``out``: each top-level file and picture, and each
    folder with its file count; ``since`` (a ``time.time()``) tells written now from reused."""
    lines = []
    for entry in sorted(Path(out).iterdir(), key=lambda p: (p.is_dir(), p.name)):
        note = FILE_NOTES.get(entry.name, "")
        if entry.is_file():
            lines.append(_file_line(entry, since, note))
        elif entry.name == "pictures":
            lines += [_file_line(p, since, "") for p in sorted(entry.rglob("*")) if p.is_file()]
        elif entry.is_dir():
            files = [p for p in entry.rglob("*") if p.is_file()]
            new = sum(p.stat().st_mtime >= since for p in files)
            if new == len(files):
                state = "all written now"
            else:
                state = "all from an earlier run" if new == 0 else f"{new} written now, the rest reused"
            count = f"{len(files)} file{'s' if len(files) != 1 else ''}"
            lines.append(f"  {entry}/  ({count}, {state}){': ' + note if note else ''}")
    return lines


def _file_line(path: Path, since: float, note: str) -> str:
    state = "" if path.stat().st_mtime >= since else " (from an earlier run)"
    return f"  {path}{state}{': ' + note if note else ''}"


__all__ = [
    "SIZES",
    "STAGES",
    "DemoProgress",
    "DemoSize",
    "demo_explanation",
    "demo_table",
    "format_duration",
    "sizes_help",
    "written_files",
]
