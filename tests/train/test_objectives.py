"""Every pretraining objective runs end to end on tiny frames (a few steps, finite, changing)."""

from __future__ import annotations

import math

import pytest
import torch

from ppkt.train.batch import Collator
from ppkt.train.dataset import PretrainDataset
from ppkt.train.loop import pretrain
from ppkt.train.model import build_model
from ppkt.train.objectives import Objective
from tiny_pretrain import tiny_config


def _run(tmp_path, frames, **extra):
    cfg = tiny_config(
        tmp_path / "run", **{"optim.steps": "6", "optim.lr": "0.05", "optim.batch_size": "3", **extra}
    )
    return cfg, pretrain(cfg, frames=frames)


@pytest.mark.parametrize("name", ["infonce", "cosine", "superpixel-infonce"])
def test_objective_smoke_run(tmp_path, frames, name):
    extra = {"loss.name": name, "loss.superpixels": "12", "loss.superpixel_pairs": "8"}
    cfg, result = _run(tmp_path, frames, **extra)
    losses = list(result.losses.values())
    assert len(losses) == 6 and all(math.isfinite(v) for v in losses)
    assert max(losses) - min(losses) > 1e-4  # it trains
    if name == "cosine":
        assert all(0.0 <= v <= 2.0 for v in losses)


def test_cosine_keeps_the_target_frozen(tmp_path, frames):
    cfg = tiny_config(tmp_path / "run", **{"loss.name": "cosine", "loss.head": "mlp", "optim.steps": "2"})
    model = build_model(cfg)
    assert model.head.out_channels == model.teacher.out_channels
    assert not any(p.requires_grad for p in model.upl.parameters())
    before = {k: v.clone() for k, v in model.upl.state_dict().items()}
    result = pretrain(cfg, frames=frames)
    after = result.model.upl.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    # The pixel side is the teacher's own feature, unit-normalised.
    dataset = PretrainDataset(frames, cfg.data, cfg.augment, cfg.model.input_features, seed=0)
    batch = Collator(cfg.model.voxel_size)([dataset[(0, 0)]])
    feats = result.model.teacher(batch.images)
    emb = result.model.pixel_embeddings(batch, feats)
    i = int(torch.argmin((batch.pair_uv - batch.pair_uv.round()).abs().sum(1)))  # a pixel centre
    u, v = batch.pair_uv[i].round().long().tolist()
    stride = result.model.teacher.stride
    full = torch.nn.functional.interpolate(
        feats, size=(feats.shape[2] * stride, feats.shape[3] * stride), mode="bilinear", align_corners=False
    )[0, :, v, u]
    assert torch.allclose(emb[i], full / full.norm(), atol=1e-5)


def test_superpixel_selection_groups_by_superpixel(tmp_path, frames):
    cfg = tiny_config(
        tmp_path / "run",
        **{"loss.name": "superpixel-infonce", "loss.superpixels": "6", "loss.superpixel_pairs": "4"},
    )
    from ppkt.train.objectives import batch_segments, superpixel_source

    dataset = PretrainDataset(
        frames, cfg.data, cfg.augment, cfg.model.input_features, seed=0, superpixels=superpixel_source(cfg)
    )
    batch = Collator(cfg.model.voxel_size)([dataset[(0, 0)], dataset[(1, 0)]])
    segments = batch_segments(batch)
    objective = Objective(cfg.loss)
    selection = objective.select(batch, torch.Generator().manual_seed(0))
    assert torch.equal(selection.group, segments[selection.index])
    counts = torch.unique(selection.group, return_counts=True)[1]
    assert counts.max() <= 4 and counts.min() >= 2
    # superpixels of different images never share a label
    for label in torch.unique(segments).tolist():
        assert torch.unique(batch.pair_image[segments == label]).numel() == 1


def test_unknown_or_mismatched_objective_settings():
    from ppkt.config import apply_overrides
    from ppkt.train.config import validate

    cfg = tiny_config("unused", **{"loss.name": "cosine", "loss.gather_distributed": "true"})
    with pytest.raises(ValueError, match="gather_distributed"):
        validate(cfg)
    with pytest.raises(ValueError):
        apply_overrides(cfg, {"loss.name": "mse"})


def test_published_recipe_presets():
    from ppkt.train.presets import get_preset

    slidr = get_preset("slidr")
    assert (slidr.loss.name, slidr.loss.superpixels, slidr.loss.tau) == ("superpixel-infonce", 150, 0.07)
    assert slidr.data.kind == "nuscenes" and slidr.model == get_preset("slidr-ppkt").model
    scalr = get_preset("scalr-cosine")
    assert scalr.loss.name == "cosine" and scalr.data == get_preset("slidr-ppkt").data
    openscene = get_preset("openscene-distill")
    assert (openscene.loss.name, openscene.data.pairs, openscene.model.voxel_size) == (
        "cosine",
        "scene",
        0.02,
    )
    assert (openscene.optim.optimizer, openscene.optim.lr) == ("adamw", 1e-4)
    assert {p.origin for p in (slidr, scalr, openscene)} == {"slidr", "scalr-cosine", "openscene-distill"}


def test_sample_per_segment_against_a_loop():
    from ppkt.train.objectives import sample_per_segment

    g = torch.Generator().manual_seed(0)
    segment = torch.randint(0, 40, (500,), generator=g) * 3
    segment[0] = 1000  # a segment of one pair: no negatives, left out
    chosen = sample_per_segment(segment, 5, torch.Generator().manual_seed(1))
    assert torch.equal(segment[chosen.index], chosen.group)
    assert chosen.index.unique().numel() == chosen.index.numel()  # without replacement
    assert chosen.group.tolist() == sorted(chosen.group.tolist())
    for label in segment.unique().tolist():
        size = int((segment == label).sum())
        expected = 0 if size < 2 else min(size, 5)
        assert int((chosen.group == label).sum()) == expected
    again = sample_per_segment(segment, 5, torch.Generator().manual_seed(1))
    assert torch.equal(again.index, chosen.index)
    other = sample_per_segment(segment, 5, torch.Generator().manual_seed(2))
    assert not torch.equal(other.index, chosen.index)
    assert len(sample_per_segment(torch.zeros(0, dtype=torch.long), 5, None)) == 0
