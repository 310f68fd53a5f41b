"""Pairs chosen before embedding: the sampler, and the same loss and gradients as embedding every pair."""

import copy

import pytest
import torch
import torch.nn.functional as F
from train_fixtures import make_frame

from ppkt.losses import PointInfoNCE
from ppkt.train.batch import Collator
from ppkt.train.dataset import PretrainDataset
from ppkt.train.model import build_model
from ppkt.train.pair_sampling import sample_pairs
from tiny_pretrain import tiny_config


def previous_loss(points, pixels, group, generator, num_pairs, tau, sampling):
    """The loss as it was before the sampling moved out: all pairs embedded, sampled inside."""

    def draw(count):
        if count <= num_pairs:
            return torch.arange(count)
        return torch.randperm(count, generator=generator)[:num_pairs]

    def nce(p, q):
        p, q = F.normalize(p, dim=1), F.normalize(q, dim=1)
        return F.cross_entropy(p @ q.t() / tau, torch.arange(p.shape[0]))

    if sampling == "batch":
        if points.shape[0] < 2:
            return (points.sum() + pixels.sum()) * 0.0
        idx = draw(points.shape[0])
        return nce(points[idx], pixels[idx])
    losses = []
    for frame in torch.unique(group).tolist():
        members = torch.nonzero(group == frame).squeeze(1)
        if members.numel() < 2:
            continue
        idx = members[draw(members.numel())]
        losses.append(nce(points[idx], pixels[idx]))
    return torch.stack(losses).mean()


def test_batch_sampling_is_a_seeded_permutation_prefix():
    frames = torch.zeros(50, dtype=torch.long)
    sel = sample_pairs(frames, 16, "batch", torch.Generator().manual_seed(3))
    expected = torch.randperm(50, generator=torch.Generator().manual_seed(3))[:16]
    assert torch.equal(sel.index, expected) and sel.group is None
    assert sel.index.unique().numel() == 16  # without replacement
    again = sample_pairs(frames, 16, "batch", torch.Generator().manual_seed(3))
    other = sample_pairs(frames, 16, "batch", torch.Generator().manual_seed(4))
    assert torch.equal(again.index, sel.index) and not torch.equal(other.index, sel.index)


def test_fewer_pairs_than_requested_takes_all_in_order():
    gen = torch.Generator().manual_seed(0)
    state = gen.get_state()
    sel = sample_pairs(torch.tensor([0, 0, 1]), 8, "batch", gen)
    assert sel.index.tolist() == [0, 1, 2]
    assert torch.equal(gen.get_state(), state)  # generator untouched
    assert len(sample_pairs(torch.zeros(0, dtype=torch.long), 8, "batch", gen)) == 0


def test_frame_sampling_per_frame_in_frame_order_and_drops_single_pair_frames():
    group = torch.tensor([1] * 20 + [0] * 20 + [7])  # frame 7 has one pair: no negatives
    sel = sample_pairs(group, 6, "frame", torch.Generator().manual_seed(5))
    ref = torch.Generator().manual_seed(5)
    i0 = torch.randperm(20, generator=ref)[:6] + 20
    i1 = torch.randperm(20, generator=ref)[:6]
    assert torch.equal(sel.index, torch.cat([i0, i1]))
    assert sel.group.tolist() == [0] * 6 + [1] * 6
    empty = sample_pairs(torch.tensor([3]), 6, "frame")
    assert len(empty) == 0 and empty.group.numel() == 0


@pytest.mark.parametrize("kwargs", [{"num_pairs": 1}, {"num_pairs": 2.5}, {"sampling": "scene"}])
def test_bad_arguments_raise(kwargs):
    args = {"num_pairs": 4, "sampling": "batch", **kwargs}
    with pytest.raises(ValueError, match="sample_pairs"):
        sample_pairs(torch.zeros(5, dtype=torch.long), args["num_pairs"], args["sampling"])


@pytest.mark.parametrize("sampling", ["batch", "frame"])
def test_sampling_first_gives_the_previous_loss_and_gradients(sampling):
    cfg = tiny_config("unused", **{"loss.num_pairs": "48", "loss.sampling": sampling})
    torch.manual_seed(0)
    model = build_model(cfg).train()
    frames = [make_frame(seed=i, name=f"{i:06d}") for i in range(2)]
    dataset = PretrainDataset(frames, cfg.data, cfg.augment, "rgb", seed=0)
    batch = Collator(cfg.model.voxel_size)([dataset[(0, 0)], dataset[(1, 0)]])
    assert batch.num_pairs > 4 * cfg.loss.num_pairs  # sampling really chooses

    before = copy.deepcopy(model)
    emb = before(batch)  # every pair embedded, the old path
    assert emb.points.shape[0] == batch.num_pairs
    gen = torch.Generator().manual_seed(11)
    old = previous_loss(emb.points, emb.pixels, emb.frame, gen, cfg.loss.num_pairs, cfg.loss.tau, sampling)
    old.backward()

    pairs = sample_pairs(batch.pair_frame, cfg.loss.num_pairs, sampling, torch.Generator().manual_seed(11))
    new_emb = model(batch, pairs.index)
    expected_rows = cfg.loss.num_pairs * (1 if sampling == "batch" else 2)
    assert new_emb.points.shape[0] == expected_rows
    new = PointInfoNCE(cfg.loss.tau)(new_emb.points, new_emb.pixels, pairs.group)
    new.backward()

    # The linear layers now see fewer rows: equal up to float rounding.
    torch.testing.assert_close(new, old, rtol=1e-6, atol=1e-6)
    grads_old = {n: p.grad for n, p in before.named_parameters() if p.requires_grad}
    grads_new = {n: p.grad for n, p in model.named_parameters() if p.requires_grad}
    assert grads_old.keys() == grads_new.keys()
    for name in grads_old:
        torch.testing.assert_close(grads_new[name], grads_old[name], rtol=1e-4, atol=1e-6, msg=name)
    assert any(g.abs().sum() > 0 for g in grads_new.values())
