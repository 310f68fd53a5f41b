import dataclasses
from pathlib import Path

import pytest

from backbone_files import write_backbone_file
from ppkt.cli import main
from ppkt.eval.presets import PRETRAINED_RECIPES, get_preset, pretrained_recipe


def test_a_pretrained_backbone_gets_the_measured_recipe_unless_the_user_set_it():
    cfg = get_preset("demo-finetune")
    assert cfg.optim.lr_backbone == 0.1 and not cfg.model.freeze_batchnorm  # the scratch recipe
    same, note = pretrained_recipe(cfg)
    assert same == cfg and note == ""  # no backbone loaded: nothing changes, nothing printed
    pretrained = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, init=Path("b")))
    tuned, note = pretrained_recipe(pretrained)
    assert tuned.optim.lr_backbone == 0.003 and tuned.model.freeze_batchnorm
    assert "backbone lr 0.003, batch-norm statistics frozen" in note
    mine, note = pretrained_recipe(pretrained, {"optim.lr_backbone": "0.01"})
    # the user set the rate (the caller applies it): only the statistics follow the recipe
    assert mine.optim.lr_backbone == 0.1 and mine.model.freeze_batchnorm
    assert "measured best for demo-finetune: lr 0.003" in note


@pytest.fixture
def backbone_file(tmp_path, monkeypatch):
    """An exported backbone b.safetensors in the working folder, with demo-finetune's spec (so that
    demo-finetune keeps its values; finetune-scannet takes the card's)."""
    monkeypatch.chdir(tmp_path)
    write_backbone_file(tmp_path / "b.safetensors", get_preset("demo-finetune").model.spec)


def test_presets_without_a_measured_recipe_say_which_recipe_they_use(capsys, backbone_file):
    assert set(PRETRAINED_RECIPES) == {"demo-finetune"}
    argv = ["finetune", "--preset", "finetune-scannet", "--init", "b.safetensors", "--print-config"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert (
        "preset's recipe (finetune-scannet: backbone lr 0.133, batch-norm statistics trained)" in captured.err
    )
    assert "lr_backbone: 0.133" in captured.out and "freeze_batchnorm: false" in captured.out


def test_finetune_command_applies_the_recipe_and_keeps_explicit_options(capsys, backbone_file):
    base = ["finetune", "--preset", "demo-finetune", "--init", "b.safetensors", "--print-config"]
    assert main(base) == 0
    out = capsys.readouterr().out
    assert "lr_backbone: 0.003" in out and "freeze_batchnorm: true" in out
    assert main([*base, "--optim.lr_backbone", "0.02", "--model.freeze_batchnorm", "false"]) == 0
    out = capsys.readouterr().out
    assert "lr_backbone: 0.02" in out and "freeze_batchnorm: false" in out
    assert main(["finetune", "--preset", "demo-finetune", "--print-config"]) == 0
    assert "lr_backbone: 0.1" in capsys.readouterr().out  # from scratch: the preset as it is


def test_internal_options_are_accepted_but_not_listed(capsys):
    assert main(["finetune", "--help"]) == 0
    assert "--origin" not in capsys.readouterr().out
    assert main(["finetune", "--preset", "demo-finetune", "--origin", "x", "--print-config"]) == 0
    assert "origin: x" in capsys.readouterr().out
