"""Does PPKT's premise hold on the synthetic rooms? Frozen ImageNet features vs raw colour.

A linear classifier (multinomial logistic regression) is trained to predict each pixel's
ScanNet-20 class from (a) its RGB, (b) RGB plus local colour statistics (mean and std in 9x9
and 25x25 windows), (c) the frozen default teacher's features sampled at the pixel (bilinear,
docs/conventions.md), on pixels of the training rooms, and evaluated on the held-out rooms.
If 2D knowledge is to help 3D pretraining, (c) must beat (a) and (b) clearly.

    python benchmarks/teacher_premise.py                  # 12 rooms x 10 frames, cached
    python benchmarks/teacher_premise.py --stage stride16 # another teacher stage
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ppkt.data import scannet_split
from ppkt.data.scannet_classes import SCANNET20_CLASS_NAMES, nyu40_to_scannet20
from ppkt.data.synthetic import ensure_dataset


def local_statistics(image: torch.Tensor, ii: np.ndarray, jj: np.ndarray) -> torch.Tensor:
    """``(P, 15)``: RGB at pixels ``(ii, jj)`` and each channel's mean/std in 9x9 and 25x25 windows.

    Window sums come from an integral image, so only the sampled pixels cost anything.
    """
    _, H, W = image.shape
    columns = [image[:, ii, jj].T]
    integral_1 = F.pad(image.double().cumsum(1).cumsum(2), (1, 0, 1, 0))
    integral_2 = F.pad((image.double() ** 2).cumsum(1).cumsum(2), (1, 0, 1, 0))
    for k in (9, 25):
        r0 = torch.from_numpy(np.clip(ii - k // 2, 0, H))
        r1 = torch.from_numpy(np.clip(ii + k // 2 + 1, 0, H))
        c0 = torch.from_numpy(np.clip(jj - k // 2, 0, W))
        c1 = torch.from_numpy(np.clip(jj + k // 2 + 1, 0, W))
        count = ((r1 - r0) * (c1 - c0)).double()

        def window(integral, r0=r0, r1=r1, c0=c0, c1=c1, count=count):
            total = integral[:, r1, c1] - integral[:, r0, c1] - integral[:, r1, c0] + integral[:, r0, c0]
            return (total / count).T

        mean = window(integral_1)
        std = (window(integral_2) - mean * mean).clamp_min(0).sqrt()
        columns += [mean.float(), std.float()]
    return torch.cat(columns, dim=1)


def collect(root, scenes, teacher, pixels_per_frame: int, rng: np.random.Generator):
    """Features of random labelled pixels of every frame of ``scenes``: (rgb, rgb+stats, teacher, labels)."""
    rgb_rows, stat_rows, teacher_rows, labels = [], [], [], []
    for scene in scenes:
        for color_path in sorted((root / scene / "color").glob("*.jpg"), key=lambda p: int(p.stem)):
            image = np.array(Image.open(color_path).convert("RGB"))
            nyu40 = np.asarray(Image.open(root / scene / "label" / f"{color_path.stem}.png"))
            label = nyu40_to_scannet20(nyu40)
            ii, jj = np.nonzero(label >= 0)
            if len(ii) == 0:
                continue
            pick = rng.choice(len(ii), size=min(pixels_per_frame, len(ii)), replace=False)
            ii, jj = ii[pick], jj[pick]
            H, W = label.shape
            tensor = torch.from_numpy(image).permute(2, 0, 1).float() / 255.0
            with torch.no_grad():
                features = teacher(tensor[None])
            # Pixel centres at integer uv; grid_sample with the image size (docs/conventions.md).
            grid = torch.stack(
                [torch.from_numpy((2 * jj + 1) / W - 1), torch.from_numpy((2 * ii + 1) / H - 1)], dim=-1
            ).float()
            sampled = F.grid_sample(features, grid[None, None], mode="bilinear", align_corners=False)[
                0, :, 0
            ].T
            rgb_rows.append(tensor[:, ii, jj].T)
            stat_rows.append(local_statistics(tensor, ii, jj))
            teacher_rows.append(sampled)
            labels.append(torch.from_numpy(label[ii, jj]))
    return (torch.cat(rgb_rows), torch.cat(stat_rows), torch.cat(teacher_rows), torch.cat(labels))


def train_linear(x: torch.Tensor, y: torch.Tensor, classes: int, steps: int, weight_decay: float):
    """Multinomial logistic regression on standardised features, full-batch L-BFGS."""
    mean, std = x.mean(0), x.std(0).clamp_min(1e-6)
    layer = torch.nn.Linear(x.shape[1], classes)
    optimizer = torch.optim.LBFGS(
        layer.parameters(), lr=1.0, max_iter=steps, history_size=20, line_search_fn="strong_wolfe"
    )
    xs = (x - mean) / std

    def closure():
        optimizer.zero_grad()
        loss = F.cross_entropy(layer(xs), y) + weight_decay * layer.weight.square().sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return lambda z: layer((z - mean) / std).argmax(1)


def scores(pred: torch.Tensor, y: torch.Tensor, classes: int) -> tuple[float, float, float]:
    """Pixel accuracy, mean class accuracy and mIoU over the classes present in ``y``."""
    conf = torch.bincount(y * classes + pred, minlength=classes * classes).reshape(classes, classes).double()
    present = conf.sum(1) > 0
    tp = conf.diag()
    acc = float(tp.sum() / conf.sum())
    macc = float((tp[present] / conf.sum(1)[present]).mean())
    iou = tp / (conf.sum(0) + conf.sum(1) - tp).clamp_min(1)
    return acc, macc, float(iou[present].mean())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scenes", type=int, default=12)
    parser.add_argument("--frames-per-scene", type=int, default=10)
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--cache-dir", default=None, help="synthetic dataset cache (default ~/.cache/ppkt)")
    parser.add_argument("--pixels-per-frame", type=int, default=400)
    parser.add_argument("--teacher", default="efficientnet_lite0")
    parser.add_argument("--stage", default=None, help="teacher stage (default: the teacher's default)")
    parser.add_argument("--steps", type=int, default=100, help="L-BFGS iterations")
    parser.add_argument("--weight-decay", type=float, default=1e-4)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args()
    torch.manual_seed(0)
    # On a shared CPU, OpenMP threads that spin-wait for each other slow convolutions 20x or more.
    torch.set_num_threads(args.threads)

    from ppkt.teachers import build_teacher

    start = time.perf_counter()
    root = ensure_dataset(
        scenes=args.scenes, frames_per_scene=args.frames_per_scene, seed=args.seed, cache_dir=args.cache_dir
    )
    train_scenes, val_scenes = scannet_split(root, "train"), scannet_split(root, "val")
    print(
        f"dataset {root} ({len(train_scenes)} train / {len(val_scenes)} held-out rooms) "
        f"ready in {time.perf_counter() - start:.1f} s"
    )
    teacher = build_teacher(args.teacher, stage=args.stage).eval()
    print(f"teacher {teacher.identity}: {teacher.out_channels} channels, stride {teacher.stride}")
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    train = collect(root, train_scenes, teacher, args.pixels_per_frame, rng)
    val = collect(root, val_scenes, teacher, args.pixels_per_frame, rng)
    print(
        f"features of {len(train[3])} train / {len(val[3])} held-out pixels "
        f"in {time.perf_counter() - start:.1f} s"
    )
    classes = len(SCANNET20_CLASS_NAMES)
    present = torch.unique(val[3]).tolist()
    print("held-out classes:", ", ".join(SCANNET20_CLASS_NAMES[c] for c in present))
    print(f"{'features':<28}{'dim':>6}{'pixel acc':>11}{'mean acc':>10}{'mIoU':>8}")
    for name, k in (("raw RGB", 0), ("RGB + local mean/std", 1), (f"{args.teacher} (frozen)", 2)):
        predict = train_linear(train[k], train[3], classes, args.steps, args.weight_decay)
        with torch.no_grad():
            acc, macc, miou = scores(predict(val[k]), val[3], classes)
        print(f"{name:<28}{train[k].shape[1]:>6}{acc:>11.3f}{macc:>10.3f}{miou:>8.3f}")
    chance = float(torch.bincount(val[3]).max() / len(val[3]))
    print(f"{'majority class':<28}{'':>6}{chance:>11.3f}")


if __name__ == "__main__":
    main()
