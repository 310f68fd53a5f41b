import pytest
import torch

from ppkt.sparse import sparse_batch_from_points


def test_batch_layout_and_mean_features():
    torch.manual_seed(0)
    points = [torch.rand(200, 3) * 2 - 1, torch.rand(80, 3) + 5.0]
    feats = [torch.randn(200, 4), torch.randn(80, 4)]
    voxel = 0.25
    batch = sparse_batch_from_points(points, feats, voxel)
    t = batch.tensor
    assert batch.point_offsets.tolist() == [0, 200, 280]
    all_points = torch.cat(points)
    sample = torch.repeat_interleave(torch.arange(2), torch.tensor([200, 80]))
    expected = torch.cat([sample[:, None], torch.floor(all_points / voxel).long()], 1)
    assert torch.equal(t.coords[batch.point_to_voxel], expected)
    # Voxels sorted by batch: voxel_offsets split the rows by sample.
    vo = batch.voxel_offsets.tolist()
    assert vo[0] == 0 and vo[-1] == t.num_sites
    assert (t.coords[vo[0] : vo[1], 0] == 0).all() and (t.coords[vo[1] :, 0] == 1).all()
    all_feats = torch.cat(feats)
    for v in (0, t.num_sites // 2, t.num_sites - 1):
        members = batch.point_to_voxel == v
        torch.testing.assert_close(t.feats[v], all_feats[members].mean(0))


def test_batch_rejects_mismatched_inputs():
    with pytest.raises(ValueError, match="feats of sample 0"):
        sparse_batch_from_points([torch.rand(5, 3)], [torch.rand(4, 2)], 0.1)
    with pytest.raises(ValueError, match="as many feature tensors"):
        sparse_batch_from_points([torch.rand(5, 3)], [], 0.1)


def test_batch_with_an_empty_sample():
    batch = sparse_batch_from_points(
        [torch.rand(10, 3), torch.zeros(0, 3)], [torch.rand(10, 1), torch.zeros(0, 1)], 0.5
    )
    assert batch.point_offsets.tolist() == [0, 10, 10]
    assert batch.voxel_offsets[-1] == batch.voxel_offsets[-2] == batch.tensor.num_sites
