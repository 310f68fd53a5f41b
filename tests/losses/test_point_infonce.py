import math
import os
import socket

import pytest
import torch
import torch.multiprocessing as mp

from ppkt.losses import PointInfoNCE


def naive_nce(points: torch.Tensor, pixels: torch.Tensor, tau: float) -> torch.Tensor:
    """PPKT eq. 1 written out: -1/N sum_i log(exp(s_ii/t) / sum_j exp(s_ij/t)), s = cosine similarity."""
    n = points.shape[0]
    total = 0.0
    for i in range(n):
        fi = points[i] / points[i].norm()
        denom = 0.0
        for j in range(n):
            gj = pixels[j] / pixels[j].norm()
            denom = denom + math.exp(float(fi @ gj) / tau)
        gi = pixels[i] / pixels[i].norm()
        total += -math.log(math.exp(float(fi @ gi) / tau) / denom)
    return torch.tensor(total / n, dtype=torch.float64)


def test_matches_naive_reference_all_pairs():
    gen = torch.Generator().manual_seed(0)
    points = torch.randn(37, 8, generator=gen, dtype=torch.float64)
    pixels = points + 0.5 * torch.randn(37, 8, generator=gen, dtype=torch.float64)
    loss = PointInfoNCE(tau=0.3)(points, pixels)
    torch.testing.assert_close(loss, naive_nce(points, pixels, 0.3), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("n,tau", [(4, 0.04), (16, 0.07), (32, 1.0)])
def test_identical_orthogonal_embeddings_analytic(n, tau):
    emb = torch.eye(n, dtype=torch.float64) * 3.0  # scale must not matter: cosine similarity
    loss = PointInfoNCE(tau=tau)(emb, emb.clone())
    expected = math.log(1 + (n - 1) * math.exp(-1 / tau))
    assert loss.item() == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_equal_embeddings_give_log_n():
    n = 64
    emb = torch.ones(n, 5)
    loss = PointInfoNCE(tau=0.04)(emb, emb)
    assert loss.item() == pytest.approx(math.log(n), rel=1e-5)


def test_random_embeddings_near_log_n_at_high_temperature():
    n = 512
    loss = PointInfoNCE(tau=10.0)(torch.randn(n, 32), torch.randn(n, 32))
    assert loss.item() == pytest.approx(math.log(n), rel=1e-2)


def test_gradients_finite_including_zero_vectors():
    points = torch.randn(20, 8, requires_grad=True)
    pixels = torch.randn(20, 8)
    pixels[3] = 0.0
    with torch.no_grad():
        points[5] = 0.0
    loss = PointInfoNCE(tau=0.04)(points, pixels.requires_grad_())
    loss.backward()
    assert torch.isfinite(loss)
    assert torch.isfinite(points.grad).all() and torch.isfinite(pixels.grad).all()
    assert points.grad.abs().sum() > 0


def test_gradcheck_double():
    points = torch.randn(6, 3, dtype=torch.float64, requires_grad=True)
    pixels = torch.randn(6, 3, dtype=torch.float64, requires_grad=True)
    loss_fn = PointInfoNCE(tau=0.2)
    assert torch.autograd.gradcheck(lambda a, b: loss_fn(a, b), (points, pixels))


@pytest.mark.parametrize("count", [0, 1])
def test_fewer_than_two_pairs_give_zero_with_grad(count):
    points = torch.randn(count, 4, requires_grad=True)
    pixels = torch.randn(count, 4, requires_grad=True)
    for group in (None, torch.zeros(count, dtype=torch.long)):
        loss = PointInfoNCE()(points, pixels, group=group)
        assert loss.item() == 0.0
        assert loss.grad_fn is not None
        loss.backward()


def test_per_frame_vs_per_batch_semantics():
    # Two frames with the same n orthogonal embeddings: within a frame the only positive is the
    # own pixel; across the batch each point also matches its twin in the other frame.
    n, tau = 8, 0.1
    emb = torch.eye(n, dtype=torch.float64)
    points = torch.cat([emb, emb])
    group = torch.tensor([0] * n + [1] * n)
    per_frame = PointInfoNCE(tau=tau)(points, points.clone(), group)
    per_batch = PointInfoNCE(tau=tau)(points, points.clone())
    e = math.exp(-1 / tau)
    assert per_frame.item() == pytest.approx(math.log(1 + (n - 1) * e), rel=1e-9)
    assert per_batch.item() == pytest.approx(math.log(2 + (2 * n - 2) * e), rel=1e-9)


def test_per_frame_is_mean_over_frames_and_skips_single_pair_frames():
    gen = torch.Generator().manual_seed(1)
    points = torch.randn(13, 4, generator=gen, dtype=torch.float64)
    pixels = torch.randn(13, 4, generator=gen, dtype=torch.float64)
    group = torch.tensor([2] * 5 + [0] * 7 + [9])  # frame 9 has one pair: no negatives, left out
    loss = PointInfoNCE(tau=0.5)(points, pixels, group)
    expected = (naive_nce(points[:5], pixels[:5], 0.5) + naive_nce(points[5:12], pixels[5:12], 0.5)) / 2
    torch.testing.assert_close(loss, expected, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"tau": 0.0},
        {"tau": -1.0},
        {"tau": float("nan")},
        {"tau": True},
    ],
)
def test_bad_arguments_raise(kwargs):
    with pytest.raises(ValueError, match="PointInfoNCE"):
        PointInfoNCE(**kwargs)


def test_bad_shapes_raise():
    loss_fn = PointInfoNCE()
    with pytest.raises(ValueError, match="same shape"):
        loss_fn(torch.randn(4, 3), torch.randn(4, 2))
    with pytest.raises(ValueError, match="group"):
        loss_fn(torch.randn(4, 3), torch.randn(4, 3), group=torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="without group"):
        PointInfoNCE(gather_distributed=True)(
            torch.randn(4, 3), torch.randn(4, 3), torch.zeros(4, dtype=torch.long)
        )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _gather_worker(rank: int, world: int, port: int, queue) -> None:
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        gen = torch.Generator().manual_seed(0)
        all_points = torch.randn(2, 5, 4, generator=gen, dtype=torch.float64)
        all_pixels = torch.randn(2, 5, 4, generator=gen, dtype=torch.float64)
        pixels = all_pixels[rank].clone().requires_grad_()
        loss = PointInfoNCE(tau=0.5, gather_distributed=True)(all_points[rank], pixels)
        loss.backward()
        # Reference: this rank's points against everyone's pixels, own pixel as target.
        ref_pixels = all_pixels.reshape(10, 4).clone().requires_grad_()
        pts = torch.nn.functional.normalize(all_points[rank], dim=1)
        logits = pts @ torch.nn.functional.normalize(ref_pixels, dim=1).t() / 0.5
        ref = torch.nn.functional.cross_entropy(logits, torch.arange(5) + 5 * rank)
        ref.backward()
        local_grad = ref_pixels.grad[5 * rank : 5 * rank + 5]
        queue.put((rank, loss.item(), ref.item(), torch.allclose(pixels.grad, local_grad)))
    finally:
        dist.destroy_process_group()


@pytest.mark.distributed
def test_gather_distributed_two_ranks():
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    port = _free_port()
    procs = [ctx.Process(target=_gather_worker, args=(r, 2, port, queue)) for r in range(2)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    for _rank, loss, ref, grads_match in results:
        assert loss == pytest.approx(ref, rel=1e-12)
        assert grads_match
