"""``ppkt compare`` reads each run's saved config through the config classes, so renamed options
and defaults do not split runs with the same settings into separate groups."""

import json

import pytest

from ppkt.eval.compare import group_runs, load_run

OLD_STYLE = """\
data:
  voxel_size: 0.05
  synthetic_scenes: 4
model:
  backend: torch
  init: runs/pretrain/backbone.safetensors
labels:
  budget: 0.1
  seed: 0
"""

NEW_STYLE = """\
data:
  synthetic:
    scenes: 4
model:
  voxel_size: 0.05
  sparse_backend: torch
  init: runs/pretrain/backbone.safetensors
  mode: finetune
labels:
  budget: 0.1
  seed: 1
optim:
  steps: 20000
"""


def write_run(folder, config_text, miou):
    folder.mkdir()
    (folder / "config.yaml").write_text(config_text)
    (folder / "metrics.json").write_text(json.dumps({"best": {"miou": miou}, "last": {"miou": miou}}))
    return folder


def test_runs_saved_before_and_after_a_rename_group_together(tmp_path, capsys):
    old = load_run(write_run(tmp_path / "old", OLD_STYLE, 0.4))
    new = load_run(write_run(tmp_path / "new", NEW_STYLE, 0.5))
    assert "data.voxel_size is now model.voxel_size" in capsys.readouterr().err
    assert old.config["model.voxel_size"] == 0.05 and "data.voxel_size" not in old.config
    assert old.config["data.synthetic.scenes"] == 4 and old.config["model.sparse_backend"] == "torch"
    groups = group_runs([old, new])
    assert len(groups) == 1 and groups[0].settings == {}
    assert groups[0].mean_std("miou")[0] == pytest.approx(0.45)


def test_a_setting_that_differs_is_still_a_column(tmp_path):
    other = NEW_STYLE.replace("voxel_size: 0.05", "voxel_size: 0.02")
    runs = [
        load_run(write_run(tmp_path / "old", OLD_STYLE, 0.4)),
        load_run(write_run(tmp_path / "b", other, 0.5)),
    ]
    assert [g.settings for g in group_runs(runs)] == [{"model.voxel_size": 0.05}, {"model.voxel_size": 0.02}]


def test_an_unknown_key_names_the_file(tmp_path):
    run = write_run(tmp_path / "r", "data:\n  no_such_option: 1\n", 0.4)
    with pytest.raises(ValueError, match=r"config.yaml.*no_such_option"):
        load_run(run)
