"""Fine-tuning on lidar sweeps through the outdoor readers' scene sources (tiny SemanticKITTI tree)."""

import numpy as np

from ppkt.eval.config import (
    EvalAugmentConfig,
    EvalDataConfig,
    EvalOptimConfig,
    EvalRunConfig,
    FinetuneConfig,
    LabelsConfig,
    ModelConfig,
)
from ppkt.eval.finetune import finetune


def write_sweep(seq_dir, frame: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 600
    road = np.c_[rng.uniform(-10, 10, (n, 2)), np.full(n, -1.7)]
    wall = np.c_[np.full(n, 8.0), rng.uniform(-10, 10, n), rng.uniform(-1.7, 3, n)]
    xyz = np.concatenate([road, wall])
    scan = np.c_[xyz, rng.random(2 * n)].astype(np.float32)
    raw = np.repeat(np.array([40, 50], dtype=np.uint32), n)  # road, building (official raw ids)
    (seq_dir / "velodyne").mkdir(parents=True, exist_ok=True)
    (seq_dir / "labels").mkdir(parents=True, exist_ok=True)
    scan.tofile(seq_dir / "velodyne" / f"{frame}.bin")
    raw.tofile(seq_dir / "labels" / f"{frame}.label")


def test_semantickitti_finetune_end_to_end(tmp_path):
    seqs = tmp_path / "kitti" / "dataset" / "sequences"
    for i in range(2):
        write_sweep(seqs / "00", f"{i:06d}", i)
    write_sweep(seqs / "08", "000000", 10)
    cfg = FinetuneConfig(
        data=EvalDataConfig(
            kind="semantickitti",
            root=tmp_path / "kitti",
            num_classes=19,
        ),
        augment=EvalAugmentConfig(max_points=500),
        labels=LabelsConfig(kind="points", budget=50, seed=0, splits_dir=tmp_path / "splits"),
        model=ModelConfig(backbone="res16unet14", width=0.25, voxel_size=0.5, input_features="constant"),
        optim=EvalOptimConfig(steps=1, batch_size=2),
        run=EvalRunConfig(out=tmp_path / "run", eval_every=1, progress=False, device="cpu"),
    )
    result = finetune(cfg)
    names = result.best.class_names
    present = {names[i] for i in range(19) if i not in result.best.absent_classes}
    assert present == {"road", "building"}
    assert result.best.num_points == 1200
    assert (tmp_path / "splits" / "points-50-seed0.json").is_file()
