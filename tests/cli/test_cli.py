import subprocess
import sys

from ppkt import __version__
from ppkt.cli import available_commands, main


def test_help_lists_available_commands(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    for name in available_commands():
        assert name in out


def test_version():
    result = subprocess.run([sys.executable, "-m", "ppkt", "--version"], capture_output=True, text=True)
    assert result.returncode == 0 and __version__ in result.stdout
