"""Limited-label training splits, drawn once per seed, saved as JSON and reused.

Two kinds of label budget, as in the ScanNet data-efficient benchmark (Hou et al., "Exploring
Data-Efficient 3D Scene Understanding with Contrastive Scene Contexts", CVPR 2021):

* ``scenes``: a fraction of the training scenes keeps all its labels (1 %, 5 %, 10 %, 20 %,
  100 %); the other scenes are not used. The number kept is ``max(1, round(fraction * n))``.
* ``points``: every training scene is used, but only ``budget`` labelled points per scene (20, 50,
  100, 200) keep their label, drawn uniformly among the scene's points that have a label; every
  other point becomes the ignore label. A scene with fewer labelled points keeps them all.

Reproducibility rules:

* The draw depends only on the seed and the scene ids, never on file order: the pool of scene
  ids is sorted, and the per-scene point draw is seeded by ``(seed, crc32(scene_id))``, so adding
  a scene to the pool does not change the points drawn in the others.
* Budgets of one seed are **nested**: the scenes of 1 % are among those of 5 %, the 20 points of
  a scene are among its 50 (each draw is a prefix of one seeded permutation).
* A split is written to ``<splits_dir>/<kind>-<budget>-seed<k>.json`` with its scene ids, each
  scene's point count and (``points`` kind) the kept point indices. If the file exists it is
  reused, after checking it against the data: a different pool of scenes, a scene whose point
  count changed, or a kept point that lost its label is an error naming the file.
"""

from __future__ import annotations

import json
import math
import re
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from ppkt.config import ConfigText
from ppkt.data.types import IGNORE_LABEL, LabeledScene
from ppkt.utils.io import atomic_write_json

SplitKind = Literal["scenes", "points", "published"]
SPLIT_FORMAT_VERSION = 1

SCENE_FRACTIONS: tuple[float, ...] = (0.01, 0.05, 0.1, 0.2, 1.0)
"""Fractions of labelled scenes of the ScanNet data-efficient benchmark."""
POINTS_PER_SCENE: tuple[int, ...] = (20, 50, 100, 200)
"""Labelled points per scene of the ScanNet data-efficient benchmark."""


class SplitMismatch(ValueError):
    """A saved split does not match the data it is applied to."""


def format_budget(kind: SplitKind, budget: float) -> str:
    """Canonical text of a budget, as used in file names (``0.05``, ``1``, ``20``)."""
    if kind == "scenes":
        if not 0.0 < budget <= 1.0:
            raise ValueError(f"a scene fraction must be in (0, 1], got {budget}")
        return f"{float(budget):g}"
    if kind == "points":
        if budget < 1 or float(budget) != int(budget):
            raise ValueError(f"a points-per-scene budget must be a positive integer, got {budget}")
        return str(int(budget))
    raise ValueError(f"unknown label split kind {kind!r} (expected 'scenes' or 'points')")


@dataclass(frozen=True)
class LabelBudget(ConfigText):
    """One label budget of an experiment, written ``scenes:FRACTION`` or ``points:PER_SCENE``.

    Parsed once where a config or the command line is read (:meth:`parse`); its :attr:`text` is the
    key of the budget in ``results.json`` and in the experiment's config.

    Attributes:
        kind: ``"scenes"`` (a fraction of the training scenes keeps all its labels) or ``"points"``
            (labelled points per scene), as ``labels.kind`` of a fine-tuning config.
        amount: the fraction in (0, 1] or the whole number of points >= 1; always a float, as
            ``labels.budget``.
    """

    kind: Literal["scenes", "points"]
    amount: float

    def __post_init__(self) -> None:
        if self.kind not in ("scenes", "points"):
            raise ValueError(f"label budget kind {self.kind!r}: expected 'scenes' or 'points'")
        object.__setattr__(self, "amount", float(self.amount))
        format_budget(self.kind, self.amount)  # the range check of the split files' names

    @classmethod
    def parse(cls, text: str) -> LabelBudget:
        """``"scenes:0.25"`` -> ``LabelBudget("scenes", 0.25)``; a ValueError naming ``text`` otherwise."""
        kind, _, value = str(text).partition(":")
        try:
            amount = float(value)
        except ValueError:
            amount = math.nan
        if kind not in ("scenes", "points") or not math.isfinite(amount):
            raise ValueError(f"label budget {text!r}: expected 'scenes:FRACTION' or 'points:COUNT'")
        try:
            return cls(kind, amount)
        except ValueError as err:
            raise ValueError(f"label budget {text!r}: {err}") from None

    @property
    def text(self) -> str:
        """``"scenes:0.0625"``, ``"scenes:1.0"``, ``"points:20"``: what :meth:`parse` reads back."""
        return f"scenes:{self.amount!r}" if self.kind == "scenes" else f"points:{int(self.amount)}"

    @property
    def label(self) -> str:
        """``"6.25 % scenes"``, ``"20 pts/scene"``: the budget in tables and pictures."""
        return f"{self.amount * 100:g} % scenes" if self.kind == "scenes" else f"{self.amount:g} pts/scene"

    @property
    def slug(self) -> str:
        """``"scenes0.0625"``, ``"points20"``: the budget in run folder names."""
        return f"{self.kind}{self.amount:g}"

    def __str__(self) -> str:
        return self.text


def split_path(splits_dir: str | Path, kind: SplitKind, budget: float, seed: int) -> Path:
    return Path(splits_dir) / f"{kind}-{format_budget(kind, budget)}-seed{int(seed)}.json"


@dataclass(frozen=True)
class LabelSplit:
    """Which training scenes, and which of their points, keep labels.

    Attributes:
        kind: ``"scenes"`` or ``"points"``.
        budget: scene fraction in (0, 1] or labelled points per scene.
        seed: the seed of the draw.
        pool: sorted ids of the training scenes the split was drawn from.
        scenes: ids of the scenes used for training (sorted).
        num_points: point count of each scene in ``scenes`` (checked when applied).
        point_indices: ``points`` kind only: for each scene, sorted int64 indices of the points
            that keep their label.
    """

    kind: SplitKind
    budget: float
    seed: int
    pool: tuple[str, ...]
    scenes: tuple[str, ...]
    num_points: dict[str, int]
    point_indices: dict[str, np.ndarray] | None = field(default=None)

    source_files: tuple[str, ...] = ()
    """``published`` kind: the file names of the published lists it was read from."""

    @property
    def name(self) -> str:
        if self.kind == PUBLISHED:
            return f"published({', '.join(self.source_files)})"
        return f"{self.kind}-{format_budget(self.kind, self.budget)}-seed{self.seed}"

    def apply(self, scene: LabeledScene, *, source: str = "split") -> LabeledScene:
        """Return ``scene`` with the labels outside the split set to the ignore label.

        Raises:
            SplitMismatch: the scene is not in the split, its point count differs from the one
                recorded, or a kept point has no label any more.
        """
        sid = scene.scene_id
        if sid not in self.num_points:
            raise SplitMismatch(f"{source}: scene {sid!r} is not part of split {self.name}")
        if scene.num_points != self.num_points[sid]:
            raise SplitMismatch(
                f"{source}: scene {sid!r} has {scene.num_points} points but split {self.name} was drawn "
                f"from {self.num_points[sid]}; the data changed, delete the split file to redraw it"
            )
        if self.point_indices is None:
            return scene
        keep = self.point_indices[sid]
        kept_labels = scene.labels[keep]
        if (kept_labels == IGNORE_LABEL).any():
            raise SplitMismatch(
                f"{source}: scene {sid!r}: {int((kept_labels == IGNORE_LABEL).sum())} points of split "
                f"{self.name} have no label in the data; the labels changed, delete the split file"
            )
        labels = np.full_like(scene.labels, IGNORE_LABEL)
        labels[keep] = kept_labels
        return LabeledScene(
            points=scene.points,
            colors=scene.colors,
            labels=labels,
            scene_id=sid,
            class_names=scene.class_names,
        )

    def to_json(self) -> dict:
        scenes = {}
        for sid in self.scenes:
            entry: dict = {"num_points": int(self.num_points[sid])}
            if self.point_indices is not None:
                entry["point_indices"] = self.point_indices[sid].tolist()
            scenes[sid] = entry
        return {
            "format_version": SPLIT_FORMAT_VERSION,
            "kind": self.kind,
            "budget": float(self.budget) if self.kind == "scenes" else int(self.budget),
            "seed": int(self.seed),
            "pool": list(self.pool),
            "scenes": scenes,
        }

    @classmethod
    def from_json(cls, data: dict, *, source: str = "split") -> LabelSplit:
        try:
            if data.get("format_version") != SPLIT_FORMAT_VERSION:
                raise SplitMismatch(f"{source}: unknown split format version {data.get('format_version')!r}")
            kind = data["kind"]
            scenes = data["scenes"]
            indices = None
            if kind == "points":
                indices = {s: np.asarray(e["point_indices"], dtype=np.int64) for s, e in scenes.items()}
            return cls(
                kind=kind,
                budget=data["budget"],
                seed=int(data["seed"]),
                pool=tuple(data["pool"]),
                scenes=tuple(sorted(scenes)),
                num_points={s: int(e["num_points"]) for s, e in scenes.items()},
                point_indices=indices,
            )
        except (KeyError, TypeError) as err:
            raise SplitMismatch(f"{source}: malformed split file ({err!r})") from err


# ------------------------------------------------------------------------- published limited-label files
PUBLISHED = "published"

_SCENE_NAME = re.compile(r"scene\d{4}_\d{2}")


def _scene_id(entry: str) -> str:
    """``sceneXXXX_XX`` from a list entry (a bare name, ``scene0000_00.pth``, a path); else the stem."""
    found = _SCENE_NAME.search(Path(entry).name)
    return found.group(0) if found else Path(entry).stem


def read_scene_list(path: str | Path) -> list[str]:
    """A published scene list: one scene per line (bare name, ``<name>.pth`` or a path; '#' comments).

    Raises:
        SplitMismatch: missing, empty or repeated scenes (naming the file).
    """
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise SplitMismatch(f"{path}: cannot read the scene list ({err})") from err
    scenes = [_scene_id(line.strip()) for line in lines if line.strip() and not line.strip().startswith("#")]
    if not scenes:
        raise SplitMismatch(f"{path}: the scene list is empty")
    repeated = sorted({s for s in scenes if scenes.count(s) > 1})
    if repeated:
        raise SplitMismatch(f"{path}: scenes listed twice: {repeated[:5]}")
    return scenes


def _NUMPY_ARRAY_GLOBALS() -> list:  # noqa: N802 - a constant built on demand
    """What unpickling numpy integer arrays needs, under the names numpy 1.x (``numpy.core``, the
    benchmark's files) and 2.x (``numpy._core``) pickle them with; nothing that can run code."""
    reconstruct = (
        np._core.multiarray._reconstruct if hasattr(np, "_core") else np.core.multiarray._reconstruct
    )
    allowed: list = [np.ndarray, np.dtype, reconstruct, (reconstruct, "numpy.core.multiarray._reconstruct")]
    for kind in (np.int64, np.int32, np.int16, np.int8, np.uint64, np.uint32, np.uint16, np.uint8):
        allowed.append(type(np.dtype(kind)))
    return allowed


def read_point_indices(path: str | Path) -> dict[str, np.ndarray]:
    """A published per-scene point-index file: scene -> int64 indices into the scene's points.

    Formats: ``.json`` (``{"scene0000_00": [3, 17, ...], ...}``), ``.npz`` (one array per scene)
    or a dict written by ``torch.save`` of tensors / numpy arrays / lists (the data-efficient benchmark's
    ``points20`` ... ``points200`` files, loaded with ``weights_only=True``: no code runs).
    Keys may be scene names or paths (``sceneXXXX_XX`` is taken from them).
    """
    path = Path(path)
    if not path.is_file():
        raise SplitMismatch(f"{path}: point-index file not found")
    try:
        if path.suffix == ".json":
            raw = json.loads(path.read_text())
        elif path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as data:
                raw = {key: data[key] for key in data.files}
        else:
            import torch

            with torch.serialization.safe_globals(_NUMPY_ARRAY_GLOBALS()):
                raw = torch.load(path, map_location="cpu", weights_only=True)
    except SplitMismatch:
        raise
    except Exception as err:  # a file of another kind: say which formats work
        first_line = (str(err).splitlines() or [""])[0]
        raise SplitMismatch(
            f"{path}: not a point-index file ({type(err).__name__}: {first_line}); "
            "expected .json, .npz or a torch.save'd dict scene -> indices"
        ) from err
    if not isinstance(raw, dict) or not raw:
        raise SplitMismatch(
            f"{path}: expected a non-empty mapping scene -> point indices, got {type(raw).__name__}"
        )
    out = {}
    for key, value in raw.items():
        indices = np.asarray(value.numpy() if hasattr(value, "numpy") else value).reshape(-1)
        if indices.size and not np.issubdtype(indices.dtype, np.integer):
            raise SplitMismatch(f"{path}: scene {key!r}: point indices must be integers, got {indices.dtype}")
        out[_scene_id(str(key))] = np.unique(indices.astype(np.int64))
    return out


def load_published_split(
    pool: Sequence[str],
    read_labels: Callable[[str], np.ndarray],
    *,
    scene_list: str | Path | None,
    point_indices: str | Path | None,
    copy_to: str | Path,
) -> LabelSplit:
    """A split from published files, used unchanged; both files are copied into ``copy_to``.

    ``scene_list`` (optional) names the training scenes (all of ``pool`` without it);
    ``point_indices`` (optional) keeps, in every training scene, only the labels of its listed
    points (a listed point without a label in the data stays unlabelled). Every listed scene must
    be in ``pool`` and, with ``point_indices``, have indices inside the scene.
    """
    import shutil

    if scene_list is None and point_indices is None:
        raise ValueError("labels.kind published needs labels.scene_list and/or labels.point_indices")
    pool_sorted = tuple(sorted(pool))
    scenes = read_scene_list(scene_list) if scene_list is not None else list(pool_sorted)
    outside = sorted(set(scenes) - set(pool_sorted))
    if outside:
        raise SplitMismatch(
            f"{scene_list}: {len(outside)} scenes are not training scenes of the data: {outside[:5]}"
        )
    indices = read_point_indices(point_indices) if point_indices is not None else None
    num_points: dict[str, int] = {}
    kept: dict[str, np.ndarray] | None = {} if indices is not None else None
    for sid in sorted(scenes):
        labels = np.asarray(read_labels(sid))
        num_points[sid] = int(len(labels))
        if indices is None:
            continue
        if sid not in indices:
            raise SplitMismatch(f"{point_indices}: no point indices for training scene {sid!r}")
        listed = indices[sid]
        if listed.size and (listed[0] < 0 or listed[-1] >= len(labels)):
            wrong = int(listed[0] if listed[0] < 0 else listed[-1])
            raise SplitMismatch(
                f"{point_indices}: scene {sid!r} lists point {wrong} but has {len(labels)} points "
                "(indices are into the scene's points, for ScanNet the _vh_clean_2.ply vertices)"
            )
        kept[sid] = listed[labels[listed] != IGNORE_LABEL]
    copy_to = Path(copy_to)
    copy_to.mkdir(parents=True, exist_ok=True)
    names = []
    for source in (scene_list, point_indices):
        if source is not None:
            shutil.copyfile(source, copy_to / Path(source).name)
            names.append(Path(source).name)
    return LabelSplit(
        kind=PUBLISHED,
        budget=0.0,
        seed=0,
        pool=pool_sorted,
        scenes=tuple(sorted(scenes)),
        num_points=num_points,
        point_indices=kept,
        source_files=tuple(names),
    )


def _scene_rng(seed: int, scene_id: str) -> np.random.Generator:
    return np.random.default_rng([int(seed), zlib.crc32(scene_id.encode("utf-8"))])


def draw_scenes(pool: Sequence[str], fraction: float, seed: int) -> tuple[str, ...]:
    """``max(1, round(fraction * n))`` scene ids; nested across fractions for one seed."""
    format_budget("scenes", fraction)
    ordered = sorted(pool)
    if not ordered:
        raise ValueError("cannot draw a scene split from an empty pool of scenes")
    count = max(1, int(fraction * len(ordered) + 0.5))
    order = np.random.default_rng(int(seed)).permutation(len(ordered))
    return tuple(sorted(ordered[i] for i in order[:count]))


def draw_points(labels: np.ndarray, budget: int, seed: int, scene_id: str) -> np.ndarray:
    """Sorted indices of ``budget`` labelled points drawn uniformly (all if fewer are labelled)."""
    format_budget("points", budget)
    labelled = np.flatnonzero(np.asarray(labels) != IGNORE_LABEL)
    order = _scene_rng(seed, scene_id).permutation(len(labelled))
    return np.sort(labelled[order[: int(budget)]]).astype(np.int64)


def create_split(
    kind: SplitKind,
    budget: float,
    seed: int,
    pool: Sequence[str],
    read_labels: Callable[[str], np.ndarray],
) -> LabelSplit:
    """Draw a split; ``read_labels(scene_id) -> (N,) int64`` is called only for the kept scenes."""
    format_budget(kind, budget)
    pool_sorted = tuple(sorted(pool))
    if len(set(pool_sorted)) != len(pool_sorted):
        raise ValueError("the pool of scenes contains duplicate ids")
    if kind == "scenes":
        scenes = draw_scenes(pool_sorted, budget, seed)
        num_points = {s: int(len(read_labels(s))) for s in scenes}
        return LabelSplit(kind, float(budget), int(seed), pool_sorted, scenes, num_points)
    if not pool_sorted:
        raise ValueError("cannot draw a point split from an empty pool of scenes")
    num_points, indices = {}, {}
    for sid in pool_sorted:
        labels = read_labels(sid)
        num_points[sid] = int(len(labels))
        indices[sid] = draw_points(labels, int(budget), seed, sid)
    return LabelSplit(kind, int(budget), int(seed), pool_sorted, pool_sorted, num_points, indices)


def load_or_create_split(
    splits_dir: str | Path,
    kind: SplitKind,
    budget: float,
    seed: int,
    pool: Sequence[str],
    read_labels: Callable[[str], np.ndarray],
) -> LabelSplit:
    """Reuse ``<splits_dir>/<kind>-<budget>-seed<k>.json`` if present (checked), else draw and save it.

    Raises:
        SplitMismatch: the saved split was drawn from a different pool of scenes or with
            different parameters. (Point counts and labels are checked by ``LabelSplit.apply``.)
    """
    path = split_path(splits_dir, kind, budget, seed)
    if path.is_file():
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise SplitMismatch(f"{path}: not valid JSON ({err})") from err
        split = LabelSplit.from_json(data, source=str(path))
        if split.kind != kind or format_budget(kind, split.budget) != format_budget(kind, budget):
            raise SplitMismatch(f"{path}: holds a {split.name} split, expected {kind} {budget}")
        if split.seed != int(seed):
            raise SplitMismatch(f"{path}: holds seed {split.seed}, expected {seed}")
        pool_sorted = tuple(sorted(pool))
        if split.pool != pool_sorted:
            missing = sorted(set(split.pool) - set(pool_sorted))
            extra = sorted(set(pool_sorted) - set(split.pool))
            raise SplitMismatch(
                f"{path}: drawn from a different list of training scenes "
                f"(missing now: {missing[:10]}{' ...' if len(missing) > 10 else ''}; "
                f"new: {extra[:10]}{' ...' if len(extra) > 10 else ''}); delete the file to redraw"
            )
        return split
    split = create_split(kind, budget, seed, pool, read_labels)
    atomic_write_json(path, split.to_json())
    return split
