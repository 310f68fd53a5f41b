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
import math
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import torch

from ppkt.backbones.spec import SPEC_FIELDS, WEIGHT_FIELDS, BackboneSpec
from ppkt.config import config_from_dict
from ppkt.utils.finite import check_finite_file
from ppkt.utils.weights import load_state_strict, load_weights

S = TypeVar("S", bound=BackboneSpec)

CARD_FORMAT = "ppkt-backbone/1"
CARD_METADATA_KEY = "ppkt_card"


@dataclass(frozen=True)
class BackboneCard:
    """What a pretrained backbone file is and how to rebuild it.

    Attributes:
        spec: the backbone spec of the pretraining run (``ppkt.backbones.BackboneSpec``: backbone,
            width, voxel_size, input_features, sparse_backend); fine-tuning builds the same network
            and voxelises with the same voxel size and input features.
        out_channels: channels of the backbone's output features.
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
        format: card format tag, ``"ppkt-backbone/1"``.

    The JSON layout is flat, as it always was: the spec's fields and ``in_channels`` (the input
    channels of ``input_features``, written for readers that do not know the feature kinds) sit
    beside the others, so cards written before the spec existed read unchanged.
    """

    spec: BackboneSpec
    out_channels: int
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

    @property
    def in_channels(self) -> int:
        return self.spec.in_channels

    def to_json(self) -> dict:
        flat = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "spec"}
        return {**dataclasses.asdict(self.spec), "in_channels": self.in_channels, **flat}

    @classmethod
    def from_json(cls, data: dict, where: str = "card") -> BackboneCard:
        own = {f.name for f in dataclasses.fields(cls)} - {"spec"}
        names = own | set(SPEC_FIELDS) | {"in_channels"}
        missing = sorted(n for n in names - set(data) if n != "format")
        unknown = sorted(set(data) - names)
        if missing or unknown:
            raise ValueError(f"{where}: not a ppkt backbone card (missing {missing}, unknown {unknown})")
        if data.get("format", CARD_FORMAT) != CARD_FORMAT:
            raise ValueError(f"{where}: card format {data.get('format')!r}, this ppkt reads {CARD_FORMAT!r}")
        spec = config_from_dict(BackboneSpec, {k: data[k] for k in SPEC_FIELDS}, where=where)
        if data["in_channels"] != spec.in_channels:
            raise ValueError(
                f"{where}: in_channels {data['in_channels']!r} does not match input_features "
                f"{spec.input_features!r} ({spec.in_channels} channels)"
            )
        return cls(spec=spec, **{k: v for k, v in data.items() if k in own})


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
    backbone = card.spec.build()
    load_state_strict(backbone, weights, what=str(path))
    return backbone, card


def _same(a, b) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return math.isclose(float(a), float(b), rel_tol=1e-6)
    return a == b


def card_mismatches(
    spec: BackboneSpec, card: BackboneCard, fields: Collection[str] = WEIGHT_FIELDS
) -> list[str]:
    """``"model.<field> <run's value> vs <card's value>"`` for each of ``fields`` where ``spec`` (a
    ``BackboneSpec`` or a config extending it) differs from the card's; only the fields the
    weights depend on by default (the backend does not change them)."""
    return [
        f"model.{name} {getattr(spec, name)!r} vs the card's {getattr(card.spec, name)!r}"
        for name in fields
        if not _same(getattr(spec, name), getattr(card.spec, name))
    ]


def spec_from_card(spec: S, card: BackboneCard, given: Collection[str], where: str) -> tuple[S, list[str]]:
    """``spec`` with the card's weight-defining fields (``WEIGHT_FIELDS``), except those named in
    ``given`` (the ones the user set), which must equal the card's.

    Returns:
        The spec (same type as ``spec``) and ``"model.<field> <value>"`` for every field it took
        from the card with a new value.

    Raises:
        ValueError: a field in ``given`` differs from the card, one line naming both values.
    """
    wrong = card_mismatches(spec, card, [f for f in WEIGHT_FIELDS if f in given])
    if wrong:
        raise ValueError(
            f"{where}: the pretrained backbone does not match this run ({'; '.join(wrong)}); "
            "leave these options out to take the card's"
        )
    taken = {f: getattr(card.spec, f) for f in WEIGHT_FIELDS if f not in given}
    changed = [f"model.{f} {v!r}" for f, v in taken.items() if not _same(getattr(spec, f), v)]
    return dataclasses.replace(spec, **taken), changed
