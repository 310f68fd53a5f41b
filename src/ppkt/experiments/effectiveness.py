"""Does 2D knowledge transfer help? Pretrain once, then fine-tune from scratch and from PPKT.

The protocol (one function each, so ``ppkt demo`` and ``benchmarks/effectiveness.py`` share it):

1. :func:`prepare_data`: one dataset in the ScanNet layout (synthetic rooms by default). Its
   ``scannetv2_train.txt`` scenes are used for pretraining (frames, no labels) and as the labelled
   pool for fine-tuning; ``scannetv2_val.txt`` scenes are only ever used for evaluation.
2. :func:`pretrain_backbone`: PPKT pretraining with a pretraining preset, then ``ppkt export``.
3. :func:`finetune_one`: for each label budget and seed, a fine-tuning run from scratch and one
   from the PPKT backbone, with the same preset, steps, learning rates and split file; and linear
   probes of a random and of the pretrained backbone. With ``scratch_lr_grid``, every budget first
   fine-tunes from scratch with each backbone learning rate of the grid (all seeds); the rate with
   the best mean scratch mIoU is the one PPKT then fine-tunes with. The baseline gets a search on
   the validation scenes, PPKT does not, so the comparison leans towards scratch. With
   ``ppkt_lr_search``, PPKT gets the same search and each is reported at its own best rate;
   ``ppkt_overrides`` (e.g. frozen batch-norm statistics) apply to PPKT's fine-tunes only.
   Choosing rates on the validation scenes flatters both initialisations; with
   ``rate_selection="heldout"`` (:func:`write_scene_lists`), ``selection_scenes`` training scenes
   leave the labelled pool, every run is scored on them to choose the rate, and its last checkpoint
   is then evaluated once on the validation scenes, which choose nothing.
4. :func:`summarize`: mean and standard deviation over seeds of the **last-step** validation
   metrics (no checkpoint selection on the validation scenes), written as JSON, Markdown and a plot.

Every run folder is reused when its ``metrics.json`` exists and its saved config equals the one
it would run with, so an interrupted benchmark continues where it stopped.
"""

from __future__ import annotations

import contextlib
import json
import math
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import yaml

from ppkt.config import apply_overrides, config_to_dict, option, saved_with_current_names
from ppkt.data.registry import SyntheticRooms
from ppkt.data.scannet import scannet_split
from ppkt.data.synthetic import ensure_dataset
from ppkt.eval.finetune import evaluate_checkpoint, finetune
from ppkt.eval.presets import PRESETS as FINETUNE_PRESETS
from ppkt.eval.splits import LabelBudget
from ppkt.experiments.results import (
    INITS,
    EffectivenessResults,
    EffectivenessRow,
    InitFigures,
    RunRecord,
    mean_std,
)
from ppkt.train.export import export_backbone
from ppkt.train.loop import pretrain
from ppkt.train.presets import PRESETS as PRETRAIN_PRESETS
from ppkt.utils.io import atomic_write_json, atomic_write_text

# The protocols' rooms: 20 rooms (16 to train on, 4 to evaluate), 12 frames each to pretrain on.
PROTOCOL_ROOMS = SyntheticRooms(scenes=20, frames_per_scene=12, seed=0, image_hw=(120, 160))


@dataclass(frozen=True)
class ExperimentConfig:
    """The effectiveness protocol: data, pretraining, label budgets, seeds."""

    out: Path = option(Path("runs/effectiveness"), "output folder (runs, results.json, results.md, plot)")
    data_root: Path | None = option(None, "existing ScanNet-layout dataset; None = synthetic rooms below")
    synthetic: SyntheticRooms = option(
        factory=lambda: PROTOCOL_ROOMS, doc="the synthetic rooms (80 % train, 20 % val), without data_root"
    )
    pretrain_preset: str = option("demo", "pretraining preset (ppkt.train.presets)")
    pretrain_steps: int | None = option(
        None, "pretraining steps, with a checkpoint every quarter of them; None = the preset's"
    )
    pretrain_loss: Literal["infonce", "cosine", "superpixel-infonce"] | None = option(
        None, "pretraining loss (loss.name); None = the preset's"
    )
    pretrain_pairs: Literal["frame", "scene"] | None = option(
        None, "which pixels a point is paired with in pretraining (data.pairs); None = the preset's"
    )
    superpixel_cache: Path | None = option(
        None,
        "superpixel-infonce: folder of the superpixel cache (loss.superpixel_cache); None = the preset's",
    )
    pretrain_overrides: tuple[str, ...] = option(
        (), "pretraining overrides as 'key=value' strings, applied after every field above"
    )
    finetune_preset: str = option("demo-finetune", "fine-tuning preset (ppkt.eval.presets)")
    finetune_overrides: tuple[str, ...] = option(
        (), "fine-tuning overrides as 'key=value' strings, applied after every other field"
    )
    linear_preset: str = option("demo-linear-probe", "linear-probe preset (ppkt.eval.presets)")
    linear_overrides: tuple[str, ...] = option(
        (), "linear-probe overrides as 'key=value' strings, applied after every other field"
    )
    finetune_steps: int | None = option(
        None,
        "steps of every fine-tuning and linear-probe run, evaluated at the last step only; None = the "
        "presets' steps and evaluation interval",
    )
    budgets: tuple[LabelBudget, ...] = option(
        tuple(
            LabelBudget.parse(b)
            for b in ("scenes:0.0625", "scenes:0.25", "scenes:1.0", "points:20", "points:200")
        ),
        "label budgets 'scenes:FRACTION' or 'points:PER_SCENE'",
    )
    seeds: tuple[int, ...] = option((0, 1, 2), "seeds of the label splits and fine-tuning runs")
    splits_dir: Path | None = option(None, "folder of the label split files; None = <out>/splits")
    scratch_lr_grid: tuple[float, ...] = option(
        (),
        "backbone learning rates searched for the scratch baseline at each budget; PPKT fine-tunes "
        "with the one of best mean scratch mIoU unless ppkt_lr_search (empty: the fine-tuning preset's "
        "rate, no search)",
    )
    ppkt_lr_search: bool = option(
        False,
        "fine-tune PPKT at every rate of scratch_lr_grid too; its row is then its own best mean rate, "
        "and its result at scratch's rate is reported beside it",
    )
    ppkt_overrides: tuple[str, ...] = option(
        (), "fine-tuning overrides for the PPKT backbone only, applied after finetune_overrides"
    )
    rate_selection: Literal["val", "heldout"] = option(
        "val",
        "where the searched rates are chosen: val = on the validation scenes (flatters both "
        "initialisations); heldout = on selection_scenes training scenes held out of the labelled pool, "
        "so the validation scenes only report",
    )
    selection_scenes: int = option(
        4, "rate_selection heldout: training scenes held out (a fixed draw) to choose rates on"
    )
    linear_probes: bool = option(True, "also run linear probes of random and PPKT backbones")
    linear_budgets: tuple[LabelBudget, ...] = option(
        (LabelBudget("scenes", 1.0),), "label budgets of the linear probes"
    )
    objectives: tuple[str, ...] = option(
        (),
        "the objective axis instead of the scratch/PPKT protocol: pretrain with each of these "
        "(ppkt.experiments.objectives.OBJECTIVES) and linearly probe each at linear_budgets x seeds",
    )
    objective_overrides: tuple[str, ...] = option(
        (),
        "pretraining overrides of one objective only, 'OBJECTIVE:key=value' "
        "(e.g. scene-pairs:optim.steps=50); saved with the results",
    )
    device: str = option("auto", "torch device for every run")
    cpu_threads: int | None = option(
        1,
        "torch CPU threads of every run. A fixed count is part of being deterministic: sums split over "
        "threads round differently, and with 2 threads and a data-loader worker two runs of the same "
        "command differed (measured). The sparse convolutions run on one thread anyway; None = "
        "torch's default",
    )
    deterministic: bool = option(
        True, "deterministic kernels in pretraining and fine-tuning (torch.use_deterministic_algorithms)"
    )
    progress: bool = option(True, "progress bars")


@dataclass(frozen=True)
class PretrainedBackbone:
    """The exported PPKT backbone the fine-tunes start from.

    Attributes:
        path: the ``.safetensors`` file.
        seconds: wall time of pretraining and export, when they ran.
        reused: a finished identical run of an earlier invocation was reused (``seconds`` are its).
    """

    path: Path
    seconds: float
    reused: bool


def _overrides(items: Sequence[str]) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"override {item!r} is not of the form key=value")
        out[key.strip()] = value.strip()
    return out


def prepare_data(cfg: ExperimentConfig) -> Path:
    """The dataset root (generated and cached for synthetic rooms)."""
    if cfg.data_root is not None:
        return Path(cfg.data_root)
    rooms = cfg.synthetic
    return ensure_dataset(
        scenes=rooms.scenes,
        frames_per_scene=rooms.frames_per_scene,
        seed=rooms.seed,
        image_hw=rooms.render_hw(),
        progress=cfg.progress,
    )


SCENE_LISTS = "scene_lists"
"""With rate_selection heldout: <out>/scene_lists/scannetv2_{fit,select,val}.txt."""


def write_scene_lists(cfg: ExperimentConfig, root: Path) -> Path:
    """Split the training scenes into ``fit`` (the labelled pool) and ``select`` (rates are chosen
    on these); ``val`` is the dataset's. Returns the folder of the three lists.

    The held-out scenes are one fixed draw, the same for every budget, seed and initialisation.
    Pretraining still sees their frames (it uses no labels).
    """
    train, val = scannet_split(root, "train"), scannet_split(root, "val")
    if not 1 <= cfg.selection_scenes < len(train):
        raise ValueError(
            f"selection_scenes={cfg.selection_scenes}: must leave at least one of the {len(train)} "
            "training scenes in the labelled pool, and hold out at least one"
        )
    held = set(random.Random(0).sample(sorted(train), cfg.selection_scenes))
    folder = cfg.out / SCENE_LISTS
    folder.mkdir(parents=True, exist_ok=True)
    lists = {
        "fit": [s for s in train if s not in held],
        "select": [s for s in train if s in held],
        "val": val,
    }
    for name, scenes in lists.items():
        atomic_write_text(folder / f"scannetv2_{name}.txt", "".join(f"{s}\n" for s in scenes))
    return folder


# The sub-runs are built with dataclasses.replace on the presets' configs, a section at a time, in the
# small functions below (the one place that names the sub-runs' config fields); the user's own
# "key=value" overrides are applied last, so they win.


def _pretraining_run(pre, cfg: ExperimentConfig, root: Path):
    """``pre`` on the training scenes of ``root``, run in ``<out>/pretrain`` with the protocol's
    device, threads and determinism."""
    pre = replace(
        pre,
        data=replace(pre.data, kind="scannet", root=Path(root), split="train"),
        run=replace(
            pre.run,
            out=Path(cfg.out) / "pretrain",
            device=cfg.device,
            progress=cfg.progress,
            deterministic=cfg.deterministic,
            cpu_threads=cfg.cpu_threads,
        ),
    )
    if cfg.pretrain_steps is not None:
        steps = cfg.pretrain_steps
        pre = replace(
            pre,
            optim=replace(pre.optim, steps=steps),
            run=replace(pre.run, checkpoint_every=max(steps // 4, 1)),
        )
    return pre


def _same_architecture(ft, pre):
    """The fine-tuning config ``ft`` with the backbone of the pretraining config ``pre``."""
    spec = pre.model
    model = replace(
        ft.model, backbone=spec.backbone, width=spec.width, voxel_size=spec.voxel_size,
        input_features=spec.input_features,
    )  # fmt: skip
    return replace(ft, model=model)


def _fine_tuning_run(ft, *, root: Path, mode: str, init: Path | None, out: Path, device: str, progress: bool):
    """``ft`` on the scenes of ``root``, in ``mode`` from ``init`` (None: from scratch), run in ``out``."""
    return replace(
        ft,
        data=replace(ft.data, kind="scannet", root=Path(root)),
        model=replace(ft.model, mode=mode, init=None if init is None else Path(init)),
        run=replace(ft.run, out=Path(out), device=device, progress=progress),
    )


def _labels(ft, budget: LabelBudget, seed: int, splits_dir: Path):
    """``ft`` with the label budget ``budget`` drawn with ``seed``, its split files in ``splits_dir``."""
    labels = replace(
        ft.labels, kind=budget.kind, budget=budget.amount, seed=seed, splits_dir=Path(splits_dir)
    )
    return replace(ft, labels=labels)


def _held_out_rate_selection(ft, scene_lists: Path):
    """``ft`` trained on the ``fit`` scenes and scored on the ``select`` ones of ``scene_lists``."""
    return replace(
        ft, data=replace(ft.data, scene_lists=Path(scene_lists), train_split="fit", val_split="select")
    )


def _steps(ft, steps: int):
    """``ft`` with ``steps`` optimisation steps, evaluated at the last one."""
    return replace(ft, optim=replace(ft.optim, steps=steps), run=replace(ft.run, eval_every=steps))


def _backbone_rate(ft, lr_backbone: float):
    return replace(ft, optim=replace(ft.optim, lr_backbone=float(lr_backbone)))


def pretrain_config(cfg: ExperimentConfig, root: Path):
    pre = _pretraining_run(PRETRAIN_PRESETS.get(cfg.pretrain_preset), cfg, root)
    pre = apply_overrides(pre, _overrides(cfg.pretrain_overrides))
    return _objective(pre, cfg)


def _objective(pre, cfg: ExperimentConfig):
    """``pre`` with the objective of the protocol's objective axis (loss, pairs, superpixel cache).
    Applied after the user's ``pretrain_overrides``, so that a general override cannot turn one
    objective's runs into another's (they would share its run folders)."""
    if cfg.pretrain_loss is not None:
        pre = replace(pre, loss=replace(pre.loss, name=cfg.pretrain_loss))
    if cfg.pretrain_pairs is not None:
        pre = replace(pre, data=replace(pre.data, pairs=cfg.pretrain_pairs))
    if cfg.superpixel_cache is not None:
        pre = replace(pre, loss=replace(pre.loss, superpixel_cache=Path(cfg.superpixel_cache)))
    return pre


def _same_config(run_dir: Path, cfg) -> bool:
    """Whether ``run_dir`` holds a run of ``cfg``: its saved config, with the old names of renamed
    options read as the new ones (``ppkt.config.RENAMED_OPTIONS``), equals ``cfg`` key for key, so
    that a run finished before a rename is still recognised and reused."""
    saved = run_dir / "config.yaml"
    if not saved.is_file():
        return False
    try:
        earlier = saved_with_current_names(type(cfg), yaml.safe_load(saved.read_text()), where=str(saved))
    except ValueError:
        return False
    # Every key must be there: a key missing from an older file is not "the default".
    return earlier == config_to_dict(cfg)


def pretrain_backbone(cfg: ExperimentConfig, root: Path) -> PretrainedBackbone:
    """Pretrain (or reuse a finished identical run) and export the backbone."""
    pre = pretrain_config(cfg, root)
    run_dir = Path(pre.run.out)
    exported = run_dir / "backbone.safetensors"
    timing = run_dir / "timing.json"
    if exported.is_file() and _same_config(run_dir, pre) and timing.is_file():
        return PretrainedBackbone(exported, float(json.loads(timing.read_text())["seconds"]), reused=True)
    if run_dir.exists() and not _same_config(run_dir, pre):
        raise FileExistsError(
            f"{run_dir} holds a pretraining run with another config; remove it or choose another --out"
        )
    started = time.perf_counter()
    resume = (run_dir / "checkpoints").exists()
    pretrain(pre, resume=resume)
    path, _ = export_backbone(run_dir, exported)
    seconds = time.perf_counter() - started
    atomic_write_json(timing, {"seconds": seconds})
    return PretrainedBackbone(Path(path), seconds, reused=False)


def finetune_config(
    cfg: ExperimentConfig,
    root: Path,
    *,
    init: Path | None,
    mode: str,
    budget: LabelBudget,
    seed: int,
    lr_backbone: float | None = None,
):
    """The fine-tuning config of one run; the backbone architecture follows the pretraining config.

    ``lr_backbone`` (a learning-rate search) overrides the preset's and is part of the run's name.
    """
    pre = pretrain_config(cfg, root)
    preset, extra = (
        (cfg.finetune_preset, cfg.finetune_overrides)
        if mode == "finetune"
        else (cfg.linear_preset, cfg.linear_overrides)
    )
    if mode == "finetune" and init is not None:
        extra = (*extra, *cfg.ppkt_overrides)
    user = _overrides(extra)
    name = f"{mode}-{'ppkt' if init else 'scratch'}-{budget.slug}-seed{seed}"
    if lr_backbone is not None:
        if "optim.lr_backbone" in user:
            raise ValueError("optim.lr_backbone is both overridden and searched (scratch_lr_grid)")
        name += f"-lrb{lr_backbone:g}"
    ft = _same_architecture(FINETUNE_PRESETS.get(preset), pre)
    ft = _fine_tuning_run(
        ft,
        root=root,
        mode=mode,
        init=init,
        out=cfg.out / "runs" / name,
        device=cfg.device,
        progress=cfg.progress,
    )
    ft = _labels(ft, budget, seed, cfg.splits_dir or cfg.out / "splits")
    if cfg.rate_selection == "heldout":
        ft = _held_out_rate_selection(ft, cfg.out / SCENE_LISTS)
    if cfg.finetune_steps is not None:
        ft = _steps(ft, cfg.finetune_steps)
    ft = apply_overrides(ft, user)
    return ft if lr_backbone is None else _backbone_rate(ft, lr_backbone)


def finetune_one(
    cfg: ExperimentConfig,
    root: Path,
    *,
    init: Path | None,
    mode: str,
    budget: LabelBudget,
    seed: int,
    lr_backbone: float | None = None,
) -> RunRecord:
    """Run (or reuse) one fine-tuning / linear-probe run and return its last-step metrics.

    A run of a searched learning rate (``lr_backbone`` given) that stops on a non-finite loss is
    recorded as diverged (``diverged.json`` in its folder, NaN metrics) instead of ending the
    benchmark: too high a rate is an outcome of the search. Any other failure propagates.

    With ``rate_selection="heldout"`` the run trains on the ``fit`` scenes and is scored on the
    ``select`` ones (``selection_miou``); its last checkpoint is then evaluated on the validation
    scenes (``val_metrics.json``), which give the record's metrics.
    """
    ft = finetune_config(cfg, root, init=init, mode=mode, budget=budget, seed=seed, lr_backbone=lr_backbone)
    run_dir = Path(ft.run.out)
    metrics_path = run_dir / "metrics.json"
    timing = run_dir / "timing.json"
    diverged = run_dir / "diverged.json"
    val_path = run_dir / "val_metrics.json"
    finished = diverged.is_file() or (metrics_path.is_file() and timing.is_file())
    reused = finished and _same_config(run_dir, ft)
    if not reused:
        diverged.unlink(missing_ok=True)
        val_path.unlink(missing_ok=True)
        started = time.perf_counter()
        try:
            finetune(ft, overwrite=True)  # a run that did not finish, or had other settings, starts over
        except FloatingPointError as error:
            if lr_backbone is None:
                raise
            atomic_write_json(diverged, {"error": str(error), "seconds": time.perf_counter() - started})
        else:
            atomic_write_json(timing, {"seconds": time.perf_counter() - started})
    common = dict(
        init="ppkt" if init else "scratch",
        mode=mode,
        budget=budget,
        seed=seed,
        run_dir=str(run_dir),
        lr_backbone=ft.optim.lr_backbone if mode == "finetune" else None,
        reused=reused,
    )
    if diverged.is_file():
        nan = float("nan")
        seconds = float(json.loads(diverged.read_text())["seconds"])
        return RunRecord(**common, miou=nan, macc=nan, overall_accuracy=nan, seconds=seconds, diverged=True)
    metrics = json.loads(metrics_path.read_text())["last"]
    selection_miou = None
    if cfg.rate_selection == "heldout":
        if not val_path.is_file():
            val, _ = evaluate_checkpoint(
                run_dir / "checkpoints" / "last.safetensors", split="val", device=cfg.device, progress=False
            )
            atomic_write_json(
                val_path, {"miou": val.miou, "macc": val.macc, "overall_accuracy": val.overall_accuracy}
            )
        selection_miou = _num(metrics["miou"])
        metrics = json.loads(val_path.read_text())
    return RunRecord(
        **common,
        miou=_num(metrics["miou"]),
        macc=_num(metrics["macc"]),
        overall_accuracy=_num(metrics["overall_accuracy"]),
        seconds=float(json.loads(timing.read_text())["seconds"]),
        selection_miou=selection_miou,
    )


def _num(x) -> float:
    return float("nan") if x is None else float(x)


def lr_search(
    records: Sequence[RunRecord], budget: LabelBudget, init: str = "scratch", *, scored_on: str = "selection"
) -> dict[float, float]:
    """Mean fine-tuning mIoU (%) of ``init`` over seeds, per backbone learning rate, at ``budget``.

    ``scored_on="selection"``: the scenes rates are chosen on (the held-out ones where the runs have
    a ``selection_miou``, else the validation scenes); ``"val"``: the validation scenes.
    A rate at which any seed diverged gets NaN, so it is never chosen (its other seeds' mean would
    flatter it).
    """
    mine = [r for r in records if r.mode == "finetune" and r.init == init and r.budget == budget]

    def score(r: RunRecord) -> float:
        return r.selection_miou if scored_on == "selection" and r.selection_miou is not None else r.miou

    means = {}
    for lr in dict.fromkeys(r.lr_backbone for r in mine):
        at = [r for r in mine if r.lr_backbone == lr]
        diverged = any(r.diverged for r in at)
        means[lr] = float("nan") if diverged else mean_std([100 * score(r) for r in at])[0]
    return means


def best_lr(records: Sequence[RunRecord], budget: LabelBudget, init: str = "scratch") -> float:
    """The backbone learning rate with the best mean mIoU of ``init`` on the scenes rates are chosen
    on (see :func:`lr_search`); the first of equals."""
    means = lr_search(records, budget, init)
    if not means:
        raise ValueError(f"no {init} fine-tuning run at budget {budget.text!r}")
    return max(means, key=lambda lr: -math.inf if math.isnan(means[lr]) else means[lr])


def summarize(records: Sequence[RunRecord]) -> list[EffectivenessRow]:
    """Rows (mode, budget) with scratch and PPKT mean/std mIoU and mAcc over seeds, and the gain.

    Where an initialisation was fine-tuned with several backbone learning rates, its figures are
    those of its best rate (see :func:`best_lr`), and the row lists every rate's mean on the scenes
    that chose it (``lr_search``) and, when those were held out, on the validation scenes too
    (``lr_val``). Where PPKT was searched too, ``ppkt_at_scratch_lr`` gives PPKT at the rate scratch
    chose.
    """
    rows = []
    heldout = any(r.selection_miou is not None for r in records)
    for mode, budget in dict.fromkeys((r.mode, r.budget) for r in records):
        chosen: dict[str, float] = {}
        searches: dict[str, dict[str, float]] = {}
        on_val: dict[str, dict[str, float]] = {}
        if mode == "finetune":
            for init in INITS:
                search = lr_search(records, budget, init)
                if search:
                    chosen[init] = best_lr(records, budget, init)
                    searches[init] = {f"{lr:g}": mean for lr, mean in search.items()}
                    if heldout:
                        val = lr_search(records, budget, init, scored_on="val")
                        on_val[init] = {f"{lr:g}": mean for lr, mean in val.items()}
        figures = {}
        for init in INITS:
            mine = [r for r in records if r.mode == mode and r.budget == budget and r.init == init]
            if init in chosen:
                mine = [r for r in mine if r.lr_backbone == chosen[init]]
            miou, miou_std = mean_std([100 * r.miou for r in mine])
            macc, macc_std = mean_std([100 * r.macc for r in mine])
            figures[init] = InitFigures(
                miou,
                miou_std,
                macc,
                macc_std,
                len(mine),
                lr_search=searches.get(init),
                lr_val=on_val.get(init),
            )
        at_scratch_lr = None
        if len(searches.get("ppkt", {})) > 1 and "scratch" in chosen:
            at_scratch_lr = mean_std([
                100 * r.miou
                for r in records
                if (r.mode, r.budget, r.init, r.lr_backbone) == (mode, budget, "ppkt", chosen["scratch"])
            ])  # fmt: skip
        rows.append(
            EffectivenessRow(
                mode,
                budget,
                figures["scratch"],
                figures["ppkt"],
                lr_backbone=chosen.get("scratch"),
                ppkt_lr_backbone=chosen.get("ppkt"),
                ppkt_at_scratch_lr=at_scratch_lr,
            )  # fmt: skip
        )
    return rows


def results_markdown(rows: Sequence[EffectivenessRow]) -> str:
    def cell(mean: float, std: float, seeds: int = 2) -> str:
        if math.isnan(mean):
            return "n/a"
        return f"{mean:.1f}" if seeds < 2 else f"{mean:.1f} ± {std:.1f}"  # no spread from one seed

    ppkt_searched = any(r.ppkt_at_scratch_lr is not None for r in rows)

    def rates(row: EffectivenessRow, init: str) -> str:
        search = row.figures(init).lr_search
        if search is None:
            return "–"
        best = row.lr_backbone if init == "scratch" else row.ppkt_lr_backbone
        if len(search) < 2:
            return f"{best:g}"
        tried = ", ".join(
            f"{lr}: {'diverged' if math.isnan(mean) else f'{mean:.1f}'}" for lr, mean in search.items()
        )
        return f"{best:g} ({tried})" if ppkt_searched else f"{best:g} ({init} {tried})"

    if ppkt_searched:
        header = (
            "| mode | labels | scratch mIoU | PPKT mIoU | gain | PPKT at scratch's lr | gain "
            "| scratch mAcc | PPKT mAcc | seeds | scratch lr | PPKT lr |"
        )
    else:
        header = (
            "| mode | labels | scratch mIoU | PPKT mIoU | gain | scratch mAcc | PPKT mAcc | seeds "
            "| backbone lr |"
        )
    lines = [header, "|" + "---|" * (header.count("|") - 1)]
    for r in rows:
        n = min(r.scratch.seeds, r.ppkt.seeds)
        cells = [
            "linear probe" if r.mode == "linear" else "fine-tune",
            r.label,
            cell(r.scratch.miou, r.scratch.miou_std, n),
            cell(r.ppkt.miou, r.ppkt.miou_std, n),
            f"{r.gain_miou:+.1f}",
        ]
        if ppkt_searched:
            if r.ppkt_at_scratch_lr is not None:
                cells += [cell(*r.ppkt_at_scratch_lr, n), f"{r.gain_at_scratch_lr_miou:+.1f}"]
            else:
                cells += ["–", "–"]
        cells += [
            cell(r.scratch.macc, r.scratch.macc_std, n),
            cell(r.ppkt.macc, r.ppkt.macc_std, n),
            str(n),
            rates(r, "scratch"),
        ]
        if ppkt_searched:
            cells.append(rates(r, "ppkt"))
        lines.append("| " + " | ".join(cells) + " |")
    if any(r.scratch.lr_val is not None or r.ppkt.lr_val is not None for r in rows):
        lines += [
            "",
            "Learning rates chosen on training scenes held out of the labelled pool; the means per rate "
            "in the lr columns are on those scenes, every other figure on the validation scenes.",
        ]
    return "\n".join(lines) + "\n"


def plot_results(rows: Sequence[EffectivenessRow], path: Path) -> Path | None:
    """mIoU against label budget, one line per initialisation, error bars = std over seeds."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import matplotlib.ticker
    except ImportError:
        return None
    fine = [r for r in rows if r.mode == "finetune"]
    groups = [("scenes", "fraction of labelled training scenes"), ("points", "labelled points per scene")]
    groups = [(k, t) for k, t in groups if any(r.budget.kind == k for r in rows)]
    if not groups:
        return None
    fig, axes = plt.subplots(1, len(groups), figsize=(5.5 * len(groups), 4), squeeze=False, dpi=100)
    for ax, (kind, title) in zip(axes[0], groups, strict=True):
        mine = sorted(
            (r for r in fine if r.budget.kind == kind),
            key=lambda r: r.budget.amount,
        )
        xs = [r.budget.amount for r in mine]
        probes = sorted(
            (r for r in rows if r.mode == "linear" and r.budget.kind == kind),
            key=lambda r: r.budget.amount,
        )
        if len({*xs, *(r.budget.amount for r in probes)}) == 1:
            _bars(ax, [*mine, *probes], kind)
            continue
        for init, color in (("scratch", "tab:gray"), ("ppkt", "tab:blue")):
            ax.errorbar(
                xs, [r.figures(init).miou for r in mine], yerr=[r.figures(init).miou_std for r in mine],
                marker="o", capsize=3, color=color, label=LINE_LABELS[init],
            )  # fmt: skip
        for init, color, name in (("scratch", "tab:gray", "random"), ("ppkt", "tab:blue", "PPKT")):
            if probes:
                ax.errorbar(
                    [r.budget.amount for r in probes], [r.figures(init).miou for r in probes],
                    yerr=[r.figures(init).miou_std for r in probes], marker="s", ls=":", capsize=3,
                    color=color, label=f"linear probe, {name}",
                )  # fmt: skip
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xticks(sorted({r.budget.amount for r in [*mine, *probes]}))
        ax.set_xlabel(title)
        ax.set_ylabel("validation mIoU (%)")
        ax.set_title(f"mIoU against {title}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    seeds = max((max(r.scratch.seeds, r.ppkt.seeds) for r in rows), default=0)
    spread = "one seed: no error bars" if seeds == 1 else f"mean ± std over {seeds} seeds"
    fig.suptitle(f"Fine-tuning from scratch vs from PPKT pretraining\n({spread})", fontsize=11)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


LINE_LABELS = {"scratch": "from scratch", "ppkt": "PPKT pretrained"}


def _bars(ax, rows: Sequence[EffectivenessRow], kind: str) -> None:
    """One budget: a bar per initialisation (and per linear probe), error bars, values on top."""
    names, means, stds, colors = [], [], [], []
    for r in rows:
        probe = r.mode == "linear"
        for init, color in (("scratch", "tab:gray"), ("ppkt", "tab:blue")):
            names.append(("linear probe,\n" if probe else "") + LINE_LABELS[init].replace(" ", "\n", 1))
            means.append(r.figures(init).miou)
            stds.append(0.0 if r.figures(init).seeds < 2 else r.figures(init).miou_std)
            colors.append(color)
    positions = list(range(len(names)))
    errors = stds if any(stds) else None
    ax.bar(positions, means, yerr=errors, capsize=4, color=colors, alpha=0.85)
    for x, m in zip(positions, means, strict=True):
        if not math.isnan(m):
            ax.text(x, m, f"{m:.1f}", ha="center", va="bottom", fontsize=9)
    ax.set_xticks(positions, names, fontsize=8)
    ax.set_ylabel("validation mIoU (%)")
    ax.set_title(rows[0].label)
    ax.grid(alpha=0.3, axis="y")


def run_label(record: RunRecord) -> str:
    """``"finetune   20 pts/scene seed 0 scratch lr 0.01"``: which run a record is."""
    rate = "" if record.lr_backbone is None else f" lr {record.lr_backbone:g}"
    return f"{record.mode:8s} {record.budget.label:>14s} seed {record.seed} {record.init:7s}{rate}"


def run_outcome(record: RunRecord) -> str:
    """``"mIoU  13.0  mAcc  20.1"`` (or that the run diverged), and where it came from."""
    if record.diverged:
        outcome = "DIVERGED (non-finite loss; see diverged.json)"
    else:
        outcome = f"mIoU {100 * record.miou:5.1f}  mAcc {100 * record.macc:5.1f}"
    if record.selection_miou is not None and not record.diverged:
        outcome += f"  held-out mIoU {100 * record.selection_miou:5.1f}"
    if record.reused:
        return f"{outcome}  (reused: finished by an earlier run, which took {record.seconds:.0f} s)"
    return f"{outcome}  ({record.seconds:.0f} s)"


class ProtocolLog:
    """What :func:`run_effectiveness` reports as it goes: plain lines through ``log`` (the
    benchmark's output). ``ppkt demo`` subclasses it to show stages and an overall ETA."""

    def __init__(self, log=print) -> None:
        self.log = log
        self.total_runs = 0

    def planned(self, cfg: ExperimentConfig, total_runs: int) -> None:
        self.total_runs = total_runs

    def data_ready(self, root: Path, reused: bool) -> None:
        self.log(f"data: {root}" + (" (reused from the cache)" if reused else ""))

    def note(self, text: str) -> None:
        self.log(text)

    def pretraining(self, steps: int) -> None:
        pass

    def pretrained(self, backbone: PretrainedBackbone) -> None:
        if backbone.reused:
            self.log(
                f"pretrained backbone: {backbone.path} (reused: finished by an earlier run, which took "
                f"{backbone.seconds:.0f} s)"
            )
        else:
            self.log(f"pretrained backbone: {backbone.path} ({backbone.seconds:.0f} s)")

    def run_done(self, record: RunRecord, done: int) -> None:
        self.log(f"[{done}/{self.total_runs}] {run_label(record)} {run_outcome(record)}")


def planned_runs(cfg: ExperimentConfig) -> int:
    """How many fine-tuning and probing runs :func:`run_effectiveness` makes."""
    grid = tuple(cfg.scratch_lr_grid) or (None,)
    linear_budgets = cfg.linear_budgets if cfg.linear_probes else ()
    ppkt_runs_per_budget = len(grid) if cfg.ppkt_lr_search else 1
    return len(cfg.seeds) * (len(cfg.budgets) * (len(grid) + ppkt_runs_per_budget) + 2 * len(linear_budgets))


def run_effectiveness(cfg: ExperimentConfig, log=print, *, report: ProtocolLog | None = None):
    """The whole protocol; returns (and writes) the results, :class:`EffectivenessResults`. Progress
    goes to ``report`` (default: plain lines through ``log``). With ``cfg.objectives``, the objective
    axis (:func:`ppkt.experiments.objectives.run_objectives`, which returns its ``ObjectiveResults``)
    instead."""
    if cfg.objectives:
        # local: cycle with ppkt.experiments.objectives (it runs its sub-runs with this module's steps)
        from ppkt.experiments.objectives import run_objectives

        with deterministic_torch(cfg):
            return run_objectives(cfg, log)
    report = report if report is not None else ProtocolLog(log)
    with deterministic_torch(cfg):
        return _run_effectiveness(cfg, report)


@contextlib.contextmanager
def deterministic_torch(cfg: ExperimentConfig):
    """The protocol's thread count and deterministic kernels for the whole process, restored after.

    Fine-tuning runs in this process and has no thread setting of its own, so the count is set here.
    """
    import os

    import torch

    threads = torch.get_num_threads()
    was_deterministic = torch.are_deterministic_algorithms_enabled()
    if cfg.cpu_threads is not None:
        torch.set_num_threads(cfg.cpu_threads)
    if cfg.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS refuses otherwise
        torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(was_deterministic)


def _run_effectiveness(cfg: ExperimentConfig, report: ProtocolLog) -> EffectivenessResults:
    started = time.perf_counter()
    cfg.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(cfg.out / "experiment.yaml", yaml.safe_dump(config_to_dict(cfg), sort_keys=False))
    report.planned(cfg, planned_runs(cfg))
    data_started = time.time()
    root = prepare_data(cfg)
    stamp = root / "synthetic.json"
    report.data_ready(root, reused=cfg.data_root is not None or (
        stamp.is_file() and stamp.stat().st_mtime < data_started
    ))  # fmt: skip
    metric = "validation mIoU / mAcc at the last fine-tuning step, mean ± std over seeds"
    if cfg.rate_selection == "heldout":
        lists = write_scene_lists(cfg, root)
        held = (lists / "scannetv2_select.txt").read_text().split()
        report.note(f"learning rates are chosen on {len(held)} held-out training scenes: {' '.join(held)}")
        metric += f"; learning rates chosen on {len(held)} training scenes held out of the labelled pool"
    report.pretraining(pretrain_config(cfg, root).optim.steps)
    backbone = pretrain_backbone(cfg, root)
    report.pretrained(backbone)
    records: list[RunRecord] = []
    grid = tuple(cfg.scratch_lr_grid) or (None,)
    linear_budgets = cfg.linear_budgets if cfg.linear_probes else ()

    def run(mode: str, budget: LabelBudget, seed: int, init: Path | None, lr: float | None = None) -> None:
        record = finetune_one(cfg, root, init=init, mode=mode, budget=budget, seed=seed, lr_backbone=lr)
        records.append(record)
        report.run_done(record, len(records))

    for budget in cfg.budgets:
        for lr in grid:
            for seed in cfg.seeds:
                run("finetune", budget, seed, None, lr)
        if cfg.ppkt_lr_search:
            ppkt_rates = grid
        else:
            chosen = best_lr(records, budget) if cfg.scratch_lr_grid else None
            if chosen is not None and len(grid) > 1:
                report.note(f"{budget.label}: scratch is best with backbone lr {chosen:g}; PPKT uses it")
            ppkt_rates = (chosen,)
        for lr in ppkt_rates:
            for seed in cfg.seeds:
                run("finetune", budget, seed, backbone.path, lr)
    for budget in linear_budgets:
        for seed in cfg.seeds:
            for init in (None, backbone.path):
                run("linear", budget, seed, init)
    rows = summarize(records)
    results = EffectivenessResults(
        config=config_to_dict(cfg),
        data_root=Path(root),
        pretrain_seconds=backbone.seconds,
        pretrain_reused=backbone.reused,
        total_seconds=time.perf_counter() - started,
        metric=metric,
        rows=tuple(rows),
        runs=tuple(records),
    )
    atomic_write_json(cfg.out / "results.json", results.to_json())
    atomic_write_text(cfg.out / "results.md", results_markdown(rows))
    plot_results(rows, cfg.out / "results.png")
    return results
