import json
import math

import pytest
import torch
from train_fixtures import make_frame

from ppkt.config import apply_overrides, load_config
from ppkt.losses import PointInfoNCE
from ppkt.train.batch import Collator
from ppkt.train.checkpoint import latest_checkpoint, load_checkpoint
from ppkt.train.config import PretrainConfig
from ppkt.train.dataset import PretrainDataset
from ppkt.train.loop import NonFiniteLossError, pretrain
from ppkt.train.model import build_model
from ppkt.train.presets import PRESETS, get_preset
from tiny_pretrain import tiny_config


@pytest.fixture
def frames():
    return [make_frame(seed=i, name=f"{i:06d}") for i in range(6)]


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_resolves_and_round_trips(name, tmp_path):
    from ppkt.config import save_config
    from ppkt.train.config import validate

    cfg = get_preset(name)
    validate(cfg)
    save_config(cfg, tmp_path / "config.yaml")
    assert load_config(PretrainConfig, tmp_path / "config.yaml") == cfg
    changed = apply_overrides(cfg, {"loss.tau": "0.07", "run.out": "runs/x", "augment.crop_hw": "none"})
    assert changed.loss.tau == 0.07 and str(changed.run.out) == "runs/x"


def test_paper_preset_values():
    cfg = get_preset("paper")
    assert (cfg.loss.tau, cfg.loss.num_pairs, cfg.loss.embedding_dim) == (0.04, 4096, 128)
    assert (cfg.optim.lr, cfg.optim.momentum, cfg.optim.weight_decay) == (0.5, 0.9, 1e-4)
    assert (cfg.optim.batch_size, cfg.optim.steps, cfg.model.voxel_size) == (24, 60000, 0.025)
    assert cfg.model.backbone == "res16unet34" and cfg.teacher.name == "resnet50"
    assert cfg.data.frame_skip == 25


def test_demo_smoke_run_two_steps(tmp_path, frames):
    cfg = tiny_config(tmp_path / "run", **{"optim.steps": "2"})
    result = pretrain(cfg, frames=frames)
    assert result.step == 2 and len(result.losses) == 2
    assert all(math.isfinite(v) for v in result.losses.values())
    # Near log(N) at the start: random features cannot tell pairs apart.
    assert 0.5 * math.log(64) < result.losses[1] < 2 * math.log(64)
    run = tmp_path / "run"
    assert load_config(PretrainConfig, run / "config.yaml") == cfg
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [rec["step"] for rec in lines] == [1, 2]
    assert {"loss", "lr", "steps_per_s", "data_s", "pairs"} <= set(lines[0])
    weights, state = load_checkpoint(latest_checkpoint(run))
    assert state.step == 2 and any(k.startswith("backbone.") for k in weights)
    with pytest.raises(FileExistsError, match="--resume"):
        pretrain(cfg, frames=frames)


def test_resume_reproduces_uninterrupted_losses(tmp_path, frames):
    extra = {"optim.steps": "6", "run.checkpoint_every": "3", "run.deterministic": "true"}
    full = pretrain(tiny_config(tmp_path / "a", **extra), frames=frames)
    assert sorted(full.losses) == [1, 2, 3, 4, 5, 6]
    crashed_cfg = tiny_config(tmp_path / "b", **extra)
    crashed = pretrain(crashed_cfg, frames=frames, abort_after_step=4)
    assert crashed.step == 4 and latest_checkpoint(tmp_path / "b").name == "step_00000003"
    resumed = pretrain(crashed_cfg, frames=frames, resume=True)
    assert sorted(resumed.losses) == [4, 5, 6]
    for step in (4, 5, 6):
        assert resumed.losses[step] == full.losses[step], step
    for step in (1, 2, 3):
        assert crashed.losses[step] == full.losses[step]
    wa, _ = load_checkpoint(latest_checkpoint(tmp_path / "a"))
    wb, _ = load_checkpoint(latest_checkpoint(tmp_path / "b"))
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    # metrics.jsonl holds each step once: the aborted step 4 line was dropped on resume.
    steps = [json.loads(line)["step"] for line in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5, 6]


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path, frames, monkeypatch):
    calls = {"n": 0}
    real_forward = PointInfoNCE.forward

    def poisoned(self, *args, **kwargs):
        calls["n"] += 1
        loss = real_forward(self, *args, **kwargs)
        return loss * float("nan") if calls["n"] == 3 else loss

    monkeypatch.setattr(PointInfoNCE, "forward", poisoned)
    cfg = tiny_config(tmp_path / "run", **{"optim.steps": "5", "run.checkpoint_every": "1"})
    with pytest.raises(NonFiniteLossError, match="step 3.*Last good checkpoint.*step_00000002"):
        pretrain(cfg, frames=frames)
    weights, state = load_checkpoint(latest_checkpoint(tmp_path / "run"))
    assert state.step == 2
    assert all(torch.isfinite(v).all() for v in weights.values() if v.is_floating_point())


def test_only_3d_side_and_projections_learn(frames):
    cfg = tiny_config("unused")
    model = build_model(cfg)
    teacher_before = {k: v.clone() for k, v in model.teacher.state_dict().items()}
    assert not any(p.requires_grad for p in model.teacher.parameters())
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(n.split(".")[0] in ("backbone", "head", "upl") for n in trainable)
    backbone_before = {k: v.clone() for k, v in model.backbone.state_dict().items()}
    dataset = PretrainDataset(frames, cfg.data, cfg.augment, "rgb", seed=0)
    batch = Collator(cfg.model.voxel_size)([dataset[(0, 0)], dataset[(1, 0)]])
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    model.train()
    emb = model(batch)
    loss = PointInfoNCE(0.07)(emb.points, emb.pixels)
    loss.backward()
    assert all(p.grad is None for p in model.teacher.parameters())
    assert model.upl.proj.weight.grad is not None and model.head.linear.weight.grad is not None
    optimizer.step()
    assert all(torch.equal(teacher_before[k], v) for k, v in model.teacher.state_dict().items())
    changed = [k for k, v in model.backbone.state_dict().items() if not torch.equal(backbone_before[k], v)]
    assert changed
