"""ruff keeps the whole tree clean: lint (ruff.toml's rules) and the formatter's check."""

import shutil
import subprocess
import sys

import pytest
from conftest import ROOT


def ruff(*args: str) -> subprocess.CompletedProcess:
    exe = shutil.which("ruff", path=str(ROOT / ".venv" / "bin")) or shutil.which("ruff")
    cmd = [exe] if exe else [sys.executable, "-m", "ruff"]
    return subprocess.run([*cmd, *args], cwd=ROOT, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(
    "args", [("check", "."), ("format", "--check", ".")], ids=["lint", "format"]
)
def test_ruff_is_clean(args):
    done = ruff(*args)
    assert done.returncode == 0, (
        f"`ruff {' '.join(args)}` found problems (fix with `ruff check --fix .` / `ruff format .`):\n"
        + done.stdout
        + done.stderr
    )
