"""A backbone file + card as ``ppkt export`` writes them, for tests that need an ``--init`` file
(imported by name: not a conftest)."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ppkt.backbones.card import CARD_METADATA_KEY, BackboneCard, card_path_for, tensors_sha256
from ppkt.backbones.spec import BackboneSpec
from ppkt.utils.io import atomic_write_json
from ppkt.utils.weights import save_weights


def write_backbone_file(path: Path, spec: BackboneSpec, seed: int = 0) -> Path:
    """Random weights of ``spec``'s network at ``path`` with their card beside and inside it."""
    torch.manual_seed(seed)
    state = spec.build().state_dict()
    card = BackboneCard(
        spec=spec, out_channels=int(spec.build().out_channels), teacher="t", embedding_dim=8, loss="l",
        data="d", preset="p", steps=1, seed=seed, ppkt_version="0", source="test",
        weights_sha256=tensors_sha256(state),
    )  # fmt: skip
    save_weights(state, path, metadata={CARD_METADATA_KEY: json.dumps(card.to_json())})
    atomic_write_json(card_path_for(path), card.to_json())
    return path
