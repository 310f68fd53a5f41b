import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from ppkt.config import load_config
from ppkt.eval.config import (
    EvalAugmentConfig,
    EvalDataConfig,
    EvalOptimConfig,
    EvalRunConfig,
    FinetuneConfig,
    LabelsConfig,
    ModelConfig,
)
from ppkt.eval.data import SegmentationDataset
from ppkt.eval.finetune import (
    SegmentationModel,
    build_model,
    evaluate_checkpoint,
    evaluate_model,
    finetune,
    load_checkpoint,
)
from ppkt.eval.metrics import ConfusionMatrix
from ppkt.eval.presets import PRESETS, get_preset
from ppkt.utils.seed import seed_everything


def tiny_config(out: Path, **labels) -> FinetuneConfig:
    return FinetuneConfig(
        origin="test",
        data=EvalDataConfig(kind="scannet", root=out / "data", voxel_size=0.25, num_classes=4),
        augment=EvalAugmentConfig(max_points=400),
        labels=LabelsConfig(**labels),
        model=ModelConfig(backbone="res16unet14", width=0.25),
        optim=EvalOptimConfig(steps=3, batch_size=1, lr_head=0.05, lr_backbone=0.05),
        run=EvalRunConfig(out=out / "run", eval_every=2, log_every=1, progress=False, device="cpu"),
    )


def test_finetune_runs_end_to_end_and_writes_everything(tmp_path, rooms_source):
    cfg = tiny_config(tmp_path, kind="scenes", budget=0.5, seed=1)
    result = finetune(cfg, source=rooms_source)
    run = result.run_dir
    for name in ("config.yaml", "log.jsonl", "metrics.json", "metrics.md"):
        assert (run / name).is_file(), name
    assert (run / "checkpoints" / "best.safetensors").is_file() and (
        run / "checkpoints" / "last.safetensors"
    ).is_file()
    assert load_config(FinetuneConfig, run / "config.yaml") == cfg
    split_file = tmp_path / "data" / "splits" / "scenes-0.5-seed1.json"
    assert len(json.loads(split_file.read_text())["scenes"]) == 2
    events = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [e["step"] for e in events if e["event"] == "val"] == [2, 3]
    assert [e["step"] for e in events if e["event"] == "train"] == [1, 2, 3]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["best"]["miou"] == pytest.approx(result.best.miou)
    assert metrics["labels"] == {"kind": "scenes", "budget": 0.5, "seed": 1}
    assert "| wall |" in (run / "metrics.md").read_text()
    # the best checkpoint, evaluated again from the file alone, gives the same numbers
    again, again_cfg = evaluate_checkpoint(run, source=rooms_source, device="cpu", progress=False)
    assert again.miou == pytest.approx(result.best.miou)
    assert again.num_points == result.best.num_points
    assert again_cfg == cfg


def test_points_budget_trains_on_the_kept_points_only(tmp_path, rooms_source):
    cfg = tiny_config(tmp_path, kind="points", budget=20, seed=0)
    cfg = replace(cfg, optim=replace(cfg.optim, steps=2), augment=replace(cfg.augment, enabled=False))
    finetune(cfg, source=rooms_source)
    split = json.loads((tmp_path / "data" / "splits" / "points-20-seed0.json").read_text())
    assert all(len(s["point_indices"]) == 20 for s in split["scenes"].values())
    assert len(split["scenes"]) == 4


def test_linear_probe_freezes_backbone_weights_and_bn_statistics(tmp_path, rooms_source):
    cfg = tiny_config(tmp_path, kind="scenes", budget=1.0)
    cfg = replace(cfg, model=replace(cfg.model, mode="linear"))
    model = build_model(cfg)
    model.train()
    assert not model.backbone.training and model.head.training
    assert all(not p.requires_grad for p in model.backbone.parameters())
    result = finetune(cfg, source=rooms_source)
    trained, _, _ = load_checkpoint(result.run_dir / "checkpoints" / "last.safetensors")
    # the run seeds with cfg.train_seed before building the model: rebuild its initial state
    seed_everything(cfg.train_seed)
    initial = build_model(cfg)
    for key, value in initial.backbone.state_dict().items():
        assert torch.equal(value, trained.backbone.state_dict()[key]), key  # weights and BN running stats
    assert not torch.equal(initial.head.linear.weight, trained.head.linear.weight)


def test_evaluation_is_on_original_points(rooms_source):
    """A model that predicts 'floor' on voxels at z = 0 and 'wall' elsewhere: exact point metrics."""

    class HeightRule(torch.nn.Module):
        def forward(self, tensor):
            logits = torch.zeros(tensor.coords.shape[0], 4)
            logits[:, 0] = 1.0
            logits[tensor.coords[:, 3] == 0, 1] = 2.0
            return logits

    ds = SegmentationDataset(
        rooms_source, ["scene0100_00"], voxel_size=0.05, input_features="rgb", num_classes=4
    )
    metrics = evaluate_model(HeightRule(), ds)
    scene = rooms_source.read("scene0100_00")
    z = scene.points[:, 2] - scene.points[:, 2].min()
    expected = torch.where(torch.from_numpy(z < 0.05), 1, 0)
    cm = ConfusionMatrix(4)
    cm.update(expected, torch.from_numpy(scene.labels))
    assert metrics.iou == pytest.approx(cm.compute().iou, nan_ok=True)
    assert metrics.num_points == int((scene.labels != -1).sum())


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_build(name):
    cfg = get_preset(name)
    assert cfg.origin == name
    model = build_model(replace(cfg, model=replace(cfg.model, width=0.125)))
    assert isinstance(model, SegmentationModel)
    assert model.freeze_backbone == (cfg.model.mode == "linear")
