"""Typed configuration: frozen dataclasses with documented fields, CLI overrides, YAML round trips.

Every configurable part of ppkt is a frozen dataclass whose fields are declared with
:func:`option`, which carries a one-line doc. Those docs become ``--help``; presets are
plain functions in code that return a config; the command line overrides any leaf field
with ``--section.field VALUE``; the resolved config is saved beside every run.

Example::

    @dataclass(frozen=True)
    class LossConfig:
        tau: float = option(0.04, "softmax temperature of the InfoNCE loss")

    cfg = apply_overrides(LossConfig(), {"tau": "0.07"})
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

import yaml

from ppkt.utils.io import atomic_write_text

T = TypeVar("T")

_DOC = "doc"
_INTERNAL = "internal"

# Options that were renamed, old dotted name -> new, so that what users already have keeps working:
# the config.yaml of existing runs (resume), the configs inside checkpoints, command lines and the
# override strings of scripts. Each source read prints one notice line naming old and new names.
# A rename applies to a config class whose leaves include the new name and not the old one.
RENAMED_OPTIONS: dict[str, str] = {
    # pretraining's student section became the model section that every command shares
    # (ppkt.backbones.BackboneSpec)
    "student.backbone": "model.backbone",
    "student.width": "model.width",
    "student.voxel_size": "model.voxel_size",
    "student.input_features": "model.input_features",
    "student.sparse_backend": "model.sparse_backend",
    "student.sync_batchnorm": "model.sync_batchnorm",
    # fine-tuning and detection
    "model.backend": "model.sparse_backend",
    "data.voxel_size": "model.voxel_size",
    "data.input_features": "model.input_features",
    # one synthetic-rooms section in every command (ppkt.data.registry.SyntheticRooms); fine-tuning and
    # detection called the render size data.synthetic_image_hw
    "data.synthetic_scenes": "data.synthetic.scenes",
    "data.synthetic_frames_per_scene": "data.synthetic.frames_per_scene",
    "data.synthetic_seed": "data.synthetic.seed",
    "data.synthetic_image_hw": "data.synthetic.image_hw",
    # the experiments' (ppkt.experiments) own synthetic-rooms fields
    "synthetic_scenes": "synthetic.scenes",
    "synthetic_frames_per_scene": "synthetic.frames_per_scene",
    "synthetic_seed": "synthetic.seed",
    "image_hw": "synthetic.image_hw",
}


def option(
    default: Any = dataclasses.MISSING,
    doc: str = "",
    *,
    factory: Any = dataclasses.MISSING,
    internal: bool = False,
) -> Any:
    """A dataclass field with a doc string that becomes ``--help`` text. ``internal``: set by the
    program (e.g. the preset a config started from); accepted as an override but not listed."""
    metadata = {_DOC: doc, _INTERNAL: internal}
    if factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


@dataclasses.dataclass(frozen=True)
class Preset(typing.Generic[T]):
    """One named starting config: the function that builds it and one line saying where its values
    come from (shown by ``--help``)."""

    name: str
    build: typing.Callable[[], T]
    source: str


class PresetRegistry(typing.Generic[T]):
    """The presets of one command, by name (``ppkt.train.presets``, ``ppkt.eval.presets``,
    ``ppkt.eval.detection.presets``); iterating gives the names in registration order."""

    def __init__(self, what: str, presets: typing.Iterable[Preset[T]]) -> None:
        self.what = what
        self._presets = {p.name: p for p in presets}

    @property
    def names(self) -> list[str]:
        return list(self._presets)

    def __iter__(self) -> typing.Iterator[str]:
        return iter(self._presets)

    def __contains__(self, name: object) -> bool:
        return name in self._presets

    def __len__(self) -> int:
        return len(self._presets)

    def get(self, name: str) -> T:
        """A fresh config of preset ``name``; an unknown name is a one-line error listing the choices."""
        if name not in self._presets:
            raise ValueError(f"unknown {self.what} preset {name!r}; choose one of {sorted(self._presets)}")
        return self._presets[name].build()

    def help(self) -> str:
        """One ``name: source`` line per preset, for ``--help``."""
        return "; ".join(f"{p.name}: {p.source}" for p in self._presets.values())


class ConfigText:
    """A config value type written as one string, in YAML and on the command line.

    Subclasses (e.g. :class:`ppkt.eval.splits.LabelBudget`, ``scenes:0.25``) define ``parse(text)``,
    which reads the string or raises a one-line ValueError naming it, and ``text``, which writes it
    back. :func:`parse_value` and :func:`config_to_dict` use them, so a field of such a type is parsed
    once where the config is read and is typed everywhere after.
    """

    @classmethod
    def parse(cls, text: str) -> Any:
        raise NotImplementedError

    @property
    def text(self) -> str:
        raise NotImplementedError


def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _is_dataclass_type(tp: Any) -> bool:
    """A nested config section (a dataclass that is not a one-string :class:`ConfigText` value)."""
    return isinstance(tp, type) and dataclasses.is_dataclass(tp) and not issubclass(tp, ConfigText)


def _strip_optional(tp: Any) -> tuple[Any, bool]:
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(get_args(tp)) == 2:
            return args[0], True
    return tp, False


def parse_value(tp: Any, text: Any, *, where: str = "value") -> Any:
    """Convert ``text`` (a CLI string or a YAML scalar/list) to the declared field type ``tp``."""
    inner, optional = _strip_optional(tp)
    if optional and (text is None or (isinstance(text, str) and text.lower() in ("none", "null"))):
        return None
    origin = get_origin(inner)
    if origin is Literal:
        choices = get_args(inner)
        for choice in choices:
            if str(choice) == str(text):
                return choice
        raise ValueError(f"{where}: {text!r} is not one of {list(choices)}")
    if origin in (tuple, list):
        args = get_args(inner)
        if isinstance(text, str):
            items = [t for t in text.replace("(", "").replace(")", "").split(",") if t.strip() != ""]
        else:
            items = list(text)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(items) != len(args):
                raise ValueError(f"{where}: expected {len(args)} comma-separated values, got {text!r}")
            return tuple(parse_value(a, i, where=where) for a, i in zip(args, items, strict=False))
        elem = args[0] if args else str
        values = [parse_value(elem, i, where=where) for i in items]
        return tuple(values) if origin is tuple else values
    if inner is bool:
        if isinstance(text, bool):
            return text
        low = str(text).strip().lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"{where}: {text!r} is not a boolean (true/false)")
    if inner is int:
        if isinstance(text, bool):
            raise ValueError(f"{where}: expected an integer, got {text!r}")
        if isinstance(text, float) and not text.is_integer():
            raise ValueError(f"{where}: expected an integer, got {text!r}")
        try:
            return int(float(text)) if isinstance(text, str) and "e" in text.lower() else int(text)
        except (TypeError, ValueError) as err:
            raise ValueError(f"{where}: expected an integer, got {text!r}") from err
    if inner is float:
        if isinstance(text, bool):
            raise ValueError(f"{where}: expected a number, got {text!r}")
        try:
            value = float(text)
        except (TypeError, ValueError) as err:
            raise ValueError(f"{where}: expected a number, got {text!r}") from err
        if math.isnan(value):
            raise ValueError(f"{where}: expected a finite number, got {text!r}")
        return value
    if inner is str:
        return str(text)
    if inner is Path:
        return Path(text)
    if isinstance(inner, type) and issubclass(inner, ConfigText):
        if isinstance(text, inner):
            return text
        try:
            return inner.parse(str(text))
        except ValueError as err:
            raise ValueError(f"{where}: {err}") from None
    if _is_dataclass_type(inner):
        if not isinstance(text, dict):
            raise ValueError(f"{where}: expected a mapping for {inner.__name__}")
        return config_from_dict(inner, text, where=where)
    raise TypeError(f"{where}: unsupported config field type {tp!r}")


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """Plain nested dict (YAML-safe scalars, lists for tuples, strings for paths)."""

    def convert(value: Any) -> Any:
        if isinstance(value, ConfigText):
            return value.text
        if dataclasses.is_dataclass(value):
            return {f.name: convert(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, (tuple, list)):
            return [convert(v) for v in value]
        if isinstance(value, Path):
            return str(value)
        return value

    return convert(cfg)


def config_from_dict(cls: type[T], data: dict[str, Any], *, where: str = "config") -> T:
    """Build ``cls`` from a nested dict; unknown keys are an error, missing keys take defaults."""
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected a mapping of {cls.__name__} fields, got {type(data).__name__}")
    data = _rename_saved_keys(cls, data, where)
    hints = _field_types(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"{where}: unknown keys {unknown} for {cls.__name__} (known: {sorted(names)})")
    kwargs = {k: parse_value(hints[k], v, where=f"{where}.{k}") for k, v in data.items()}
    return cls(**kwargs)


def _renames_for(cls: type) -> dict[str, str]:
    """The entries of ``RENAMED_OPTIONS`` that apply to config class ``cls``."""
    leaves = {name for name, _, _ in leaf_fields(cls)}
    return {old: new for old, new in RENAMED_OPTIONS.items() if new in leaves and old not in leaves}


_NOTICES_SHOWN: set[str] = set()
"""Rename notices already printed: an experiment reads the same old names once per sub-run."""


def _rename_notice(renamed: list[tuple[str, str]], where: str) -> None:
    if renamed:
        names = ", ".join(f"{old} is now {new}" for old, new in renamed)
        line = f"ppkt: renamed options in {where}: {names}; please use the new names"
        if line not in _NOTICES_SHOWN:
            _NOTICES_SHOWN.add(line)
            print(line, file=sys.stderr)


def rename_overrides(cls: type, overrides: dict[str, Any], where: str = "the overrides") -> dict[str, Any]:
    """``overrides`` with the old names of renamed options (``RENAMED_OPTIONS``) replaced by the new
    ones, and one notice line naming them; an old and a new name with different values is an error."""
    renames = _renames_for(cls)
    out: dict[str, Any] = {}
    renamed = []
    for key, value in overrides.items():
        new = renames.get(key)
        if new is not None:
            renamed.append((key, new))
            if new in overrides and str(overrides[new]) != str(value):
                raise ValueError(
                    f"{key} = {value!r} and {new} = {overrides[new]!r}: {key} is the old name of {new}"
                )
            out.setdefault(new, value)
        else:
            out[key] = value
    _rename_notice(renamed, where)
    return out


def saved_with_current_names(cls: type, data: Any, where: str = "config") -> dict[str, Any]:
    """A saved config of ``cls`` (the nested dict of a config.yaml) with the old names of renamed
    options replaced by the new ones; one notice line names them."""
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected a mapping of {cls.__name__} fields, got {type(data).__name__}")
    return _rename_saved_keys(cls, data, where)


def _rename_saved_keys(cls: type, data: dict[str, Any], where: str) -> dict[str, Any]:
    """A nested dict of a config saved before an option was renamed, with the new names."""
    renames = _renames_for(cls)
    if not renames:
        return data
    data = _copy_mappings(data)
    top = {f.name for f in dataclasses.fields(cls)}
    renamed = []
    for old, new in renames.items():
        *old_path, old_name = old.split(".")
        section = _walk(data, old_path)[-1] if old_path else data
        if not isinstance(section, dict) or old_name not in section:
            continue
        value = section.pop(old_name)
        if not section and len(old_path) == 1 and old_path[0] not in top:
            del data[old_path[0]]
        *new_path, new_name = new.split(".")
        target = data
        for part in new_path:
            target = target.setdefault(part, {})
            if not isinstance(target, dict):
                break
        if not isinstance(target, dict):
            continue  # config_from_dict reports the section
        renamed.append((old, new))
        if new_name in target and target[new_name] != value:
            raise ValueError(
                f"{where}: {old} = {value!r} and {new} = {target[new_name]!r}: {old} is the old name of {new}"
            )
        target.setdefault(new_name, value)
    _rename_notice(renamed, where)
    return data


def _copy_mappings(data: Any) -> Any:
    """``data`` with every nested dict copied (a saved config is renamed without changing the caller's)."""
    return {k: _copy_mappings(v) for k, v in data.items()} if isinstance(data, dict) else data


def _walk(data: dict[str, Any], path: list[str]) -> list[Any]:
    """The values along ``path`` in nested dicts (shorter when a step is missing or not a dict)."""
    out: list[Any] = []
    value: Any = data
    for part in path:
        if not isinstance(value, dict) or part not in value:
            return out + [None]
        value = value[part]
        out.append(value)
    return out


def leaf_fields(cls: type, prefix: str = "") -> list[tuple[str, Any, dataclasses.Field]]:
    """All leaf fields of a nested config class as (dotted name, type, field)."""
    out = []
    hints = _field_types(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        name = f"{prefix}{f.name}"
        if _is_dataclass_type(tp):
            out.extend(leaf_fields(tp, prefix=f"{name}."))
        else:
            out.append((name, tp, f))
    return out


class RangeCheck:
    """Collects the values of a config that cannot be meant, each with its dotted name and range.

    Used by the ``validate`` functions of the configs::

        check = RangeCheck(cfg)
        check.number("optim.lr", low=0, low_open=True)   # a finite number > 0
        check.require("augment.scale_min", cfg.augment.scale_min <= cfg.augment.scale_max,
                      "<= augment.scale_max")
        check.raise_problems("invalid pretraining config")
    """

    def __init__(self, cfg: Any) -> None:
        self.cfg = cfg
        self.problems: list[str] = []
        # inf or a huge number where a float is expected never means what was meant.
        for name, tp, _ in leaf_fields(type(cfg)):
            inner, _ = _strip_optional(tp)
            value = get_dotted(cfg, name)
            if inner is float and isinstance(value, (int, float)) and not math.isfinite(value):
                self.problems.append(f"{name} = {value!r}: must be a finite number")

    def require(self, name: str, ok: bool, allowed: str) -> None:
        """Record a problem with field ``name`` unless ``ok``; ``allowed`` says what would be."""
        if not ok and not any(p.startswith(f"{name} = ") for p in self.problems):
            value = get_dotted(self.cfg, name)
            shown = str(value) if isinstance(value, Path) else repr(value)
            self.problems.append(f"{name} = {shown}: must be {allowed}")

    def number(
        self,
        name: str,
        *,
        low: float | None = None,
        high: float | None = None,
        low_open: bool = False,
        high_open: bool = False,
        optional: bool = False,
    ) -> None:
        """Field ``name`` must lie in the range (None: also allowed when ``optional``)."""
        value = get_dotted(self.cfg, name)
        if value is None and optional:
            return
        ok = isinstance(value, (int, float)) and math.isfinite(value)
        if ok and low is not None:
            ok = value > low if low_open else value >= low
        if ok and high is not None:
            ok = value < high if high_open else value <= high
        if low is not None and high is not None:
            allowed = f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        elif low is not None:
            allowed = f"{'>' if low_open else '>='} {low:g}"
        elif high is not None:
            allowed = f"{'<' if high_open else '<='} {high:g}"
        else:
            allowed = "a finite number"
        self.require(name, ok, allowed + (" or None" if optional else ""))

    def raise_problems(self, what: str) -> None:
        if self.problems:
            raise ValueError(f"{what}: " + "; ".join(self.problems))


def device_problem(name: str) -> str | None:
    """Why ``name`` is not a usable torch device here ("auto" always is), or None."""
    import torch

    if name == "auto":
        return None
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        return "auto, cpu, cuda, cuda:N or another torch device name"
    if device.type == "cuda" and not torch.cuda.is_available():
        return "a device this machine has (CUDA is not available here; use cpu or auto)"
    return None


def get_dotted(cfg: Any, dotted: str) -> Any:
    value = cfg
    for part in dotted.split("."):
        value = getattr(value, part)
    return value


def replace_dotted(cfg: T, dotted: str, value: Any) -> T:
    head, _, rest = dotted.partition(".")
    if not any(f.name == head for f in dataclasses.fields(cfg)):
        raise ValueError(f"unknown config key {dotted!r} in {type(cfg).__name__}")
    if rest:
        return dataclasses.replace(cfg, **{head: replace_dotted(getattr(cfg, head), rest, value)})
    return dataclasses.replace(cfg, **{head: value})


def apply_overrides(cfg: T, overrides: dict[str, Any]) -> T:
    """Return ``cfg`` with dotted-key overrides (strings are parsed by the field's type; old names of
    renamed options are read as the new ones, see ``RENAMED_OPTIONS``)."""
    overrides = rename_overrides(type(cfg), overrides)
    types_by_name = {name: tp for name, tp, _ in leaf_fields(type(cfg))}
    for key, raw in overrides.items():
        if key not in types_by_name:
            close = [n for n in types_by_name if n.endswith(key.split(".")[-1])]
            hint = f"; did you mean {close}?" if close else ""
            raise ValueError(f"unknown config key {key!r}{hint}")
        cfg = replace_dotted(cfg, key, parse_value(types_by_name[key], raw, where=key))
    return cfg


def add_config_arguments(parser: argparse.ArgumentParser, cls: type, title: str = "config") -> None:
    """Add one ``--dotted.name VALUE`` option per leaf field; defaults come from the preset."""
    group = parser.add_argument_group(title, "override any field of the preset")
    for name, tp, f in leaf_fields(cls):
        doc = f.metadata.get(_DOC, "")
        inner, _ = _strip_optional(tp)
        type_name = getattr(inner, "__name__", str(inner).replace("typing.", ""))
        if get_origin(inner) is Literal:
            type_name = "|".join(str(c) for c in get_args(inner))
        group.add_argument(
            f"--{name}",
            dest=f"cfg:{name}",
            metavar=type_name.upper() if get_origin(inner) is not Literal else "{" + type_name + "}",
            default=argparse.SUPPRESS,
            # argparse %-formats help text; a field doc is prose ("15 % of the voxels"), not a template.
            help=argparse.SUPPRESS if f.metadata.get(_INTERNAL) else doc.replace("%", "%%"),
        )
    for old in _renames_for(cls):  # accepted, not listed; apply_overrides says the new name
        group.add_argument(f"--{old}", dest=f"cfg:{old}", default=argparse.SUPPRESS, help=argparse.SUPPRESS)


def overrides_from_namespace(args: argparse.Namespace) -> dict[str, str]:
    return {k[len("cfg:") :]: v for k, v in vars(args).items() if k.startswith("cfg:")}


def save_config(cfg: Any, path: str | Path) -> None:

    atomic_write_text(Path(path), yaml.safe_dump(config_to_dict(cfg), sort_keys=False))


def load_config(cls: type[T], path: str | Path) -> T:
    path = Path(path)
    if not path.is_file():
        problem = "is a folder, not a config file" if path.is_dir() else "config file not found"
        raise FileNotFoundError(f"{path}: {problem}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ValueError(f"{path}: not valid YAML ({problem}{where})") from err
    return config_from_dict(cls, data, where=str(path))
