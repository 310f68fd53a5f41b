import math

import pytest
import torch
import torch.nn.functional as F

from ppkt.losses import SuperpixelInfoNCE, segment_mean


def naive_loss(points, pixels, segment, tau):
    labels = sorted(set(segment.tolist()))
    pooled_f, pooled_g = [], []
    for s in labels:
        rows = [k for k in range(len(segment)) if segment[k] == s]
        f = sum(F.normalize(points[k], dim=0) for k in rows) / len(rows)
        g = sum(F.normalize(pixels[k], dim=0) for k in rows) / len(rows)
        pooled_f.append(F.normalize(f, dim=0))
        pooled_g.append(F.normalize(g, dim=0))
    total = 0.0
    for i, f in enumerate(pooled_f):
        logits = [float(f @ g) / tau for g in pooled_g]
        total += -(logits[i] - math.log(sum(math.exp(x) for x in logits)))
    return total / len(labels)


def test_segment_mean_matches_loop():
    g = torch.Generator().manual_seed(1)
    values = torch.randn(50, 4, generator=g)
    segment = torch.randint(0, 30, (50,), generator=g) * 7 - 11  # sparse, negative labels too
    means, labels = segment_mean(values, segment)
    assert labels.tolist() == sorted(set(segment.tolist()))
    for mean, label in zip(means, labels.tolist(), strict=True):
        assert torch.allclose(mean, values[segment == label].mean(0), atol=1e-6)


def test_matches_naive_reference():
    g = torch.Generator().manual_seed(0)
    points, pixels = torch.randn(40, 6, generator=g), torch.randn(40, 6, generator=g)
    segment = torch.randint(0, 9, (40,), generator=g)
    value = SuperpixelInfoNCE(0.1)(points, pixels, segment).item()
    assert value == pytest.approx(naive_loss(points, pixels, segment, 0.1), abs=1e-5)


def test_hand_case():
    # Two superpixels of two pairs each; pooled point and pixel embeddings are e1 and e2, so the
    # logits are [[1, 0], [0, 1]] / tau and the loss is log(1 + exp(-1 / tau)).
    points = torch.tensor([[1.0, 0.2], [1.0, -0.2], [0.0, 2.0], [0.0, 5.0]])
    pixels = torch.tensor([[3.0, 0.0], [1.0, 0.0], [0.3, 1.0], [-0.3, 1.0]])
    segment = torch.tensor([4, 4, 9, 9])
    tau = 0.5
    expected = math.log(1 + math.exp(-1 / tau))
    assert SuperpixelInfoNCE(tau)(points, pixels, segment).item() == pytest.approx(expected, abs=1e-6)


def test_pooling_differs_from_pairwise_infonce():
    # Within a superpixel the pairs are not each other's negatives: swapping two members' pixels
    # changes PPKT's loss but not the pooled one.
    g = torch.Generator().manual_seed(3)
    points, pixels = torch.randn(6, 5, generator=g), torch.randn(6, 5, generator=g)
    segment = torch.tensor([0, 0, 1, 1, 2, 2])
    swapped = pixels[[1, 0, 2, 3, 4, 5]]
    loss = SuperpixelInfoNCE(0.07)
    assert loss(points, pixels, segment).item() == pytest.approx(
        loss(points, swapped, segment).item(), abs=1e-6
    )


def test_gradients_flow_to_both_sides():
    g = torch.Generator().manual_seed(2)
    points = torch.randn(12, 3, generator=g, requires_grad=True)
    pixels = torch.randn(12, 3, generator=g, requires_grad=True)
    SuperpixelInfoNCE()(points, pixels, torch.arange(12) // 3).backward()
    assert torch.isfinite(points.grad).all() and points.grad.abs().sum() > 0
    assert torch.isfinite(pixels.grad).all() and pixels.grad.abs().sum() > 0


def test_degenerate_inputs():
    loss = SuperpixelInfoNCE()
    points = torch.randn(5, 3, requires_grad=True)
    one = loss(points, torch.randn(5, 3), torch.zeros(5, dtype=torch.long))  # one segment: no negatives
    one.backward()
    assert one.item() == 0.0 and torch.count_nonzero(points.grad) == 0
    assert loss(torch.zeros(0, 3), torch.zeros(0, 3), torch.zeros(0, dtype=torch.long)).item() == 0.0
    with pytest.raises(ValueError, match="segment"):
        loss(torch.zeros(3, 4), torch.zeros(3, 4), torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match="tau"):
        SuperpixelInfoNCE(0.0)
