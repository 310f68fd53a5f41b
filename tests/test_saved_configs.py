"""Configs saved by ppkt 0.1 (commit 2ce7be6, before the option renames) still load, as the same
settings under today's names (``ppkt.config.RENAMED_OPTIONS``)."""

from pathlib import Path

import pytest

from config_trees import flat_keys
from ppkt.config import config_to_dict, load_config
from ppkt.eval.config import FinetuneConfig
from ppkt.eval.detection.config import DetectionConfig
from ppkt.eval.detection.presets import get_detection_preset
from ppkt.eval.presets import get_preset as finetune_preset
from ppkt.train.config import PretrainConfig
from ppkt.train.presets import get_preset as pretrain_preset

SAVED = Path(__file__).parent / "fixtures" / "configs_0.1"


@pytest.mark.parametrize(
    ("file", "cls", "today", "render_hw_then"),
    [
        ("pretrain_demo.yaml", PretrainConfig, pretrain_preset("demo"), None),
        ("finetune_demo-finetune.yaml", FinetuneConfig, finetune_preset("demo-finetune"), [120, 160]),
        (
            "detection_demo-detection.yaml",
            DetectionConfig,
            get_detection_preset("demo-detection"),
            [120, 160],
        ),
    ],
)
def test_a_preset_saved_by_ppkt_0_1_is_todays_preset(file, cls, today, render_hw_then, capsys):
    saved = flat_keys(config_to_dict(load_config(cls, SAVED / file)))
    assert "renamed options" in capsys.readouterr().err
    now = flat_keys(config_to_dict(today))
    assert saved.keys() == now.keys()
    differ = {key: (saved[key], now[key]) for key in saved if saved[key] != now[key]}
    # The one deliberate change: the demo presets now share one synthetic dataset (DEMO_ROOMS)
    # rendered at 96x128; the rooms' points and labels do not depend on the render size.
    assert differ == {"data.synthetic.image_hw": (render_hw_then, [96, 128])}
