"""benchmarks/bench_gpu.py: says so and exits 0 without CUDA; its steps run (CPU smoke, slow)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

from ppkt.sparse import functional

BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_gpu.py"


# A CPU run of the benchmark's code in seconds: tiny network, images and batches.
SMOKE = (
    "--device",
    "cpu",
    "--steps",
    "1",
    "--warmup",
    "0",
    "--batch-size",
    "1",
    "--finetune-batch-size",
    "1",
)
SMOKE += ("--width", "0.25", "--image-hw", "48", "64", "--voxel-size", "0.2", "--backends", "torch")


def _bench():
    spec = importlib.util.spec_from_file_location("bench_gpu", BENCHMARK)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def test_without_cuda_it_says_so_and_exits_0(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert _bench().main(["--json", str(tmp_path / "gpu.json")]) == 0
    assert "no CUDA device here; nothing measured" in capsys.readouterr().out
    assert not (tmp_path / "gpu.json").exists()


@pytest.mark.slow
def test_cpu_smoke_run_prints_the_table_and_writes_json(capsys, tmp_path):
    args = list(SMOKE)
    args += ["--precisions", "fp32,bf16", "--json", str(tmp_path / "gpu.json")]
    assert _bench().main(args) == 0
    out = capsys.readouterr().out
    assert "| pretrain | torch | bf16 | 1 |" in out and "| finetune | torch | fp32 | 1 |" in out
    rows = json.loads((tmp_path / "gpu.json").read_text())["rows"]
    assert len(rows) == 4 and all(r["steps_per_s"] and r["steps_per_s"] > 0 for r in rows), rows


@pytest.mark.slow
def test_cpu_smoke_run_compares_conv_algorithms_and_restores_the_default(capsys):
    args = list(SMOKE)
    args += ["--precisions", "fp32", "--tasks", "finetune", "--conv-algorithms", "offsets,auto:20"]
    limit = functional._AUTO_TABLE_LIMIT
    assert _bench().main(args) == 0
    out = capsys.readouterr().out
    assert (
        "| finetune | torch (offsets) | fp32 | 1 |" in out
        and "| finetune | torch (auto:20) | fp32 | 1 |" in out
    )
    assert (
        functional._AUTO_TABLE_LIMIT == limit and functional.conv_algorithm(torch.device("cpu")) == "offsets"
    )


@pytest.mark.slow
def test_cpu_smoke_run_alternates_conv_algorithms(capsys):
    args = list(SMOKE) + ["--precisions", "fp32", "--tasks", "finetune,pretrain", "--alternate"]
    args += ["--conv-algorithms", "offsets,table"]
    assert _bench().main(args) == 0
    out = capsys.readouterr().out
    for task in ("finetune", "pretrain"):
        for algorithm in ("offsets", "table"):
            assert f"| {task} | torch ({algorithm}, alternated) | fp32 | 1 |" in out
    assert functional.conv_algorithm(torch.device("cpu")) == "offsets"
