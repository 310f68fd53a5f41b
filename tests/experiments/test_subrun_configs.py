"""The configs of the experiments' sub-runs, pinned as literal values.

Each expectation is what the sub-run's config changes with respect to its preset (dotted name ->
value, with its type). The values were printed by the earlier string path
(``apply_overrides(preset, {"labels.budget": str(...), ...})``) before it was replaced by typed
construction (``dataclasses.replace``), so these tests say that the two build the same configs:
the same run folders are reused and the same seeds give the same numbers.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from config_trees import flat_keys
from ppkt.config import config_to_dict
from ppkt.eval.detection.presets import get_detection_preset
from ppkt.eval.presets import get_preset as finetune_preset
from ppkt.eval.splits import LabelBudget
from ppkt.experiments.effectiveness import ExperimentConfig, finetune_config, pretrain_config
from ppkt.experiments.effectiveness_detection import DetectionExperimentConfig, detection_config
from ppkt.experiments.objectives import objective_config
from ppkt.train.presets import get_preset as pretrain_preset

ROOT = Path("/data/rooms")
OUT = Path("/runs/eff")
BACKBONE = Path("/b.safetensors")


def _changes(cfg, preset) -> dict:
    """Dotted name -> value of every leaf of ``cfg`` that differs from ``preset`` (in value or type)."""
    mine, base = flat_keys(config_to_dict(cfg)), flat_keys(config_to_dict(preset))
    assert mine.keys() == base.keys()
    return {k: v for k, v in mine.items() if base[k] != v or type(base[k]) is not type(v)}


def _same(actual: dict, expected: dict) -> None:
    assert actual == expected
    assert {k: type(v) for k, v in actual.items()} == {k: type(v) for k, v in expected.items()}


def test_pretraining_sub_run():
    cfg = ExperimentConfig(out=OUT, cpu_threads=None, device="cpu", progress=False)
    _same(
        _changes(pretrain_config(cfg, ROOT), pretrain_preset("demo")),
        {
            "data.kind": "scannet", "data.root": "/data/rooms", "run.out": "/runs/eff/pretrain",
            "run.deterministic": True, "run.device": "cpu", "run.progress": False,
        },
    )  # fmt: skip


def test_scratch_fine_tune_sub_run():
    cfg = ExperimentConfig(out=OUT, cpu_threads=None, device="cpu", progress=False)
    ft = finetune_config(cfg, ROOT, init=None, mode="finetune", budget=LabelBudget.parse("points:20"), seed=1)
    _same(
        _changes(ft, finetune_preset("demo-finetune")),
        {
            "data.kind": "scannet", "data.root": "/data/rooms", "labels.kind": "points",
            "labels.budget": 20.0, "labels.seed": 1, "labels.splits_dir": "/runs/eff/splits",
            "run.out": "/runs/eff/runs/finetune-scratch-points20-seed1", "run.device": "cpu",
            "run.progress": False,
        },
    )  # fmt: skip


def test_searched_ppkt_fine_tune_with_held_out_rates_and_user_overrides():
    cfg = ExperimentConfig(
        out=OUT, rate_selection="heldout", ppkt_overrides=("model.freeze_batchnorm=true",),
        finetune_overrides=("optim.steps=7",),
    )  # fmt: skip
    ft = finetune_config(
        cfg,
        ROOT,
        init=BACKBONE,
        mode="finetune",
        budget=LabelBudget.parse("scenes:0.25"),
        seed=2,
        lr_backbone=0.003,
    )
    _same(
        _changes(ft, finetune_preset("demo-finetune")),
        {
            "data.kind": "scannet", "data.root": "/data/rooms", "data.train_split": "fit",
            "data.val_split": "select", "data.scene_lists": "/runs/eff/scene_lists", "labels.budget": 0.25,
            "labels.seed": 2, "labels.splits_dir": "/runs/eff/splits", "model.init": "/b.safetensors",
            "model.freeze_batchnorm": True, "optim.steps": 7, "optim.lr_backbone": 0.003,
            "run.out": "/runs/eff/runs/finetune-ppkt-scenes0.25-seed2-lrb0.003",
        },
    )  # fmt: skip


def test_linear_probe_sub_run():
    cfg = ExperimentConfig(out=OUT, rate_selection="heldout")
    ft = finetune_config(
        cfg, ROOT, init=BACKBONE, mode="linear", budget=LabelBudget.parse("scenes:1.0"), seed=0
    )
    _same(
        _changes(ft, finetune_preset("demo-linear-probe")),
        {
            "data.kind": "scannet", "data.root": "/data/rooms", "data.train_split": "fit",
            "data.val_split": "select", "data.scene_lists": "/runs/eff/scene_lists",
            "labels.splits_dir": "/runs/eff/splits", "model.init": "/b.safetensors",
            "run.out": "/runs/eff/runs/linear-ppkt-scenes1-seed0",
        },
    )  # fmt: skip


def test_fine_tune_follows_the_pretrained_architecture():
    cfg = ExperimentConfig(out=OUT, pretrain_overrides=("model.voxel_size=0.08", "model.width=0.25"))
    ft = finetune_config(cfg, ROOT, init=None, mode="finetune", budget=LabelBudget.parse("points:50"), seed=0)
    changes = _changes(ft, finetune_preset("demo-finetune"))
    assert changes["model.voxel_size"] == 0.08 and changes["model.width"] == 0.25


def test_objective_sub_runs():
    cfg = ExperimentConfig(out=OUT, objective_overrides=("scene-pairs:optim.steps=50",))
    sub = objective_config(cfg, "superpixel-infonce")
    _same(
        _changes(pretrain_config(sub, ROOT), pretrain_preset("demo")),
        {
            "data.kind": "scannet", "data.root": "/data/rooms", "loss.name": "superpixel-infonce",
            "loss.superpixel_cache": "/runs/eff/superpixels",
            "run.out": "/runs/eff/superpixel-infonce/pretrain",
            "run.deterministic": True, "run.cpu_threads": 1,
        },
    )  # fmt: skip
    _same(
        _changes(
            finetune_config(sub, ROOT, init=None, mode="linear", budget=LabelBudget("points", 20), seed=0),
            finetune_preset("demo-linear-probe"),
        ),
        {
            "data.kind": "scannet", "data.root": "/data/rooms", "labels.kind": "points",
            "labels.budget": 20.0, "labels.splits_dir": "/runs/eff/splits",
            "run.out": "/runs/eff/superpixel-infonce/runs/linear-scratch-points20-seed0",
        },
    )  # fmt: skip
    _same(
        _changes(pretrain_config(objective_config(cfg, "scene-pairs"), ROOT), pretrain_preset("demo")),
        {
            "data.kind": "scannet", "data.root": "/data/rooms", "data.pairs": "scene", "optim.steps": 50,
            "run.out": "/runs/eff/scene-pairs/pretrain", "run.deterministic": True, "run.cpu_threads": 1,
        },
    )  # fmt: skip


def test_detection_sub_runs(tmp_path):
    from backbone_files import write_backbone_file

    preset = get_detection_preset("demo-detection")
    backbone = write_backbone_file(tmp_path / "b.safetensors", pretrain_preset("demo").model.spec)
    synthetic = DetectionExperimentConfig(out=OUT, progress=False)
    _same(
        _changes(detection_config(synthetic, ROOT, "ppkt", LabelBudget("scenes", 0.25), 1, backbone), preset),
        {
            "data.root": "/data", "data.synthetic.scenes": 20, "data.synthetic.frames_per_scene": 12,
            "data.synthetic.image_hw": [120, 160],
            "labels.budget": 0.25, "labels.seed": 1, "labels.splits_dir": "/runs/eff/splits",
            "model.init": str(backbone), "run.out": "/runs/eff/ppkt-scenes0.25-seed1",
            "run.progress": False, "run.cpu_threads": 1, "run.deterministic": True,
        },
    )  # fmt: skip
    scans = DetectionExperimentConfig(out=OUT, data_root=ROOT, detection_overrides=("optim.steps=5",))
    _same(
        _changes(detection_config(scans, ROOT, "scratch", LabelBudget("scenes", 1.0), 0, backbone), preset),
        {
            "data.kind": "scannet", "data.root": "/data/rooms", "labels.splits_dir": "/runs/eff/splits",
            "optim.steps": 5, "run.out": "/runs/eff/scratch-scenes1-seed0", "run.cpu_threads": 1,
            "run.deterministic": True,
        },
    )  # fmt: skip


def test_detection_runs_take_the_pretrained_architecture(tmp_path):
    from backbone_files import write_backbone_file
    from ppkt.backbones.spec import BackboneSpec

    wide = write_backbone_file(
        tmp_path / "w.safetensors", BackboneSpec("res16unet14", 0.25, 0.1, "rgb", "torch")
    )
    cfg = DetectionExperimentConfig(out=OUT)
    for init in ("scratch", "ppkt"):
        model = detection_config(cfg, ROOT, init, LabelBudget("scenes", 1.0), 0, wide).model
        assert (model.width, model.voxel_size) == (0.25, 0.1)
    for override in ("model.width=0.5", "model.voxel_size=0.05", "data.voxel_size=0.05"):  # old name too
        clash = DetectionExperimentConfig(out=OUT, detection_overrides=(override,))
        with pytest.raises(ValueError, match="width|voxel_size"):
            detection_config(clash, ROOT, "ppkt", LabelBudget("scenes", 1.0), 0, wide)


def test_demo_sub_runs():
    from ppkt.cli.demo import add_arguments, demo_config

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    cfg = demo_config(parser.parse_args(["--size", "tiny", "--out", "/runs/demo"]))
    _same(
        _changes(pretrain_config(cfg, ROOT), pretrain_preset("demo")),
        {
            "data.kind": "scannet", "data.root": "/data/rooms", "optim.steps": 8,
            "run.out": "/runs/demo/pretrain",
            "run.deterministic": True, "run.cpu_threads": 1, "run.checkpoint_every": 2,
        },
    )  # fmt: skip
    ft = finetune_config(
        cfg, ROOT, init=BACKBONE, mode="finetune", budget=cfg.budgets[0], seed=0, lr_backbone=0.001
    )
    _same(
        _changes(ft, finetune_preset("demo-finetune")),
        {
            "data.kind": "scannet", "data.root": "/data/rooms", "labels.kind": "points",
            "labels.budget": 20.0, "labels.splits_dir": "/runs/demo/splits", "model.init": "/b.safetensors",
            "model.freeze_batchnorm": True,
            "optim.steps": 10, "optim.lr_backbone": 0.001,
            "run.out": "/runs/demo/runs/finetune-ppkt-points20-seed0-lrb0.001", "run.eval_every": 10,
        },
    )  # fmt: skip
