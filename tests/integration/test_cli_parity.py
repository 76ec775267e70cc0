"""auditwheel's -v, --patcher / AUDITWHEEL_PATCHER and lddtree, as wheelvet has them."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from support import EXT_SUFFIX, build_extension, cc, clean_env, write_wheel

TAG = "cp311-cp311-linux_x86_64"
BIN = Path(sys.executable).parent


def run(*args: str, env: dict | None = None, tool: str = "wheelvet") -> subprocess.CompletedProcess:
    p = subprocess.run([sys.executable, "-m", tool, *args], capture_output=True, text=True,
                       env=env if env is not None else clean_env(), timeout=600)
    if tool == "wheelvet":
        assert "Traceback" not in p.stderr, p.stderr
    return p


def graft_wheel(tmp_path: Path, libs: Path) -> Path:
    ext = build_extension(tmp_path / "build", "spam", f"-L{libs}", "-l:libA.so.1", body="int a_value(void);",
                          call="a_value()")
    return write_wheel(tmp_path / f"pkg-1.0-{TAG}.whl", {f"pkg/spam{EXT_SUFFIX}": ext.read_bytes()}, tag=TAG)


def retag_wheel(tmp_path: Path) -> Path:
    """Needs nothing but a new name: no ELF edit."""
    ext = build_extension(tmp_path / "build", "plain")
    return write_wheel(tmp_path / f"plain-1.0-{TAG}.whl", {f"plain{EXT_SUFFIX}": ext.read_bytes()}, tag=TAG)


# ---------------------------------------------------------------- -v


def test_verbose_is_global_repeatable_and_leaves_stdout_alone(tmp_path, libs):
    whl = graft_wheel(tmp_path, libs)
    env = clean_env(LD_LIBRARY_PATH=str(libs))
    quiet = run("show", "--json", str(whl), env=env)
    loud = run("-v", "show", "--json", str(whl), env=env)
    louder = run("-vv", "show", "--json", str(whl), env=env)
    assert quiet.stdout == loud.stdout == louder.stdout and json.loads(quiet.stdout)["wheel"] == whl.name
    assert quiet.stderr == ""
    assert f"wheelvet: {whl.name}: glibc x86_64, 1 ELF file(s); meets linux_x86_64" in loud.stderr
    assert "=>" not in loud.stderr
    assert f"wheelvet: pkg/spam{EXT_SUFFIX}: libA.so.1 => {libs / 'libA.so.1'}" in louder.stderr
    assert run("-v", "-v", "show", str(whl), env=env).returncode == 0
    # as auditwheel: before the command only
    p = run("show", "-v", str(whl), env=env)
    assert p.returncode == 2 and "unrecognized arguments: -v" in p.stderr


def test_verbose_repair_says_what_it_runs(tmp_path, libs):
    whl = graft_wheel(tmp_path, libs)
    p = run("-v", "repair", "-w", str(tmp_path / "out"), str(whl), env=clean_env(LD_LIBRARY_PATH=str(libs)))
    assert p.returncode == 0, p.stderr
    assert "wheelvet:   graft libA.so.1" in p.stderr
    assert f"wheelvet: patchelf pkg/spam{EXT_SUFFIX}: " in p.stderr and "--replace-needed libA.so.1" in p.stderr
    assert "wheelvet: sbom: pkg-1.0.dist-info/sboms/auditwheel.cdx.json" in p.stderr
    assert "wheelvet: verified pkg-1.0-" in p.stderr
    assert p.stdout.count("\n") == 1  # stdout: the one line it always prints


# ---------------------------------------------------------------- --patcher


def test_patcher_none_retags_without_patchelf(tmp_path, need_gcc):
    whl = retag_wheel(tmp_path)
    env = clean_env(WHEELVET_PATCHELF="/nonexistent/patchelf", PATH="/usr/bin:/bin")
    p = run("repair", "--patcher", "none", "-w", str(tmp_path / "out"), str(whl), env=env)
    assert p.returncode == 0, p.stderr
    (out,) = (tmp_path / "out").iterdir()
    assert "manylinux" in out.name
    p = run("repair", "-w", str(tmp_path / "env"), str(whl), env=dict(env, AUDITWHEEL_PATCHER="none"))
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "env" / out.name).read_bytes() == out.read_bytes()


def test_patcher_none_refuses_a_repair_that_edits_elf_files(tmp_path, libs):
    whl = graft_wheel(tmp_path, libs)
    env = clean_env(LD_LIBRARY_PATH=str(libs))
    p = run("repair", "--patcher", "none", "-w", str(tmp_path / "out"), str(whl), env=env)
    assert p.returncode == 1 and p.stderr.count("\n") == 1
    assert f"--patcher none cannot make the edits this repair needs (pkg/spam{EXT_SUFFIX}," in p.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    # the command line wins over the environment, as in auditwheel
    p = run("repair", "--patcher", "patchelf", "-w", str(tmp_path / "out"), str(whl),
            env=dict(env, AUDITWHEEL_PATCHER="none"))
    assert p.returncode == 0, p.stderr


def test_lief_patchelf_is_run_with_patchelfs_command_line(tmp_path, libs):
    tools = tmp_path / "tools"
    tools.mkdir()
    logged = tmp_path / "calls"
    shim = tools / "lief-patchelf"  # stands in for the real one: logs, then does the work with patchelf
    shim.write_text(f'#!/bin/sh\necho "$@" >> {logged}\nexec {BIN / "patchelf"} "$@"\n')
    shim.chmod(0o755)
    whl = graft_wheel(tmp_path, libs)
    env = clean_env(LD_LIBRARY_PATH=str(libs), PATH=f"{tools}:/usr/bin:/bin")
    p = run("repair", "--patcher", "lief-patchelf", "-w", str(tmp_path / "out"), str(whl), env=env)
    assert p.returncode == 0, p.stderr
    calls = logged.read_text().splitlines()
    assert len(calls) == 3 and sum(c.startswith("--replace-needed libA.so.1 ") for c in calls) == 1  # two at a time: any order
    assert sum(c.startswith("--set-soname ") for c in calls) == 2


def test_lief_patchelf_missing_is_one_line(tmp_path, libs):
    whl = graft_wheel(tmp_path, libs)
    p = run("repair", "--patcher", "lief-patchelf", "-w", str(tmp_path / "out"), str(whl),
            env=clean_env(LD_LIBRARY_PATH=str(libs), PATH="/usr/bin:/bin"))
    assert p.returncode == 4 and "lief-patchelf was not found" in p.stderr and p.stderr.count("\n") == 1


def test_unknown_patcher_is_a_usage_error_for_repair_only(tmp_path, need_gcc):
    whl = retag_wheel(tmp_path)
    p = run("repair", "--patcher", "lief", str(whl))
    assert p.returncode == 2
    assert p.stderr == ("wheelvet: error: --patcher: 'lief' is not a patcher (choose from patchelf, lief-patchelf, "
                        "none)\n")
    env = clean_env(AUDITWHEEL_PATCHER="bogus")
    p = run("repair", str(whl), env=env)
    assert p.returncode == 2 and "AUDITWHEEL_PATCHER: 'bogus' is not a patcher" in p.stderr
    assert run("show", str(whl), env=env).returncode == 0  # auditwheel: every command dies


# ---------------------------------------------------------------- lddtree


def _auditwheel_lddtree(path: Path, *extra: str, env: dict) -> dict:
    p = run("lddtree", *extra, str(path), env=env, tool="auditwheel")
    assert p.returncode == 0 and p.stdout == "", p.stderr
    return json.loads(p.stderr.split("INFO:auditwheel.main_lddtree:", 1)[1])


def _real(tree: dict) -> dict:
    """realpath fields as os.path.realpath (wheelvet's; auditwheel resolves the last component only)."""
    out = json.loads(json.dumps(tree))
    for lib in out["libraries"].values():
        if lib["realpath"]:
            lib["realpath"] = os.path.realpath(lib["realpath"])
    return out


@pytest.mark.parametrize("case", ["library", "executable", "not-found", "ldpaths"])
def test_lddtree_is_auditwheels_shape_on_stdout(tmp_path, libs, case):
    env = clean_env(LD_LIBRARY_PATH=str(libs))
    extra: tuple[str, ...] = ()
    if case == "executable":
        target = cc(tmp_path / "prog", {"p.c": "int a_value(void); int main(void){return a_value();}"}, f"-L{libs}",
                    "-l:libA.so.1", f"-Wl,-rpath-link,{libs}", "-Wl,-rpath,$ORIGIN/libs:/nonexistent", shared=False)
    else:
        target = build_extension(tmp_path / "build", "spam", f"-L{libs}", "-l:libA.so.1", "-lm",
                                 f"-Wl,--enable-new-dtags,-rpath,{libs}", body="int a_value(void);", call="a_value()")
    if case == "not-found":
        env = clean_env()
        target = build_extension(tmp_path / "b2", "lost", f"-L{libs}", "-l:libA.so.1", body="int a_value(void);",
                                 call="a_value()")
    if case == "ldpaths":
        extra = ("--ldpaths", str(libs))
        env = clean_env()
    p = run("lddtree", *extra, str(target), env=env)
    assert p.returncode == 0, p.stderr
    ours = json.loads(p.stdout)
    assert p.stdout == json.dumps(ours, indent=4) + "\n"
    theirs = _real(_auditwheel_lddtree(target, *extra, env=env))
    if ours["interpreter"]:
        # auditwheel gives the loader's entry the program's platform; wheelvet reads the loader's own
        interp = theirs["libraries"][os.path.basename(ours["interpreter"])]
        assert interp["platform"] == theirs["platform"]
        interp["platform"] = ours["libraries"][os.path.basename(ours["interpreter"])]["platform"]
    assert ours == theirs
    if case == "not-found":
        assert ours["libraries"]["libA.so.1"] == {"soname": "libA.so.1", "path": None, "realpath": None,
                                                 "platform": None, "needed": []}


def test_lddtree_errors_are_one_line(tmp_path):
    (tmp_path / "text").write_text("not ELF\n")
    p = run("lddtree", str(tmp_path / "text"))
    assert p.returncode == 3 and p.stderr.count("\n") == 1
    p = run("lddtree", str(tmp_path / "missing.so"))
    assert p.returncode == 3 and p.stderr == f"wheelvet: error: {tmp_path / 'missing.so'}: no such file\n"
