"""One preset registry type for every command, one synthetic-rooms section (``data.synthetic``) in
every command and experiment, and the old flat ``synthetic_*`` names still read."""

from __future__ import annotations

import json

import pytest
import yaml

from ppkt.cli import main
from ppkt.config import Preset, PresetRegistry, apply_overrides, config_to_dict, load_config
from ppkt.data.registry import DEMO_ROOMS, SyntheticRooms
from ppkt.eval.config import FinetuneConfig
from ppkt.eval.config import validate as validate_finetune
from ppkt.eval.detection.config import DetectionConfig
from ppkt.eval.detection.config import validate as validate_detection
from ppkt.eval.detection.presets import DETECTION_PRESETS
from ppkt.eval.presets import PRESETS as FINETUNE_PRESETS
from ppkt.eval.splits import LabelBudget
from ppkt.experiments.effectiveness import PROTOCOL_ROOMS, ExperimentConfig
from ppkt.experiments.effectiveness_detection import (
    DetectionExperimentConfig,
    DetectionRow,
    DetectionRunRecord,
)
from ppkt.train.config import PretrainConfig
from ppkt.train.config import validate as validate_pretrain
from ppkt.train.presets import PRESETS as PRETRAIN_PRESETS

REGISTRIES = [
    (PRETRAIN_PRESETS, PretrainConfig, validate_pretrain),
    (FINETUNE_PRESETS, FinetuneConfig, validate_finetune),
    (DETECTION_PRESETS, DetectionConfig, validate_detection),
]
EVERY_PRESET = [(reg, cls, check, name) for reg, cls, check in REGISTRIES for name in reg.names]


@pytest.mark.parametrize(("registry", "cls", "check", "name"), EVERY_PRESET, ids=lambda x: str(x)[:40])
def test_every_registered_preset_builds_and_validates(registry, cls, check, name):
    cfg = registry.get(name)
    assert isinstance(cfg, cls) and cfg.origin == name
    check(cfg)
    assert registry.get(name) == cfg and registry.get(name) is not cfg  # a fresh config each time


@pytest.mark.parametrize(("registry", "what"), [(r, w) for (r, _, _), w in zip(
    REGISTRIES, ("pretraining", "fine-tuning", "detection"), strict=True)])  # fmt: skip
def test_an_unknown_preset_is_one_line_listing_the_choices(registry, what):
    with pytest.raises(ValueError) as err:
        registry.get("nope")
    message = str(err.value)
    assert "\n" not in message and f"unknown {what} preset 'nope'" in message
    assert all(repr(name) in message for name in registry.names)


def test_the_registry_lists_names_in_order_with_their_sources():
    built = []
    registry = PresetRegistry("toy", [Preset("b", lambda: built.append("b") or 2, "from B"),
                                      Preset("a", lambda: 1, "ours")])  # fmt: skip
    assert registry.names == ["b", "a"] and list(registry) == ["b", "a"] and "a" in registry
    assert "c" not in registry and len(registry) == 2 and built == []  # nothing built until asked
    assert registry.get("b") == 2 and built == ["b"]
    assert registry.help() == "b: from B; a: ours"


def test_the_help_of_the_commands_lists_every_preset_with_its_source(capsys):
    assert main(["pretrain", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "openscene-distill: OpenScene" in text and "demo: ours" in text


def test_the_demo_presets_share_one_set_of_rooms():
    pre = PRETRAIN_PRESETS.get("demo")
    rooms = {
        pre.data.synthetic,
        FINETUNE_PRESETS.get("demo-finetune").data.synthetic,
        FINETUNE_PRESETS.get("demo-linear-probe").data.synthetic,
        DETECTION_PRESETS.get("demo-detection").data.synthetic,
    }
    assert rooms == {DEMO_ROOMS}
    # pretraining uses the frames as rendered: the teacher's input size is the render size
    assert tuple(pre.data.image_hw) == DEMO_ROOMS.image_hw


def test_the_synthetic_section_is_set_by_nested_dotted_names():
    cfg = apply_overrides(FINETUNE_PRESETS.get("demo-finetune"), {"data.synthetic.image_hw": "24,32"})
    assert cfg.data.synthetic == SyntheticRooms(6, 8, 0, (24, 32))
    with pytest.raises(ValueError, match=r"data.synthetic.scenes = 0: must be >= 1"):
        validate_finetune(apply_overrides(cfg, {"data.synthetic.scenes": "0"}))
    # fine-tuning has no image size of its own to render at
    with pytest.raises(ValueError, match=r"data.synthetic.image_hw = None: must be the rendered"):
        validate_finetune(apply_overrides(cfg, {"data.synthetic.image_hw": "none"}))


def test_pretraining_renders_at_data_image_hw_unless_told(monkeypatch, tmp_path):
    import ppkt.data.registry as registry
    from ppkt.train.loop import build_frames

    asked = []

    def generate(**kwargs):  # stands in for rendering: records what was asked, renders nothing
        asked.append(kwargs)
        raise ZeroDivisionError

    monkeypatch.setattr(registry, "ensure_dataset", generate)
    base = apply_overrides(
        PRETRAIN_PRESETS.get("demo"), {"data.root": str(tmp_path), "data.image_hw": "24,32"}
    )
    for overrides, expected in [({"data.synthetic.image_hw": "none"}, (24, 32)), ({}, (96, 128))]:
        with pytest.raises(ZeroDivisionError):
            build_frames(apply_overrides(base, overrides))
        assert asked[-1]["image_hw"] == expected and asked[-1]["scenes"] == 6


def _flat_synthetic(data: dict) -> dict:
    """A data section as ppkt wrote it before the synthetic section: flat ``synthetic_*`` keys."""
    rooms = data.pop("synthetic")
    for key in ("scenes", "frames_per_scene", "seed"):
        data[f"synthetic_{key}"] = rooms[key]
    return rooms


def test_a_saved_pretraining_config_with_the_flat_names_resumes_the_same_rooms(tmp_path, capsys):
    # Before, pretraining rendered the rooms at data.image_hw and had no render size of its own.
    cfg = apply_overrides(
        PRETRAIN_PRESETS.get("demo"), {"data.synthetic.scenes": "3", "data.image_hw": "48,64"}
    )
    old = config_to_dict(cfg)
    _flat_synthetic(old["data"])
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(old, sort_keys=False))
    loaded = load_config(PretrainConfig, tmp_path / "config.yaml")
    assert loaded.data.synthetic == SyntheticRooms(3, 8, 0, None)  # None: rendered at data.image_hw
    assert loaded.data.synthetic.render_hw(loaded.data.image_hw) == (48, 64)
    assert "data.synthetic_scenes is now data.synthetic.scenes" in capsys.readouterr().err


def test_a_saved_finetuning_config_with_the_flat_names_loads(tmp_path):
    cfg = apply_overrides(FINETUNE_PRESETS.get("demo-finetune"), {"data.synthetic.seed": "4"})
    old = config_to_dict(cfg)
    rooms = _flat_synthetic(old["data"])
    old["data"]["synthetic_image_hw"] = rooms["image_hw"]
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(old, sort_keys=False))
    assert load_config(FinetuneConfig, tmp_path / "config.yaml") == cfg


def test_old_flat_names_on_the_command_line_and_in_overrides(capsys):
    args = ["--print-config", "--data.synthetic_scenes", "3", "--data.synthetic_image_hw", "24,32"]
    assert main(["finetune", "--preset", "demo-finetune", *args]) == 0
    out = capsys.readouterr()
    assert yaml.safe_load(out.out)["data"]["synthetic"] == {
        "scenes": 3,
        "frames_per_scene": 8,
        "seed": 0,
        "image_hw": [24, 32],
    }
    assert "data.synthetic_image_hw is now data.synthetic.image_hw" in out.err
    det = apply_overrides(DETECTION_PRESETS.get("demo-detection"), {"data.synthetic_seed": "2"})
    assert det.data.synthetic.seed == 2
    with pytest.raises(ValueError, match="old name of data.synthetic.scenes"):
        apply_overrides(det, {"data.synthetic_scenes": "2", "data.synthetic.scenes": "3"})


def test_an_experiment_yaml_written_before_loads(tmp_path):
    old = {"out": str(tmp_path), "synthetic_scenes": 5, "synthetic_frames_per_scene": 12,
           "synthetic_seed": 0, "image_hw": [120, 160]}  # fmt: skip
    (tmp_path / "experiment.yaml").write_text(yaml.safe_dump(old))
    cfg = load_config(ExperimentConfig, tmp_path / "experiment.yaml")
    assert (
        cfg.synthetic == SyntheticRooms(5, 12, 0, (120, 160))
        and ExperimentConfig().synthetic == PROTOCOL_ROOMS
    )
    assert DetectionExperimentConfig().shared().synthetic == PROTOCOL_ROOMS


def test_detection_budgets_are_scene_budgets_and_old_results_read():
    assert DetectionExperimentConfig().budgets == (LabelBudget("scenes", 0.25), LabelBudget("scenes", 1.0))
    cfg = apply_overrides(DetectionExperimentConfig(), {"budgets": "scenes:0.5"})
    assert cfg.budgets == (LabelBudget("scenes", 0.5),)
    with pytest.raises(ValueError, match="detection budgets are scenes:FRACTION"):
        DetectionExperimentConfig(budgets=(LabelBudget("points", 20),))
    figures = {
        f"{i}_{k}": 0.5 for i in ("scratch", "ppkt") for k in ("map25", "map25_std", "map50", "map50_std")
    }
    figures.update(scratch_runs=1, ppkt_runs=1)
    old, new = (
        DetectionRow.from_json({"budget": 0.25, **figures}),
        DetectionRow.from_json({"budget": "scenes:0.25", **figures}),
    )
    assert old == new and old.budget == LabelBudget("scenes", 0.25)
    assert json.loads(json.dumps(new.to_json()))["budget"] == "scenes:0.25"
    record = DetectionRunRecord("ppkt", LabelBudget("scenes", 1.0), 0, 0.1, 0.05, 2.0, "r")
    assert DetectionRunRecord.from_json(record.to_json()) == record
    assert DetectionRunRecord.from_json({**record.to_json(), "budget": 1.0}) == record
