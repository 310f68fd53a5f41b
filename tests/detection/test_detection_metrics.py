"""AP/mAP against a hand-computed case and an independent implementation written differently."""

import math

import numpy as np
import pytest

from ppkt.data.boxes import Boxes3D
from ppkt.eval.detection.metrics import DetectionEvaluator, ScoredBoxes, voc_ap


def cube(x, y=0.0, label=0, size=1.0):
    return ([x, y, 0.0], [size, size, size], 0.0, label)


def boxes(items):
    if not items:
        return Boxes3D.empty()
    c, s, h, lab = zip(*items, strict=True)
    return Boxes3D(np.array(c), np.array(s), np.array(h), np.array(lab))


def scored(items, scores):
    return ScoredBoxes(boxes(items), np.array(scores, dtype=float))


def test_hand_computed_ap():
    ev = DetectionEvaluator(("a", "b"))
    # Scene A: two cubes of class a; scene B: one. Detections by score:
    # 0.9 hits A's first cube (TP), 0.8 hits nothing (FP), 0.7 duplicates A's first cube (FP),
    # 0.6 hits B's cube (TP). npos 3: precision 1, 1/2, 1/3, 1/2 at recall 1/3, 1/3, 1/3, 2/3.
    # Envelope: 1 up to recall 1/3, then 1/2 up to 2/3: AP = 1/3 + 1/6 = 0.5.
    ev.update(
        scored([cube(0), cube(10, label=0), cube(5), cube(0.05)], [0.9, 0.0, 0.8, 0.7]),
        boxes([cube(0), cube(20)]),
    )
    ev.update(scored([cube(3.1)], [0.6]), boxes([cube(3)]))
    m = ev.compute()
    assert m.ap[0.25][0] == pytest.approx(0.5)
    assert m.recall[0.25][0] == pytest.approx(2 / 3)
    assert math.isnan(m.ap[0.25][1]) and m.map(0.25) == pytest.approx(0.5)  # b has no ground truth
    # At 0.5, 0.6's box (IoU 0.9/1.1 = 0.82) still matches; the 0.0-scored far box never does.
    assert m.ap[0.5][0] == pytest.approx(0.5)
    assert m.num_ground_truth.tolist() == [3, 0]


def test_threshold_is_strict_and_missed_classes_score_zero():
    ev = DetectionEvaluator(("a", "b"), iou_thresholds=(0.5,))
    # IoU of unit cubes offset by 1/3 along x: (2/3) / (4/3) = 0.5 exactly -> not a match (> only).
    ev.update(scored([cube(1 / 3)], [1.0]), boxes([cube(0), cube(0, label=1)]))
    m = ev.compute()
    assert m.ap[0.5].tolist() == [0.0, 0.0]
    assert m.map(0.5) == 0.0


def test_voc_ap_all_points():
    assert voc_ap(np.array([0.5, 1.0]), np.array([1.0, 0.5])) == pytest.approx(0.75)
    assert voc_ap(np.array([0.0]), np.array([0.0])) == 0.0


# ------------------------------------------------------------------ independent naive implementation
def naive_iou_axis(a, b):
    inter = 1.0
    for k in range(3):
        lo = max(a[0][k] - a[1][k] / 2, b[0][k] - b[1][k] / 2)
        hi = min(a[0][k] + a[1][k] / 2, b[0][k] + b[1][k] / 2)
        inter *= max(0.0, hi - lo)
    va, vb = np.prod(a[1]), np.prod(b[1])
    return inter / (va + vb - inter)


def naive_map(scenes, num_classes, t):
    """AP = (1/npos) * sum over true positives of the best precision at that recall or beyond."""
    aps = []
    for cls in range(num_classes):
        dets = [(score, s, box) for s, (pred, _) in enumerate(scenes) for box, score in pred if box[3] == cls]
        gts = {s: [g for g in gt if g[3] == cls] for s, (_, gt) in enumerate(scenes)}
        npos = sum(len(v) for v in gts.values())
        if npos == 0:
            continue
        dets.sort(key=lambda d: -d[0])  # Python's sort is stable, like the library's
        used, flags = set(), []
        for _, s, box in dets:
            ious = [naive_iou_axis(box, g) for g in gts[s]]
            j = max(range(len(ious)), key=lambda k: ious[k]) if ious else None
            ok = j is not None and ious[j] > t and (s, j) not in used
            if ok:
                used.add((s, j))
            flags.append(ok)
        precisions = [sum(flags[: k + 1]) / (k + 1) for k in range(len(flags))]
        total = sum(max(precisions[k:]) for k in range(len(flags)) if flags[k])
        aps.append(total / npos)
    return sum(aps) / len(aps)


def test_matches_naive_implementation_on_random_scenes():
    rng = np.random.default_rng(0)
    scenes = []
    ev = DetectionEvaluator(("a", "b", "c"), rotated=False)
    for _ in range(6):
        gt = [
            cube(*rng.uniform(0, 6, 2), label=int(rng.integers(3)), size=float(rng.uniform(0.5, 1.5)))
            for _ in range(5)
        ]
        pred = []
        for g in gt:  # noisy detections of most boxes, plus clutter
            for _ in range(int(rng.integers(0, 3))):
                pred.append(([g[0][0] + rng.normal(0, 0.2), g[0][1] + rng.normal(0, 0.2), 0.0],
                             [g[1][0] * rng.uniform(0.8, 1.2)] * 3, 0.0,
                             g[3] if rng.random() < 0.8 else int(rng.integers(3))))  # fmt: skip
        pred += [cube(*rng.uniform(0, 6, 2), label=int(rng.integers(3))) for _ in range(3)]
        scores = rng.uniform(size=len(pred))
        ev.update(scored(pred, scores), boxes(gt))
        scenes.append((list(zip(pred, scores, strict=True)), gt))
    m = ev.compute()
    for t in (0.25, 0.5):
        want = naive_map(scenes, 3, t)
        assert m.map(t) == pytest.approx(want, abs=1e-12)
        assert 0.05 < want < 0.95
    table = m.to_markdown()
    assert "| **mAP** |" in table and len(m.to_dict()["classes"]) == 3


def test_rejects_unknown_class_ids():
    with pytest.raises(ValueError, match="class ids"):
        DetectionEvaluator(("a",)).update(scored([cube(0, label=2)], [1.0]), boxes([]))
