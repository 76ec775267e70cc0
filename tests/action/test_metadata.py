"""action.yml, the Dockerfile, the workflows, the README and the code agree."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement

from wheelvet.github.settings import INPUT_DEFAULTS

REPO = Path(__file__).resolve().parents[2]
ACTION = yaml.safe_load((REPO / "action.yml").read_text())
BIN = Path(sys.executable).parent


def _load_lock():
    """requirements/lock.py, the script that pins the image's requirements with their hashes."""
    spec = importlib.util.spec_from_file_location("wheelvet_requirements_lock", REPO / "requirements" / "lock.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


LOCK = _load_lock()


def _tool(name: str) -> str:
    found = shutil.which(name, path=f"{BIN}:{shutil.os.environ.get('PATH', '')}")
    if found is None:
        pytest.skip(f"{name} is not installed (pip install the test extras)")
    return found


def test_every_input_is_documented_with_the_default_the_code_uses():
    inputs = ACTION["inputs"]
    assert set(inputs) == set(INPUT_DEFAULTS)
    for name, spec in inputs.items():
        assert spec.get("description", "").strip(), f"input {name} has no description"
        assert spec.get("required") is False, f"input {name}: everything has a default"
        default = spec.get("default")
        if name == "github-token":
            assert default == "${{ github.token }}"
        elif name == "api-url":
            assert default == "${{ github.api_url }}"
        else:
            assert str(default) == INPUT_DEFAULTS[name], name


def test_outputs_are_the_ones_the_action_writes():
    source = (REPO / "src" / "wheelvet" / "action.py").read_text()
    written = set(re.findall(r'^\s+"([a-z-]+)": ', source[source.index("outputs = {"):], re.M)[:8])
    assert set(ACTION["outputs"]) == written
    for name, spec in ACTION["outputs"].items():
        assert spec.get("description", "").strip(), name


def test_docker_action_runs_the_action_subcommand():
    # The image action.yml runs, and that it is this version's: tests/action/test_image.py.
    assert ACTION["runs"]["using"] == "docker"
    docker = (REPO / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["wheelvet", "action"]' in docker
    assert "\nUSER " not in docker and "\nWORKDIR " not in docker


def test_readme_documents_every_input_and_output():
    text = (REPO / "docs" / "action.md").read_text()
    for name in list(ACTION["inputs"]) + list(ACTION["outputs"]):
        assert f"`{name}`" in text, f"docs/action.md does not mention {name}"


def test_pinned_action_requirements_satisfy_pyproject():
    import tomllib

    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    project = pyproject["project"]
    extras = project["optional-dependencies"]
    # The image installs wheelvet[fast], with the action's extra where there is one, and builds
    # the package with its own backend.
    deps = project["dependencies"] + extras["fast"] + extras.get("action", [])
    deps += pyproject["build-system"]["requires"]
    pins = {}
    for line, _ in LOCK.read_pins(REPO / "requirements" / "action.txt"):
        req = Requirement(line)
        pins[req.name.lower().replace("_", "-")] = next(iter(req.specifier)).version
    for dep in deps:
        req = Requirement(dep)
        name = req.name.lower().replace("_", "-")
        if name == "wheelvet":  # an extra naming another of the package's own extras
            continue
        assert name in pins, f"{name} is not pinned in requirements/action.txt"
        assert req.specifier.contains(pins[name], prereleases=True), f"{name}=={pins[name]} violates {req.specifier}"


def test_workflows_pass_actionlint():
    files = sorted(str(p) for p in (REPO / ".github" / "workflows").glob("*.yml"))
    done = subprocess.run([_tool("actionlint"), "-no-color", *files], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_dockerfile_passes_hadolint():
    done = subprocess.run([_tool("hadolint"), str(REPO / "Dockerfile")], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
