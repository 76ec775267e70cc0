"""The action's image: the version action.yml runs, the per-base actions, the pinned bases, the
locked requirements, and the workflows that build the image, all in step with each other.

The per-base actions (``manylinux2014/action.yml``, ...) and the development action CI runs
(``.github/actions/dev/action.yml``) are the root action.yml with another image; after a change
to the root one, ``WHEELVET_UPDATE_GOLDEN=1 pytest tests/action/test_image.py`` rewrites them.
"""

from __future__ import annotations

import os
import re
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml
from test_metadata import LOCK, _tool

REPO = Path(__file__).resolve().parents[2]
IMAGE = "ghcr.io/wheelvet/wheelvet"
DEFAULT_POLICY = "manylinux_2_28"
RUNNERS = {"amd64": "ubuntu-24.04", "arm64": "ubuntu-24.04-arm"}
UPDATE = bool(os.environ.get("WHEELVET_UPDATE_GOLDEN"))


VERSION = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
ROOT_TEXT = (REPO / "action.yml").read_text()
ROOT = yaml.safe_load(ROOT_TEXT)
IMAGES = LOCK.read_images()  # (policy, docker arch) of every Dockerfile base stage
POLICIES = list(dict.fromkeys(policy for policy, _ in IMAGES))


def _workflow(name: str) -> dict:
    return yaml.safe_load((REPO / ".github" / "workflows" / name).read_text())


# ------------------------------------------------------------------ the image action.yml runs

def test_action_runs_the_released_image_of_this_version():
    assert ROOT["runs"] == {"using": "docker", "image": f"docker://{IMAGE}:{VERSION}"}


def test_the_default_image_has_the_dockerfile_default_base():
    assert re.search(rf"^ARG POLICY={DEFAULT_POLICY}$", (REPO / "Dockerfile").read_text(), re.M)
    assert DEFAULT_POLICY in POLICIES


# ------------------------------------------------------------------ per-base actions

# name -> (file, image, what it runs in)
VARIANTS = {policy: (REPO / policy / "action.yml", f"docker://{IMAGE}:{VERSION}-{policy}", f"the {policy} image")
            for policy in POLICIES if policy != DEFAULT_POLICY}
VARIANTS["dev"] = (REPO / ".github" / "actions" / "dev" / "action.yml", "../../../Dockerfile",
                   "the image built from the checkout's Dockerfile (the project's own CI)")


def render_variant(root_text: str, label: str, image: str, what: str) -> str:
    """The root action.yml with another image: same inputs, outputs and everything else."""
    lines = root_text.splitlines(keepends=True)
    image_lines = [i for i, line in enumerate(lines) if re.match(r"^  image: ", line)]
    name_lines = [i for i, line in enumerate(lines) if re.match(r"^name: ", line)]
    assert len(image_lines) == 1 and len(name_lines) == 1, "action.yml: one top-level name, one runs.image"
    lines[image_lines[0]] = f"  image: {image}\n"
    lines[name_lines[0]] = lines[name_lines[0]].rstrip("\n") + f" ({label})\n"
    header = ("# Generated from the repository's action.yml (tests/action/test_image.py): edit that file,\n"
              "# then run `WHEELVET_UPDATE_GOLDEN=1 pytest tests/action/test_image.py`.\n"
              f"# The wheelvet action, run in {what}.\n")
    return header + "".join(lines)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_variant_actions_are_the_root_action_with_another_image(variant):
    path, image, what = VARIANTS[variant]
    expected = render_variant(ROOT_TEXT, variant, image, what)
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(expected)
    assert path.exists(), f"missing {path.relative_to(REPO)} (run with WHEELVET_UPDATE_GOLDEN=1)"
    assert path.read_text() == expected, (
        f"{path.relative_to(REPO)} is out of step with action.yml (run with WHEELVET_UPDATE_GOLDEN=1)")
    variant_action = yaml.safe_load(expected)
    assert variant_action["inputs"] == ROOT["inputs"] and variant_action["outputs"] == ROOT["outputs"]
    assert variant_action["runs"] == {"using": "docker", "image": image}


def test_render_variant_changes_only_name_and_image():
    root = "name: x\ninputs:\n  a:\n    default: '1'\nruns:\n  using: docker\n  image: docker://i:1\n"
    out = render_variant(root, "p", "docker://i:1-p", "the p image")
    assert out.endswith("name: x (p)\ninputs:\n  a:\n    default: '1'\nruns:\n  using: docker\n  image: docker://i:1-p\n")


def test_every_action_directory_is_a_base_of_the_dockerfile():
    found = {p.parent.name for p in REPO.glob("*/action.yml")}
    assert found == set(VARIANTS) - {"dev"}, "a per-base action without a Dockerfile base, or the reverse"


# ------------------------------------------------------------------ the Dockerfile's bases

def test_every_base_is_pinned_by_digest_on_both_architectures():
    text = (REPO / "Dockerfile").read_text()
    stages = re.findall(r"^FROM (\S+) AS (\S+)$", text, re.M)
    assert len(stages) == len(IMAGES) and set(IMAGES) == {(p, a) for p in POLICIES for a in RUNNERS}
    for ref, stage in stages:
        policy, arch = stage.rsplit("-", 1)
        m = re.fullmatch(r"quay\.io/pypa/([a-z0-9_]+)_(x86_64|aarch64):([0-9.]+-[0-9]+)@sha256:([0-9a-f]{64})", ref)
        assert m, f"{ref}: not quay.io/pypa/<policy>_<arch>:<tag>@sha256:<digest>"
        assert (m[1], m[2]) == (policy, LOCK.ARCHES[arch]), f"stage {stage} pins {ref}"
    digests = [ref.rsplit("@", 1)[1] for ref, _ in stages]
    assert len(set(digests)) == len(digests)
    # The stage the build uses: the policy asked for, on the build's target architecture.
    assert re.findall(r"^FROM (.*)$", text, re.M)[-1] == "${POLICY}-${TARGETARCH}"


def test_lock_platform_tags_follow_pep_600_and_656():
    assert LOCK.platform_tags("manylinux_2_28", "x86_64")[:2] == ["manylinux_2_28_x86_64", "manylinux_2_27_x86_64"]
    tags = LOCK.platform_tags("manylinux_2_28", "x86_64")
    assert tags.index("manylinux2014_x86_64") == tags.index("manylinux_2_17_x86_64") + 1
    assert tags[-3:] == ["manylinux_2_5_x86_64", "manylinux1_x86_64", "linux_x86_64"]
    assert LOCK.platform_tags("manylinux2014", "aarch64") == [
        "manylinux_2_17_aarch64", "manylinux2014_aarch64", "linux_aarch64"]
    assert LOCK.platform_tags("musllinux_1_2", "aarch64") == [
        "musllinux_1_2_aarch64", "musllinux_1_1_aarch64", "musllinux_1_0_aarch64", "linux_aarch64"]


# ------------------------------------------------------------------ the locked requirements

def test_action_txt_is_locked_from_action_in_for_every_image():
    source = [req for req, _ in LOCK.read_pins(REPO / "requirements" / "action.in")]
    locked = (REPO / "requirements" / "action.txt").read_text()
    assert [req for req, _ in LOCK.read_pins(REPO / "requirements" / "action.txt")] == source, (
        "requirements/action.txt does not hold action.in's pins: run `python requirements/lock.py`")
    entries = re.split(r"\n(?=[A-Za-z])", locked.split("\n", 3)[3])
    for entry in entries:
        if entry.startswith("#"):
            continue
        hashes = re.findall(r"--hash=sha256:(\S+)", entry)
        assert hashes and all(re.fullmatch(r"[0-9a-f]{64}", h) for h in hashes), entry
    # The header names the images it was locked for: a base added to the Dockerfile needs a new lock.
    policies = ", ".join(POLICIES)
    assert f"in each image: {policies}; each on x86_64 and aarch64." in locked


def test_dockerfile_installs_only_hashed_wheels():
    text = (REPO / "Dockerfile").read_text()
    assert "--require-hashes --only-binary=:all: -r /opt/wheelvet/requirements.txt" in text
    assert "--no-deps --no-build-isolation --no-index /opt/wheelvet/src" in text
    assert "COPY requirements/action.txt /opt/wheelvet/requirements.txt" in text


# ------------------------------------------------------------------ the workflows

def _legs(job: dict) -> list[dict]:
    """The matrix combinations of a job (include entries extend matching ones, as Actions does)."""
    matrix = job["strategy"]["matrix"]
    keys = [k for k in matrix if k not in ("include", "exclude")]
    legs = [{}]
    for key in keys:
        legs = [dict(leg, **{key: value}) for leg in legs for value in matrix[key]]
    for extra in matrix.get("include", []):
        matched = [leg for leg in legs if all(leg.get(k, v) == v for k, v in extra.items() if k in keys)]
        for leg in matched:
            leg.update(extra)
        if not matched:
            legs.append(dict(extra))
    return legs


def test_release_builds_every_base_natively_on_both_architectures():
    release = _workflow("release.yml")
    assert release[True] == {"push": {"tags": ["v*"]}}  # yaml reads the `on:` key as True
    legs = _legs(release["jobs"]["build"])
    assert sorted((leg["policy"], leg["arch"]) for leg in legs) == sorted(IMAGES)
    assert all(leg["runner"] == RUNNERS[leg["arch"]] for leg in legs)
    assert release["jobs"]["build"]["runs-on"] == "${{ matrix.runner }}"
    assert sorted(leg["policy"] for leg in _legs(release["jobs"]["manifest"])) == sorted(POLICIES)
    assert release["env"] == {"IMAGE": IMAGE, "DEFAULT_POLICY": DEFAULT_POLICY}


def test_ci_runs_the_container_tests_for_every_base_on_both_architectures():
    jobs = _workflow("ci.yml")["jobs"]
    legs = _legs(jobs["container"])
    assert sorted((leg["policy"], leg["arch"]) for leg in legs) == sorted(IMAGES)
    assert all(leg["runner"] == RUNNERS[leg["arch"]] for leg in legs)
    assert jobs["container"]["runs-on"] == "${{ matrix.runner }}"
    dogfood = jobs["dogfood"]
    assert sorted(leg["runner"] for leg in _legs(dogfood)) == sorted(RUNNERS.values())
    assert "./.github/actions/dev" in [step.get("uses") for step in dogfood["steps"]]


def test_the_container_tests_build_the_policy_ci_asks_for():
    compose = yaml.safe_load((REPO / "tests" / "container" / "docker-compose.yml").read_text())
    assert compose["services"]["action"]["build"]["args"] == {"POLICY": f"${{WHEELVET_POLICY:-{DEFAULT_POLICY}}}"}
    step = next(s for s in _workflow("ci.yml")["jobs"]["container"]["steps"] if "tests/container" in s.get("run", ""))
    assert step["env"]["WHEELVET_POLICY"] == "${{ matrix.policy }}"


# ------------------------------------------------------------------ the docs' workflows

def _docs_workflows() -> list[str]:
    text = (REPO / "docs" / "action.md").read_text()
    return [block for block in re.findall(r"```yaml\n(.*?)```", text, re.S) if re.search(r"^jobs:", block, re.M)]


def test_docs_matrix_example_builds_each_architecture_on_its_own_runner():
    examples = [yaml.safe_load(block) for block in _docs_workflows()]
    matrix_jobs = [job for wf in examples for job in wf["jobs"].values()
                   if "aarch64" in str(job.get("strategy", {}).get("matrix", ""))]
    assert matrix_jobs, "docs/action.md has no build matrix with aarch64 legs"
    for job in matrix_jobs:
        legs = _legs(job)
        assert {leg["arch"] for leg in legs} == {"x86_64", "aarch64"}
        assert {leg.get("libc") for leg in legs} == {"manylinux", "musllinux"}
        arch_runner = {"x86_64": RUNNERS["amd64"], "aarch64": RUNNERS["arm64"]}
        assert all(leg["runner"] == arch_runner[leg["arch"]] for leg in legs)
        assert job["runs-on"] == "${{ matrix.runner }}"
        build = next(step for step in job["steps"] if "cibuildwheel" in step.get("run", ""))
        assert build["env"]["CIBW_ARCHS"] == "${{ matrix.arch }}"
        assert "${{ matrix.libc }}" in build["env"]["CIBW_BUILD"]


@pytest.fixture
def docs_workflow_files(tmp_path):
    paths = []
    for i, block in enumerate(_docs_workflows()):
        path = tmp_path / f"docs-example-{i}.yml"
        path.write_text(block)
        paths.append(str(path))
    return paths


def test_docs_workflows_pass_actionlint(docs_workflow_files):
    done = subprocess.run([_tool("actionlint"), "-no-color", *docs_workflow_files], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
