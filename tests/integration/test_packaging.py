"""The installed package carries its policy data and both entry points."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_built_wheel_ships_policies_and_console_script(tmp_path):
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", str(REPO), "-w", str(tmp_path)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    (whl,) = tmp_path.glob("wheelvet-*.whl")
    with zipfile.ZipFile(whl) as zf:
        names = set(zf.namelist())
        entry_points = next(zf.read(n).decode() for n in names if n.endswith("entry_points.txt"))
    assert {"wheelvet/policies/manylinux.json", "wheelvet/policies/musllinux.json"} <= names
    assert (REPO / "policies" / "manylinux.json").read_bytes() == zipfile.ZipFile(whl).read("wheelvet/policies/manylinux.json")
    assert "wheelvet = wheelvet.cli:main" in entry_points


def test_python_dash_m_version():
    out = subprocess.run([sys.executable, "-m", "wheelvet", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("wheelvet ")
