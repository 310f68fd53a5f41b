import subprocess
import sys

import pytest

from ppkt.utils import compiled
from ppkt.utils.compiled import compiled_kernels, numba_available, use_compiled


def test_switch_restores_the_previous_state_after_an_error():
    before = use_compiled()
    with pytest.raises(KeyError), compiled_kernels(False):
        assert not use_compiled()
        raise KeyError("x")
    assert use_compiled() == before


def test_switching_on_without_numba_says_how_to_install_it(monkeypatch):
    monkeypatch.setattr(compiled, "_numba", None)
    assert not compiled.use_compiled()
    with pytest.raises(RuntimeError, match=r"ppkt\[fast\]"), compiled_kernels(True):
        pass


def test_without_numba_njit_returns_the_python_function(monkeypatch):
    monkeypatch.setattr(compiled, "_numba", None)

    def add(a, b):
        return a + b

    assert compiled.njit(add) is add


def test_environment_switches_the_compiled_path_off():
    code = "from ppkt.utils.compiled import use_compiled; print(use_compiled())"
    for value, expected in (("0", "False"), ("1", str(numba_available()))):
        out = subprocess.run(
            [sys.executable, "-c", code],
            env={"PPKT_NUMBA": value, "PATH": ""},
            capture_output=True,
            text=True,
        )
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == expected
