from dataclasses import dataclass
from typing import Literal

import pytest

from ppkt.config import (
    apply_overrides,
    config_from_dict,
    config_to_dict,
    load_config,
    option,
    save_config,
)


@dataclass(frozen=True)
class Inner:
    tau: float = option(0.04, "temperature")
    pairs: int = option(4096, "number of pairs")
    kind: Literal["a", "b"] = option("a", "a choice")


@dataclass(frozen=True)
class Outer:
    name: str = option("x", "name")
    flip: bool = option(True, "flip")
    sizes: tuple[int, ...] = option((1, 2), "sizes")
    maybe: float | None = option(None, "optional")
    inner: Inner = option(factory=Inner, doc="nested")


def test_overrides_parse_by_type():
    cfg = apply_overrides(
        Outer(),
        {
            "inner.tau": "0.07",
            "inner.pairs": "128",
            "flip": "false",
            "sizes": "3,4,5",
            "maybe": "1.5",
            "inner.kind": "b",
        },
    )
    assert cfg.inner.tau == 0.07 and cfg.inner.pairs == 128 and cfg.flip is False
    assert cfg.sizes == (3, 4, 5) and cfg.maybe == 1.5 and cfg.inner.kind == "b"
    assert Outer().inner.tau == 0.04  # frozen original untouched


@pytest.mark.parametrize(
    "key,value",
    [
        ("inner.pairs", "many"),
        ("flip", "perhaps"),
        ("inner.kind", "c"),
        ("nonexistent", "1"),
        ("inner.nope", "1"),
    ],
)
def test_bad_overrides_raise(key, value):
    with pytest.raises(ValueError):
        apply_overrides(Outer(), {key: value})


def test_yaml_round_trip(tmp_path):
    cfg = apply_overrides(Outer(), {"inner.tau": "0.5", "sizes": "7"})
    save_config(cfg, tmp_path / "c.yaml")
    assert load_config(Outer, tmp_path / "c.yaml") == cfg
    assert config_from_dict(Outer, config_to_dict(cfg)) == cfg


def test_unknown_yaml_key_is_error(tmp_path):
    (tmp_path / "c.yaml").write_text("inner:\n  tau: 0.1\n  taux: 3\n")
    with pytest.raises(ValueError, match="taux"):
        load_config(Outer, tmp_path / "c.yaml")
