"""PLY point clouds: read and write the vertex element (binary little-endian or ASCII).

ScanNet's ``_vh_clean_2.ply`` / ``.labels.ply`` files, MeshLab, CloudCompare and Open3D all
use this format. Only the ``vertex`` element is returned; faces are skipped over.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ppkt.utils.io import atomic_write_bytes

_PLY_TO_NUMPY = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1",
    "short": "i2", "int16": "i2", "ushort": "u2", "uint16": "u2",
    "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4", "double": "f8", "float64": "f8",
}  # fmt: skip
_NUMPY_TO_PLY = {"i1": "char", "u1": "uchar", "i2": "short", "u2": "ushort", "i4": "int", "u4": "uint",
                 "f4": "float", "f8": "double"}  # fmt: skip


class PlyError(ValueError):
    """A PLY file that cannot be read, with the file named in the message."""


def read_ply_vertices(path: str | Path) -> dict[str, np.ndarray]:
    """Read the vertex properties of a PLY file as ``{name: (N,) array}``."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise PlyError(f"{path}: cannot read ({err.strerror})") from err
    end = data.find(b"end_header")
    if not data.startswith(b"ply") or end < 0:
        raise PlyError(f"{path}: not a PLY file (no 'ply' magic or no 'end_header')")
    header_end = data.index(b"\n", end) + 1
    header = data[:header_end].decode("ascii", errors="replace").splitlines()
    fmt = None
    elements: list[tuple[str, int, list[tuple[str, str]]]] = []
    for line in header[1:]:
        parts = line.split()
        if not parts or parts[0] in ("comment", "obj_info", "end_header"):
            continue
        if parts[0] == "format":
            fmt = parts[1]
        elif parts[0] == "element":
            elements.append((parts[1], int(parts[2]), []))
        elif parts[0] == "property":
            if not elements:
                raise PlyError(f"{path}: property before any element")
            if parts[1] == "list":
                elements[-1][2].append((parts[-1], f"list:{parts[2]}:{parts[3]}"))
            else:
                if parts[1] not in _PLY_TO_NUMPY:
                    raise PlyError(f"{path}: unknown property type {parts[1]!r}")
                elements[-1][2].append((parts[2], _PLY_TO_NUMPY[parts[1]]))
    if fmt not in ("binary_little_endian", "ascii"):
        raise PlyError(f"{path}: unsupported PLY format {fmt!r} (binary_little_endian and ascii are)")
    if not elements or elements[0][0] != "vertex":
        raise PlyError(f"{path}: the first element is not 'vertex'")
    _, count, props = elements[0]
    if any(kind.startswith("list") for _, kind in props):
        raise PlyError(f"{path}: list properties in the vertex element are not supported")
    body = data[header_end:]
    if fmt == "ascii":
        text = body.decode("ascii", errors="replace").split("\n")[:count]
        if len(text) < count:
            raise PlyError(f"{path}: expected {count} vertex lines, found {len(text)}")
        try:
            table = np.loadtxt(text, ndmin=2, usecols=range(len(props)))
        except ValueError as err:
            raise PlyError(f"{path}: malformed ASCII vertex data ({err})") from err
        return {name: table[:, k].astype(kind) for k, (name, kind) in enumerate(props)}
    dtype = np.dtype([(name, "<" + kind) for name, kind in props])
    if len(body) < dtype.itemsize * count:
        raise PlyError(
            f"{path}: truncated: header promises {count} vertices ({dtype.itemsize * count} bytes), "
            f"file has {len(body)} bytes after the header"
        )
    table = np.frombuffer(body, dtype=dtype, count=count)
    return {name: np.ascontiguousarray(table[name]) for name in dtype.names}


def write_ply_vertices(path: str | Path, columns: dict[str, np.ndarray], comment: str = "") -> Path:
    """Write ``{name: (N,) array}`` as the vertex element of a binary little-endian PLY (atomically)."""
    names = list(columns)
    arrays = [np.asarray(columns[n]) for n in names]
    count = len(arrays[0]) if arrays else 0
    if any(a.ndim != 1 or len(a) != count for a in arrays):
        raise ValueError("write_ply_vertices: every column must be 1-D with the same length")
    kinds = [a.dtype.str[1:] for a in arrays]
    for name, kind in zip(names, kinds, strict=True):
        if kind not in _NUMPY_TO_PLY:
            raise ValueError(f"write_ply_vertices: column {name!r} has unsupported dtype {kind}")
    dtype = np.dtype([(n, "<" + k) for n, k in zip(names, kinds, strict=True)])
    table = np.empty(count, dtype=dtype)
    for name, array in zip(names, arrays, strict=True):
        table[name] = array
    lines = ["ply", "format binary_little_endian 1.0"]
    if comment:
        lines.append(f"comment {comment}")
    lines.append(f"element vertex {count}")
    lines += [f"property {_NUMPY_TO_PLY[k]} {n}" for n, k in zip(names, kinds, strict=True)]
    lines.append("end_header")
    return atomic_write_bytes(path, ("\n".join(lines) + "\n").encode("ascii") + table.tobytes())
