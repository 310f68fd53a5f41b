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
        data=EvalDataConfig(kind="scannet", root=out / "data", num_classes=4),
        augment=EvalAugmentConfig(max_points=400),
        labels=LabelsConfig(**labels),
        model=ModelConfig(backbone="res16unet14", width=0.25, voxel_size=0.25),
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
    split_file = run / "splits" / "scenes-0.5-seed1.json"  # the run folder, never the dataset
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
    split = json.loads((tmp_path / "run" / "splits" / "points-20-seed0.json").read_text())
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


def _backbone_changed(cfg: FinetuneConfig, run_dir: Path) -> list[str]:
    trained, _, _ = load_checkpoint(run_dir / "checkpoints" / "last.safetensors")
    seed_everything(cfg.train_seed)
    initial = build_model(cfg)
    final = trained.backbone.state_dict()
    return [k for k, v in initial.backbone.state_dict().items() if not torch.equal(v, final[k])]


@pytest.mark.parametrize("steps", [2, 3])
def test_head_warmup_freezes_the_backbone_then_releases_it(tmp_path, rooms_source, steps):
    cfg = tiny_config(tmp_path, kind="scenes", budget=1.0)
    cfg = replace(cfg, optim=replace(cfg.optim, steps=steps, head_warmup_steps=2))
    result = finetune(cfg, source=rooms_source)
    changed = _backbone_changed(cfg, result.run_dir)
    events = [json.loads(line) for line in (result.run_dir / "log.jsonl").read_text().splitlines()]
    released = [e["step"] for e in events if e["event"] == "backbone_released"]
    if steps == 2:  # warm-up only: weights and batch-norm statistics untouched
        assert changed == [] and released == []
    else:
        assert released == [3]
        assert any(k.endswith("weight") for k in changed) and any("running_mean" in k for k in changed)


@pytest.mark.parametrize("freeze", [False, True])
def test_freeze_batchnorm_keeps_statistics_while_everything_trains(tmp_path, rooms_source, freeze):
    cfg = tiny_config(tmp_path, kind="scenes", budget=1.0)
    cfg = replace(cfg, model=replace(cfg.model, freeze_batchnorm=freeze))
    model = build_model(cfg).train()
    norms = [m for m in model.backbone.modules() if isinstance(m, torch.nn.BatchNorm1d)]
    assert norms and all(m.training != freeze for m in norms)
    assert model.backbone.training and all(p.requires_grad for p in model.backbone.parameters())
    result = finetune(cfg, source=rooms_source)
    changed = _backbone_changed(cfg, result.run_dir)
    stats = [k for k in changed if "running_" in k or "num_batches_tracked" in k]
    assert (stats == []) == freeze
    # convolutions and the batch norms' scale and shift train either way
    norm_names = {name for name, m in model.backbone.named_modules() if isinstance(m, torch.nn.BatchNorm1d)}
    owners = {k.rsplit(".", 1)[0] for k in changed if k not in stats}
    assert owners - norm_names and owners & norm_names
    model.eval()
    assert not any(m.training for m in norms)
    model.train()
    assert all(m.training != freeze for m in norms)


def test_freeze_batchnorm_survives_the_head_warmup_release(tmp_path, rooms_source):
    cfg = tiny_config(tmp_path, kind="scenes", budget=1.0)
    cfg = replace(
        cfg,
        model=replace(cfg.model, freeze_batchnorm=True),
        optim=replace(cfg.optim, head_warmup_steps=1),
    )
    model = build_model(cfg).train()
    model.set_backbone_frozen(True)
    model.set_backbone_frozen(False)
    assert model.backbone.training
    assert not any(m.training for m in model.backbone.modules() if isinstance(m, torch.nn.BatchNorm1d))
    result = finetune(cfg, source=rooms_source)
    changed = _backbone_changed(cfg, result.run_dir)
    assert changed and not any("running_" in k for k in changed)


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


def write_exported_backbone(path: Path, cfg: FinetuneConfig, state: dict, **card_overrides) -> Path:
    """A backbone file + card in the format of ``ppkt export`` (ppkt.train.export)."""
    from ppkt.backbones.card import CARD_METADATA_KEY, BackboneCard, card_path_for, tensors_sha256
    from ppkt.backbones.spec import SPEC_FIELDS
    from ppkt.utils.io import atomic_write_json
    from ppkt.utils.weights import save_weights

    spec = replace(cfg.model.spec, **{k: v for k, v in card_overrides.items() if k in SPEC_FIELDS})
    fields = dict(
        spec=spec, out_channels=24, teacher="t", embedding_dim=8, loss="PointInfoNCE", data="test",
        preset="test", steps=1, seed=0, ppkt_version="0", source="test", weights_sha256=tensors_sha256(state),
    )  # fmt: skip
    fields.update({k: v for k, v in card_overrides.items() if k not in SPEC_FIELDS})
    card = BackboneCard(**fields)
    save_weights(state, path, metadata={CARD_METADATA_KEY: json.dumps(card.to_json())})
    atomic_write_json(card_path_for(path), card.to_json())
    return path


def test_pretrained_backbone_loads_strictly_and_checks_the_card(tmp_path, rooms_source):
    from ppkt.eval.finetune import load_pretrained_backbone
    from ppkt.utils.weights import StateDictMismatch

    cfg = tiny_config(tmp_path)
    torch.manual_seed(123)
    source_model = build_model(cfg)
    state = source_model.backbone.state_dict()
    good = write_exported_backbone(tmp_path / "good.safetensors", cfg, state)
    model = build_model(cfg)
    load_pretrained_backbone(model, good, cfg)
    for key, value in state.items():
        assert torch.equal(model.backbone.state_dict()[key], value)

    # a fine-tuning run starts from these weights: after 1 step with lr 0 the backbone is unchanged
    run_cfg = replace(
        cfg,
        model=replace(cfg.model, init=good),
        optim=replace(cfg.optim, steps=1, lr_head=0.0, lr_backbone=0.0, weight_decay=0.0, momentum=0.0),
        run=replace(cfg.run, eval_every=1),
    )
    result = finetune(run_cfg, source=rooms_source)
    trained, _, _ = load_checkpoint(result.run_dir / "checkpoints" / "last.safetensors")
    for key, value in state.items():
        if "running" not in key and "num_batches" not in key:  # BN statistics move in train mode
            assert torch.equal(trained.backbone.state_dict()[key], value), key

    wrong_voxel = write_exported_backbone(tmp_path / "voxel.safetensors", cfg, state, voxel_size=0.02)
    with pytest.raises(ValueError, match="model.voxel_size 0.25 vs the card.s 0.02"):
        load_pretrained_backbone(build_model(cfg), wrong_voxel, cfg)
    wrong_feats = write_exported_backbone(tmp_path / "feats.safetensors", cfg, state, input_features="xyzrgb")
    with pytest.raises(ValueError, match="input_features"):
        load_pretrained_backbone(build_model(cfg), wrong_feats, cfg)
    missing_key = sorted(state)[0]
    partial = {k: v for k, v in state.items() if k != missing_key}
    missing = write_exported_backbone(tmp_path / "missing.safetensors", cfg, partial)
    with pytest.raises(StateDictMismatch, match=missing_key.replace(".", r"\.")):
        load_pretrained_backbone(build_model(cfg), missing, cfg)
    tampered = dict(state)
    tampered[missing_key] = tampered[missing_key] + 1
    bad_hash = write_exported_backbone(tmp_path / "hash.safetensors", cfg, tampered, weights_sha256="0" * 64)
    with pytest.raises(ValueError, match="sha256"):
        load_pretrained_backbone(build_model(cfg), bad_hash, cfg)


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_full_labels_learn_the_rooms(tmp_path, rooms_source):
    """100 % labels, a few dozen steps: the rooms' three classes are clearly learnt (vs ~1/3 by chance)."""
    cfg = tiny_config(tmp_path, kind="scenes", budget=1.0)
    cfg = replace(
        cfg,
        model=replace(cfg.model, voxel_size=0.1),
        augment=replace(cfg.augment, max_points=0),
        optim=replace(cfg.optim, steps=40, batch_size=2, lr_head=0.1, lr_backbone=0.1),
        run=replace(cfg.run, eval_every=40),
    )
    result = finetune(cfg, source=rooms_source)
    assert result.best.absent_classes == (3,)
    assert result.best.miou > 0.8, result.best.to_markdown()


def test_an_interrupted_run_leaves_no_earlier_results_behind(tmp_path, rooms_source, monkeypatch):
    import ppkt.eval.finetune as finetune_module

    cfg = tiny_config(tmp_path, kind="scenes", budget=0.5, seed=1)
    run = Path(cfg.run.out)
    run.mkdir(parents=True)
    (run / "metrics.json").write_text('{"last": {"miou": 0.99}}')  # an earlier run's results
    (run / "metrics.md").write_text("| old |")

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(finetune_module, "build_model", interrupted)
    with pytest.raises(KeyboardInterrupt):
        finetune(cfg, source=rooms_source)
    assert load_config(FinetuneConfig, run / "config.yaml") == cfg
    assert not (run / "metrics.json").exists() and not (run / "metrics.md").exists()
