import json
import math

import numpy as np
import pytest
import torch

from ppkt.eval.metrics import ConfusionMatrix


def naive_metrics(preds: list[np.ndarray], targets: list[np.ndarray], num_classes: int, ignore: int = -1):
    """Explicit loops over points, written from the definitions in the module docstring."""
    tp = [0] * num_classes
    fp = [0] * num_classes
    fn = [0] * num_classes
    gt_count = [0] * num_classes
    correct = total = 0
    for pred, target in zip(preds, targets, strict=True):
        for p, t in zip(pred.tolist(), target.tolist(), strict=True):
            if t == ignore:
                continue
            total += 1
            gt_count[t] += 1
            if p == t:
                tp[t] += 1
                correct += 1
            else:
                fn[t] += 1
                fp[p] += 1
    iou, acc = [], []
    for c in range(num_classes):
        if gt_count[c] == 0:
            iou.append(math.nan)
            acc.append(math.nan)
        else:
            iou.append(tp[c] / (tp[c] + fp[c] + fn[c]))
            acc.append(tp[c] / gt_count[c])
    present = [c for c in range(num_classes) if gt_count[c] > 0]
    miou = sum(iou[c] for c in present) / len(present)
    macc = sum(acc[c] for c in present) / len(present)
    return iou, acc, miou, macc, correct / total


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_naive_reference_over_several_updates(seed):
    rng = np.random.default_rng(seed)
    num_classes = 7
    preds, targets = [], []
    cm = ConfusionMatrix(num_classes)
    for _ in range(4):
        n = int(rng.integers(1, 300))
        target = rng.integers(-1, num_classes, size=n)
        target[target == 5] = 4  # class 5 absent from the ground truth, may still be predicted
        pred = rng.integers(0, num_classes, size=n)
        preds.append(pred)
        targets.append(target)
        cm.update(torch.from_numpy(pred), torch.from_numpy(target))
    iou, acc, miou, macc, oa = naive_metrics(preds, targets, num_classes)
    m = cm.compute()
    np.testing.assert_allclose(m.iou, iou, equal_nan=True)
    np.testing.assert_allclose(m.accuracy, acc, equal_nan=True)
    assert m.miou == pytest.approx(miou)
    assert m.macc == pytest.approx(macc)
    assert m.overall_accuracy == pytest.approx(oa)
    assert m.absent_classes == (5,)
    assert m.num_points == sum(int((t != -1).sum()) for t in targets)


def test_hand_computed_case_with_absent_class_and_ignore():
    # classes 0, 1, 2; class 2 absent from ground truth but predicted once.
    target = torch.tensor([0, 0, 0, 1, 1, -1, -1])
    pred = torch.tensor([0, 0, 1, 1, 2, 2, 0])
    m = ConfusionMatrix(3, class_names=("a", "b", "c"))
    m.update(pred, target)
    out = m.compute()
    # class 0: TP 2, FN 1 (pred 1), FP 0 -> 2/3. class 1: TP 1, FN 1 (pred 2), FP 1 -> 1/3.
    assert out.iou[0] == pytest.approx(2 / 3)
    assert out.iou[1] == pytest.approx(1 / 3)
    assert math.isnan(out.iou[2])
    assert out.miou == pytest.approx(0.5)
    assert out.accuracy[0] == pytest.approx(2 / 3) and out.accuracy[1] == pytest.approx(0.5)
    assert out.macc == pytest.approx((2 / 3 + 0.5) / 2)
    assert out.overall_accuracy == pytest.approx(3 / 5)
    assert out.absent_classes == (2,)
    assert out.num_points == 5
    d = out.to_dict()
    json.dumps(d)  # NaN-free
    assert d["iou"]["c"] is None and d["absent_classes"] == ["c"]
    assert "absent" in out.to_markdown()


def test_predicting_absent_class_lowers_true_class_iou():
    target = torch.tensor([0, 0, 1, 1])
    right = ConfusionMatrix(3)
    right.update(torch.tensor([0, 0, 1, 1]), target)
    wrong = ConfusionMatrix(3)
    wrong.update(torch.tensor([0, 2, 1, 1]), target)
    assert right.compute().miou == pytest.approx(1.0)
    assert wrong.compute().iou[0] == pytest.approx(0.5)
    assert wrong.compute().iou[1] == pytest.approx(1.0)  # absent class's prediction is no FP of class 1


def test_perfect_and_empty():
    cm = ConfusionMatrix(4)
    t = torch.tensor([3, 1, 1, 0])
    cm.update(t, t)
    out = cm.compute()
    assert out.miou == 1.0 and out.overall_accuracy == 1.0 and out.absent_classes == (2,)
    empty = ConfusionMatrix(4).compute()
    assert math.isnan(empty.miou) and empty.num_points == 0 and empty.absent_classes == (0, 1, 2, 3)


def test_merge_equals_single_accumulation():
    rng = np.random.default_rng(3)
    t = torch.from_numpy(rng.integers(-1, 5, 500))
    p = torch.from_numpy(rng.integers(0, 5, 500))
    whole = ConfusionMatrix(5)
    whole.update(p, t)
    a, b = ConfusionMatrix(5), ConfusionMatrix(5)
    a.update(p[:200], t[:200])
    b.update(p[200:], t[200:])
    a.merge(b)
    assert torch.equal(a.matrix, whole.matrix)


def test_errors():
    cm = ConfusionMatrix(3)
    with pytest.raises(ValueError, match="outside"):
        cm.update(torch.tensor([3]), torch.tensor([0]))
    with pytest.raises(ValueError, match="neither"):
        cm.update(torch.tensor([0]), torch.tensor([7]))
    with pytest.raises(ValueError, match="shape"):
        cm.update(torch.tensor([0, 1]), torch.tensor([0]))
    with pytest.raises(ValueError, match="ignore_label"):
        ConfusionMatrix(3, ignore_label=0)
    # a prediction at an ignored point is not checked nor counted
    cm.update(torch.tensor([0]), torch.tensor([-1]))
    assert cm.compute().num_points == 0
