"""ResNet weights: torchvision keys, MoCo v2 / DINO / prefixed checkpoints, strict errors."""

import logging

import pytest
import torch

from ppkt.teachers import build_teacher
from ppkt.teachers.resnet import ResNet, resnet_backbone_state
from ppkt.utils.weights import StateDictMismatch, save_weights


def _torchvision_state(depth: int) -> dict[str, torch.Tensor]:
    """A torchvision-style classifier state dict (with the 1000-class fc), random values."""
    net = ResNet(depth, num_classes=1000)
    for value in net.state_dict().values():
        if value.is_floating_point():
            value.normal_()
    return net.state_dict()


@pytest.mark.parametrize("depth,count", [(18, 122), (50, 320)])
def test_key_layout_is_torchvision(depth, count):
    # torchvision's resnet18/resnet50 state dicts have 122/320 entries with these names.
    keys = list(ResNet(depth, num_classes=1000).state_dict())
    assert len(keys) == count
    assert keys[:6] == ["conv1.weight", "bn1.weight", "bn1.bias", "bn1.running_mean", "bn1.running_var",
                        "bn1.num_batches_tracked"]  # fmt: skip
    assert "layer2.0.downsample.0.weight" in keys and "layer4.1.bn2.running_var" in keys
    assert ("layer1.0.conv3.weight" in keys) == (depth == 50)
    assert keys[-2:] == ["fc.weight", "fc.bias"]


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_torchvision_checkpoint_loads_with_its_classifier(tmp_path, suffix):
    state = _torchvision_state(18)
    path = tmp_path / f"resnet18{suffix}"
    if suffix == ".pth":
        torch.save(state, path)
    else:
        save_weights(state, path)
    teacher = build_teacher("resnet18", weights=path)
    assert torch.equal(teacher.net.layer3[1].conv2.weight, state["layer3.1.conv2.weight"])
    assert teacher.logits(torch.rand(1, 3, 64, 64)).shape == (1, 1000)
    assert teacher.weights_source == str(path)


def test_renamed_prefixed_dicts_load(tmp_path):
    state = _torchvision_state(18)
    for prefix in ("module.", "model.", "backbone."):
        path = tmp_path / f"{prefix}pth"
        torch.save({prefix + k: v for k, v in state.items()}, path)
        teacher = build_teacher("resnet18", weights=path)
        assert torch.equal(teacher.net.conv1.weight, state["conv1.weight"])


def test_moco_v2_checkpoint_drops_mlp_head_and_key_encoder(tmp_path, caplog):
    backbone = {k: v for k, v in _torchvision_state(18).items() if not k.startswith("fc.")}
    inner = {f"module.encoder_q.{k}": v for k, v in backbone.items()}
    inner |= {f"module.encoder_k.{k}": v + 1 for k, v in backbone.items() if v.is_floating_point()}
    inner |= {
        "module.encoder_q.fc.0.weight": torch.randn(512, 512),
        "module.encoder_q.fc.0.bias": torch.randn(512),
        "module.encoder_q.fc.2.weight": torch.randn(128, 512),
        "module.encoder_q.fc.2.bias": torch.randn(128),
        "module.queue": torch.randn(128, 65536 // 64),
        "module.queue_ptr": torch.zeros(1, dtype=torch.long),
    }
    path = tmp_path / "moco_v2_800ep_pretrain.pth.tar"
    torch.save({"epoch": 800, "arch": "resnet18", "state_dict": inner}, path)
    with caplog.at_level(logging.INFO, logger="ppkt.teachers.resnet"):
        teacher = build_teacher("resnet18", weights=path)
    assert torch.equal(teacher.net.layer2[0].downsample[0].weight, backbone["layer2.0.downsample.0.weight"])
    assert teacher.net.fc is None  # a 128-d MLP head is not a classifier
    assert "module.encoder_q.fc.* (4)" in caplog.text and "module.queue* (2)" in caplog.text
    assert "module.encoder_k.* (" in caplog.text
    converted = resnet_backbone_state(torch.load(path, weights_only=True))
    assert converted.container == "state_dict"
    assert "module.encoder_k.conv1.weight" in converted.dropped


def test_dino_checkpoint_uses_the_teacher_backbone(tmp_path):
    backbone = {k: v for k, v in _torchvision_state(18).items() if not k.startswith("fc.")}
    head = {
        "head.mlp.0.weight": torch.randn(8, 512),
        "head.last_layer.weight_g": torch.randn(65536 // 256, 1),
    }
    checkpoint = {
        "student": {f"module.backbone.{k}": v * 0 for k, v in backbone.items()}
        | {f"module.{k}": v for k, v in head.items()},
        "teacher": {f"backbone.{k}": v for k, v in backbone.items()} | head,
        "epoch": 100,
    }
    path = tmp_path / "dino_resnet50_pretrain_full_checkpoint.pth"
    torch.save(checkpoint, path)
    teacher = build_teacher("resnet18", weights=path)
    assert torch.equal(teacher.net.bn1.running_var, backbone["bn1.running_var"])  # teacher, not student
    student_only = tmp_path / "student.pth"
    torch.save(checkpoint["student"], student_only)
    converted = resnet_backbone_state(checkpoint["student"])
    assert set(converted.state) == set(backbone)
    assert converted.dropped == ["module.head.last_layer.weight_g", "module.head.mlp.0.weight"]


def test_missing_backbone_key_is_an_error_that_names_it(tmp_path):
    state = _torchvision_state(18)
    del state["layer3.0.bn1.running_mean"]
    path = tmp_path / "broken.pth"
    torch.save(state, path)
    with pytest.raises(StateDictMismatch, match=r"layer3\.0\.bn1\.running_mean") as info:
        build_teacher("resnet18", weights=path)
    assert str(path) in str(info.value)


def test_unexpected_backbone_key_and_wrong_depth_are_errors(tmp_path):
    state = _torchvision_state(18)
    state["layer5.0.conv1.weight"] = torch.zeros(1)
    path = tmp_path / "extra.pth"
    torch.save(state, path)
    with pytest.raises(StateDictMismatch, match=r"layer5\.0\.conv1\.weight"):
        build_teacher("resnet18", weights=path)
    good = tmp_path / "r18.pth"
    torch.save(_torchvision_state(18), good)
    with pytest.raises(StateDictMismatch, match="missing keys"):
        build_teacher("resnet34", weights=good)


def test_no_weights_is_an_error_not_a_download():
    with pytest.raises(ValueError, match="random"):
        build_teacher("resnet50")


def test_paper_teacher_layer4_of_resnet50_with_random_weights():
    teacher = build_teacher("resnet50", weights="random")
    assert (teacher.stage, teacher.out_channels, teacher.stride) == ("layer4", 2048, 32)
    assert teacher.normalization.mean == (0.485, 0.456, 0.406)
