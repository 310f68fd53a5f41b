"""The run engine's parts on their own: schedule, metrics log, checkpoints, guards, run folders, precision."""

from __future__ import annotations

import json
import math
import os
import shutil
import stat
import subprocess
import sys

import pytest
import torch

from ppkt.engine import (
    MetricsLog,
    NonFiniteError,
    Precision,
    RunFolder,
    RunInterrupted,
    RunLockedError,
    TrainingState,
    check_finite_file,
    first_non_finite,
    latest_checkpoint,
    load_checkpoint,
    lr_factor,
    save_checkpoint,
    training_state_problem,
)
from ppkt.engine.runtime import resolve_device


# --------------------------------------------------------------------------------------- schedule
def test_schedule_hand_values():
    assert lr_factor(0, 10, warmup=4) == 0.25 and lr_factor(3, 10, warmup=4) == 1.0
    assert lr_factor(4, 10, warmup=4, schedule="cosine") == 1.0
    assert lr_factor(7, 10, warmup=4, schedule="cosine") == pytest.approx(0.5)  # half-way after warm-up
    assert lr_factor(10, 10, schedule="cosine") == pytest.approx(0.0, abs=1e-12)
    assert lr_factor(5, 10, schedule="poly", power=2.0) == pytest.approx(0.25)
    assert lr_factor(20, 10, schedule="poly") == 0.0  # clipped past the end
    assert lr_factor(5, 10, schedule="constant") == 1.0
    with pytest.raises(ValueError, match="unknown learning-rate schedule 'step'"):
        lr_factor(0, 10, schedule="step")


@pytest.mark.parametrize("schedule", ["poly", "cosine", "constant"])
def test_schedule_equals_the_fine_tuning_formula_it_replaced(schedule):
    """Without warm-up it is exactly (bit for bit) the old fine-tuning factor."""

    def old(step, steps, power=0.9):
        progress = min(step / max(steps, 1), 1.0)
        if schedule == "poly":
            return (1.0 - progress) ** power
        if schedule == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * progress))
        return 1.0

    for step in range(0, 40):
        assert lr_factor(step, 37, schedule=schedule, power=0.9) == old(step, 37)


# ---------------------------------------------------------------------------------------- metrics
def test_metrics_log_starts_fresh_and_truncates_on_resume(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text('{"step": 99}\n')
    log = MetricsLog(path)
    log.write({"event": "split", "n": 2})
    for step in (1, 2, 3):
        log.write({"step": step, "loss": 1.0 / step})
    log.close()
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [rec.get("step") for rec in lines] == [None, 1, 2, 3]  # the earlier run's line is gone
    resumed = MetricsLog(path, resume_step=2)
    resumed.write({"step": 3, "loss": 0.5})
    resumed.close()
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [rec.get("step") for rec in lines] == [None, 1, 2, 3] and lines[-1]["loss"] == 0.5
    off = MetricsLog(tmp_path / "rank1.jsonl", enabled=False)
    off.write({"step": 1})
    off.close()
    assert not (tmp_path / "rank1.jsonl").exists()


# ------------------------------------------------------------------------------------ checkpoints
def _state(step: int) -> TrainingState:
    return TrainingState(step, {"state": {}}, {}, torch.get_rng_state(), [], step, 1, loop={"epoch": 3})


def test_checkpoints_have_normal_permissions_and_survive_a_move(tmp_path):
    run = tmp_path / "run"
    for step in (1, 2, 3):
        save_checkpoint(run, {"w": torch.full((2,), float(step))}, _state(step), keep=2)
    folders = sorted(p.name for p in (run / "checkpoints").iterdir() if p.is_dir())
    assert folders == ["step_00000002", "step_00000003"]
    umask = os.umask(0)
    os.umask(umask)
    mode = stat.S_IMODE((run / "checkpoints" / "step_00000003").stat().st_mode)
    assert mode == 0o777 & ~umask and mode != 0o700
    moved = tmp_path / "elsewhere" / "run"
    shutil.move(str(run), str(moved))
    weights, state = load_checkpoint(latest_checkpoint(moved))
    assert state.step == 3 and state.loop == {"epoch": 3} and torch.equal(weights["w"], torch.full((2,), 3.0))


def test_old_training_states_without_the_new_fields_still_load(tmp_path):
    folder = save_checkpoint(tmp_path, {"w": torch.zeros(1)}, _state(1))
    raw = torch.load(folder / "state.pt", weights_only=True)
    del raw["scaler"], raw["loop"]
    torch.save(raw, folder / "state.pt")
    _, state = load_checkpoint(folder)
    assert state.scaler == {} and state.loop == {}


# ----------------------------------------------------------------------------------------- guards
def test_first_non_finite_names_the_first_bad_tensor_in_nested_state():
    state = {"a": torch.ones(2), "b": {"momentum": [torch.zeros(1), torch.tensor([1.0, math.inf])]}}
    assert first_non_finite(state) == "b.momentum.1"
    assert first_non_finite({"ok": torch.ones(3), "ints": torch.tensor([1, 2])}) is None


def test_training_state_problem_sees_buffers_and_optimiser_state():
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.randn(4, 2)).sum().backward()
    optimizer.step()
    assert training_state_problem(model, optimizer) is None
    model[1].running_var[0] = math.inf
    assert training_state_problem(model, optimizer) == "buffer 1.running_var"
    model[1].running_var.fill_(1.0)
    next(iter(optimizer.state.values()))["momentum_buffer"][0] = math.nan
    assert training_state_problem(model, optimizer).startswith("optimiser state")


def test_check_finite_file_names_file_and_tensor(tmp_path):
    check_finite_file(tmp_path / "ok.safetensors", {"x": torch.ones(2)})
    with pytest.raises(NonFiniteError, match=r"bad\.safetensors: tensor layer\.weight holds NaN/inf"):
        check_finite_file(tmp_path / "bad.safetensors", {"a": torch.ones(1), "layer.weight": torch.tensor([math.nan])})
    assert issubclass(NonFiniteError, FloatingPointError)


# ------------------------------------------------------------------------------------ run folders
def test_run_folder_lock_refuses_a_second_writer_naming_the_holder(tmp_path):
    run = tmp_path / "run"
    with RunFolder(run):
        with pytest.raises(RunLockedError, match=rf"in use by pid {os.getpid()} on "):
            with RunFolder(run):
                pass
    with RunFolder(run):  # released
        pass


def test_run_folder_lock_held_by_another_process(tmp_path):
    run = tmp_path / "run"
    code = (
        "import sys, time; from ppkt.engine import RunFolder\n"
        f"with RunFolder({str(run)!r}):\n    print('locked', flush=True); time.sleep(30)\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunLockedError, match=rf"pid {holder.pid} on"):
            with RunFolder(run):
                pass
    finally:
        holder.kill()
        holder.wait()
    with RunFolder(run):  # the operating system released the dead holder's lock
        pass


def test_run_folder_removes_only_a_folder_it_created_for_a_run_that_never_stepped(tmp_path):
    created = tmp_path / "new"
    with pytest.raises(RuntimeError), RunFolder(created):
        (created / "config.yaml").write_text("x")
        raise RuntimeError("failed before the first step")
    assert not created.exists()
    existing = tmp_path / "existing"
    existing.mkdir()
    with pytest.raises(RuntimeError), RunFolder(existing):
        raise RuntimeError("boom")
    assert existing.is_dir()
    started = tmp_path / "started"
    with pytest.raises(RuntimeError), RunFolder(started) as folder:
        folder.mark_started()
        raise RuntimeError("boom after step 1")
    assert started.is_dir()


def test_run_interrupted_is_a_one_line_keyboard_interrupt():
    err = RunInterrupted(7, "ppkt pretrain --resume runs/x")
    assert isinstance(err, KeyboardInterrupt)
    assert str(err) == "interrupted at step 7; resume with: ppkt pretrain --resume runs/x"
    assert "nothing to resume" in str(RunInterrupted(0, None)) and "\n" not in str(err)


# -------------------------------------------------------------------------------------- precision
def test_accumulated_micro_batches_give_the_large_batch_gradient():
    torch.manual_seed(0)
    x, y = torch.randn(8, 5), torch.randn(8, 3)
    big = torch.nn.Linear(5, 3)
    small = torch.nn.Linear(5, 3)
    small.load_state_dict(big.state_dict())
    fp32 = Precision("fp32", torch.device("cpu"))
    fp32.backward(torch.nn.functional.mse_loss(big(x), y))
    for part in (slice(0, 4), slice(4, 8)):
        fp32.backward(torch.nn.functional.mse_loss(small(x[part]), y[part]), accumulate=2)
    for a, b in zip(big.parameters(), small.parameters(), strict=True):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-5, atol=1e-6)
    half = torch.nn.Linear(5, 3)
    half.load_state_dict(big.state_dict())
    fp32.backward(torch.nn.functional.mse_loss(half(x[:4]), y[:4]), accumulate=1)
    assert not torch.allclose(half.weight.grad, big.weight.grad)  # the comparison can fail


def test_bf16_autocast_on_cpu_and_fp32_is_untouched():
    layer = torch.nn.Linear(4, 4)
    with Precision("bf16", torch.device("cpu")).autocast():
        assert layer(torch.randn(2, 4)).dtype == torch.bfloat16
    with Precision("fp32", torch.device("cpu")).autocast():
        assert layer(torch.randn(2, 4)).dtype == torch.float32
    with pytest.raises(ValueError, match="run.precision"):
        Precision("fp8", torch.device("cpu"))


def test_fp16_scaler_skips_an_overflowing_step_and_round_trips():
    p = torch.nn.Parameter(torch.ones(2))
    optimizer = torch.optim.SGD([p], lr=0.1)
    fp16 = Precision("fp16", torch.device("cpu"))
    fp16.backward((p * torch.tensor([math.inf, 1.0])).sum())
    fp16.step(optimizer, [p])
    assert torch.equal(p.detach(), torch.ones(2))  # skipped, not poisoned
    state = fp16.state_dict()
    again = Precision("fp16", torch.device("cpu"))
    again.load_state_dict(state)
    assert again.state_dict()["scale"] == state["scale"] < 65536.0


def test_auto_device_resolves_here():
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == torch.device("cpu")


def test_resume_overrides_point_run_out_at_the_folder_given(tmp_path):
    from ppkt.engine.rundir import resume_overrides

    assert resume_overrides(tmp_path / "moved", {"optim.steps": "9"}) == {
        "optim.steps": "9",
        "run.out": str(tmp_path / "moved"),
    }
    assert resume_overrides(tmp_path / "r", {"run.out": str(tmp_path / "r")})["run.out"] == str(tmp_path / "r")
    with pytest.raises(ValueError, match="drop --run.out"):
        resume_overrides(tmp_path / "r", {"run.out": str(tmp_path / "other")})


def test_a_bare_cuda_device_gets_the_current_index(monkeypatch):
    """torch.cuda.set_device refuses a device without an index (measured on an H200 with torch 2.11:
    every loop failed at start with --run.device cuda); the runtime names the current device."""
    from ppkt.engine.runtime import resolve_device

    set_to = []

    def set_device(device):
        if isinstance(device, torch.device) and device.index is None:
            raise ValueError("Expected a torch.device with a specified index")
        set_to.append(device)

    monkeypatch.setattr(torch.cuda, "set_device", set_device)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    assert resolve_device("cuda") == torch.device("cuda", 0)
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    assert set_to == [torch.device("cuda", 0), torch.device("cuda", 1)]
