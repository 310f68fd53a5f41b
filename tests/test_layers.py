"""The layer contract of ppkt's packages: every import points down (docs/architecture.md).

The contract is read from the source with ``ast`` (function-local imports included, since they are
edges too), so a wrong-way import fails here even when no test happens to execute it.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import ppkt

PACKAGE = Path(ppkt.__file__).parent

# Lowest first. Packages on one line are peers: they may not import each other either, so that
# each of them can be read (and tested) without the others.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("utils",),
    ("config",),
    ("geometry",),
    ("data", "sparse"),
    ("augment", "teachers", "backbones", "losses", "engine"),
    ("train", "eval"),
    ("viz",),
    ("experiments",),
    ("cli",),
    ("__main__",),
)
LEVEL = {name: level for level, names in enumerate(LAYERS) for name in names}


def unit_of(path: Path) -> str:
    """The top-level unit a source file belongs to: its package, or a module of ``ppkt`` itself."""
    rel = path.relative_to(PACKAGE)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def ppkt_imports(path: Path) -> list[tuple[int, str]]:
    """(line, imported unit) of every ``ppkt.<unit>`` import in a file, relative imports resolved."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    here = list(path.relative_to(PACKAGE).parent.parts)
    return [(node.lineno, unit) for node in ast.walk(tree) for unit in _imported_units(node, here)]


def _imported_units(node: ast.AST, here: list[str]) -> list[str]:
    """The ``ppkt.<unit>`` names an import node imports (none for other nodes or other packages);
    ``here`` is the importing file's folder inside ``ppkt``, for relative imports."""
    names: list[str] = []
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom):
        if node.level:
            base = here[: len(here) - (node.level - 1)] if node.level > 1 else here
            parts = ["ppkt", *base, *(node.module.split(".") if node.module else [])]
            if len(parts) == 1:  # from . import x (inside ppkt/)
                parts += [alias.name for alias in node.names][:1]
            names = [".".join(parts)]
        elif node.module:
            names = [node.module]
            if node.module == "ppkt":
                names = [f"ppkt.{alias.name}" for alias in node.names]
    units = []
    for name in names:
        parts = name.split(".")
        if parts[0] == "ppkt" and len(parts) > 1:
            units.append(parts[1])
    return units


def violations() -> list[str]:
    bad = []
    for path in sorted(PACKAGE.rglob("*.py")):
        unit = unit_of(path)
        if unit == "__init__":
            continue
        if unit not in LEVEL:
            bad.append(f"{path.relative_to(PACKAGE)}: package {unit!r} has no layer in LAYERS")
            continue
        for line, target in ppkt_imports(path):
            if target == unit or target == "__version__":
                continue
            if target not in LEVEL:
                bad.append(f"{path.relative_to(PACKAGE)}:{line}: imports unknown ppkt.{target}")
            elif LEVEL[target] >= LEVEL[unit]:
                kind = "a peer" if LEVEL[target] == LEVEL[unit] else "a higher layer"
                bad.append(f"{path.relative_to(PACKAGE)}:{line}: {unit} imports {kind}, ppkt.{target}")
    return bad


# A function-local import hides an edge from a reader of the module's head, so it needs a reason:
# an import cycle, an optional or heavy dependency, or start-up time (ppkt.cli, not checked).
REASON = re.compile(r"#\s*local:\s*\S")
NO_REASON = "function-local ppkt import without '# local: <why>'"


def unexplained_local_imports() -> list[str]:
    """Function-local ``ppkt`` imports outside ``ppkt.cli`` without a ``# local: <why>`` comment on
    their first line or on the line before it. Imports of other packages are not checked."""
    bad = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if unit_of(path) == "cli":
            continue
        source = path.read_text(encoding="utf-8")
        lines = source.splitlines()
        here = list(path.relative_to(PACKAGE).parent.parts)
        local = {
            node.lineno
            for function in ast.walk(ast.parse(source, filename=str(path)))
            if isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef))
            for node in ast.walk(function)
            if _imported_units(node, here)
        }
        for line in sorted(local):
            before = lines[line - 2].strip() if line > 1 else ""
            if not REASON.search(lines[line - 1]) and not (before.startswith("#") and REASON.match(before)):
                bad.append(
                    f"{path.relative_to(PACKAGE)}:{line}: function-local ppkt import without '# local: <why>'"
                )
    return bad


def test_every_import_points_down():
    assert violations() == []


def test_function_local_imports_say_why():
    assert unexplained_local_imports() == []


def test_every_package_has_a_layer():
    packages = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert packages <= set(LEVEL), sorted(packages - set(LEVEL))


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("from ppkt.train.export import load_card\n", ["eval/x.py:1: eval imports a peer, ppkt.train"]),
        ("import ppkt.cli\n", ["eval/x.py:1: eval imports a higher layer, ppkt.cli"]),
        ("def f():\n    from ..viz import render\n", ["eval/x.py:2: eval imports a higher layer, ppkt.viz"]),
        ("from ppkt.geometry import unproject\nfrom . import data\n", []),
    ],
)
def test_the_checker_sees_wrong_way_imports(tmp_path, monkeypatch, source, expected):
    """The contract check itself: a planted wrong-way import (module level, function-local or
    relative) is reported with its file and line; a downward one is not."""
    fake = tmp_path / "ppkt"
    (fake / "eval").mkdir(parents=True)
    (fake / "eval" / "__init__.py").write_text("")
    (fake / "eval" / "x.py").write_text(source)
    monkeypatch.setattr(__import__(__name__), "PACKAGE", fake)
    assert violations() == expected


_UNPROJECT = "    from ppkt.geometry import unproject"


@pytest.mark.parametrize(
    ("unit", "source", "expected"),
    [
        ("eval", f"def f():\n{_UNPROJECT}\n", [f"eval/x.py:2: {NO_REASON}"]),
        (
            "eval",
            "class A:\n    def f(self):\n        from ..data import ply\n",
            [f"eval/x.py:3: {NO_REASON}"],
        ),
        ("eval", "def f():\n    import ppkt.geometry\n", [f"eval/x.py:2: {NO_REASON}"]),
        (
            "eval",
            f"def f():\n    # local:\n{_UNPROJECT}\n",
            [f"eval/x.py:3: {NO_REASON}"],
        ),
        (
            "eval",
            f"# local: a cycle\n\ndef f():\n{_UNPROJECT}\n",
            [f"eval/x.py:4: {NO_REASON}"],
        ),
        (
            "eval",
            f"def f():\n    # local: cycle with ppkt.eval.y\n{_UNPROJECT}\n",
            [],
        ),
        ("eval", f"def f():\n{_UNPROJECT}  # local: heavy\n", []),
        ("eval", "def f():\n    import scipy.ndimage\n", []),
        ("eval", "from ppkt.geometry import unproject\n", []),
        ("cli", "def main():\n    from ppkt.train.loop import pretrain\n", []),
    ],
)
def test_the_checker_sees_unexplained_local_imports(tmp_path, monkeypatch, unit, source, expected):
    """The reason check itself: a planted function-local ppkt import (absolute, relative, in a method)
    without a reason, with an empty one or with one that is not next to it, is reported with its file
    and line; one with a reason, a third-party one, a module-level one and any in ``ppkt.cli`` are not."""
    fake = tmp_path / "ppkt"
    (fake / unit).mkdir(parents=True)
    (fake / unit / "__init__.py").write_text("")
    (fake / unit / "x.py").write_text(source)
    monkeypatch.setattr(__import__(__name__), "PACKAGE", fake)
    assert unexplained_local_imports() == [e.replace("eval/", f"{unit}/") for e in expected]
