"""Point operations against naive references (plain Python/numpy loops), hand cases, degenerate inputs."""

import math

import numpy as np
import pytest
import torch

from ppkt.geometry.point_ops import (
    ball_query,
    bev_intersection_area,
    box_iou_3d,
    box_iou_3d_axis_aligned,
    farthest_point_sample,
    gather_points,
    group_points,
    nms_3d,
)


# ------------------------------------------------------------------------------------ naive references
def naive_fps(points, s, start=0):
    n = len(points)
    chosen = [start]
    while len(chosen) < min(s, n):
        best, best_d = None, -1.0
        for i in range(n):
            d = min(sum((points[i][k] - points[j][k]) ** 2 for k in range(3)) for j in chosen)
            if d > best_d:
                best, best_d = i, d
        chosen.append(best)
    return [chosen[i % len(chosen)] for i in range(s)]


def naive_ball_query(points, center, radius, k):
    found = [
        i for i in range(len(points)) if sum((points[i][a] - center[a]) ** 2 for a in range(3)) < radius**2
    ]
    found = found[:k]
    if not found:
        nearest = min(
            range(len(points)), key=lambda i: sum((points[i][a] - center[a]) ** 2 for a in range(3))
        )
        return [nearest] * k, 0
    return found + [found[0]] * (k - len(found)), len(found)


def footprint(box):
    cx, cy, _, dx, dy, _, h = box
    c, s = math.cos(h), math.sin(h)
    pts = []
    for sx, sy in ((-1, -1), (1, -1), (1, 1), (-1, 1)):
        lx, ly = sx * dx / 2, sy * dy / 2
        pts.append((cx + c * lx - s * ly, cy + s * lx + c * ly))
    return pts


def clip(subject, clipper):
    """Sutherland-Hodgman: ``subject`` polygon clipped by the counter-clockwise convex ``clipper``."""
    out = list(subject)
    for i in range(len(clipper)):
        a, b = clipper[i], clipper[(i + 1) % len(clipper)]

        def inside(p, a=a, b=b):
            return (b[0] - a[0]) * (p[1] - a[1]) - (b[1] - a[1]) * (p[0] - a[0]) >= 0

        def cross_point(p, q, a=a, b=b):
            x1, y1, x2, y2 = p[0], p[1], q[0], q[1]
            x3, y3, x4, y4 = a[0], a[1], b[0], b[1]
            den = (x1 - x2) * (y3 - y4) - (y1 - y2) * (x3 - x4)
            t = ((x1 - x3) * (y3 - y4) - (y1 - y3) * (x3 - x4)) / den
            return (x1 + t * (x2 - x1), y1 + t * (y2 - y1))

        inp, out = out, []
        for j in range(len(inp)):
            p, q = inp[j], inp[(j + 1) % len(inp)]
            if inside(q):
                if not inside(p):
                    out.append(cross_point(p, q))
                out.append(q)
            elif inside(p):
                out.append(cross_point(p, q))
        if not out:
            return []
    return out


def polygon_area(poly):
    return abs(sum(poly[i][0] * poly[(i + 1) % len(poly)][1] - poly[(i + 1) % len(poly)][0] * poly[i][1]
                   for i in range(len(poly)))) / 2 if len(poly) >= 3 else 0.0  # fmt: skip


def naive_iou(a, b):
    inter_area = polygon_area(clip(footprint(a), footprint(b)))
    zo = max(0.0, min(a[2] + a[5] / 2, b[2] + b[5] / 2) - max(a[2] - a[5] / 2, b[2] - b[5] / 2))
    inter = inter_area * zo
    union = a[3] * a[4] * a[5] + b[3] * b[4] * b[5] - inter
    return inter / union if union > 1e-12 else 0.0


def naive_nms(boxes, scores, thr, labels=None):
    order = sorted(range(len(boxes)), key=lambda i: (-scores[i], i))
    keep = []
    for i in order:
        if all(
            naive_iou(boxes[i], boxes[j]) <= thr or (labels is not None and labels[i] != labels[j])
            for j in keep
        ):
            keep.append(i)
    return keep


def random_boxes(rng, n, rotated=True):
    centers = rng.uniform(0, 3, (n, 3))
    sizes = rng.uniform(0.2, 2.0, (n, 3))
    headings = rng.uniform(-math.pi, math.pi, (n, 1)) if rotated else np.zeros((n, 1))
    return np.concatenate([centers, sizes, headings], 1)


# ---------------------------------------------------------------------------------------------- FPS
def test_fps_matches_naive_and_is_batched():
    rng = np.random.default_rng(0)
    pts = rng.normal(size=(3, 40, 3))
    got = farthest_point_sample(torch.tensor(pts), 12)
    assert got.shape == (3, 12)
    for b in range(3):
        assert got[b].tolist() == naive_fps(pts[b].tolist(), 12)
    assert farthest_point_sample(torch.tensor(pts[0]), 5, start=7).tolist() == naive_fps(
        pts[0].tolist(), 5, 7
    )


def test_fps_hand_case_and_degenerate_inputs():
    line = torch.tensor([[0.0, 0, 0], [1, 0, 0], [2, 0, 0], [10, 0, 0]])
    assert farthest_point_sample(line, 3).tolist() == [0, 3, 2]  # farthest, then the midpoint-most
    # Fewer points than samples: every point once, then the order repeats.
    assert farthest_point_sample(line, 6).tolist() == [0, 3, 2, 1, 0, 3]
    # Duplicates are picked only after every distinct point.
    dup = torch.tensor([[0.0, 0, 0], [0, 0, 0], [1, 0, 0], [1, 0, 0]])
    assert sorted(farthest_point_sample(dup, 2).tolist()) == [0, 2]
    assert farthest_point_sample(torch.zeros(1, 3), 3).tolist() == [0, 0, 0]
    with pytest.raises(ValueError):
        farthest_point_sample(torch.zeros(0, 3), 3)


# ------------------------------------------------------------------------------------ ball query
def test_ball_query_matches_naive():
    rng = np.random.default_rng(1)
    pts = rng.uniform(0, 1, (2, 60, 3))
    centers = rng.uniform(-0.3, 1.3, (2, 9, 3))
    idx, counts = ball_query(torch.tensor(pts), torch.tensor(centers), 0.3, 5)
    for b in range(2):
        for s in range(9):
            want, n = naive_ball_query(pts[b].tolist(), centers[b, s].tolist(), 0.3, 5)
            assert idx[b, s].tolist() == want and int(counts[b, s]) == n


def test_ball_query_more_samples_than_points_and_grouping():
    pts = torch.tensor([[[0.0, 0, 0], [0.1, 0, 0], [5, 0, 0]]])
    idx, counts = ball_query(pts, torch.tensor([[[0.0, 0, 0], [9.0, 0, 0]]]), 0.5, 4)
    assert idx.tolist() == [[[0, 1, 0, 0], [2, 2, 2, 2]]] and counts.tolist() == [[2, 0]]
    feats = torch.arange(6.0).reshape(1, 3, 2)
    grouped = group_points(feats, idx)
    assert grouped.shape == (1, 2, 4, 2) and grouped[0, 0, 1].tolist() == [2.0, 3.0]
    assert gather_points(feats, torch.tensor([[2, 0]])).tolist() == [[[4.0, 5.0], [0.0, 1.0]]]
    grouped.sum().backward() if grouped.requires_grad else None


# -------------------------------------------------------------------------------------------- IoU
def test_rotated_iou_hand_cases():
    unit = [0.0, 0, 0, 1, 1, 1, 0]
    turned = [0.0, 0, 0, 1, 1, 1, math.pi / 4]
    shifted = [0.5, 0, 0, 1, 1, 1, 0]
    iou = box_iou_3d(
        torch.tensor([unit], dtype=torch.float64), torch.tensor([unit, turned, shifted], dtype=torch.float64)
    )
    octagon = 2 * (math.sqrt(2) - 1)  # unit square meets itself turned by 45 degrees
    assert iou[0, 0] == pytest.approx(1.0)
    assert iou[0, 1] == pytest.approx(octagon / (2 - octagon), rel=1e-6)
    assert iou[0, 2] == pytest.approx(0.5 / 1.5, rel=1e-6)
    # A quarter turn of a 2x1 box is the same footprint as its 1x2 axis-aligned twin.
    a = torch.tensor([[0.0, 0, 0, 2, 1, 1, math.pi / 2]])
    b = torch.tensor([[0.0, 0, 0, 1, 2, 1, 0]])
    assert box_iou_3d(a, b).item() == pytest.approx(1.0, abs=1e-5)


def test_rotated_iou_matches_polygon_clipping():
    rng = np.random.default_rng(2)
    a, b = random_boxes(rng, 25), random_boxes(rng, 20)
    got = box_iou_3d(torch.tensor(a), torch.tensor(b)).numpy()
    want = np.array([[naive_iou(x, y) for y in b] for x in a])
    assert (want > 0.05).sum() > 20  # the draw has real overlaps
    np.testing.assert_allclose(got, want, atol=1e-9)
    # float32 is close too (the library's usual dtype).
    got32 = box_iou_3d(torch.tensor(a, dtype=torch.float32), torch.tensor(b, dtype=torch.float32)).numpy()
    np.testing.assert_allclose(got32, want, atol=1e-4)


def test_axis_aligned_iou_matches_rotated_at_heading_zero_and_ignores_headings():
    rng = np.random.default_rng(3)
    a, b = random_boxes(rng, 10, rotated=False), random_boxes(rng, 12, rotated=False)
    ta, tb = torch.tensor(a), torch.tensor(b)
    np.testing.assert_allclose(box_iou_3d_axis_aligned(ta, tb).numpy(), box_iou_3d(ta, tb).numpy(), atol=1e-9)
    tb_turned = tb.clone()
    tb_turned[:, 6] = 1.0
    assert torch.equal(box_iou_3d_axis_aligned(ta, tb_turned), box_iou_3d_axis_aligned(ta, tb))


def test_iou_degenerate_boxes():
    zero = torch.tensor([[0.0, 0, 0, 0, 0, 0, 0]])
    unit = torch.tensor([[0.0, 0, 0, 1, 1, 1, 0.3]])
    flat = torch.tensor([[0.0, 0, 0, 1, 1, 0, 0]])
    far = torch.tensor([[10.0, 0, 0, 1, 1, 1, 0]])
    touching = torch.tensor([[1.0, 0, 0, 1, 1, 1, 0]])
    for x, y in (
        (zero, zero),
        (zero, unit),
        (flat, unit),
        (unit, far),
        (torch.tensor([[0.0, 0, 0, 1, 1, 1, 0]]), touching),
    ):
        v = box_iou_3d(x, y)
        assert torch.isfinite(v).all() and v.item() == pytest.approx(0.0, abs=1e-6)
        assert box_iou_3d_axis_aligned(x, y).item() == pytest.approx(0.0, abs=1e-6)
    assert box_iou_3d(torch.zeros(0, 7), unit).shape == (0, 1)
    assert bev_intersection_area(unit, unit).item() == pytest.approx(1.0, abs=1e-6)
    with pytest.raises(ValueError, match=r"\(N, 7\)"):
        box_iou_3d(torch.zeros(2, 6), unit)


# -------------------------------------------------------------------------------------------- NMS
@pytest.mark.parametrize("per_class", [False, True])
def test_nms_matches_naive(per_class):
    rng = np.random.default_rng(4)
    boxes = random_boxes(rng, 40)
    scores = rng.uniform(size=40)
    scores[5] = scores[6]  # a tie: the lower index goes first
    labels = rng.integers(0, 3, 40)
    keep = nms_3d(
        torch.tensor(boxes), torch.tensor(scores), 0.25, torch.tensor(labels) if per_class else None
    )
    want = naive_nms(boxes.tolist(), scores.tolist(), 0.25, labels.tolist() if per_class else None)
    assert keep.tolist() == want
    assert 0 < len(want) < 40


def test_nms_hand_case():
    boxes = torch.tensor([[0.0, 0, 0, 1, 1, 1, 0], [0.1, 0, 0, 1, 1, 1, 0], [3.0, 0, 0, 1, 1, 1, 0]])
    scores = torch.tensor([0.5, 0.9, 0.1])
    assert nms_3d(boxes, scores, 0.5).tolist() == [1, 2]
    assert nms_3d(boxes, scores, 0.5, labels=torch.tensor([0, 1, 0])).tolist() == [1, 0, 2]
    assert nms_3d(torch.zeros(0, 7), torch.zeros(0), 0.5).tolist() == []


def test_batched_seed_sampling_equals_per_scene_fps():
    from ppkt.eval.detection.model import seed_voxels

    rng = np.random.default_rng(4)
    sizes = [40, 25, 33]
    # Points on a coarse integer grid: duplicate voxel centres and exactly tied distances.
    xyz = torch.tensor(rng.integers(0, 3, (sum(sizes), 3)), dtype=torch.float32)
    offsets = torch.tensor([0, 40, 65, 98])
    for seeds in (8, 25, 30):  # 30 > 25: the small scene alone (its order repeating), two batched
        for batched in (True, False, None):
            got = seed_voxels(xyz, offsets, seeds, batched=batched)
            for b in range(3):
                lo, hi = int(offsets[b]), int(offsets[b + 1])
                want = lo + farthest_point_sample(xyz[lo:hi], seeds)
                assert got[b].tolist() == want.tolist()
