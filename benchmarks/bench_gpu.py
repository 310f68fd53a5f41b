"""Steps/s and peak GPU memory of a paper-scale pretraining step and fine-tuning step.

    python benchmarks/bench_gpu.py                          # CUDA: every backend x precision
    python benchmarks/bench_gpu.py --steps 20 --json gpu.json
    python benchmarks/bench_gpu.py --device cpu --steps 1 --warmup 0 --batch-size 1 --finetune-batch-size 1 \
        --width 0.25 --image-hw 48 64 --voxel-size 0.2     # a CPU smoke run of the same code

Pretraining: the ``paper`` preset (SR-UNet34, 2.5 cm voxels, 4096 pairs, batch 24, 480x640 images)
with the teacher ResNet-50 when ``--teacher-weights`` gives its file, else the bundled
EfficientNet-Lite0 (offline; printed in the table). Fine-tuning: the ``finetune-scannet`` preset
(SR-UNet34, batch 8). Data: synthetic rooms rendered once (``ppkt.data.synthetic``), the batches
built and collated once on the CPU and cycled, so only the device's work is timed (copy to the
device, forward, loss, backward, optimiser step). For each sparse backend (torch, spconv when it
imports) and precision (fp32, bf16): ``--warmup`` steps untimed, then ``--steps`` timed; peak memory
is ``torch.cuda.max_memory_allocated`` of the timed steps. A batch that does not fit is halved
until it does (the table says which batch ran). Without CUDA (and no ``--device``) it says so and
exits 0.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch


@dataclass
class Row:
    task: str
    backend: str
    precision: str
    batch: int
    steps_per_s: float | None
    peak_mib: float | None
    note: str = ""


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time_steps(step, device: torch.device, warmup: int, steps: int) -> tuple[float, float | None]:
    for _ in range(warmup):
        step()
    _sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)
    seconds = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    return steps / seconds, peak


_BATCHES: dict[tuple[str, int], list] = {}  # collated once per task and batch size, reused by every row


def _pretrain_runner(args, data_root: Path, backend: str, precision: str, batch: int, device: torch.device):
    from ppkt.config import apply_overrides
    from ppkt.data.scannet import ScanNetFrames
    from ppkt.engine import Precision
    from ppkt.losses import PointInfoNCE
    from ppkt.train.batch import Collator
    from ppkt.train.dataset import PretrainDataset
    from ppkt.train.loop import build_optimizer, pair_generator
    from ppkt.train.model import build_model
    from ppkt.train.pair_sampling import sample_pairs
    from ppkt.train.presets import get_preset

    overrides = {
        **({} if args.voxel_size is None else {"model.voxel_size": str(args.voxel_size)}),
        "data.image_hw": f"{args.image_hw[0]},{args.image_hw[1]}",
        "model.sparse_backend": backend,
        "model.width": str(args.width),
        "optim.batch_size": str(batch),
        "run.precision": precision,
    }
    if args.teacher_weights is None:
        overrides.update({"teacher.name": "efficientnet_lite0", "teacher.stage": "stride16"})
    else:
        overrides["teacher.weights"] = str(args.teacher_weights)
    cfg = apply_overrides(get_preset("paper"), overrides)
    if ("pretrain", batch) not in _BATCHES:
        frames = ScanNetFrames(data_root, split="train", frame_skip=1)
        dataset = PretrainDataset(frames, cfg.data, cfg.augment, cfg.model.input_features, seed=0)
        collate = Collator(cfg.model.voxel_size)
        _BATCHES["pretrain", batch] = [
            collate([dataset[(i, epoch)] for i in range(batch)]) for epoch in range(2)
        ]
    batches = _BATCHES["pretrain", batch]
    model = build_model(cfg).to(device).train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = build_optimizer(cfg, trainable)
    loss_fn = PointInfoNCE(cfg.loss.tau)
    amp = Precision(precision, device)
    count = {"n": 0}

    def step() -> None:
        batch_ = batches[count["n"] % len(batches)].to(device)
        with amp.autocast():  # as the pretraining loop's step: the pairs first, then only they are embedded
            generator = pair_generator(0, count["n"], 0)
            pairs = sample_pairs(batch_.pair_frame, cfg.loss.num_pairs, cfg.loss.sampling, generator)
            emb = model(batch_, pairs.index)
            loss = loss_fn(emb.points, emb.pixels, pairs.group)
        optimizer.zero_grad(set_to_none=True)
        amp.backward(loss)
        amp.step(optimizer, trainable)
        count["n"] += 1

    if args.teacher_weights is None:
        teacher = "efficientnet_lite0 (offline)"
    elif str(args.teacher_weights) == "random":  # same network and cost, untrained: a timing run only
        teacher = f"{cfg.teacher.name} (random weights)"
    else:
        teacher = cfg.teacher.name
    return step, teacher


def _finetune_runner(args, data_root: Path, backend: str, precision: str, batch: int, device: torch.device):
    import torch.nn.functional as F

    from ppkt.config import apply_overrides
    from ppkt.data.types import IGNORE_LABEL
    from ppkt.engine import Precision
    from ppkt.eval.data import ScanNetSceneSource, SegmentationDataset
    from ppkt.eval.model import build_model
    from ppkt.eval.presets import get_preset

    source = ScanNetSceneSource(data_root)
    num_classes = len(source.class_names)
    cfg = apply_overrides(
        get_preset("finetune-scannet"),
        {
            "model.sparse_backend": backend,
            "model.width": str(args.width),
            "data.num_classes": str(num_classes),
            "optim.batch_size": str(batch),
            **({} if args.voxel_size is None else {"model.voxel_size": str(args.voxel_size)}),
        },
    )
    if ("finetune", batch) not in _BATCHES:
        scenes = source.scene_ids("train")
        dataset = SegmentationDataset(
            source,
            [scenes[i % len(scenes)] for i in range(batch)],
            voxel_size=cfg.model.voxel_size,
            input_features=cfg.model.input_features,
            num_classes=num_classes,
            augmentation=cfg.augment.build(),
            seed=0,
        )
        _BATCHES["finetune", batch] = [dataset.collate([dataset[i] for i in range(batch)])]
    batches = _BATCHES["finetune", batch]
    model = build_model(cfg).to(device).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=cfg.optim.lr_backbone, momentum=cfg.optim.momentum)
    amp = Precision(precision, device)

    def step() -> None:
        b = batches[0].to(device)
        with amp.autocast():
            loss = F.cross_entropy(model(b.sparse.tensor), b.voxel_labels, ignore_index=IGNORE_LABEL)
        optimizer.zero_grad(set_to_none=True)
        amp.backward(loss)
        amp.step(optimizer, model.parameters())

    return step, ""


def _measure(args, task: str, data_root: Path, backend: str, precision: str, device: torch.device) -> Row:
    runner = _pretrain_runner if task == "pretrain" else _finetune_runner
    batch = args.batch_size if task == "pretrain" else args.finetune_batch_size
    while batch >= 1:
        try:
            step, note = runner(args, data_root, backend, precision, batch, device)
            rate, peak = _time_steps(step, device, args.warmup, args.steps)
            return Row(task, backend, precision, batch, rate, peak, note)
        except torch.OutOfMemoryError:
            step = None
            gc.collect()  # the failed attempt's model and optimiser state
            if device.type == "cuda":
                torch.cuda.empty_cache()
            batch //= 2
        except Exception as err:  # a backend/precision pair that does not run is a row, not a crash
            return Row(
                task, backend, precision, batch, None, None, f"failed: {type(err).__name__}: {err}"[:120]
            )
    return Row(task, backend, precision, 0, None, None, "out of memory at batch 1")


def _alternated(args, task: str, data_root: Path, precision: str, device: torch.device) -> list[Row]:
    """The torch backend's ``--conv-algorithms`` taking turns step by step (one model each, same
    initial weights, the same batch in each step), the order rotating every step, so that their
    ratio is measured under one load: rows in sequence moved 10-20 % between machines. Median
    step time; no peak memory (the models share the device). A failure is a noted row."""
    import statistics

    from ppkt.sparse import functional

    runner = _pretrain_runner if task == "pretrain" else _finetune_runner
    batch = args.batch_size if task == "pretrain" else args.finetune_batch_size
    algorithms = list(dict.fromkeys(a for a in args.conv_algorithms.split(",") if a))
    default_limit = functional._AUTO_TABLE_LIMIT
    steps, note, times = {}, "", {a: [] for a in algorithms}
    try:
        for algorithm in algorithms:
            torch.manual_seed(0)
            steps[algorithm], note = runner(args, data_root, "torch", precision, batch, device)
        for index in range(args.warmup + args.steps):
            shift = index % len(algorithms)
            for algorithm in algorithms[shift:] + algorithms[:shift]:
                name, _, exponent = algorithm.partition(":")
                functional.set_conv_algorithm(name)
                functional._AUTO_TABLE_LIMIT = 2 ** int(exponent) if exponent else default_limit
                _sync(device)
                start = time.perf_counter()
                steps[algorithm]()
                _sync(device)
                if index >= args.warmup:
                    times[algorithm].append(time.perf_counter() - start)
    except Exception as err:  # out of memory included: the rows say so instead of a crash
        failure = f"failed: {type(err).__name__}: {err}"[:120]
        return [
            Row(task, f"torch ({a}, alternated)", precision, batch, None, None, failure) for a in algorithms
        ]
    finally:
        functional.set_conv_algorithm(None)
        functional._AUTO_TABLE_LIMIT = default_limit
        steps.clear()
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return [
        Row(task, f"torch ({a}, alternated)", precision, batch, 1 / statistics.median(times[a]), None, note)
        for a in algorithms
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default=None, help="cuda, cuda:1, cpu (default: cuda when available)")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per configuration")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps before them")
    parser.add_argument("--batch-size", type=int, default=24, help="pretraining frames per step (paper: 24)")
    parser.add_argument("--finetune-batch-size", type=int, default=8, help="fine-tuning scenes per step")
    parser.add_argument("--width", type=float, default=1.0, help="backbone width (paper: 1.0)")
    parser.add_argument("--image-hw", type=int, nargs=2, default=(480, 640), help="pretraining image size")
    parser.add_argument("--voxel-size", type=float, default=None, help="override the presets' 2.5 cm voxels")
    parser.add_argument(
        "--teacher-weights",
        type=Path,
        default=None,
        help="ResNet-50 weight file, or 'random' (the same network untrained: the cost of the paper's step)",
    )
    parser.add_argument("--backends", default="torch,spconv")
    parser.add_argument(
        "--conv-algorithms",
        default="",
        help="torch backend's algorithms to compare, e.g. offsets,table,auto (default: the device's default "
        "only); auto:N sets auto's table limit to 2^N gathered elements",
    )
    parser.add_argument("--precisions", default="fp32,bf16")
    parser.add_argument("--tasks", default="pretrain,finetune")
    parser.add_argument("--json", type=Path, default=None, metavar="PATH", help="also write the rows as JSON")
    parser.add_argument(
        "--alternate",
        action="store_true",
        help="with --conv-algorithms: the algorithms take turns step by step (torch backend only)",
    )
    args = parser.parse_args(argv)
    if args.alternate and (args.steps < 1 or len({a for a in args.conv_algorithms.split(",") if a}) < 2):
        parser.error("--alternate needs --steps >= 1 and two or more --conv-algorithms, e.g. offsets,auto")

    if args.device is None and not torch.cuda.is_available():
        print("bench_gpu: no CUDA device here; nothing measured (pass --device cpu for a smoke run)")
        return 0
    device = torch.device(args.device or "cuda")
    from ppkt.data.synthetic import ensure_dataset
    from ppkt.sparse import functional
    from ppkt.sparse.functional import set_conv_algorithm
    from ppkt.sparse.spconv_backend import spconv_available

    default_limit = functional._AUTO_TABLE_LIMIT

    backends = [b for b in args.backends.split(",") if b]
    if "spconv" in backends and not spconv_available():
        print("bench_gpu: spconv does not import here; its rows are skipped")
        backends.remove("spconv")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        data_root = ensure_dataset(
            scenes=2,
            frames_per_scene=4,
            image_hw=tuple(args.image_hw),
            cache_dir=Path(tmp),
            max_points=60_000,
        )
        rows = []
        if args.alternate:
            rows = [
                row
                for task in args.tasks.split(",")
                for precision in args.precisions.split(",")
                for row in _alternated(args, task, data_root, precision, device)
            ]
        for task in [] if args.alternate else args.tasks.split(","):
            for backend in backends:
                algorithms = [a for a in args.conv_algorithms.split(",") if a] if backend == "torch" else []
                for algorithm in algorithms or [None]:
                    # "auto:N" = auto with its table limit at 2^N gathered elements (calibration)
                    name, _, exponent = (algorithm or "").partition(":")
                    set_conv_algorithm(name or None)
                    if exponent:
                        functional._AUTO_TABLE_LIMIT = 2 ** int(exponent)
                    for precision in args.precisions.split(","):
                        row = _measure(args, task, data_root, backend, precision, device)
                        if algorithm is not None:
                            row.backend = f"{backend} ({algorithm})"
                        rows.append(row)
                    set_conv_algorithm(None)
                    functional._AUTO_TABLE_LIMIT = default_limit
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"\n{name}, torch {torch.__version__}, {args.steps} timed steps after {args.warmup} warm-up")
    print("| task | backend | precision | batch | steps/s | peak MiB | note |")
    print("|---|---|---|---:|---:|---:|---|")
    for r in rows:
        rate = "-" if r.steps_per_s is None else f"{r.steps_per_s:.3f}"
        peak = "-" if r.peak_mib is None else f"{r.peak_mib:.0f}"
        print(f"| {r.task} | {r.backend} | {r.precision} | {r.batch} | {rate} | {peak} | {r.note} |")
    print(f"total {time.perf_counter() - started:.0f} s")
    if args.json is not None:
        args.json.write_text(
            json.dumps(
                {"device": name, "torch": torch.__version__, "rows": [asdict(r) for r in rows]}, indent=2
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
