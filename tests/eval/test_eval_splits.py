import json

import numpy as np
import pytest

from ppkt.data.types import IGNORE_LABEL, LabeledScene
from ppkt.eval.splits import (
    SplitMismatch,
    create_split,
    draw_points,
    draw_scenes,
    load_or_create_split,
    split_path,
)


def make_labels(n: int, seed: int) -> np.ndarray:
    labels = np.random.default_rng(seed).integers(-1, 5, size=n).astype(np.int64)
    return labels


POOL = [f"scene{i:04d}_00" for i in range(57)]
LABELS = {sid: make_labels(300 + 7 * i, i) for i, sid in enumerate(POOL)}


def scene(sid: str, labels: np.ndarray | None = None) -> LabeledScene:
    labels = LABELS[sid] if labels is None else labels
    n = len(labels)
    return LabeledScene(
        points=np.zeros((n, 3), np.float32), colors=np.zeros((n, 3), np.uint8), labels=labels, scene_id=sid
    )


def test_scene_fractions_counts_nested_and_order_independent():
    counts = {f: len(draw_scenes(POOL, f, seed=0)) for f in (0.01, 0.05, 0.1, 0.2, 1.0)}
    assert counts == {0.01: 1, 0.05: 3, 0.1: 6, 0.2: 11, 1.0: 57}
    small, large = set(draw_scenes(POOL, 0.05, 0)), set(draw_scenes(POOL, 0.2, 0))
    assert small <= large
    assert draw_scenes(list(reversed(POOL)), 0.2, 0) == draw_scenes(POOL, 0.2, 0)
    assert draw_scenes(POOL, 0.2, 0) != draw_scenes(POOL, 0.2, 1)


def test_points_uniform_among_labelled_nested_and_capped():
    labels = make_labels(1000, 0)
    idx20 = draw_points(labels, 20, seed=3, scene_id="a")
    idx50 = draw_points(labels, 50, seed=3, scene_id="a")
    assert len(idx20) == 20 and len(set(idx20.tolist())) == 20
    assert set(idx20.tolist()) <= set(idx50.tolist())
    assert (labels[idx50] != IGNORE_LABEL).all()
    few = np.full(100, IGNORE_LABEL)
    few[[5, 9]] = 2
    assert draw_points(few, 20, 0, "b").tolist() == [5, 9]
    # uniform: over many seeds each labelled point is drawn about equally often
    hits = np.zeros(1000)
    for s in range(400):
        hits[draw_points(labels, 20, s, "a")] += 1
    labelled = labels != IGNORE_LABEL
    assert hits[~labelled].sum() == 0
    expected = 400 * 20 / labelled.sum()
    assert abs(hits[labelled].mean() - expected) < 1e-9
    assert hits[labelled].std() < 0.5 * expected


def test_point_draw_of_a_scene_does_not_depend_on_the_pool():
    a = create_split("points", 20, 0, POOL, LABELS.__getitem__)
    b = create_split("points", 20, 0, POOL[:10], LABELS.__getitem__)
    np.testing.assert_array_equal(a.point_indices[POOL[3]], b.point_indices[POOL[3]])


def test_save_reuse_and_apply(tmp_path):
    reads = []

    def read(sid):
        reads.append(sid)
        return LABELS[sid]

    split = load_or_create_split(tmp_path, "points", 50, 1, POOL, read)
    path = split_path(tmp_path, "points", 50, 1)
    assert path.name == "points-50-seed1.json" and path.is_file()
    assert len(reads) == len(POOL)
    again = load_or_create_split(tmp_path, "points", 50, 1, POOL, read)
    assert len(reads) == len(POOL)  # reused, not redrawn
    for sid in POOL:
        np.testing.assert_array_equal(again.point_indices[sid], split.point_indices[sid])
    masked = again.apply(scene(POOL[0]))
    kept = masked.labels != IGNORE_LABEL
    assert kept.sum() == 50
    np.testing.assert_array_equal(np.flatnonzero(kept), split.point_indices[POOL[0]])
    np.testing.assert_array_equal(masked.labels[kept], LABELS[POOL[0]][kept])

    scenes = load_or_create_split(tmp_path, "scenes", 0.1, 0, POOL, read)
    assert split_path(tmp_path, "scenes", 0.1, 0).name == "scenes-0.1-seed0.json"
    assert scenes.apply(scene(scenes.scenes[0])).labels is LABELS[scenes.scenes[0]]
    other = next(s for s in POOL if s not in scenes.scenes)
    with pytest.raises(SplitMismatch, match="not part of split"):
        scenes.apply(scene(other))


def test_changed_data_is_a_clear_error(tmp_path):
    load_or_create_split(tmp_path, "points", 20, 0, POOL, LABELS.__getitem__)
    with pytest.raises(SplitMismatch, match=r"points-20-seed0.json.*missing now: \['scene0056_00'\]"):
        load_or_create_split(tmp_path, "points", 20, 0, POOL[:-1], LABELS.__getitem__)
    split = load_or_create_split(tmp_path, "points", 20, 0, POOL, LABELS.__getitem__)
    sid = POOL[2]
    with pytest.raises(SplitMismatch, match="points but split"):
        split.apply(scene(sid, np.concatenate([LABELS[sid], [1]])))
    unlabelled = np.full_like(LABELS[sid], IGNORE_LABEL)
    with pytest.raises(SplitMismatch, match="no label"):
        split.apply(scene(sid, unlabelled))
    path = split_path(tmp_path, "points", 20, 0)
    data = json.loads(path.read_text())
    data["seed"] = 5
    path.write_text(json.dumps(data))
    with pytest.raises(SplitMismatch, match="seed"):
        load_or_create_split(tmp_path, "points", 20, 0, POOL, LABELS.__getitem__)
    path.write_text("{")
    with pytest.raises(SplitMismatch, match="not valid JSON"):
        load_or_create_split(tmp_path, "points", 20, 0, POOL, LABELS.__getitem__)


def test_bad_budgets():
    with pytest.raises(ValueError):
        draw_scenes(POOL, 0.0, 0)
    with pytest.raises(ValueError):
        draw_scenes(POOL, 1.5, 0)
    with pytest.raises(ValueError):
        draw_points(LABELS[POOL[0]], 2.5, 0, "x")
    with pytest.raises(ValueError):
        create_split("frames", 1, 0, POOL, LABELS.__getitem__)
