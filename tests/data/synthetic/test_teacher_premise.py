"""Slow: on held-out synthetic rooms, frozen teacher features beat raw colour in a linear probe."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

BENCHMARK = Path(__file__).resolve().parents[3] / "benchmarks" / "teacher_premise.py"


@pytest.mark.slow
def test_teacher_features_separate_classes_better_than_colour(tmp_path):
    spec = importlib.util.spec_from_file_location("teacher_premise", BENCHMARK)
    premise = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(premise)
    from ppkt.data import scannet_split
    from ppkt.data.scannet_classes import SCANNET20_CLASS_NAMES
    from ppkt.data.synthetic import generate_dataset
    from ppkt.teachers import build_teacher

    torch.set_num_threads(1)
    torch.manual_seed(0)
    root = generate_dataset(tmp_path / "rooms", scenes=8, frames_per_scene=5, seed=11, progress=False)
    teacher = build_teacher("efficientnet_lite0").eval()
    rng = np.random.default_rng(0)
    train = premise.collect(root, scannet_split(root, "train"), teacher, 300, rng)
    val = premise.collect(root, scannet_split(root, "val"), teacher, 300, rng)
    classes = len(SCANNET20_CLASS_NAMES)
    results = []
    for k in (0, 1, 2):
        predict = premise.train_linear(train[k], train[3], classes, steps=60, weight_decay=1e-4)
        with torch.no_grad():
            results.append(premise.scores(predict(val[k]), val[3], classes))
    (rgb_acc, rgb_macc, _), (stats_acc, stats_macc, _), (teacher_acc, teacher_macc, _) = results
    assert teacher_macc > max(rgb_macc, stats_macc) + 0.1, results
    assert teacher_acc > max(rgb_acc, stats_acc), results
