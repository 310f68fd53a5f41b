import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from detection_rooms import CLASS_NAMES, make_detection_room

from ppkt.data.registry import SyntheticRooms
from ppkt.eval.config import EvalRunConfig, LabelsConfig, ModelConfig
from ppkt.eval.detection.config import (
    DetectionAugmentConfig,
    DetectionConfig,
    DetectionDataConfig,
    DetectionOptimConfig,
    VoteNetConfig,
)
from ppkt.eval.detection.data import InMemoryDetectionSource
from ppkt.eval.detection.loop import (
    evaluate_detection_checkpoint,
    finetune_detection,
    is_detection_checkpoint,
    load_detection_checkpoint,
)
from ppkt.eval.detection.presets import DETECTION_PRESETS, get_detection_preset


def tiny_config(tmp_path: Path, steps: int = 3, **data) -> DetectionConfig:
    return DetectionConfig(
        data=DetectionDataConfig(**data),
        augment=DetectionAugmentConfig(rotate_up=math.pi),
        labels=LabelsConfig(splits_dir=tmp_path / "splits"),
        model=ModelConfig(backbone="res16unet14", width=0.25, voxel_size=0.1),
        head=VoteNetConfig(
            num_seeds=128, num_proposals=32, hidden=32, proposal_hidden=32, num_heading_bins=4
        ),
        optim=DetectionOptimConfig(steps=steps, batch_size=2),
        run=EvalRunConfig(out=tmp_path / "run", eval_every=steps, log_every=1, device="cpu", progress=False),
    )


def test_tiny_finetune_on_synthetic_rooms_writes_an_map_table(tmp_path):
    cfg = tiny_config(
        tmp_path, steps=2, kind="synthetic", root=tmp_path / "synthetic", synthetic=SyntheticRooms(
            scenes=3, frames_per_scene=1, image_hw=(24, 32)
        ),
    )  # fmt: skip
    result = finetune_detection(cfg)
    run = result.run_dir
    for name in (
        "config.yaml",
        "log.jsonl",
        "metrics.json",
        "metrics.md",
        "checkpoints/best.safetensors",
        "checkpoints/last.safetensors",
    ):
        assert (run / name).is_file(), name
    summary = json.loads((run / "metrics.json").read_text())
    assert summary["task"] == "detection" and "mAP@0.25" in summary["best"]
    assert summary["best"]["classes"]["chair"]["ground_truth"] >= 0
    assert "| **mAP** |" in (run / "metrics.md").read_text()
    events = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [e["step"] for e in events if e["event"] == "train"] == [1, 2]
    assert all(math.isfinite(e["loss"]) for e in events if e["event"] == "train")
    # The checkpoint reloads strictly with its size templates and evaluates to the same numbers.
    assert is_detection_checkpoint(run)
    metrics, loaded_cfg, kept = evaluate_detection_checkpoint(
        run / "checkpoints" / "last.safetensors", device="cpu", progress=False, keep_predictions=True
    )
    assert loaded_cfg == cfg
    np.testing.assert_allclose(
        np.nan_to_num(metrics.ap[0.25]), np.nan_to_num(result.last.ap[0.25]), atol=1e-9
    )
    assert len(kept) == metrics.num_scenes == 1  # 3 rooms: 2 train, 1 val


def _write_backbone(path, cfg, state, **overrides):
    from ppkt.backbones.spec import SPEC_FIELDS
    from ppkt.train.export import CARD_METADATA_KEY, BackboneCard, card_path_for, tensors_sha256
    from ppkt.utils.io import atomic_write_json
    from ppkt.utils.weights import save_weights

    spec = replace(cfg.model.spec, **{k: v for k, v in overrides.items() if k in SPEC_FIELDS})
    fields = dict(
        spec=spec, out_channels=1, teacher="t", embedding_dim=8, loss="PointInfoNCE", data="test",
        preset="test", steps=1, seed=0, ppkt_version="0", source="test", weights_sha256=tensors_sha256(state),
    )  # fmt: skip
    fields.update({k: v for k, v in overrides.items() if k not in SPEC_FIELDS})
    card = BackboneCard(**fields)
    save_weights(state, path, metadata={CARD_METADATA_KEY: json.dumps(card.to_json())})
    atomic_write_json(card_path_for(path), card.to_json())
    return path


def in_memory_source():
    rooms = [make_detection_room(f"s{i}", i) for i in range(3)]
    return InMemoryDetectionSource({"train": rooms[:2], "val": rooms[2:]}, CLASS_NAMES)


def test_pretrained_backbone_loads_through_the_segmentation_loader(tmp_path):
    from ppkt.backbones import build_backbone

    cfg = tiny_config(tmp_path, steps=1)
    torch.manual_seed(5)
    state = build_backbone("res16unet14", 3, width=0.25).state_dict()
    good = _write_backbone(tmp_path / "good.safetensors", cfg, state)
    frozen = replace(
        cfg, model=replace(cfg.model, init=good), optim=replace(cfg.optim, lr_head=0.0, lr_backbone=0.0)
    )
    result = finetune_detection(frozen, source=in_memory_source())
    model, _, _ = load_detection_checkpoint(result.run_dir / "checkpoints" / "last.safetensors")
    for key, value in state.items():
        if "running" not in key and "num_batches" not in key:
            assert torch.equal(model.backbone.state_dict()[key], value), key
    wrong = _write_backbone(tmp_path / "wrong.safetensors", cfg, state, voxel_size=0.05)
    with pytest.raises(ValueError, match="voxel_size"):
        finetune_detection(
            replace(cfg, model=replace(cfg.model, init=wrong)), source=in_memory_source(), overwrite=True
        )


def test_limited_labels_use_a_fraction_of_scenes(tmp_path):
    rooms = [make_detection_room(f"s{i}", i) for i in range(5)]
    source = InMemoryDetectionSource({"train": rooms[:4], "val": rooms[4:]}, CLASS_NAMES)
    cfg = replace(
        tiny_config(tmp_path, steps=1),
        labels=LabelsConfig(kind="scenes", budget=0.5, seed=1, splits_dir=tmp_path / "splits"),
    )
    finetune_detection(cfg, source=source)
    summary = json.loads((cfg.run.out / "metrics.json").read_text())
    assert summary["labels"]["train_scenes"] == 2
    assert (tmp_path / "splits").is_dir() and any((tmp_path / "splits").iterdir())
    with pytest.raises(ValueError, match="fraction of scenes"):
        finetune_detection(replace(cfg, labels=replace(cfg.labels, kind="points")), source=source)


@pytest.mark.parametrize("name", sorted(DETECTION_PRESETS))
def test_presets_are_complete(name):
    cfg = get_detection_preset(name)
    assert cfg.origin == name and cfg.optim.optimizer == "adam"
    if name == "votenet-scannet":
        assert cfg.head.num_heading_bins == 1 and cfg.augment.axis_aligned and cfg.data.kind == "scannet"
    if name == "votenet-sunrgbd":
        assert cfg.head.num_heading_bins == 12 and cfg.data.kind == "sunrgbd"
    with pytest.raises(ValueError, match="unknown detection preset"):
        get_detection_preset("nope")


def test_interrupted_and_resumed_detection_run_repeats_the_uninterrupted_one(tmp_path, monkeypatch):
    """The engine's resume, as segmentation's: Ctrl-C at step 4 of 5 (2 training rooms, batch 1:
    mid-epoch), resume from the step-2 checkpoint; the same losses, best result and files."""
    from ppkt.engine import RunInterrupted, latest_checkpoint
    from ppkt.eval.detection import loop as detection_loop
    from ppkt.utils.weights import load_weights

    def config(name: str) -> DetectionConfig:
        cfg = tiny_config(tmp_path, steps=5)
        return replace(
            cfg,
            optim=replace(cfg.optim, batch_size=1),
            run=replace(cfg.run, out=tmp_path / name, eval_every=2, checkpoint_every=2, deterministic=True,
                        tensorboard=False),
        )  # fmt: skip

    full = finetune_detection(config("full"), source=in_memory_source())
    real, calls = detection_loop.votenet_loss, {"n": 0}

    def interrupt_at_step_4(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(detection_loop, "votenet_loss", interrupt_at_step_4)
    cfg = config("cut")
    with pytest.raises(RunInterrupted) as err:
        finetune_detection(cfg, source=in_memory_source())
    assert str(err.value) == (
        f"interrupted at step 4; resume with: ppkt finetune --task detection --resume {cfg.run.out}"
    )
    monkeypatch.setattr(detection_loop, "votenet_loss", real)
    assert latest_checkpoint(cfg.run.out).name == "step_00000002"
    resumed = finetune_detection(cfg, source=in_memory_source(), resume=True)
    assert sorted(resumed.losses) == [3, 4, 5]
    for step in (3, 4, 5):
        assert resumed.losses[step] == full.losses[step], step
    assert resumed.best_step == full.best_step
    np.testing.assert_array_equal(resumed.best.ap[0.25], full.best.ap[0.25])
    for name in ("best.safetensors", "last.safetensors"):
        a, _ = load_weights(full.run_dir / "checkpoints" / name)
        b, _ = load_weights(cfg.run.out / "checkpoints" / name)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    steps = [json.loads(line)["step"] for line in (cfg.run.out / "log.jsonl").read_text().splitlines()
             if json.loads(line)["event"] == "train"]  # fmt: skip
    assert steps == [1, 2, 3, 4, 5]  # the log was cut back to the checkpoint, each step once
    with pytest.raises(ValueError, match="nothing to resume"):
        finetune_detection(cfg, source=in_memory_source(), resume=True)


def test_detection_config_ranges_are_checked(tmp_path):
    cfg = tiny_config(tmp_path)
    bad = replace(
        cfg,
        head=replace(cfg.head, num_seeds=0, far_threshold=0.1),
        optim=replace(cfg.optim, accumulate=0),
        run=replace(cfg.run, precision="fp16", device="nope"),
    )
    with pytest.raises(ValueError) as err:
        finetune_detection(bad, source=in_memory_source())
    for name in ("head.num_seeds", "head.far_threshold", "optim.accumulate", "run.device"):
        assert name in str(err.value), name
    assert not (tmp_path / "run").exists()  # nothing written before the checks


def test_accumulated_micro_batches_make_one_step(tmp_path):
    """optim.accumulate 2 at batch 1: one step over both training rooms, its logged loss the mean
    of the two micro-batches' (at learning rate 0 these are the losses of two 1-room steps)."""

    def run(name: str, steps: int, accumulate: int):
        cfg = tiny_config(tmp_path / name, steps=steps)
        cfg = replace(
            cfg,
            optim=replace(cfg.optim, batch_size=1, accumulate=accumulate, lr_head=0.0, lr_backbone=0.0),
            run=replace(cfg.run, tensorboard=False),
        )
        return finetune_detection(cfg, source=in_memory_source())

    single = run("single", steps=2, accumulate=1)
    accumulated = run("accumulated", steps=1, accumulate=2)
    assert sorted(accumulated.losses) == [1]
    assert accumulated.losses[1] == pytest.approx((single.losses[1] + single.losses[2]) / 2, rel=1e-5)
