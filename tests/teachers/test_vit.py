"""The ViT adapter with tiny fake ViT-like modules (no hub, no timm needed)."""

import pytest
import torch
from torch import nn

from ppkt.teachers import TeacherUnavailable, ViTTeacher, build_teacher
from ppkt.teachers.vit import patch_tokens_to_map


class FakeTimmViT(nn.Module):
    """Patch embedding + prefix tokens, ``forward_features -> (B, prefix + h*w, C)`` like timm."""

    def __init__(self, patch: int, dim: int, prefix: int):
        super().__init__()
        self.patch_embed = nn.Conv2d(3, dim, patch, stride=patch)
        self.prefix = nn.Parameter(torch.randn(1, prefix, dim))

    def forward_features(self, x):
        tokens = self.patch_embed(x).flatten(2).transpose(1, 2)  # row-major patches
        return torch.cat([self.prefix.expand(x.shape[0], -1, -1), tokens], dim=1)


class FakeDinoV2(FakeTimmViT):
    def forward_features(self, x):
        tokens = super().forward_features(x)
        return {"x_norm_clstoken": tokens[:, 0], "x_norm_patchtokens": tokens[:, self.prefix.shape[1] :]}


@pytest.mark.parametrize("model_cls,prefix", [(FakeTimmViT, 5), (FakeDinoV2, 1)])
def test_patch_tokens_become_a_stride_p_map(model_cls, prefix):
    torch.manual_seed(0)
    model = model_cls(patch=14, dim=8, prefix=prefix)
    teacher = ViTTeacher("fake", model, patch_size=14, embed_dim=8, num_prefix_tokens=prefix)
    assert (teacher.stride, teacher.out_channels) == (14, 8)
    images = torch.rand(2, 3, 50, 70)  # 50 is not a multiple of 14: padded to 56
    out = teacher(images)
    assert out.shape == (2, 8, 4, 5) and teacher.feature_hw((50, 70)) == (4, 5)
    padded = torch.zeros(2, 3, 56, 70)
    padded[:, :, :50] = teacher.normalization.apply(images)
    torch.testing.assert_close(out, model.patch_embed(padded))  # cell (i, j) = patch (i, j)
    assert not any(p.requires_grad for p in teacher.parameters())


def test_token_count_mismatch_is_an_error():
    with pytest.raises(ValueError, match="patch tokens"):
        patch_tokens_to_map(torch.zeros(1, 1 + 11, 4), (3, 4), 1)


def test_missing_hub_cache_is_reported_not_downloaded(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    with pytest.raises(TeacherUnavailable, match="hub"):
        build_teacher("dinov2_vits14")


_FAKE_HUBCONF = """
import torch
from torch import nn


class _Fake(nn.Module):
    def __init__(self):
        super().__init__()
        self.patch_embed = nn.Conv2d(3, 384, 14, stride=14)

    def forward_features(self, x):
        tokens = self.patch_embed(x).flatten(2).transpose(1, 2)
        return {"x_norm_patchtokens": tokens}


def dinov2_vits14(pretrained=True):
    assert not pretrained, "ppkt must never ask the hub entry point to download"
    return _Fake()
"""


def test_dinov2_from_a_local_hub_cache(monkeypatch, tmp_path):
    # A stand-in for the cached facebookresearch/dinov2 repository and its checkpoint.
    repo = tmp_path / "facebookresearch_dinov2_main"
    repo.mkdir()
    (repo / "hubconf.py").write_text(_FAKE_HUBCONF)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    with pytest.raises(TeacherUnavailable, match="dinov2_vits14_pretrain.pth"):
        build_teacher("dinov2_vits14")
    state = {"patch_embed.weight": torch.randn(384, 3, 14, 14), "patch_embed.bias": torch.randn(384)}
    (tmp_path / "checkpoints").mkdir()
    torch.save(state, tmp_path / "checkpoints" / "dinov2_vits14_pretrain.pth")
    teacher = build_teacher("dinov2_vits14")
    assert torch.equal(teacher.model.patch_embed.weight, state["patch_embed.weight"])
    assert teacher(torch.rand(1, 3, 28, 42)).shape == (1, 384, 2, 3)
    assert teacher.identity.startswith("dinov2_vits14/tokens/")
