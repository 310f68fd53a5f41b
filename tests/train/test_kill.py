"""A run killed with SIGKILL keeps a complete checkpoint and resumes from it."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ppkt.train.checkpoint import latest_checkpoint, load_checkpoint

HERE = Path(__file__).parent

SCRIPT = """
import sys, torch
sys.path.insert(0, {here!r})
sys.path.insert(0, {tests!r})  # tiny_pretrain, which test_loop imports
torch.set_num_threads(1)
from train_fixtures import make_frame
from test_loop import tiny_config
from ppkt.train.loop import pretrain
frames = [make_frame(seed=i, name=f"{{i:06d}}") for i in range(6)]
extra = {{"optim.steps": "200", "run.checkpoint_every": "1", "run.keep_checkpoints": "2"}}
cfg = tiny_config({out!r}, **extra)
pretrain(cfg, frames=frames, resume={resume})
"""


def _start(out: Path, resume: bool) -> subprocess.Popen:
    code = SCRIPT.format(here=str(HERE), tests=str(HERE.parent), out=str(out), resume=resume)
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


@pytest.mark.slow
def test_sigkill_leaves_a_resumable_checkpoint(tmp_path):
    out = tmp_path / "run"
    proc = _start(out, resume=False)
    try:
        deadline = time.time() + 120
        # Kill while it is writing checkpoints every step: some kill lands during a write.
        while time.time() < deadline and not (out / "checkpoints" / "step_00000004").exists():
            time.sleep(0.05)
        assert proc.poll() is None, proc.stderr.read().decode()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    ckpt = latest_checkpoint(out)
    weights, state = load_checkpoint(ckpt)
    assert state.step >= 3 and weights
    resumed = _start(out, resume=True)
    time.sleep(0.1)
    deadline = time.time() + 120
    target = out / "checkpoints" / f"step_{state.step + 2:08d}"
    while time.time() < deadline and not target.exists() and resumed.poll() is None:
        time.sleep(0.05)
    os.kill(resumed.pid, signal.SIGKILL)
    resumed.wait(timeout=30)
    assert load_checkpoint(latest_checkpoint(out))[1].step > state.step
