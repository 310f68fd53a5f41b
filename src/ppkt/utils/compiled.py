"""Optional compiled CPU kernels: numba, when it imports, for the per-frame loops.

A depth frame's geometry (back-projection, colour lookup, voxelisation) is a dozen passes over
``(N, 3)`` arrays in torch; a loop or two per function measured 1.3-2.3x faster per frame on one
CPU thread (``python benchmarks/bench_geometry.py`` prints both paths). numba is an optional dependency
(``pip install ppkt[fast]``): without it, or with ``PPKT_NUMBA=0`` in the environment, the torch
code runs. Both paths give the same values, bit for bit (the tests compare them), so a run's
figures do not depend on whether numba is installed.

numba is imported on the first call that could use it (0.2 s, kept out of start-up). Kernels
compile on their first call in a process (about a second each) and are cached on disk (numba's
``cache=True``: ``__pycache__`` beside the source, else numba's user cache folder).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import ModuleType

_UNRESOLVED = object()
_numba: ModuleType | None | object = _UNRESOLVED
_switch: bool | None = None  # compiled_kernels' override; None: numba and the environment decide


def _numba_module() -> ModuleType | None:
    global _numba
    if _numba is _UNRESOLVED:
        try:  # numba is optional: the torch path runs without it (or when it fails to import)
            _numba = importlib.import_module("numba")
        except ImportError:
            _numba = None
    return _numba  # type: ignore[return-value]


def numba_available() -> bool:
    """Whether numba imports (independent of :func:`compiled_kernels` and ``PPKT_NUMBA``)."""
    return _numba_module() is not None


def use_compiled() -> bool:
    """Whether callers should take their compiled path now: numba imports and neither
    ``PPKT_NUMBA=0`` nor :func:`compiled_kernels` switched it off."""
    if _switch is not None:
        return _switch
    return os.environ.get("PPKT_NUMBA", "1") != "0" and numba_available()


@contextmanager
def compiled_kernels(enabled: bool) -> Iterator[None]:
    """Switch the compiled paths on or off for the block (tests and benchmarks compare both).

    Switching on without numba raises ``RuntimeError``.
    """
    global _switch
    if enabled and not numba_available():
        raise RuntimeError("compiled_kernels(True) needs numba: pip install 'ppkt[fast]'")
    previous = _switch
    _switch = enabled
    try:
        yield
    finally:
        _switch = previous


def njit(function: Callable) -> Callable:
    """``numba.njit`` with on-disk caching and the GIL released (DataLoader threads can overlap);
    without numba the plain Python function, which callers never reach (:func:`use_compiled`)."""
    numba = _numba_module()
    if numba is None:
        return function
    return numba.njit(cache=True, nogil=True)(function)  # type: ignore[attr-defined]
