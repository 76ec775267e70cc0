"""Container tests: build the action's image and run its entry point in it.

They need a Docker engine; without one they skip, saying why.  They run in
the project's own workflow (.github/workflows/ci.yml).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

HERE = Path(__file__).parent


def _engine_problem() -> str | None:
    docker = shutil.which("docker")
    if docker is None:
        return "no docker client on PATH"
    try:
        done = subprocess.run([docker, "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        return "`docker info` did not answer in 30 s"
    if done.returncode != 0:
        return "no Docker engine answers (`docker info` failed: " + " ".join(done.stderr.split())[:160] + ")"
    return None


def pytest_collection_modifyitems(config, items):
    problem = None
    for item in items:
        if "tests/container" in str(item.fspath):
            problem = problem or _engine_problem() or ""
            if problem:
                item.add_marker(pytest.mark.skip(reason=f"container tests skipped: {problem}"))


@pytest.fixture(scope="session")
def container_workspace(tmp_path_factory):
    ws = tmp_path_factory.mktemp("workspace")
    os.environ["WHEELVET_TEST_WORKSPACE"] = str(ws)
    return ws


@pytest.fixture(scope="session")
def docker_compose_file(pytestconfig):
    return str(HERE / "docker-compose.yml")


@pytest.fixture(scope="session")
def docker_setup():
    return ["up --build -d"]
