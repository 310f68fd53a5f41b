import os

import pytest
import torch

from ppkt.utils.weights import (
    StateDictMismatch,
    load_state_strict,
    load_weights,
    remap_keys,
    save_weights,
    torch_load_trusted_weights,
)


def test_save_load_round_trip(tmp_path):
    model = torch.nn.Linear(3, 2)
    save_weights(model.state_dict(), tmp_path / "w.safetensors", {"arch": "linear"})
    state, meta = load_weights(tmp_path / "w.safetensors")
    assert meta == {"arch": "linear"}
    other = torch.nn.Linear(3, 2)
    load_state_strict(other, state)
    assert torch.equal(other.weight, model.weight)
    assert not list(tmp_path.glob(".*tmp"))  # no temporary left behind
    mask = os.umask(0)
    os.umask(mask)
    assert (tmp_path / "w.safetensors").stat().st_mode & 0o777 == 0o666 & ~mask  # not private like mkstemp


def test_strict_load_lists_missing_unexpected_and_shapes():
    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Linear(2, 2))
    state = model.state_dict()
    state.pop("1.bias")
    state["extra.weight"] = torch.zeros(1)
    state["0.weight"] = torch.zeros(5, 5)
    with pytest.raises(StateDictMismatch) as info:
        load_state_strict(model, state, "backbone")
    message = str(info.value)
    assert "1.bias" in message and "extra.weight" in message and "0.weight" in message
    assert info.value.missing == ["1.bias"] and info.value.unexpected == ["extra.weight"]


def test_remap_keys():
    state = {"module.encoder_q.layer1.w": torch.zeros(1), "module.encoder_q.fc.w": torch.zeros(1)}
    out = remap_keys(
        state, strip_prefixes=("module.encoder_q.",), rename=lambda k: None if k.startswith("fc.") else k
    )
    assert list(out) == ["layer1.w"]


def test_unreadable_files(tmp_path):
    (tmp_path / "bad.safetensors").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="bad.safetensors"):
        load_weights(tmp_path / "bad.safetensors")
    with pytest.raises(FileNotFoundError):
        load_weights(tmp_path / "none.safetensors")
    torch.save({"a": torch.zeros(2)}, tmp_path / "ok.pth")
    assert set(torch_load_trusted_weights(tmp_path / "ok.pth")) == {"a"}
