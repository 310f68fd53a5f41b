"""The backbone card: what an exported 3D backbone file is, how to rebuild it, and loading it.

``ppkt export`` (``ppkt.train.export``) writes the weights of a pretrained backbone as safetensors
with its own ``state_dict()`` keys (no ``backbone.`` prefix) and this card beside them
(``<file>.json``) and in the file's metadata under ``ppkt_card``. Fine-tuning, detection and any
other consumer read it here, below the training code, so none of them depends on pretraining.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import torch

from ppkt.backbones import build_backbone
from ppkt.utils.finite import check_finite_file
from ppkt.utils.weights import load_state_strict, load_weights

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


def read_backbone_file(path: str | Path) -> tuple[dict[str, torch.Tensor], BackboneCard]:
    """The weights of an exported backbone and its card, checked: the tensors match the card's
    sha256 and hold no NaN/inf (``NonFiniteError`` naming the file and the first bad tensor)."""
    path = Path(path)
    card = load_card(path)
    weights, _ = load_weights(path)
    if tensors_sha256(weights) != card.weights_sha256:
        raise ValueError(f"{path}: the weights do not match the sha256 recorded in their card")
    check_finite_file(path, weights)
    return weights, card


def load_backbone_file(path: str | Path) -> tuple[torch.nn.Module, BackboneCard]:
    """Rebuild the backbone an exported file's card describes and load its weights strictly."""
    weights, card = read_backbone_file(path)
    backbone = build_backbone(card.backbone, card.in_channels, width=card.width, backend=card.sparse_backend)
    load_state_strict(backbone, weights, what=str(path))
    return backbone, card
