"""The action in its container: the image builds, and its entry point does the job."""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "action"))

from fake_github import FakeGitHub  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


def _exec(docker_services, env: dict, *cmd: str) -> subprocess.CompletedProcess:
    flags = " ".join(f"-e {k}={v!r}" for k, v in env.items())
    return docker_services._docker_compose.execute(f"exec -T {flags} action {' '.join(cmd)}")


@pytest.fixture(scope="session")
def example_wheel(container_workspace):
    """The example wheel, built on the host and placed in the workspace."""
    out = container_workspace / "build"
    subprocess.run(["bash", str(REPO / "examples" / "build_example.sh"), str(out)], check=True, capture_output=True)
    return out


def test_image_runs_wheelvet(docker_services, container_workspace):
    out = docker_services._docker_compose.execute("exec -T action wheelvet --version")
    assert out.startswith(b"wheelvet ")


def test_image_has_the_base_policy_and_architecture_asked_for(docker_services, container_workspace):
    # The pypa images name their policy and architecture (AUDITWHEEL_POLICY, AUDITWHEEL_ARCH): the
    # build took the Dockerfile stage of WHEELVET_POLICY on this machine's own architecture.
    out = docker_services._docker_compose.execute("exec -T action sh -c 'echo $AUDITWHEEL_POLICY $AUDITWHEEL_ARCH'")
    assert out.decode().split() == [os.environ.get("WHEELVET_POLICY", "manylinux_2_28"), platform.machine()]


def test_action_repairs_and_comments_in_the_container(docker_services, container_workspace, example_wheel, tmp_path):
    fake = FakeGitHub(token="ghs_container_token").start()
    try:
        event = container_workspace / "event.json"
        event.write_text(json.dumps({"pull_request": {"number": 3, "head": {"repo": {"full_name": "o/r"}},
                                                      "base": {"repo": {"full_name": "o/r"}}}}))
        (container_workspace / "out.txt").write_text("")
        (container_workspace / "summary.md").write_text("")
        env = {
            "GITHUB_WORKSPACE": "/github/workspace", "GITHUB_EVENT_NAME": "pull_request",
            "GITHUB_EVENT_PATH": "/github/workspace/event.json", "GITHUB_REPOSITORY": "o/r",
            "GITHUB_OUTPUT": "/github/workspace/out.txt", "GITHUB_STEP_SUMMARY": "/github/workspace/summary.md",
            "INPUT_WHEELS": "build/dist/*.whl", "INPUT_LD-LIBRARY-PATH": "build/lib", "INPUT_UPLOAD": "false",
            "INPUT_GITHUB-TOKEN": fake.token, "INPUT_API-URL": fake.url,
        }
        _exec(docker_services, env, "wheelvet", "action")
        repaired = list((container_workspace / "wheelhouse").glob("*.whl"))
        assert len(repaired) == 1 and "manylinux" in repaired[0].name
        assert any(n.startswith("greeter.libs/libgreet-") for n in zipfile.ZipFile(repaired[0]).namelist())
        assert len(fake.comments[("o/r", 3)]) == 1
    finally:
        fake.stop()
        shutil.rmtree(container_workspace / "wheelhouse", ignore_errors=True)
