import math

import numpy as np
import pytest
import torch
from detection_rooms import CLASS_NAMES, make_detection_room

from ppkt.eval.config import ModelConfig
from ppkt.eval.detection.config import DetectionConfig, DetectionDataConfig, VoteNetConfig
from ppkt.eval.detection.criterion import votenet_loss
from ppkt.eval.detection.data import DetectionAugmentation, DetectionDataset, InMemoryDetectionSource
from ppkt.eval.detection.model import (
    bin_to_heading,
    build_detection_model,
    decode_boxes,
    heading_to_bin,
    mean_box_sizes,
    predict_boxes,
)

TINY_HEAD = VoteNetConfig(num_seeds=64, num_proposals=16, hidden=32, proposal_hidden=32, num_heading_bins=4)


def tiny_config(**head):
    from dataclasses import replace

    return DetectionConfig(
        data=DetectionDataConfig(),
        model=ModelConfig(backbone="res16unet14", width=0.25, voxel_size=0.1),
        head=replace(TINY_HEAD, **head),
    )


@pytest.mark.parametrize("bins", [1, 4, 12])
def test_heading_bins_round_trip(bins):
    angles = torch.linspace(-math.pi + 1e-4, math.pi, 97, dtype=torch.float64)
    k, r = heading_to_bin(angles, bins)
    assert (k >= 0).all() and (k < bins).all()
    assert (r >= -math.pi / bins - 1e-9).all() and (r < math.pi / bins + 1e-9).all()
    back = bin_to_heading(k, r, bins)
    assert torch.allclose(torch.cos(back - angles), torch.ones_like(angles))
    if bins == 4:
        assert heading_to_bin(torch.tensor([0.0, math.pi / 2, 0.1]), 4)[0].tolist() == [0, 1, 0]


def test_mean_box_sizes():
    rooms = [make_detection_room("a", 0), make_detection_room("b", 1)]
    sizes = mean_box_sizes([r.boxes for r in rooms], 3)
    all_boxes = np.concatenate([r.boxes.sizes for r in rooms])
    labels = np.concatenate([r.boxes.labels for r in rooms])
    assert np.allclose(sizes[0], all_boxes[labels == 0].mean(0))
    assert np.allclose(sizes[2], all_boxes.mean(0))  # class 2 has no box: the overall mean
    assert np.allclose(mean_box_sizes([], 2), 1.0)


def test_augmentation_moves_boxes_with_points():
    scene = make_detection_room("a", 3)
    for seed in range(4):
        aug = DetectionAugmentation(flip=0.5, rotate_up=math.pi, scale_min=0.8, scale_max=1.2)
        out = aug(scene, np.random.default_rng(seed))
        inside = out.boxes.contains(out.points, margin=1e-4)
        for k in range(len(out.boxes)):
            assert inside[k, out.instance_ids == k].all()
    aligned = DetectionAugmentation(flip=0.0, rotate_up=math.pi, axis_aligned=True)(
        scene, np.random.default_rng(0)
    )
    assert (aligned.boxes.headings == 0).all()
    inside = aligned.boxes.contains(aligned.points, margin=1e-4)
    assert all(inside[k, aligned.instance_ids == k].all() for k in range(3))


def test_forward_loss_backward_and_predictions():
    torch.manual_seed(0)
    rooms = [make_detection_room(f"s{i}", i) for i in range(2)]
    source = InMemoryDetectionSource({"train": rooms}, CLASS_NAMES)
    cfg = tiny_config()
    ds = DetectionDataset(source, ["s0", "s1"], voxel_size=cfg.model.voxel_size, input_features="rgb")
    model = build_detection_model(cfg, 2, mean_box_sizes([r.boxes for r in rooms], 2))
    batch = ds.collate([ds[0], ds[1]])
    out = model(batch)
    assert out.votes.shape == (2, 64, 3) and out.centers.shape == (2, 16, 3)
    assert out.size_residuals.shape == (2, 16, 2, 3) and out.heading_logits.shape == (2, 16, 4)
    # Seeds of a scene are voxels of that scene.
    offsets = batch.sparse.voxel_offsets
    assert ((out.seed_voxels[0] >= offsets[0]) & (out.seed_voxels[0] < offsets[1])).all()
    losses = votenet_loss(out, batch, model.head.mean_sizes, cfg.head)
    assert torch.isfinite(losses.total) and losses.vote > 0
    losses.total.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.backbone.parameters())
    boxes = decode_boxes(out, model.head.mean_sizes, 4)
    assert boxes.shape == (2, 16, 7) and (boxes[..., 3:6] > 0).all()
    model.eval()
    preds = predict_boxes(model(batch), model.head.mean_sizes, cfg.head, CLASS_NAMES)
    assert len(preds) == 2 and len(preds[0].boxes) % 2 == 0  # one box per class per kept proposal
    assert model.head.mean_sizes.shape == (2, 3) and "head.mean_sizes" in model.state_dict()


def test_linear_mode_is_refused():
    from dataclasses import replace

    cfg = tiny_config()
    with pytest.raises(ValueError, match="finetune"):
        build_detection_model(replace(cfg, model=replace(cfg.model, mode="linear")), 2, np.ones((2, 3)))


def test_check_detection_scenes_names_boxes_without_points():
    from ppkt.data.boxes import Boxes3D, DetectionScene
    from ppkt.eval.detection.data import check_detection_scenes

    room = make_detection_room("s0", 0)
    b = room.boxes
    ghost = Boxes3D(
        np.r_[b.centers, [[9.0, 9.0, 9.0]]], np.r_[b.sizes, [[1.0, 1.0, 1.0]]], np.r_[b.headings, [0.0]],
        np.r_[b.labels, [1]], CLASS_NAMES,
    )  # fmt: skip
    bad = DetectionScene(room.points, room.colors, ghost, room.instance_ids, "s1")
    source = InMemoryDetectionSource({"train": [room, bad]}, CLASS_NAMES)
    check = check_detection_scenes(source, ["s0", "s1", "missing"])
    assert check.scenes == 2 and check.boxes == 6 and check.skips == {"no points": 1}
    assert check.named == ["s1: box 3 (no points)"] and list(check.failed) == ["missing"]
