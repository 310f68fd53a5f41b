import os
import socket
import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

HERE = Path(__file__).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, out: str, gather: bool, extra: dict | None = None) -> None:
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
    from test_loop import tiny_config
    from train_fixtures import make_frame

    from ppkt.train.loop import pretrain

    frames = [make_frame(seed=i, name=f"{i:06d}") for i in range(8)]
    cfg = tiny_config(
        Path(out) / "run",
        **{
            "optim.steps": "3",
            "run.checkpoint_every": "3",
            "run.device": "cpu",
            "loss.gather_distributed": str(gather),
            **(extra or {}),
        },
    )
    try:
        result = pretrain(cfg, frames=frames)
        params = {n: p.detach().clone() for n, p in result.model.named_parameters() if p.requires_grad}
        stats = {n: b.detach().clone() for n, b in result.model.backbone.named_buffers() if "running" in n}
        torch.save({"params": params, "losses": result.losses, "stats": stats}, Path(out) / f"rank{rank}.pt")
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


@pytest.mark.distributed
@pytest.mark.parametrize("gather", [pytest.param(False, marks=pytest.mark.slow), True])
def test_two_cpu_processes_keep_identical_weights(tmp_path, gather):
    port = _free_port()
    mp.spawn(_worker, args=(2, port, str(tmp_path), gather), nprocs=2, join=True)
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert r0["params"].keys() == r1["params"].keys()
    for name in r0["params"]:
        assert torch.equal(r0["params"][name], r1["params"][name]), name
    # Each rank saw its own shard, so the per-rank losses differ.
    assert r0["losses"] != r1["losses"] and sorted(r0["losses"]) == [1, 2, 3]
    # Only rank 0 wrote the run folder's checkpoint and metrics.
    assert (tmp_path / "run" / "checkpoints" / "latest").read_text().strip() == "step_00000003"
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 3


@pytest.mark.distributed
@pytest.mark.slow
def test_sync_batchnorm_gives_every_process_the_same_statistics(tmp_path):
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path), False, {"model.sync_batchnorm": "true"}), nprocs=2)
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert r0["stats"] and r0["stats"].keys() == r1["stats"].keys()
    for name in r0["stats"]:  # without sync batch norm each rank's last batch moves its own statistics
        torch.testing.assert_close(r0["stats"][name], r1["stats"][name], rtol=1e-5, atol=1e-6)
    for name in r0["params"]:
        torch.testing.assert_close(r0["params"][name], r1["params"][name], rtol=0, atol=0)


@pytest.mark.distributed
@pytest.mark.slow
def test_accumulation_under_ddp_keeps_identical_weights(tmp_path):
    """Micro-batches before the last run under no_sync; the step still averages every gradient."""
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path), False, {"optim.accumulate": "2"}), nprocs=2)
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    for name in r0["params"]:
        assert torch.equal(r0["params"][name], r1["params"][name]), name
    assert sorted(r0["losses"]) == [1, 2, 3]
