"""The experiments reuse a finished run only when its saved config is the sub-run's config."""

from pathlib import Path

import yaml

from ppkt.config import config_to_dict, save_config
from ppkt.experiments.effectiveness import ExperimentConfig, _same_config, pretrain_config


def test_a_run_saved_before_a_rename_is_recognised(tmp_path, capsys):
    cfg = pretrain_config(ExperimentConfig(out=tmp_path), Path("/data/rooms"))
    run = tmp_path / "pretrain"
    run.mkdir()
    assert not _same_config(run, cfg)  # nothing saved
    save_config(cfg, run / "config.yaml")
    assert _same_config(run, cfg)
    # The same run as an earlier ppkt wrote it: the backbone settings under student.*.
    saved = config_to_dict(cfg)
    saved["student"] = saved.pop("model")
    (run / "config.yaml").write_text(yaml.safe_dump(saved, sort_keys=False))
    assert _same_config(run, cfg)
    assert "student.width is now model.width" in capsys.readouterr().err
    # A real difference, and a file that is not a config, are not the same run.
    saved["student"]["width"] = 2.0
    (run / "config.yaml").write_text(yaml.safe_dump(saved, sort_keys=False))
    assert not _same_config(run, cfg)
    (run / "config.yaml").write_text("just: [a, list]\n")
    assert not _same_config(run, cfg)


def test_a_saved_config_missing_a_key_is_not_the_same_run(tmp_path):
    cfg = pretrain_config(ExperimentConfig(out=tmp_path), Path("/data/rooms"))
    run = tmp_path / "pretrain"
    run.mkdir()
    saved = config_to_dict(cfg)
    del saved["optim"]["grad_clip"]  # equal to its default, but the file does not say so
    (run / "config.yaml").write_text(yaml.safe_dump(saved, sort_keys=False))
    assert not _same_config(run, cfg)


def test_the_rename_notice_is_printed_once(tmp_path, capsys):
    cfg = pretrain_config(ExperimentConfig(out=tmp_path), Path("/data/rooms"))
    run = tmp_path / "pretrain"
    run.mkdir()
    saved = config_to_dict(cfg)
    saved["student"] = saved.pop("model")
    (run / "config.yaml").write_text(yaml.safe_dump(saved, sort_keys=False))
    assert _same_config(run, cfg) and _same_config(run, cfg)
    assert capsys.readouterr().err.count("renamed options") == 1


def test_the_objective_wins_over_a_general_override(tmp_path):
    from ppkt.experiments.objectives import objective_config

    cfg = ExperimentConfig(out=tmp_path, pretrain_overrides=("loss.name=cosine",))
    sub = objective_config(cfg, "superpixel-infonce")
    assert pretrain_config(sub, Path("/data/rooms")).loss.name == "superpixel-infonce"
    # Without an objective axis the override is the user's choice.
    assert pretrain_config(cfg, Path("/data/rooms")).loss.name == "cosine"
