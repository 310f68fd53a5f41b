"""Export the pretrained 3D backbone of a run: safetensors weights + a JSON card.

The weights file holds the backbone's own ``state_dict()`` keys (no ``backbone.`` prefix), so
``load_state_strict(card.spec.build(), w)`` loads it (``ppkt.backbones.card.load_backbone_file``).
The card says how to rebuild the network and what it learnt from; it is written
beside the weights (``<file>.json``) and also embedded in the safetensors metadata under
``ppkt_card``, so a lone weights file still carries it. Format: docs/pretraining.md.
"""

from __future__ import annotations

import json
from pathlib import Path

from ppkt import __version__
from ppkt.backbones.card import (  # noqa: F401 - the card's names, re-exported for export's users
    CARD_FORMAT,
    CARD_METADATA_KEY,
    BackboneCard,
    card_path_for,
    load_backbone_file,
    load_card,
    tensors_sha256,
)
from ppkt.engine.checkpoint import latest_checkpoint, load_checkpoint
from ppkt.engine.guards import check_finite_file
from ppkt.train.loop import load_run_config
from ppkt.utils.io import atomic_write_json
from ppkt.utils.weights import load_state_strict, load_weights, remap_keys, save_weights


def export_backbone(run_dir: str | Path, out: str | Path | None = None) -> tuple[Path, BackboneCard]:
    """Write the backbone of ``run_dir``'s latest checkpoint to ``out`` (default
    ``<run>/backbone.safetensors``) and its card to ``out`` with ``.json``.

    The backbone is rebuilt from the saved config and loaded strictly, so a file that does not
    match its card cannot be written; a checkpoint holding NaN/inf is refused (``NonFiniteError``
    naming the file and the first bad tensor).
    """
    run_dir = Path(run_dir)
    cfg = load_run_config(run_dir)
    ckpt = latest_checkpoint(run_dir)
    if ckpt is None:
        raise FileNotFoundError(f"{run_dir}: no checkpoint to export (checkpoints/latest missing)")
    weights, state = load_checkpoint(ckpt)
    check_finite_file(ckpt / "model.safetensors", weights)
    _, meta = load_weights(ckpt / "model.safetensors")
    backbone_state = remap_keys(
        {k: v for k, v in weights.items() if k.startswith("backbone.")}, strip_prefixes=("backbone.",)
    )
    spec = cfg.model.spec
    backbone = spec.build()
    load_state_strict(backbone, backbone_state, what=f"{ckpt} [backbone]")
    d = cfg.data
    card = BackboneCard(
        spec=spec,
        out_channels=int(backbone.out_channels),
        teacher=meta.get("teacher", cfg.teacher.name),
        embedding_dim=cfg.loss.embedding_dim,
        loss=(
            f"PointInfoNCE(tau={cfg.loss.tau}, num_pairs={cfg.loss.num_pairs}, sampling={cfg.loss.sampling})"
        ),
        data=f"{d.kind}:{d.root or 'default'} split={d.split} frame_skip={d.frame_skip}",
        preset=cfg.origin,
        steps=state.step,
        seed=cfg.run.seed,
        ppkt_version=__version__,
        source=str(ckpt),
        weights_sha256=tensors_sha256(backbone_state),
    )
    out = Path(out) if out is not None else run_dir / "backbone.safetensors"
    if out.suffix != ".safetensors":
        raise ValueError(f"{out}: the exported backbone must be a .safetensors file")
    save_weights(backbone_state, out, metadata={CARD_METADATA_KEY: json.dumps(card.to_json())})
    atomic_write_json(card_path_for(out), card.to_json())
    return out, card
