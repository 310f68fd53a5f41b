"""Fine-tuning under torchrun-style DDP (two gloo processes on CPU) and the sparse SyncBatchNorm."""

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


def _join(rank: int, world: int, port: int) -> None:
    sys.path.insert(0, str(HERE))
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        WORLD_SIZE=str(world),
        LOCAL_RANK=str(rank),
    )
    torch.set_num_threads(1)


def _sites(rank: int) -> torch.Tensor:
    return torch.randn(5 + 3 * rank, 4, generator=torch.Generator().manual_seed(rank)) * (rank + 1) + rank


def _batchnorm_worker(rank: int, world: int, port: int, out: str) -> None:
    _join(rank, world, port)
    import torch.distributed as dist

    from ppkt.engine.sync_batchnorm import convert_sync_batchnorm
    from ppkt.sparse import BatchNorm, SparseTensor

    dist.init_process_group("gloo")
    try:
        torch.manual_seed(0)
        net = convert_sync_batchnorm(torch.nn.Sequential(BatchNorm(4)))
        feats = _sites(rank).requires_grad_(True)
        coords = torch.zeros(len(feats), 4, dtype=torch.long)
        coords[:, 1] = torch.arange(len(feats))
        y = net(SparseTensor(coords, feats)).feats
        (y * torch.arange(1.0, 5.0)).sum().backward()
        torch.save(
            {"y": y.detach(), "grad": feats.grad, "state": net[0].state_dict(), "wgrad": net[0].weight.grad},
            Path(out) / f"bn{rank}.pt",
        )
    finally:
        dist.destroy_process_group()


@pytest.mark.distributed
def test_sparse_sync_batchnorm_equals_batchnorm_on_the_concatenated_batch(tmp_path):
    mp.spawn(_batchnorm_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"bn{r}.pt", weights_only=True) for r in range(2)]
    reference = torch.nn.BatchNorm1d(4)
    feats = torch.cat([_sites(0), _sites(1)]).requires_grad_(True)
    y = reference(feats)
    (y * torch.arange(1.0, 5.0)).sum().backward()
    torch.testing.assert_close(torch.cat([r["y"] for r in ranks]), y.detach(), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(torch.cat([r["grad"] for r in ranks]), feats.grad, rtol=1e-4, atol=1e-5)
    for r in ranks:  # identical statistics on every rank, those of the whole batch
        torch.testing.assert_close(r["state"]["running_mean"], reference.running_mean)
        torch.testing.assert_close(r["state"]["running_var"], reference.running_var)
    # DDP averages the ranks' weight gradients; their sum is the single-process gradient.
    torch.testing.assert_close(
        ranks[0]["wgrad"] + ranks[1]["wgrad"], reference.weight.grad, rtol=1e-4, atol=1e-5
    )


def _finetune_worker(rank: int, world: int, port: int, out: str) -> None:
    _join(rank, world, port)
    import torch.distributed as dist
    from eval_rooms import rooms_source_fixture
    from test_eval_finetune import tiny_config

    from ppkt.eval.finetune import finetune

    cfg = tiny_config(Path(out), kind="scenes", budget=1.0, seed=1)
    cfg = replace(
        cfg,
        model=replace(cfg.model, sync_batchnorm=True),
        optim=replace(cfg.optim, steps=3, head_warmup_steps=1),
        run=replace(cfg.run, eval_every=3, tensorboard=False),
    )
    try:
        result = finetune(cfg, source=rooms_source_fixture())
        state = {k: v.detach().clone() for k, v in result.model.state_dict().items()}
        torch.save(
            {
                "state": state,
                "losses": result.losses,
                "val_points": result.last.num_points,
                "miou": result.last.miou,
            },
            Path(out) / f"rank{rank}.pt",
        )
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


@pytest.mark.distributed
def test_two_processes_end_with_identical_weights_and_evaluate_every_scene(tmp_path, rooms_source):
    mp.spawn(_finetune_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2))
    assert r0["state"].keys() == r1["state"].keys()
    for key in r0["state"]:  # parameters and (synchronised) batch-norm statistics
        assert torch.equal(r0["state"][key], r1["state"][key]), key
    assert sorted(r0["losses"]) == [1, 2, 3] and r0["losses"] != r1["losses"]  # each rank its own scenes
    total = sum(len(rooms_source.read(s).labels) for s in rooms_source.scene_ids("val"))
    labelled = sum(int((rooms_source.read(s).labels >= 0).sum()) for s in rooms_source.scene_ids("val"))
    assert r0["val_points"] == r1["val_points"] == labelled and labelled < total
    assert r0["miou"] == r1["miou"]
    run = tmp_path / "run"
    assert (run / "checkpoints" / "latest").read_text().strip() == "step_00000003"
    assert (run / "checkpoints" / "last.safetensors").is_file()


def _main_first_worker(rank: int, world: int, port: int, out: str) -> None:
    _join(rank, world, port)
    import torch.distributed as dist

    from ppkt.engine.runtime import DistInfo, Runtime

    dist.init_process_group("gloo", timeout=__import__("datetime").timedelta(seconds=60))
    rt = Runtime(torch.device("cpu"), DistInfo(rank, world, rank))
    try:
        with rt.main_first():
            if rank == 0:
                raise ValueError("bad dataset")
        outcome = "passed"
    except ValueError as err:
        outcome = f"ValueError: {err}"
    except RuntimeError as err:
        outcome = f"RuntimeError: {err}"
    Path(out, f"{rank}.txt").write_text(outcome)
    dist.destroy_process_group()


def test_main_first_tells_the_others_when_the_main_process_fails(tmp_path):
    """Rank 0 failing inside main_first (e.g. a bad dataset while it writes the synthetic data)
    must end the other ranks with an error instead of leaving them at a barrier for good."""
    mp.spawn(_main_first_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    assert (tmp_path / "0.txt").read_text() == "ValueError: bad dataset"
    assert (tmp_path / "1.txt").read_text().startswith("RuntimeError: the main process (rank 0) failed")


def _accumulate_worker(rank: int, world: int, port: int, out: str) -> None:
    """accumulate=2 over 2 steps; in step 1 the second micro-batch of every rank has no label."""
    _join(rank, world, port)
    import torch.distributed as dist
    from eval_rooms import rooms_source_fixture
    from test_eval_finetune import tiny_config

    import ppkt.eval.training_loop as loop
    from ppkt.data.types import IGNORE_LABEL
    from ppkt.eval.finetune import finetune

    real_batches, real_sync = loop.train_batches, loop.gradient_sync
    syncs: list[bool] = []

    def batches_with_an_unlabelled_one(*args, **kwargs):
        for taken, batch in enumerate(real_batches(*args, **kwargs)):
            if taken == 1:  # step 1, second micro-batch
                batch = replace(batch, voxel_labels=torch.full_like(batch.voxel_labels, IGNORE_LABEL))
            yield batch

    def recording_sync(net, last_micro_batch):
        syncs.append(last_micro_batch)
        return real_sync(net, last_micro_batch)

    loop.train_batches, loop.gradient_sync = batches_with_an_unlabelled_one, recording_sync
    cfg = tiny_config(Path(out), kind="scenes", budget=1.0, seed=1)
    cfg = replace(
        cfg,
        optim=replace(cfg.optim, steps=2, accumulate=2),
        run=replace(cfg.run, eval_every=2, tensorboard=False),
    )
    try:
        result = finetune(cfg, source=rooms_source_fixture())
        # Parameters only: without sync_batchnorm each rank keeps its own running statistics.
        params = {k: v.detach().clone() for k, v in result.model.named_parameters()}
        torch.save(
            {"params": params, "syncs": syncs, "skipped": result.skipped_batches}, Path(out) / f"acc{rank}.pt"
        )
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


@pytest.mark.distributed
def test_accumulation_all_reduces_once_per_step_even_when_the_last_micro_batch_is_skipped(tmp_path):
    """DDP all-reduces on the last micro-batch that trains (no_sync before it). When the step's last
    micro-batch is skipped, the one before it must all-reduce, or the ranks' weights drift apart."""
    mp.spawn(_accumulate_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (torch.load(tmp_path / f"acc{r}.pt", weights_only=True) for r in range(2))
    # step 1: micro-batch 0 trains and syncs, micro-batch 1 is skipped; step 2: no_sync, then sync
    assert r0["syncs"] == r1["syncs"] == [True, False, True]
    assert r0["skipped"] == r1["skipped"] == 1
    for key in r0["params"]:
        assert torch.equal(r0["params"][key], r1["params"][key]), key
