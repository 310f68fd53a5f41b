import json

import pytest
import torch
import yaml
from test_loop import tiny_config
from train_fixtures import make_frame

from ppkt.backbones import build_backbone
from ppkt.backbones.card import BackboneCard, load_backbone_file, load_card
from ppkt.cli import main
from ppkt.train.checkpoint import latest_checkpoint, load_checkpoint
from ppkt.train.export import export_backbone
from ppkt.train.loop import pretrain
from ppkt.train.presets import get_preset
from ppkt.utils.weights import load_weights


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "run"
    torch.set_num_threads(1)
    frames = [make_frame(seed=i, name=f"{i:06d}") for i in range(4)]
    pretrain(tiny_config(out, **{"optim.steps": "2"}), frames=frames)
    return out


def test_export_writes_backbone_keys_and_card(run_dir, tmp_path):
    out, card = export_backbone(run_dir, tmp_path / "bb.safetensors")
    weights, _ = load_weights(out)
    reference = build_backbone("res16unet14", 3, width=0.25)
    assert set(weights) == set(reference.state_dict())
    ckpt_weights, state = load_checkpoint(latest_checkpoint(run_dir))
    for key, value in weights.items():
        assert torch.equal(value, ckpt_weights["backbone." + key])
    assert card.steps == state.step == 2
    assert (card.spec.backbone, card.spec.width, card.spec.voxel_size, card.spec.input_features) == (
        "res16unet14",
        0.25,
        get_preset("demo").model.voxel_size,
        "rgb",
    )
    assert card.teacher.startswith("efficientnet_lite0/stride8/")
    assert card.preset == "demo" and card.format == "ppkt-backbone/1"
    assert load_card(tmp_path / "bb.json") == card
    assert load_card(out) == card
    (tmp_path / "bb.json").unlink()  # the card embedded in the weights' metadata still reads
    assert load_card(out) == card
    backbone, card2 = load_backbone_file(out)
    assert card2 == card and isinstance(backbone, torch.nn.Module)


def test_load_backbone_file_checks_card(run_dir, tmp_path):
    out, card = export_backbone(run_dir, tmp_path / "bb.safetensors")
    data = card.to_json()
    data["weights_sha256"] = "0" * 64
    (tmp_path / "bb.json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match="sha256"):
        load_backbone_file(out)
    (tmp_path / "bad.json").write_text(json.dumps({"backbone": "x"}))
    with pytest.raises(ValueError, match="not a ppkt backbone card"):
        load_card(tmp_path / "bad.json")
    assert BackboneCard.from_json(card.to_json()) == card


def test_cli_export_and_print_config(run_dir, tmp_path, capsys):
    assert main(["export", str(run_dir), "--out", str(tmp_path / "b.safetensors")]) == 0
    assert (tmp_path / "b.safetensors").is_file() and (tmp_path / "b.json").is_file()
    assert main(["export", str(tmp_path / "nothing")]) == 2
    capsys.readouterr()
    assert (
        main(["pretrain", "--preset", "paper", "--loss.tau", "0.07", "--run.out", "runs/x", "--print-config"])
        == 0
    )
    printed = yaml.safe_load(capsys.readouterr().out)
    assert (
        printed["loss"]["tau"] == 0.07 and printed["origin"] == "paper" and printed["run"]["out"] == "runs/x"
    )
    # argparse rejects unknown config keys (one line, exit 2)
    assert main(["pretrain", "--preset", "demo", "--loss.nope", "1"]) == 2
    assert main(["pretrain", "--preset", "demo", "--loss.tau", "-1", "--print-config"]) == 2
    assert main(["pretrain", "--resume", str(tmp_path / "missing")]) == 2
    # a saved config is a starting point like a preset; overrides still apply
    saved = tmp_path / "saved.yaml"
    saved.write_text(yaml.safe_dump(printed))
    capsys.readouterr()
    assert main(["pretrain", "--config", str(saved), "--loss.num_pairs", "99", "--print-config"]) == 0
    again = yaml.safe_load(capsys.readouterr().out)
    assert again["loss"]["num_pairs"] == 99 and {k: v for k, v in again.items() if k != "loss"} == {
        k: v for k, v in printed.items() if k != "loss"
    }
    assert again["loss"]["tau"] == 0.07
    assert main(["pretrain", "--config", str(saved), "--resume", str(run_dir)]) == 2
    assert main(["pretrain", "--config", str(tmp_path / "missing.yaml"), "--print-config"]) == 2


def test_finetune_reads_the_export(run_dir, tmp_path):
    from ppkt.config import apply_overrides
    from ppkt.eval import finetune
    from ppkt.eval.presets import get_preset as get_finetune_preset

    out, card = export_backbone(run_dir, tmp_path / "bb.safetensors")
    cfg = apply_overrides(
        get_finetune_preset("demo-finetune"),
        {
            "model.backbone": card.spec.backbone,
            "model.width": str(card.spec.width),
            "model.voxel_size": str(card.spec.voxel_size),
            "model.input_features": card.spec.input_features,
        },
    )
    model = finetune.build_model(cfg)
    finetune.load_pretrained_backbone(model, out, cfg)
    weights, _ = load_weights(out)
    for key, value in model.backbone.state_dict().items():
        assert torch.equal(value, weights[key])


def test_demo_presets_of_pretraining_and_finetuning_agree():
    from ppkt.eval.presets import get_preset as get_finetune_preset

    pre, fine = get_preset("demo"), get_finetune_preset("demo-finetune")
    assert pre.model.spec == fine.model.spec
