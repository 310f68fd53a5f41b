"""Pretraining on the run engine: guards, run folders, Ctrl-C, precision, accumulation, export checks."""

from __future__ import annotations

import json
import math
import re
import shutil

import pytest
import torch

from ppkt.backbones.card import load_card, tensors_sha256
from ppkt.cli import main
from ppkt.config import load_config
from ppkt.engine import NonFiniteError, RunFolder, RunInterrupted, RunLockedError, first_non_finite
from ppkt.losses import PointInfoNCE
from ppkt.train.checkpoint import latest_checkpoint, load_checkpoint
from ppkt.train.config import PretrainConfig
from ppkt.train.export import export_backbone
from ppkt.train.loop import pretrain
from ppkt.utils.weights import load_weights, save_weights
from tiny_pretrain import tiny_config


def test_poisoned_learning_rate_leaves_a_finite_last_good_checkpoint(tmp_path, frames):
    """lr 1e6 blows up batch-norm statistics: the damaged state is refused, the checkpoints kept are clean."""
    cfg = tiny_config(
        tmp_path / "run",
        **{"optim.steps": "8", "optim.lr": "1e6", "run.checkpoint_every": "1", "run.keep_checkpoints": "2"},
    )
    with pytest.raises(NonFiniteError, match=r"NaN/inf.*Last good checkpoint") as err:
        pretrain(cfg, frames=frames)
    last = latest_checkpoint(tmp_path / "run")
    assert last is not None and last.name in str(err.value)
    for folder in (tmp_path / "run" / "checkpoints").glob("step_*"):
        weights, state = load_checkpoint(folder)
        assert first_non_finite(weights) is None and first_non_finite(state.optimizer) is None, folder
    export_backbone(tmp_path / "run", tmp_path / "bb.safetensors")  # the last good one exports


def _poison(path, key=None):
    weights, meta = load_weights(path)
    key = key or sorted(k for k in weights if weights[k].is_floating_point())[0]
    weights[key] = weights[key].clone()
    weights[key].view(-1)[0] = math.nan
    save_weights(weights, path, metadata=meta)
    return weights, key


@pytest.fixture
def short_run(tmp_path, frames):
    out = tmp_path / "run"
    pretrain(tiny_config(out, **{"optim.steps": "2"}), frames=frames)
    return out


def test_export_refuses_a_checkpoint_with_nan_naming_file_and_tensor(short_run, tmp_path, capsys):
    ckpt = latest_checkpoint(short_run)
    _, key = _poison(ckpt / "model.safetensors", "backbone.bn0.running_var")
    with pytest.raises(NonFiniteError, match=r"model\.safetensors: tensor " + re.escape(key) + " holds NaN"):
        export_backbone(short_run, tmp_path / "bb.safetensors")
    assert main(["export", str(short_run), "--out", str(tmp_path / "bb.safetensors")]) == 2
    assert "backbone.bn0.running_var" in capsys.readouterr().err
    assert not (tmp_path / "bb.safetensors").exists()


def test_init_refuses_an_exported_backbone_with_nan(short_run, tmp_path):
    from ppkt.config import apply_overrides
    from ppkt.eval.model import build_model, load_pretrained_backbone
    from ppkt.eval.presets import get_preset

    out, card = export_backbone(short_run, tmp_path / "bb.safetensors")
    weights, key = _poison(out)
    card_path = out.with_suffix(".json")
    data = json.loads(card_path.read_text())
    data["weights_sha256"] = tensors_sha256(weights)  # a damaged file whose card agrees with it
    card_path.write_text(json.dumps(data))
    assert load_card(out).weights_sha256 == data["weights_sha256"]
    cfg = apply_overrides(
        get_preset("demo-finetune"),
        {"model.backbone": card.spec.backbone, "model.width": str(card.spec.width),
         "model.voxel_size": str(card.spec.voxel_size)},  # fmt: skip
    )
    with pytest.raises(NonFiniteError, match=r"bb\.safetensors: tensor " + re.escape(key)):
        load_pretrained_backbone(build_model(cfg), out, cfg)


def test_a_second_writer_is_refused_naming_the_holder(tmp_path, frames, capsys):
    run = tmp_path / "run"
    with RunFolder(run):
        with pytest.raises(RunLockedError, match="in use by pid"):
            pretrain(tiny_config(run, **{"optim.steps": "1"}), frames=frames)
        assert main(["pretrain", "--run.out", str(run), "--optim.steps", "1", "--run.progress", "false"]) == 2
        assert "in use by pid" in capsys.readouterr().err
    assert not (run / "checkpoints").exists() and not (run / "metrics.jsonl").exists()


def test_refused_resume_keeps_config_and_a_moved_folder_resumes(tmp_path, frames, monkeypatch, capsys):
    import ppkt.train.loop as loop

    monkeypatch.setattr(loop, "build_frames", lambda cfg, info=None: frames)
    run = tmp_path / "run"
    cfg = tiny_config(run, **{"optim.steps": "4", "run.stop_after": "2", "run.checkpoint_every": "1"})
    pretrain(cfg, frames=frames)
    saved = (run / "config.yaml").read_text()
    assert main(["pretrain", "--resume", str(run), "--optim.steps", "1"]) == 2
    assert "has already done 2 steps" in capsys.readouterr().err
    assert (run / "config.yaml").read_text() == saved  # the refused resume changed nothing
    # Options that fixed the data of the steps already taken cannot change on resume.
    assert main(["pretrain", "--resume", str(run), "--optim.accumulate", "2"]) == 2
    assert "keeps optim.accumulate 1" in capsys.readouterr().err
    assert (run / "config.yaml").read_text() == saved
    moved = tmp_path / "moved" / "run"
    shutil.copytree(run, moved)
    shutil.rmtree(run)
    assert main(["pretrain", "--resume", str(moved), "--run.stop_after", "none"]) == 0
    assert load_checkpoint(latest_checkpoint(moved))[1].step == 4
    assert load_config(PretrainConfig, moved / "config.yaml").run.out == moved


def test_a_run_failing_before_its_first_step_leaves_no_folder(tmp_path, frames):
    run = tmp_path / "never"
    # Valid config, but the teacher's weight file is missing: the run fails while building its model.
    missing = tmp_path / "no-such-weights.pth"
    with pytest.raises(FileNotFoundError, match="no-such-weights"):
        pretrain(tiny_config(run, **{"teacher.name": "resnet18", "teacher.weights": str(missing)}), frames=frames)
    assert not run.exists()


def test_ctrl_c_closes_the_run_and_says_how_to_resume(tmp_path, frames, monkeypatch):
    calls = {"n": 0}
    real_forward = PointInfoNCE.forward

    def interrupted(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real_forward(self, *args, **kwargs)

    monkeypatch.setattr(PointInfoNCE, "forward", interrupted)
    run = tmp_path / "run"
    with pytest.raises(RunInterrupted) as err:
        pretrain(tiny_config(run, **{"optim.steps": "5", "run.checkpoint_every": "1"}), frames=frames)
    assert str(err.value) == f"interrupted at step 2; resume with: ppkt pretrain --resume {run}"
    with RunFolder(run):  # the lock was released
        pass
    monkeypatch.setattr(PointInfoNCE, "forward", real_forward)
    assert pretrain(tiny_config(run, **{"optim.steps": "5"}), frames=frames, resume=True).step == 5


def test_bf16_pretraining_runs_close_to_fp32(tmp_path, frames):
    fp32 = pretrain(tiny_config(tmp_path / "a", **{"optim.steps": "2"}), frames=frames)
    bf16 = pretrain(tiny_config(tmp_path / "b", **{"optim.steps": "2", "run.precision": "bf16"}), frames=frames)
    assert bf16.losses != fp32.losses  # autocast really ran in bfloat16
    for step in (1, 2):
        assert bf16.losses[step] == pytest.approx(fp32.losses[step], rel=0.03)
    weights, _ = load_checkpoint(latest_checkpoint(tmp_path / "b"))
    assert all(v.dtype != torch.bfloat16 for v in weights.values())  # the weights stay fp32


def test_bf16_loss_is_computed_in_fp32_outside_autocast(tmp_path, frames, monkeypatch):
    seen = []
    real_forward = PointInfoNCE.forward

    def recording(self, points, pixels, *args, **kwargs):
        seen.append((points.dtype, pixels.dtype, torch.is_autocast_enabled("cpu")))
        return real_forward(self, points, pixels, *args, **kwargs)

    monkeypatch.setattr(PointInfoNCE, "forward", recording)
    result = pretrain(tiny_config(tmp_path / "b", **{"optim.steps": "1", "run.precision": "bf16"}), frames=frames)
    assert seen == [(torch.float32, torch.float32, False)]
    assert math.isfinite(result.losses[1])


def test_accumulation_takes_accumulate_batches_per_step(tmp_path, frames):
    run = tmp_path / "run"
    result = pretrain(tiny_config(run, **{"optim.steps": "2", "optim.accumulate": "2"}), frames=frames)
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [rec["frames"] for rec in lines] == [4, 4] and result.step == 2
    assert all(math.isfinite(v) for v in result.losses.values())


def test_fp16_checkpoints_and_restores_its_gradient_scaler(tmp_path, frames, monkeypatch):
    from ppkt.engine import Precision

    run = tmp_path / "run"
    cfg = tiny_config(run, **{"optim.steps": "3", "run.stop_after": "2", "run.precision": "fp16"})
    with pytest.warns(UserWarning, match="lr_scheduler.step"):  # a step the scaler skipped
        pretrain(cfg, frames=frames)
    _, state = load_checkpoint(latest_checkpoint(run))
    assert state.scaler and 0 < state.scaler["scale"] < 65536.0  # an overflow halved the initial scale
    loaded = []
    real_load = Precision.load_state_dict

    def spy(self, saved):
        real_load(self, saved)
        loaded.append(self.scaler.get_scale())

    monkeypatch.setattr(Precision, "load_state_dict", spy)
    resumed = pretrain(tiny_config(run, **{"optim.steps": "3", "run.precision": "fp16"}), frames=frames, resume=True)
    assert sorted(resumed.losses) == [3] and math.isfinite(resumed.losses[3])
    assert loaded == [state.scaler["scale"]]  # the resumed run starts from the saved scale, not 65536


def test_a_run_folder_saved_with_the_old_student_names_resumes_and_exports(tmp_path, frames, capsys):
    """Run folders written before the spec became the ``model`` section (``student:`` in their
    config.yaml) resume and export; the resumed run saves the new names."""
    import yaml

    from ppkt.train.loop import config_with_resume

    run = tmp_path / "run"
    first = pretrain(tiny_config(run, **{"optim.steps": "2"}), frames=frames)
    saved = yaml.safe_load((run / "config.yaml").read_text())
    saved["student"] = saved.pop("model")
    (run / "config.yaml").write_text(yaml.safe_dump(saved, sort_keys=False))
    cfg = config_with_resume(run, {"optim.steps": "3"})
    assert "student.width is now model.width" in capsys.readouterr().err
    assert cfg.model.width == 0.25 and cfg.optim.steps == 3
    resumed = pretrain(cfg, frames=frames, resume=True)
    assert sorted(resumed.losses) == [3] and sorted(first.losses) == [1, 2]
    assert "model" in yaml.safe_load((run / "config.yaml").read_text())
    _, card = export_backbone(run, tmp_path / "bb.safetensors")
    assert card.spec == cfg.model.spec and card.steps == 3
