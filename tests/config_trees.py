"""Saved-config trees as flat ``section.field`` keys, shared by the config tests (imported by
name: not a conftest)."""

from __future__ import annotations


def flat_keys(tree: dict, prefix: str = "") -> dict:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``; values other than dicts are kept as they are."""
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(flat_keys(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out
