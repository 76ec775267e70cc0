"""The cibuildwheel setup the README documents, run as cibuildwheel runs it.

There is no Docker here, so cibuildwheel itself runs in the project's CI
(.github/workflows/ci.yml, job ``cibuildwheel``). This test takes the
``[tool.cibuildwheel.linux]`` table from the README, fills ``{wheel}`` and
``{dest_dir}`` as cibuildwheel does, runs the command with ``sh -c`` (as
cibuildwheel does inside the container) on a real glibc wheel and a real musl
wheel, each needing a library of its own, with ``AUDITWHEEL_PLAT`` set as the
images set it, and checks cibuildwheel's contract: exactly one wheel in
``{dest_dir}``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
import yaml

from support import EXT_SUFFIX, HAVE_MUSL_GCC, build_extension, clean_env, write_wheel

REPO = Path(__file__).resolve().parents[2]


def documented_table() -> dict:
    readme = (REPO / "README.md").read_text()
    blocks = re.findall(r"```toml\n(.*?)```", readme, re.S)
    (block,) = [b for b in blocks if "[tool.cibuildwheel.linux]" in b]
    return tomllib.loads(block)["tool"]["cibuildwheel"]["linux"]


def fill(command: str, **values: str) -> str:
    """cibuildwheel's placeholders (unknown braces pass through, as its format_safe lets them)."""
    for key, value in values.items():
        command = command.replace("{" + key + "}", value)
    return command


def run_repair_step(wheel: Path, dest_dir: Path, env: dict) -> subprocess.CompletedProcess:
    command = fill(documented_table()["repair-wheel-command"], wheel=str(wheel), dest_dir=str(dest_dir))
    dest_dir.mkdir()
    env = dict(env, PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}")
    return subprocess.run(["sh", "-c", command], capture_output=True, text=True, env=env, timeout=600)


def test_the_documented_table_is_the_example_projects():
    table = documented_table()
    assert table == {"before-build": "pip install wheelvet",
                     "repair-wheel-command": "wheelvet repair -w {dest_dir} {wheel}"}
    example = tomllib.loads((REPO / "examples" / "cibuildwheel" / "pyproject.toml").read_text())
    linux = example["tool"]["cibuildwheel"]["linux"]
    assert {k: linux[k] for k in table} == table


def test_ci_runs_cibuildwheel_on_the_example_for_manylinux_and_musllinux():
    workflow = yaml.safe_load((REPO / ".github" / "workflows" / "ci.yml").read_text())
    job = workflow["jobs"]["cibuildwheel"]
    steps = "\n".join(str(s.get("run", "")) + str(s.get("with", "")) + str(s.get("env", "")) for s in job["steps"])
    assert "examples/cibuildwheel" in steps
    build = next(s["env"]["CIBW_BUILD"] for s in job["steps"] if "CIBW_BUILD" in s.get("env", {}))
    assert "manylinux" in build and "musllinux" in build


def test_repair_wheel_command_on_a_glibc_wheel(tmp_path, libs):
    ext = build_extension(tmp_path / "build", "hello", f"-L{libs}", "-l:libA.so.1", body="int a_value(void);",
                          call="a_value()")
    wheel = write_wheel(tmp_path / "hello-0.1.0-cp311-cp311-linux_x86_64.whl", {f"hello{EXT_SUFFIX}": ext.read_bytes()})
    dest = tmp_path / "wheelhouse"
    p = run_repair_step(wheel, dest, clean_env(LD_LIBRARY_PATH=str(libs), AUDITWHEEL_PLAT="manylinux_2_17_x86_64"))
    assert p.returncode == 0, p.stderr
    (out,) = list(dest.iterdir())  # exactly one file, and it is the wheel
    assert out.name == "hello-0.1.0-cp311-cp311-manylinux1_x86_64.manylinux2014_x86_64.manylinux_2_17_x86_64.manylinux_2_5_x86_64.whl"
    assert any(n.startswith("hello.libs/libA-") for n in zipfile.ZipFile(out).namelist())


def test_a_failing_repair_leaves_dest_dir_empty(tmp_path, libs):
    ext = build_extension(tmp_path / "build", "hello", f"-L{libs}", "-l:libA.so.1", body="int a_value(void);",
                          call="a_value()")
    wheel = write_wheel(tmp_path / "hello-0.1.0-cp311-cp311-linux_x86_64.whl", {f"hello{EXT_SUFFIX}": ext.read_bytes()})
    dest = tmp_path / "wheelhouse"
    p = run_repair_step(wheel, dest, clean_env())  # libA.so.1 cannot be found
    assert p.returncode == 1 and "libA.so.1" in p.stderr
    assert list(dest.iterdir()) == []  # cibuildwheel then reports that the step produced no wheel


@pytest.mark.skipif(not HAVE_MUSL_GCC, reason="musl-gcc is not installed (Debian package musl-tools)")
def test_repair_wheel_command_on_a_musl_wheel(tmp_path):
    libdir = tmp_path / "lib"
    libdir.mkdir()
    src = tmp_path / "src"
    src.mkdir()
    (src / "hello.c").write_text("int hello_answer(void){return 42;}\n")
    (src / "ext.c").write_text("int hello_answer(void);\nint PyInit_hello(void){return hello_answer();}\n")
    subprocess.run(["musl-gcc", "-shared", "-fPIC", "-Wl,-soname,libhello.so.1", "-o", str(libdir / "libhello.so.1"),
                    str(src / "hello.c")], check=True)
    ext = tmp_path / "hello.cpython-311-x86_64-linux-musl.so"
    subprocess.run(["musl-gcc", "-shared", "-fPIC", "-o", str(ext), str(src / "ext.c"), f"-L{libdir}", "-l:libhello.so.1"],
                   check=True)
    wheel = write_wheel(tmp_path / "hello-0.1.0-cp311-cp311-linux_x86_64.whl", {ext.name: ext.read_bytes()})
    dest = tmp_path / "wheelhouse"
    p = run_repair_step(wheel, dest, clean_env(LD_LIBRARY_PATH=str(libdir), AUDITWHEEL_PLAT="musllinux_1_2_x86_64"))
    assert p.returncode == 0, p.stderr
    (out,) = list(dest.iterdir())
    assert out.name == "hello-0.1.0-cp311-cp311-musllinux_1_2_x86_64.whl"
    assert any(n.startswith("hello.libs/libhello-") for n in zipfile.ZipFile(out).namelist())
