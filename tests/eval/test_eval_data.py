import numpy as np
import pytest
import torch
from eval_rooms import make_room

from ppkt.augment.points import SceneAugmentation
from ppkt.data.types import IGNORE_LABEL, LabeledScene
from ppkt.eval.data import SegmentationDataset, collate_scenes, voxel_majority_labels


def test_majority_labels_match_naive_vote():
    rng = np.random.default_rng(0)
    p2v = torch.from_numpy(rng.integers(0, 30, 500))
    labels = torch.from_numpy(rng.integers(-1, 4, 500))
    got = voxel_majority_labels(p2v, labels, 32, 4)
    for v in range(32):
        votes = [int(l) for l, pv in zip(labels.tolist(), p2v.tolist(), strict=True) if pv == v and l != -1]
        if not votes:
            assert got[v] == IGNORE_LABEL
        else:
            counts = np.bincount(votes, minlength=4)
            assert got[v] == int(np.argmax(counts))  # argmax: first maximum = lowest id on ties


def test_majority_keeps_a_lone_labelled_point():
    # a voxel of 3 points where only the last (not the representative) is labelled
    got = voxel_majority_labels(torch.tensor([0, 0, 0]), torch.tensor([-1, -1, 2]), 1, 3)
    assert got.tolist() == [2]


def test_batch_maps_every_point_to_its_own_scene_voxel(rooms_source):
    ds = SegmentationDataset(
        rooms_source, rooms_source.scene_ids("train"), voxel_size=0.1, input_features="rgb", num_classes=4
    )
    samples = [ds[0], ds[1], ds[2]]
    batch = ds.collate(samples)
    off = batch.sparse.point_offsets
    assert off.tolist() == [0] + np.cumsum([len(s.points) for s in samples]).tolist()
    coords = batch.sparse.tensor.coords
    for b, s in enumerate(samples):
        rows = batch.sparse.point_to_voxel[off[b] : off[b + 1]]
        assert (coords[rows, 0] == b).all()
        np.testing.assert_array_equal(coords[rows, 1:].numpy(), torch.floor(s.points / 0.1).long().numpy())
    assert torch.equal(batch.point_labels, torch.cat([s.labels for s in samples]))
    # every labelled point's voxel has a label, and it is a label present in that voxel
    labelled = batch.point_labels != IGNORE_LABEL
    assert (batch.voxel_labels[batch.sparse.point_to_voxel[labelled]] != IGNORE_LABEL).all()
    assert batch.sparse.tensor.feats.shape == (coords.shape[0], 3)


def test_augmentation_is_a_scaled_isometry_and_reproducible():
    scene = make_room("a", 0)
    aug = SceneAugmentation(jitter_std=0.0)
    out = aug(scene, np.random.default_rng(5))
    i, j = np.random.default_rng(1).integers(0, scene.num_points, (2, 200))
    d_in = np.linalg.norm(scene.points[i] - scene.points[j], axis=1)
    d_out = np.linalg.norm(out.points[i] - out.points[j], axis=1)
    ratio = d_out[d_in > 1e-3] / d_in[d_in > 1e-3]
    assert np.allclose(ratio, ratio[0], rtol=1e-4) and 0.9 <= ratio[0] <= 1.1
    np.testing.assert_allclose(out.points[:, 2], scene.points[:, 2] * ratio[0], rtol=1e-4, atol=1e-5)
    assert out.labels is scene.labels
    again = aug(scene, np.random.default_rng(5))
    np.testing.assert_array_equal(out.points, again.points)


def test_crop_keeps_the_nearest_points_with_their_labels():
    scene = make_room("a", 0)
    out = SceneAugmentation(max_points=300, rotate_up=0, flip=0, scale_min=1, scale_max=1, jitter_std=0)(
        scene, np.random.default_rng(0)
    )
    assert out.num_points == 300
    index = {tuple(p): k for k, p in enumerate(scene.points.tolist())}
    kept = np.array([index[tuple(p)] for p in out.points.tolist()])
    np.testing.assert_array_equal(out.labels, scene.labels[kept])
    np.testing.assert_array_equal(out.colors, scene.colors[kept])


def test_crop_is_centred_on_a_labelled_point():
    scene = make_room("a", 0)
    labels = np.full_like(scene.labels, IGNORE_LABEL)
    labels[7] = scene.labels[7] if scene.labels[7] != IGNORE_LABEL else 1
    sparse = LabeledScene(scene.points, scene.colors, labels, scene.scene_id, scene.class_names)
    aug = SceneAugmentation(max_points=50, rotate_up=0, flip=0, scale_min=1, scale_max=1, jitter_std=0)
    for seed in range(5):  # the only labelled point is in every crop
        out = aug(sparse, np.random.default_rng(seed))
        assert out.num_points == 50 and (out.labels != IGNORE_LABEL).sum() == 1


def test_dataset_augments_training_only_and_checks_labels(rooms_source):
    ids = rooms_source.scene_ids("train")
    plain = SegmentationDataset(rooms_source, ids, voxel_size=0.1, input_features="rgb", num_classes=4)
    aug = SegmentationDataset(
        rooms_source,
        ids,
        voxel_size=0.1,
        input_features="rgb",
        num_classes=4,
        augmentation=SceneAugmentation(),
    )
    assert torch.equal(plain[0].points, plain[0].points)  # no augmentation: deterministic
    assert not torch.equal(aug[0].points, plain[0].points)
    first = aug[0].points
    aug.set_epoch(1)
    assert not torch.equal(aug[0].points, first)
    aug.set_epoch(0)
    assert torch.equal(aug[0].points, first)
    with pytest.raises(ValueError, match="model has 2 classes"):
        SegmentationDataset(rooms_source, ids, voxel_size=0.1, input_features="rgb", num_classes=2)[0]


def test_collate_of_one_scene(rooms_source):
    ids = ["scene0000_00"]
    ds = SegmentationDataset(rooms_source, ids, voxel_size=0.2, input_features="xyzrgb", num_classes=4)
    batch = collate_scenes([ds[0]], 0.2, 4)
    assert batch.sparse.tensor.feats.shape[1] == 6 and batch.scene_ids == ["scene0000_00"]


def test_scene_lists_folder_defines_splits_outside_the_dataset(tmp_path):
    from eval_rooms import write_scannet_layout

    from ppkt.eval.config import EvalDataConfig
    from ppkt.eval.finetune import build_source

    root = write_scannet_layout(tmp_path / "scannet", train=3, val=1)
    lists = tmp_path / "lists"
    lists.mkdir()
    (lists / "scannetv2_fit.txt").write_text("scene0000_00\nscene0002_00\n")
    source = build_source(EvalDataConfig(kind="scannet", root=root, scene_lists=lists))
    assert source.scene_ids("fit") == ["scene0000_00", "scene0002_00"]
    assert len(source.read("scene0002_00").points) > 0
    with pytest.raises(FileNotFoundError, match=r"lists/scannetv2_train\.txt"):
        source.scene_ids("train")  # the dataset's own lists are not consulted
    # without the option, the dataset root holds the lists
    default = build_source(EvalDataConfig(kind="scannet", root=root))
    assert default.scene_ids("train") == ["scene0000_00", "scene0001_00", "scene0002_00"]
    with pytest.raises(FileNotFoundError, match="scene-list folder"):
        build_source(EvalDataConfig(kind="scannet", root=root, scene_lists=tmp_path / "missing"))
    with pytest.raises(ValueError, match="scene_lists"):
        build_source(EvalDataConfig(kind="semantickitti", root=root, scene_lists=lists))
