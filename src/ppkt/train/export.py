"""Export the pretrained 3D backbone of a run: safetensors weights + a JSON card.

The weights file holds the backbone's own ``state_dict()`` keys (no ``backbone.`` prefix), so
``load_state_strict(build_backbone(card.backbone, card.in_channels, width=card.width), w)``
loads it. The card says how to rebuild the network and what it learnt from; it is written
beside the weights (``<file>.json``) and also embedded in the safetensors metadata under
``ppkt_card``, so a lone weights file still carries it. Format: docs/pretraining.md.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import torch

from ppkt.utils.io import atomic_write_json
from ppkt.utils.weights import load_weights, remap_keys, save_weights

CARD_FORMAT = "ppkt-backbone/1"
CARD_METADATA_KEY = "ppkt_card"


@dataclass(frozen=True)
class BackboneCard:
    """What a pretrained backbone file is and how to rebuild it.

    Attributes:
        format: card format tag, ``"ppkt-backbone/1"``.
        backbone: architecture name in ``ppkt.backbones.BACKBONES`` (e.g. ``"res16unet34"``).
        width: channel width multiplier given to ``build_backbone``.
        in_channels: input feature channels.
        input_features: ``"rgb"``, ``"xyzrgb"`` or ``"constant"`` (``ppkt.backbones.input_features``).
        out_channels: channels of the backbone's output features.
        voxel_size: voxel edge in metres used in pretraining (fine-tune with the same).
        sparse_backend: sparse convolution backend used in pretraining.
        teacher: the teacher's ``identity`` (name/stage/weights hash).
        embedding_dim: width of the pretraining embeddings (the head itself is not exported).
        loss: e.g. ``"PointInfoNCE(tau=0.04, num_pairs=4096, sampling=batch)"``.
        data: e.g. ``"scannet:/data/scannet split=train frame_skip=25"``.
        preset: preset the run started from.
        steps: optimisation steps completed.
        seed: the run's seed.
        ppkt_version: ``ppkt.__version__`` that wrote the file.
        source: the run folder's checkpoint the weights come from.
        weights_sha256: sha256 of the exported tensors (names, shapes, dtypes, bytes).
    """

    backbone: str
    width: float
    in_channels: int
    input_features: str
    out_channels: int
    voxel_size: float
    sparse_backend: str
    teacher: str
    embedding_dim: int
    loss: str
    data: str
    preset: str
    steps: int
    seed: int
    ppkt_version: str
    source: str
    weights_sha256: str
    format: str = CARD_FORMAT

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict, where: str = "card") -> BackboneCard:
        names = {f.name for f in dataclasses.fields(cls)}
        missing = sorted(n for n in names - set(data) if n != "format")
        unknown = sorted(set(data) - names)
        if missing or unknown:
            raise ValueError(f"{where}: not a ppkt backbone card (missing {missing}, unknown {unknown})")
        if data.get("format", CARD_FORMAT) != CARD_FORMAT:
            raise ValueError(f"{where}: card format {data.get('format')!r}, this ppkt reads {CARD_FORMAT!r}")
        return cls(**data)


def card_path_for(weights_path: str | Path) -> Path:
    """``backbone.safetensors`` -> ``backbone.json``."""
    return Path(weights_path).with_suffix(".json")


def load_card(path: str | Path) -> BackboneCard:
    """Read a card from its ``.json`` file, or from the metadata of the ``.safetensors`` file."""
    path = Path(path)
    if path.suffix == ".safetensors":
        json_path = card_path_for(path)
        if json_path.is_file():
            return load_card(json_path)
        _, meta = load_weights(path)
        if CARD_METADATA_KEY not in meta:
            raise ValueError(f"{path}: no ppkt backbone card beside it ({json_path.name}) or in its metadata")
        return BackboneCard.from_json(json.loads(meta[CARD_METADATA_KEY]), where=str(path))
    if not path.is_file():
        raise FileNotFoundError(f"{path}: card not found")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from err
    return BackboneCard.from_json(data, where=str(path))


def tensors_sha256(state: dict[str, torch.Tensor]) -> str:
    digest = hashlib.sha256()
    for key in sorted(state):
        t = state[key].detach().to("cpu").contiguous()
        digest.update(key.encode())
        digest.update(str(tuple(t.shape)).encode())
        digest.update(str(t.dtype).encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


def export_backbone(run_dir: str | Path, out: str | Path | None = None) -> tuple[Path, BackboneCard]:
    """Write the backbone of ``run_dir``'s latest checkpoint to ``out`` (default
    ``<run>/backbone.safetensors``) and its card to ``out`` with ``.json``.

    The backbone is rebuilt from the saved config and loaded strictly, so a file that does not
    match its card cannot be written; a checkpoint holding NaN/inf is refused (``NonFiniteError``
    naming the file and the first bad tensor).
    """
    from ppkt import __version__
    from ppkt.backbones import INPUT_FEATURE_CHANNELS, build_backbone
    from ppkt.engine.checkpoint import latest_checkpoint, load_checkpoint
    from ppkt.engine.guards import check_finite_file
    from ppkt.train.loop import load_run_config
    from ppkt.utils.weights import load_state_strict

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
    in_channels = INPUT_FEATURE_CHANNELS[cfg.student.input_features]
    backbone = build_backbone(
        cfg.student.backbone, in_channels, width=cfg.student.width, backend=cfg.student.sparse_backend
    )
    load_state_strict(backbone, backbone_state, what=f"{ckpt} [backbone]")
    d = cfg.data
    card = BackboneCard(
        backbone=cfg.student.backbone,
        width=cfg.student.width,
        in_channels=in_channels,
        input_features=cfg.student.input_features,
        out_channels=int(backbone.out_channels),
        voxel_size=cfg.student.voxel_size,
        sparse_backend=cfg.student.sparse_backend,
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


def load_pretrained_backbone(path: str | Path) -> tuple[torch.nn.Module, BackboneCard]:
    """Rebuild the backbone a card describes and load its weights strictly (for fine-tuning)."""
    from ppkt.backbones import build_backbone
    from ppkt.utils.weights import load_state_strict

    path = Path(path)
    card = load_card(path)
    weights, _ = load_weights(path)
    if tensors_sha256(weights) != card.weights_sha256:
        raise ValueError(f"{path}: weights do not match the sha256 in their card")
    from ppkt.engine.guards import check_finite_file

    check_finite_file(path, weights)
    backbone = build_backbone(card.backbone, card.in_channels, width=card.width, backend=card.sparse_backend)
    load_state_strict(backbone, weights, what=str(path))
    return backbone, card
