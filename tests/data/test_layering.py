"""Layering of the readers: no import cycle among ppkt.data modules (counting imports inside
functions too), and geometry never imports the readers or anything above them."""

import ast
from pathlib import Path

import ppkt

SRC = Path(ppkt.__file__).parent


def imports(path: Path) -> set[str]:
    """ppkt modules imported anywhere in the file (top level or inside functions)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("ppkt"):
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("ppkt")}
    return found


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_no_import_cycle_among_the_readers():
    files = [p for p in (SRC / "data").glob("*.py") if p.name != "__init__.py"]
    names = {module_name(p) for p in files}
    graph = {module_name(p): {m for m in imports(p) if m in names} for p in files}
    # registry, check and lidar_check open the readers: they sit above them by design.
    above = {"ppkt.data.registry", "ppkt.data.check", "ppkt.data.lidar_check"}
    readers = {name: deps - above for name, deps in graph.items() if name not in above}

    def visit(node, path):
        assert node not in path, f"import cycle: {' -> '.join([*path, node])}"
        for dep in readers.get(node, ()):
            visit(dep, [*path, node])

    for name in readers:
        visit(name, [])
    for name in readers:
        assert not graph[name] & above, f"{name} imports {graph[name] & above}"


def test_geometry_knows_no_readers():
    for path in (SRC / "geometry").glob("*.py"):
        above = {m for m in imports(path) if m.split(".")[1] in ("data", "train", "eval", "teachers", "viz")}
        assert not above, f"{path.name} imports {above}"
