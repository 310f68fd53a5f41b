"""EfficientNet-Lite0 with the packaged ImageNet weights classifies real photos (skimage.data)."""

import pytest
import torch
import torch.nn.functional as F

from ppkt.teachers import build_teacher

skimage_data = pytest.importorskip("skimage.data")


def _center_crop_224(image) -> torch.Tensor:
    """Resize the short side to 224 and centre-crop 224x224, as EfficientNet-Lite0 was evaluated."""
    x = torch.from_numpy(image).permute(2, 0, 1).float()[None] / 255.0
    h, w = x.shape[-2:]
    scale = 224 / min(h, w)
    x = F.interpolate(x, size=(round(h * scale), round(w * scale)), mode="bilinear", antialias=True)
    h, w = x.shape[-2:]
    top, left = (h - 224) // 2, (w - 224) // 2
    return x[..., top : top + 224, left : left + 224].clamp(0, 1)


@pytest.fixture(scope="module")
def teacher():
    return build_teacher("efficientnet_lite0")


def test_chelsea_is_a_cat(teacher):
    logits = teacher.logits(_center_crop_224(skimage_data.chelsea()))
    top3 = logits[0].topk(3).indices.tolist()
    assert any(281 <= c <= 285 for c in top3), top3  # tabby, tiger cat, Persian, Siamese, Egyptian cat


def test_coffee_is_espresso_or_cup(teacher):
    logits = teacher.logits(_center_crop_224(skimage_data.coffee()))
    assert int(logits[0].argmax()) in (967, 968)  # espresso, cup


def test_features_of_the_classifier_stage_pool_to_the_logits(teacher):
    # The default stage is the map the classifier pools: pooling it and applying fc gives the logits.
    image = _center_crop_224(skimage_data.coffee())
    features = teacher(image)
    assert features.shape == (1, 1280, 7, 7)
    logits = teacher.net._fc(features.mean(dim=(2, 3)))
    torch.testing.assert_close(logits, teacher.logits(image))


def test_packaged_weights_give_a_stable_identity(teacher):
    other = build_teacher("efficientnet_lite0")
    assert other.identity == teacher.identity
    assert teacher.identity.startswith("efficientnet_lite0/head/")
    assert build_teacher("efficientnet_lite0", stage="stride16").identity != teacher.identity
