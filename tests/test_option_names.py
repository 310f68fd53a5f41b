"""One name per setting: the backbone spec is the ``model`` section of every command, and the old
names (``ppkt.config.RENAMED_OPTIONS``) still read, with one notice naming old and new."""

from __future__ import annotations

import pytest
import yaml

from ppkt.backbones.spec import SPEC_FIELDS, BackboneSpec
from ppkt.cli import main
from ppkt.config import RENAMED_OPTIONS, apply_overrides, config_to_dict, leaf_fields, load_config
from ppkt.eval.config import FinetuneConfig
from ppkt.eval.detection.config import DetectionConfig
from ppkt.eval.detection.presets import get_detection_preset
from ppkt.eval.presets import get_preset as get_finetune_preset
from ppkt.experiments.effectiveness import ExperimentConfig
from ppkt.experiments.effectiveness_detection import DetectionExperimentConfig
from ppkt.train.config import PretrainConfig
from ppkt.train.presets import get_preset

CONFIGS = (PretrainConfig, FinetuneConfig, DetectionConfig)


@pytest.mark.parametrize("cls", CONFIGS, ids=lambda c: c.__name__)
def test_every_command_has_the_spec_under_model(cls):
    leaves = {name for name, _, _ in leaf_fields(cls)}
    assert {f"model.{f}" for f in SPEC_FIELDS} <= leaves
    assert isinstance(cls().model, BackboneSpec)
    # no second name for a spec setting anywhere in the config
    others = [n for n in leaves if not n.startswith("model.") and n.split(".")[-1] in SPEC_FIELDS]
    assert others == []


def test_renamed_options_point_from_gone_names_to_present_ones():
    # the experiments' configs have their own synthetic-rooms section (ppkt.experiments)
    leaves = {
        cls: {name for name, _, _ in leaf_fields(cls)}
        for cls in (*CONFIGS, ExperimentConfig, DetectionExperimentConfig)
    }
    for old, new in RENAMED_OPTIONS.items():
        assert any(new in names for names in leaves.values()), new
        assert not any(old in names for names in leaves.values()), old


DEMO, DEMO_FT, DEMO_DET = (
    (lambda: get_preset("demo")),
    (lambda: get_finetune_preset("demo-finetune")),
    (lambda: get_detection_preset("demo-detection")),
)


@pytest.mark.parametrize(
    ("start", "old", "new", "value", "expected"),
    [
        (DEMO, "student.width", "model.width", "0.25", 0.25),
        (DEMO, "student.voxel_size", "model.voxel_size", "0.1", 0.1),
        (DEMO, "student.sync_batchnorm", "model.sync_batchnorm", "true", True),
        (DEMO_FT, "data.voxel_size", "model.voxel_size", "0.1", 0.1),
        (DEMO_FT, "model.backend", "model.sparse_backend", "spconv", "spconv"),
        (DEMO_DET, "data.input_features", "model.input_features", "constant", "constant"),
    ],
)
def test_old_override_names_still_work_with_a_notice(capsys, start, old, new, value, expected):
    cfg = apply_overrides(start(), {old: value})
    assert cfg == apply_overrides(start(), {new: value})
    section, name = new.split(".")
    assert getattr(getattr(cfg, section), name) == expected
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and old in err[0] and new in err[0]


def test_an_old_and_a_new_name_that_disagree_are_an_error():
    with pytest.raises(ValueError, match="student.width.*model.width"):
        apply_overrides(get_preset("demo"), {"student.width": "0.25", "model.width": "0.5"})


def _saved_before_the_rename(cfg, moves: dict[str, str]) -> dict:
    """``cfg`` as a config.yaml written by ppkt before the rename: each new name back at its old one."""
    data = config_to_dict(cfg)
    for old, new in moves.items():
        (old_section, old_name), (new_section, new_name) = old.split("."), new.split(".")
        data.setdefault(old_section, {})[old_name] = data[new_section].pop(new_name)
    return {k: v for k, v in data.items() if v != {}}


def test_a_saved_pretraining_config_with_the_student_section_loads(tmp_path, capsys):
    cfg = apply_overrides(get_preset("demo"), {"model.width": "0.25", "model.sync_batchnorm": "true"})
    student = {k: v for k, v in RENAMED_OPTIONS.items() if k.startswith("student.")}
    old = _saved_before_the_rename(cfg, student)
    assert "model" not in old and set(old["student"]) == {*SPEC_FIELDS, "sync_batchnorm"}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(old, sort_keys=False))
    assert load_config(PretrainConfig, tmp_path / "config.yaml") == cfg
    err = capsys.readouterr().err
    (line,) = err.strip().splitlines()  # one notice for the file, naming every rename in it
    assert str(tmp_path / "config.yaml") in line
    assert all(f"{old} is now {new}" in line for old, new in student.items())


def test_a_saved_finetuning_config_with_data_voxel_size_loads(tmp_path):
    cfg = apply_overrides(get_finetune_preset("demo-finetune"), {"model.voxel_size": "0.1"})
    moves = {"data.voxel_size": "model.voxel_size", "data.input_features": "model.input_features",
             "model.backend": "model.sparse_backend"}  # fmt: skip
    old = _saved_before_the_rename(cfg, moves)
    assert old["data"]["voxel_size"] == 0.1 and "backend" in old["model"]
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(old, sort_keys=False))
    assert load_config(FinetuneConfig, tmp_path / "config.yaml") == cfg


def test_old_names_on_the_command_line(capsys):
    assert main(["pretrain", "--print-config", "--student.width", "0.25", "--student.voxel_size", "0.1"]) == 0
    out = capsys.readouterr()
    printed = yaml.safe_load(out.out)
    assert printed["model"]["width"] == 0.25 and printed["model"]["voxel_size"] == 0.1
    assert "student" not in printed
    assert "student.width is now model.width" in out.err
    assert main(["finetune", "--print-config", "--data.voxel_size", "0.1", "--model.backend", "torch"]) == 0
    out = capsys.readouterr()
    assert yaml.safe_load(out.out)["model"]["voxel_size"] == 0.1
    assert "data.voxel_size is now model.voxel_size" in out.err
    assert "model.backend is now model.sparse_backend" in out.err
    main(["pretrain", "--help"])
    listed = capsys.readouterr().out
    assert "--student.width" not in listed and "--model.width" in listed


def test_spec_of_a_model_section_is_a_plain_spec():
    pre = get_preset("demo").model
    assert type(pre.spec) is BackboneSpec and pre.spec.voxel_size == pre.voxel_size == 0.05
    assert pre.spec == get_finetune_preset("demo-finetune").model.spec
