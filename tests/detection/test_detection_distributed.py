"""Detection fine-tuning under torchrun-style DDP (two gloo processes on CPU), as segmentation's."""

from __future__ import annotations

import os
import socket
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

HERE = Path(__file__).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, out: str) -> None:
    sys.path.insert(0, str(HERE))
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        WORLD_SIZE=str(world),
        LOCAL_RANK=str(rank),
    )
    torch.set_num_threads(1)
    import torch.distributed as dist
    from test_detection_loop import in_memory_source, tiny_config

    from ppkt.eval.detection.loop import finetune_detection

    cfg = tiny_config(Path(out), steps=2)
    cfg = replace(
        cfg,
        model=replace(cfg.model, sync_batchnorm=True),
        optim=replace(cfg.optim, batch_size=1),
        run=replace(cfg.run, eval_every=2, tensorboard=False),
    )
    try:
        result = finetune_detection(cfg, source=in_memory_source())
        state = {k: v.detach().clone() for k, v in result.model.state_dict().items()}
        torch.save(
            {"losses": result.losses, "map": result.last.map(0.25), "state": state},
            Path(out) / f"rank{rank}.pt",
        )
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


@pytest.mark.distributed
def test_two_processes_train_one_detection_model(tmp_path):
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2))
    assert r0["state"].keys() == r1["state"].keys()
    for key in r0["state"]:  # parameters and the backbone's (synchronised) batch-norm statistics
        # The head's dense batch norms are not synchronised: DDP hands rank 0's statistics to every
        # rank before each forward, and rank 0's are the ones saved (docs/detection.md).
        if key.startswith("head.") and ("running_" in key or "num_batches" in key):
            continue
        assert torch.equal(r0["state"][key], r1["state"][key]), key
    assert sorted(r0["losses"]) == [1, 2] and r0["losses"] != r1["losses"]  # each rank its own room
    assert r0["map"] == r1["map"] or (r0["map"] != r0["map"] and r1["map"] != r1["map"])  # NaN on both
    run = tmp_path / "run"
    assert (run / "checkpoints" / "latest").read_text().strip() == "step_00000002"
