"""The backbone card holds the backbone spec; its JSON stays flat (old cards read unchanged); a
fine-tuning run started from a card takes the card's spec where the user set nothing else."""

from __future__ import annotations

from dataclasses import replace

import pytest
import yaml

from backbone_files import write_backbone_file
from ppkt.backbones.card import BackboneCard, load_card, spec_from_card
from ppkt.backbones.spec import BackboneSpec
from ppkt.cli import main
from ppkt.eval.model import with_card_spec
from ppkt.eval.presets import get_preset as get_finetune_preset

# A card as ppkt wrote them before the spec existed (every field at the top level).
OLD_CARD = {
    "backbone": "res16unet14", "width": 0.25, "in_channels": 3, "input_features": "rgb", "out_channels": 24,
    "voxel_size": 0.1, "sparse_backend": "torch", "teacher": "efficientnet_lite0/stride16",
    "embedding_dim": 64, "loss": "PointInfoNCE(tau=0.07, num_pairs=1024, sampling=batch)",
    "data": "synthetic:default split=train frame_skip=1", "preset": "demo", "steps": 150, "seed": 0,
    "ppkt_version": "0.1.0", "source": "runs/demo/checkpoints/step_150", "weights_sha256": "ab" * 32,
    "format": "ppkt-backbone/1",
}  # fmt: skip


def test_an_old_card_reads_and_writes_back_the_same_json():
    card = BackboneCard.from_json(dict(OLD_CARD))
    assert card.spec == BackboneSpec(
        backbone="res16unet14", width=0.25, voxel_size=0.1, input_features="rgb", sparse_backend="torch"
    )
    assert card.in_channels == 3 and card.steps == 150
    assert card.to_json() == OLD_CARD


def test_a_card_whose_channels_do_not_match_its_features_is_refused():
    with pytest.raises(ValueError, match="in_channels 6 does not match input_features 'rgb'"):
        BackboneCard.from_json({**OLD_CARD, "in_channels": 6})
    with pytest.raises(ValueError, match="sparse_backend"):
        BackboneCard.from_json({**OLD_CARD, "sparse_backend": "minkowski"})
    with pytest.raises(ValueError, match="missing \\['voxel_size'\\]"):
        BackboneCard.from_json({k: v for k, v in OLD_CARD.items() if k != "voxel_size"})


def test_spec_from_card_takes_what_was_not_given_and_refuses_a_real_difference():
    card = BackboneCard.from_json(dict(OLD_CARD))
    run = get_finetune_preset("finetune-scannet").model  # res16unet34, width 1, 2.5 cm
    taken, changed = spec_from_card(run, card, given=(), where="bb.safetensors")
    assert type(taken) is type(run) and taken.mode == run.mode
    assert (taken.backbone, taken.width, taken.voxel_size) == ("res16unet14", 0.25, 0.1)
    assert changed == ["model.backbone 'res16unet14'", "model.width 0.25", "model.voxel_size 0.1"]
    # set to the card's own value: fine; the backend is the run's choice, never taken or compared
    same, _ = spec_from_card(replace(run, voxel_size=0.1, sparse_backend="spconv"), card, {"voxel_size"}, "f")
    assert same.voxel_size == 0.1 and same.sparse_backend == "spconv"
    with pytest.raises(ValueError) as err:
        spec_from_card(replace(run, voxel_size=0.02), card, {"voxel_size", "width"}, "bb.safetensors")
    message = str(err.value)
    assert "\n" not in message and "bb.safetensors" in message
    assert "model.voxel_size 0.02 vs the card's 0.1" in message
    assert "model.width 1.0 vs the card's 0.25" in message


def test_with_card_spec_reads_the_init_file(tmp_path):
    spec = BackboneSpec(backbone="res16unet14", width=0.25, voxel_size=0.1, input_features="xyzrgb")
    path = write_backbone_file(tmp_path / "bb.safetensors", spec)
    assert load_card(path).spec == spec
    cfg = get_finetune_preset("demo-finetune")
    assert with_card_spec(cfg, ()) == (cfg, "")  # no init: unchanged
    started = replace(cfg, model=replace(cfg.model, init=path))
    resolved, note = with_card_spec(started, {"optim.steps": "3"})
    assert resolved.model.spec == replace(spec, sparse_backend=cfg.model.sparse_backend)
    assert note.startswith(f"from the backbone card of {path}") and "model.input_features 'xyzrgb'" in note
    with pytest.raises(ValueError, match="model.input_features 'rgb' vs the card's 'xyzrgb'"):
        with_card_spec(started, {"model.input_features": "rgb"})


def test_finetune_init_takes_the_card_on_the_command_line(tmp_path, capsys):
    spec = BackboneSpec(backbone="res16unet14", width=0.25, voxel_size=0.1)
    path = write_backbone_file(tmp_path / "bb.safetensors", spec)
    assert main(["finetune", "--preset", "finetune-scannet", "--init", str(path), "--print-config"]) == 0
    out = capsys.readouterr()
    model = yaml.safe_load(out.out)["model"]
    assert (model["backbone"], model["width"], model["voxel_size"]) == ("res16unet14", 0.25, 0.1)
    assert "from the backbone card" in out.err
    status = main(["finetune", "--preset", "finetune-scannet", "--init", str(path), "--model.width", "0.5",
                   "--print-config"])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and "model.width 0.5 vs the card's 0.25" in err[-1]
    detection = ["finetune", "--task", "detection", "--preset", "demo-detection", "--init", str(path)]
    assert main([*detection, "--print-config"]) == 0
    model = yaml.safe_load(capsys.readouterr().out)["model"]
    assert (model["backbone"], model["width"], model["voxel_size"]) == ("res16unet14", 0.25, 0.1)
    assert main([*detection, "--model.voxel_size", "0.05", "--print-config"]) == 2
    assert "model.voxel_size 0.05 vs the card's 0.1" in capsys.readouterr().err
