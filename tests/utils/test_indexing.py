"""The CPU (numpy) paths of ppkt.utils.indexing give exactly what the torch path (other devices) gives."""

from __future__ import annotations

import pytest
import torch

from ppkt.utils.indexing import flat_nonzero, nonzero_rows_cols, stable_sort_ints


@pytest.mark.parametrize("shape", [(0,), (1,), (7,), (48, 64), (3, 5, 4)])
@pytest.mark.parametrize("density", [0.0, 0.3, 1.0])
def test_flat_nonzero_matches_torch(shape, density):
    g = torch.Generator().manual_seed(0)
    mask = torch.rand(shape, generator=g) < density
    got = flat_nonzero(mask)
    assert got.dtype == torch.long
    assert torch.equal(got, mask.reshape(-1).nonzero().squeeze(1))


def test_flat_nonzero_hand_case_and_bad_dtype():
    mask = torch.tensor([[False, True, False], [True, False, True]])
    assert flat_nonzero(mask).tolist() == [1, 3, 5]
    assert flat_nonzero(mask.t()).tolist() == [1, 2, 5]  # row-major over the view, not the storage
    with pytest.raises(TypeError, match="bool"):
        flat_nonzero(torch.ones(3))


@pytest.mark.parametrize("dtype", [torch.int32, torch.int64])
@pytest.mark.parametrize(
    "low,high,n",
    [
        (0, 5, 1000),
        (0, 2**20, 5000),
        (-50, 50, 300),
        (0, 2**40, 200),
        (2**61, 2**62, 50),
        (0, 3, 1),
        (0, 1, 0),
    ],
    ids=["many-ties", "wide", "negative", "big", "too-big-to-pack", "one", "empty"],
)
def test_stable_sort_matches_torch_stable_sort(dtype, low, high, n):
    if dtype == torch.int32 and high > 2**31:
        pytest.skip("does not fit int32")
    g = torch.Generator().manual_seed(1)
    key = torch.randint(low, high, (n,), generator=g, dtype=torch.int64).to(dtype)
    got_key, got_order = stable_sort_ints(key)
    ref_key, ref_order = torch.sort(key, stable=True)
    assert got_order.dtype == torch.long and got_key.dtype == key.dtype
    assert torch.equal(got_order, ref_order)  # ties in index order
    assert torch.equal(got_key, ref_key)


def test_stable_sort_hand_case_and_bad_input():
    key, order = stable_sort_ints(torch.tensor([3, 1, 3, 0, 1], dtype=torch.int32))
    assert key.tolist() == [0, 1, 1, 3, 3] and order.tolist() == [3, 1, 4, 0, 2]
    with pytest.raises(TypeError, match="integer"):
        stable_sort_ints(torch.tensor([0.5, 1.0]))
    with pytest.raises(TypeError, match="integer"):
        stable_sort_ints(torch.zeros(2, 2, dtype=torch.long))


@pytest.mark.parametrize("shape", [(0, 5), (4, 0), (1, 1), (30, 41)])
@pytest.mark.parametrize("transposed", [False, True], ids=["contiguous", "transposed-view"])
def test_nonzero_rows_cols_matches_torch(shape, transposed):
    g = torch.Generator().manual_seed(2)
    mask = torch.rand(shape[::-1] if transposed else shape, generator=g) < 0.4
    mask = mask.t() if transposed else mask
    flat, rows, cols = nonzero_rows_cols(mask)
    ij = torch.nonzero(mask)
    assert flat.dtype == rows.dtype == cols.dtype == torch.long
    assert torch.equal(rows, ij[:, 0]) and torch.equal(cols, ij[:, 1])
    assert torch.equal(flat, ij[:, 0] * mask.shape[1] + ij[:, 1])


def test_nonzero_rows_cols_rejects_bad_masks():
    with pytest.raises(TypeError, match="bool"):
        nonzero_rows_cols(torch.ones(2, 2))
    with pytest.raises(TypeError, match="bool"):
        nonzero_rows_cols(torch.ones(2, 2, 2, dtype=torch.bool))
