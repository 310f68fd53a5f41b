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
