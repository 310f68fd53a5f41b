"""The detection effectiveness protocol at a tiny size (it is not run at full size in the suite)."""

import dataclasses
import json
import math
from pathlib import Path

import torch

from ppkt.data.registry import SyntheticRooms
from ppkt.eval.splits import LabelBudget
from ppkt.experiments.effectiveness_detection import (
    DetectionExperimentConfig,
    DetectionRow,
    run_detection_effectiveness,
)

TINY = (
    "model.voxel_size=0.1", "model.width=0.25", "head.num_seeds=64", "head.num_proposals=16",
    "head.hidden=32", "head.proposal_hidden=32", "optim.steps=1", "optim.batch_size=1", "run.eval_every=1",
)  # fmt: skip


def test_tiny_detection_effectiveness(tmp_path, monkeypatch):
    from ppkt.backbones import BackboneSpec, build_backbone
    from ppkt.train.export import CARD_METADATA_KEY, BackboneCard, card_path_for, tensors_sha256
    from ppkt.utils.io import atomic_write_json
    from ppkt.utils.weights import save_weights

    monkeypatch.setenv("PPKT_CACHE", str(tmp_path / "cache"))
    torch.manual_seed(0)
    state = build_backbone("res16unet14", 3, width=0.25).state_dict()
    backbone = tmp_path / "backbone.safetensors"
    card = BackboneCard(
        spec=BackboneSpec(backbone="res16unet14", width=0.25, voxel_size=0.1, input_features="rgb"),
        out_channels=1, teacher="t", embedding_dim=8, loss="l", data="d", preset="p", steps=1, seed=0,
        ppkt_version="0", source="test", weights_sha256=tensors_sha256(state),
    )  # fmt: skip
    save_weights(state, backbone, metadata={CARD_METADATA_KEY: json.dumps(card.to_json())})
    atomic_write_json(card_path_for(backbone), card.to_json())
    cfg = DetectionExperimentConfig(
        out=tmp_path / "out", synthetic=SyntheticRooms(scenes=3, frames_per_scene=1, image_hw=(24, 32)),
        backbone=backbone, detection_overrides=TINY, seeds=(0,), device="cpu", progress=False,
        budgets=(LabelBudget("scenes", 0.5), LabelBudget("scenes", 1.0)),
    )  # fmt: skip
    result = run_detection_effectiveness(cfg, log=lambda *_: None)
    # Without --backbone the protocol pretrains one (replaced here by the same file).
    import ppkt.experiments.effectiveness_detection as protocol
    from ppkt.experiments.effectiveness import PretrainedBackbone

    monkeypatch.setattr(protocol, "pretrain_backbone", lambda *_: PretrainedBackbone(backbone, 12.0, False))
    again = run_detection_effectiveness(dataclasses.replace(cfg, backbone=None), log=lambda *_: None)
    assert again.pretrain_seconds == 12.0 and again.rows == result.rows
    assert len(result.runs) == 4 and [r.budget.amount for r in result.rows] == [0.5, 1.0]
    assert all(math.isfinite(r.map25) or math.isnan(r.map25) for r in result.runs)
    assert "| 50 % |" in (cfg.out / "results.md").read_text()
    saved = json.loads((cfg.out / "results.json").read_text())
    assert [r["budget"] for r in saved["rows"]] == ["scenes:0.5", "scenes:1.0"] and len(saved["runs"]) == 4
    row = result.rows[0]
    assert saved["rows"][0]["delta_map25"] == row.ppkt.map25 - row.scratch.map25 or math.isnan(
        row.delta_map25
    )
    assert DetectionRow.from_json(saved["rows"][1]).to_json().keys() == saved["rows"][1].keys()
    ppkt_run = next(r for r in result.runs if r.init == "ppkt")
    assert (
        "backbone.safetensors" in (tmp_path / "out" / Path(ppkt_run.run_dir).name / "config.yaml").read_text()
    )
    # A second call reuses every finished run.
    before = {r.run_dir: r.seconds for r in result.runs}
    again = run_detection_effectiveness(cfg, log=lambda *_: None)
    assert {r.run_dir: r.seconds for r in again.runs} == before
