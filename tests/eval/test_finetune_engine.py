"""Fine-tuning on the run engine: exact resume (also after kill -9), refused resumes, Ctrl-C, bf16,
accumulation, CPU threads."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from test_eval_finetune import tiny_config

from ppkt.cli import main
from ppkt.engine import RunInterrupted, latest_checkpoint, load_checkpoint
from ppkt.eval.finetune import finetune
from ppkt.utils.weights import load_weights

HERE = Path(__file__).parent


def resumable_config(tmp_path: Path, name: str, **run):
    """4 training rooms, batch 1: an epoch is 4 steps; the head trains alone for 4 steps first."""
    cfg = tiny_config(tmp_path, kind="scenes", budget=1.0, seed=1)
    return replace(
        cfg,
        optim=replace(cfg.optim, steps=7, head_warmup_steps=4),
        run=replace(cfg.run, out=tmp_path / name, eval_every=3, deterministic=True, tensorboard=False, **run),
    )


def _train_losses(run: Path) -> dict[int, float]:
    events = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    steps = [e["step"] for e in events if e["event"] == "train"]
    assert len(steps) == len(set(steps)), steps  # every step logged once
    return {e["step"]: e["loss"] for e in events if e["event"] == "train"}


def _same_files(a: Path, b: Path) -> None:
    for name in ("best.safetensors", "last.safetensors"):
        wa, _ = load_weights(a / "checkpoints" / name)
        wb, _ = load_weights(b / "checkpoints" / name)
        assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa), name
    ma, mb = (json.loads((run / "metrics.json").read_text()) for run in (a, b))
    assert ma["best"] == mb["best"] and ma["last"] == mb["last"] and ma["best_step"] == mb["best_step"]


def test_interrupted_and_resumed_run_repeats_the_uninterrupted_one(tmp_path, rooms_source, monkeypatch):
    full = finetune(resumable_config(tmp_path, "full", checkpoint_every=3), source=rooms_source)
    calls = {"n": 0}
    real = F.cross_entropy

    def interrupt_at_step_5(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(F, "cross_entropy", interrupt_at_step_5)
    cfg = resumable_config(tmp_path, "cut", checkpoint_every=3)
    with pytest.raises(RunInterrupted) as err:
        finetune(cfg, source=rooms_source)
    assert str(err.value) == f"interrupted at step 5; resume with: ppkt finetune --resume {cfg.run.out}"
    monkeypatch.setattr(F, "cross_entropy", real)
    assert latest_checkpoint(cfg.run.out).name == "step_00000003"
    resumed = finetune(cfg, source=rooms_source, resume=True)
    assert sorted(resumed.losses) == [4, 5, 6, 7]  # mid-epoch, across an epoch end and the backbone release
    for step in (4, 5, 6, 7):
        assert resumed.losses[step] == full.losses[step], step
    assert _train_losses(cfg.run.out) == _train_losses(full.run_dir)
    _same_files(full.run_dir, cfg.run.out)
    assert resumed.best_step == full.best_step and resumed.best.miou == full.best.miou


def test_resume_below_the_checkpoint_step_is_an_error(tmp_path, rooms_source, capsys):
    cfg = resumable_config(tmp_path, "run", checkpoint_every=3)
    cfg = replace(cfg, optim=replace(cfg.optim, steps=3))
    finetune(cfg, source=rooms_source)
    saved = (cfg.run.out / "config.yaml").read_text()
    with pytest.raises(ValueError, match="at step 3 and optim.steps is 2"):
        finetune(replace(cfg, optim=replace(cfg.optim, steps=2)), source=rooms_source, resume=True)
    assert main(["finetune", "--resume", str(cfg.run.out), "--optim.steps", "2"]) == 2
    assert "raise optim.steps" in capsys.readouterr().err
    assert (cfg.run.out / "config.yaml").read_text() == saved
    for option, value in (("--optim.accumulate", "2"), ("--optim.batch_size", "7"), ("--run.seed", "9")):
        assert main(["finetune", "--resume", str(cfg.run.out), option, value, "--optim.steps", "4"]) == 2
        assert f"keeps {option[2:]}" in capsys.readouterr().err
    assert (cfg.run.out / "config.yaml").read_text() == saved
    with pytest.raises(FileNotFoundError, match="nothing to resume"):
        finetune(replace(cfg, run=replace(cfg.run, out=tmp_path / "empty")), source=rooms_source, resume=True)


def test_bf16_and_accumulation_and_threads(tmp_path, rooms_source, monkeypatch):
    threads = []
    real_set = torch.set_num_threads
    monkeypatch.setattr(torch, "set_num_threads", lambda n: (threads.append(n), real_set(n)))
    base = tiny_config(tmp_path, kind="scenes", budget=1.0, seed=1)
    fp32 = finetune(replace(base, run=replace(base.run, out=tmp_path / "fp32")), source=rooms_source)
    bf16 = finetune(
        replace(base, run=replace(base.run, out=tmp_path / "bf16", precision="bf16", cpu_threads=1)),
        source=rooms_source,
    )
    assert bf16.losses != fp32.losses
    for step in fp32.losses:
        assert bf16.losses[step] == pytest.approx(fp32.losses[step], rel=0.05)
    assert threads[:1] == [1]  # run.cpu_threads reached torch first thing (fp32 left the default alone)
    accumulated = finetune(
        replace(base, optim=replace(base.optim, accumulate=2), run=replace(base.run, out=tmp_path / "acc")),
        source=rooms_source,
    )
    assert sorted(accumulated.losses) == [1, 2, 3]
    assert accumulated.losses[1] != fp32.losses[1]  # two scenes per step, not one


SCRIPT = """
import sys, torch
sys.path.insert(0, {here!r})
torch.set_num_threads(1)
from dataclasses import replace
from pathlib import Path
from eval_rooms import rooms_source_fixture
from test_finetune_engine import resumable_config
from ppkt.eval.finetune import finetune
cfg = resumable_config(Path({tmp!r}), {name!r}, checkpoint_every=1)
cfg = replace(cfg, optim=replace(cfg.optim, steps={steps}), run=replace(cfg.run, eval_every=1000))
finetune(cfg, source=rooms_source_fixture(), resume={resume})
"""


def _start(tmp: Path, name: str, steps: int, resume: bool) -> subprocess.Popen:
    code = SCRIPT.format(here=str(HERE), tmp=str(tmp), name=name, steps=steps, resume=resume)
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


@pytest.mark.slow
def test_sigkill_then_resume_reproduces_the_uninterrupted_run(tmp_path):
    steps = 16
    killed = _start(tmp_path, "killed", steps, resume=False)
    full = _start(tmp_path, "full", steps, resume=False)
    try:
        deadline = time.time() + 120
        # Checkpoints every step: the kill lands while one is being written, or between two.
        while time.time() < deadline and not (tmp_path / "killed" / "checkpoints" / "step_00000005").exists():
            time.sleep(0.02)
        assert killed.poll() is None, killed.stderr.read().decode()
        os.kill(killed.pid, signal.SIGKILL)
        killed.wait(timeout=30)
    finally:
        if killed.poll() is None:
            killed.kill()
    _, state = load_checkpoint(latest_checkpoint(tmp_path / "killed"))
    assert 4 <= state.step < steps  # step 5's folder may be complete before `latest` names it
    resumed = _start(tmp_path, "killed", steps, resume=True)
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read().decode()
    assert full.wait(timeout=300) == 0, full.stderr.read().decode()
    assert _train_losses(tmp_path / "killed") == _train_losses(tmp_path / "full")
    _same_files(tmp_path / "full", tmp_path / "killed")


def test_the_preset_table_of_the_docs_matches_the_presets():
    """docs/evaluation.md once said 200 steps for presets that run 300: the table is checked now."""
    import re

    from ppkt.eval.presets import PRESETS, get_preset

    docs = (HERE.parents[1] / "docs" / "evaluation.md").read_text()
    rows = {}
    for match in re.finditer(r"^\| `([\w-]+)` \|[^|]*\|[^|]*\| \d+ \| ([\d.]+k?) \|", docs, re.M):
        rows[match[1]] = match[2]
    assert {"demo-finetune", "finetune-scannet"} <= set(rows) <= set(PRESETS), rows
    for name, steps in rows.items():
        written = float(steps[:-1]) * 1000 if steps.endswith("k") else float(steps)
        assert written == get_preset(name).optim.steps, name


def test_a_fresh_run_never_deletes_an_earlier_runs_checkpoints(tmp_path, rooms_source, capsys):
    """A forgotten --resume is refused (the earlier run's checkpoints stay); overwrite=True, which the
    benchmark protocols pass for runs they redo, starts over."""
    cfg = resumable_config(tmp_path, "run", checkpoint_every=1)
    cfg = replace(cfg, optim=replace(cfg.optim, steps=2))
    finetune(cfg, source=rooms_source)
    steps = sorted(p.name for p in (cfg.run.out / "checkpoints").glob("step_*"))
    assert steps
    with pytest.raises(FileExistsError, match="--resume"):
        finetune(cfg, source=rooms_source)
    assert sorted(p.name for p in (cfg.run.out / "checkpoints").glob("step_*")) == steps
    assert main(["finetune", "--config", str(cfg.run.out / "config.yaml")]) == 2
    assert "already holds a run's step checkpoints" in capsys.readouterr().err
    assert finetune(cfg, source=rooms_source, overwrite=True).best_step == 2


def test_a_skipped_micro_batch_leaves_the_step_the_mean_of_the_used_ones(tmp_path, rooms_source, monkeypatch):
    """accumulate=2 where the second micro-batch has no labelled voxel: the step equals one step on
    the first micro-batch alone (accumulate=1), not half of it."""
    import ppkt.eval.training_loop as loop
    from ppkt.data.types import IGNORE_LABEL

    real = loop.train_batches
    taken = []

    def recording(*args, **kwargs):
        for batch in real(*args, **kwargs):
            taken.append(batch)
            yield batch

    base = tiny_config(tmp_path, kind="scenes", budget=1.0, seed=1)
    base = replace(base, optim=replace(base.optim, steps=1), run=replace(base.run, eval_every=1))
    monkeypatch.setattr(loop, "train_batches", recording)
    single = finetune(replace(base, run=replace(base.run, out=tmp_path / "one")), source=rooms_source)
    first = taken[0]
    unlabelled = replace(first, voxel_labels=torch.full_like(first.voxel_labels, IGNORE_LABEL))
    monkeypatch.setattr(loop, "train_batches", lambda *args, **kwargs: iter([first, unlabelled]))
    accumulated = finetune(
        replace(base, optim=replace(base.optim, accumulate=2), run=replace(base.run, out=tmp_path / "two")),
        source=rooms_source,
    )
    assert accumulated.losses == single.losses
    one, _ = load_weights(tmp_path / "one" / "checkpoints" / "last.safetensors")
    two, _ = load_weights(tmp_path / "two" / "checkpoints" / "last.safetensors")
    for key in one:
        assert torch.allclose(one[key], two[key], atol=1e-6), key
