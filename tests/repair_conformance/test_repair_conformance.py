"""`wheelvet repair` vs `auditwheel repair` 6.8.2 on wheels built from source here.

Each project in repaircache.PROJECTS (cffi, lxml, psycopg2, pycurl, pillow) is built from
its sdist against the host's libraries (libffi, libxml2/libxslt, libpq, libcurl, libjpeg...),
then repaired by both tools with default options (``python -m TOOL repair -w DIR WHEEL``,
same environment, no LD_LIBRARY_PATH / AUDITWHEEL_* variables). wheelvet must:

* exit 0 and write one wheel, named like auditwheel's (same platform tags, same order);
* graft the same libraries, compared by original SONAME, by the host file's real name and
  by the grafted member's full path (``<dist>.libs/<base>-<8 hex>.<rest>``);
* give each grafted copy its file name as SONAME, and leave no ELF file in the wheel
  needing a library by its original SONAME;
* produce a wheel that, installed in a fresh venv, imports and does real work through the
  grafted libraries, which are mapped from ``site-packages/<dist>.libs/`` (read from
  /proc/self/maps in that process), the host's copies staying unmapped.

Set WHEELVET_REPAIR_TOOL=auditwheel to run the same checks on auditwheel's output (a
self-test of the suite). See README.md beside this file for the cache.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import repaircache  # noqa: E402

pytestmark = pytest.mark.conformance

KEYS = [p.key for p in repaircache.PROJECTS]
TOOL = repaircache.tool_under_test()


def _grafted(analysis: dict[str, Any], field: str) -> list[Any]:
    return sorted(str(g[field]) for g in analysis["grafted"])


def _set_diff(what: str, expected: list[str], actual: list[str]) -> str:
    e, a = set(expected), set(actual)
    lines = [f"{what} differ (auditwheel {len(e)}, {TOOL} {len(a)}):"]
    lines += [f"  only auditwheel: {x}" for x in sorted(e - a)]
    lines += [f"  only {TOOL}:{' ' * max(0, 10 - len(TOOL))} {x}" for x in sorted(a - e)]
    return "\n".join(lines)


# --------------------------------------------------------------------------- the run


@pytest.mark.parametrize("project_key", KEYS)
def test_repair_succeeds(repair_suite, project_key):
    """Exit code 0 and exactly one wheel written to -w DIR."""
    repair_suite.repaired(project_key)


@pytest.mark.parametrize("project_key", KEYS)
def test_platform_tags_match(repair_suite, project_key):
    expected = repair_suite.oracle(project_key)
    _, actual = repair_suite.repaired(project_key)
    assert sorted(actual["platform_tags"]) == sorted(expected["platform_tags"]), (
        f"platform tags: auditwheel {expected['output']}, {TOOL} {actual['output']}")


@pytest.mark.parametrize("project_key", KEYS)
def test_output_file_name_matches(repair_suite, project_key):
    expected = repair_suite.oracle(project_key)
    _, actual = repair_suite.repaired(project_key)
    assert actual["output"] == expected["output"]


# --------------------------------------------------------------------------- grafting


@pytest.mark.parametrize("project_key", KEYS)
def test_grafted_sonames_match(repair_suite, project_key):
    """Same set of libraries grafted, by the SONAME of the host library each one copies."""
    expected = repair_suite.oracle(project_key)
    _, actual = repair_suite.repaired(project_key)
    unknown = [g["path"] for g in actual["grafted"] if g["soname"] is None]
    assert not unknown, (
        f"{TOOL} added ELF files that are not named <base>-<first 8 hex of the sha256 of a host "
        f"library>.<rest> (no host library matches): {unknown}")
    e, a = _grafted(expected, "soname"), _grafted(actual, "soname")
    assert a == e, _set_diff("grafted libraries (by original SONAME)", e, a)


@pytest.mark.parametrize("project_key", KEYS)
def test_grafted_source_files_match(repair_suite, project_key):
    """Same set by the real file name of the source library (libffi.so.8.1.2)."""
    expected = repair_suite.oracle(project_key)
    _, actual = repair_suite.repaired(project_key)
    e, a = _grafted(expected, "source_name"), _grafted(actual, "source_name")
    assert a == e, _set_diff("grafted libraries (by source file name)", e, a)


@pytest.mark.parametrize("project_key", KEYS)
def test_grafted_member_paths_match(repair_suite, project_key):
    """Same member paths: <dist>.libs/<base>-<8 hex of sha256>.<rest>, as auditwheel names them."""
    expected = repair_suite.oracle(project_key)
    _, actual = repair_suite.repaired(project_key)
    e, a = _grafted(expected, "path"), _grafted(actual, "path")
    assert a == e, _set_diff("grafted member paths", e, a)


@pytest.mark.parametrize("project_key", KEYS)
def test_grafted_libraries_are_rewired(repair_suite, project_key):
    """Each copy's SONAME is its file name; nothing still needs a grafted library by its old name."""
    _, actual = repair_suite.repaired(project_key)
    problems = []
    for g in actual["grafted"]:
        if g["member_soname"] != g["file"]:
            problems.append(f"{g['path']}: DT_SONAME is {g['member_soname']!r}, expected {g['file']!r}")
    old = {g["soname"]: g["file"] for g in actual["grafted"] if g["soname"]}
    for member, needed in sorted(actual["needed_after"].items()):
        for n in needed:
            if n in old:
                problems.append(f"{member}: still DT_NEEDED {n!r} (grafted as {old[n]!r})")
    assert not problems, "\n".join(problems)


# --------------------------------------------------------------------------- it works

_MAPS_SRC = r'''
def _maps():
    paths = set()
    with open("/proc/self/maps") as fh:
        for line in fh:
            parts = line.rstrip("\n").split(None, 5)
            if len(parts) == 6 and parts[5].startswith("/"):
                p = parts[5]
                if p.endswith(" (deleted)"):
                    p = p[: -len(" (deleted)")]
                paths.add(p)
    return paths
'''

_WRAPPER = r'''
import json, sys, sysconfig, traceback
exec(_MAPS_SRC)
_before = _maps()
_res = {"ok": False}
_g = {"__name__": "__work__", "result": None}
try:
    exec(compile(WORK, "<work>", "exec"), _g)
    _res["ok"] = True
except BaseException:
    _res["error"] = traceback.format_exc()
_res["result"] = _g.get("result")
_res["new_maps"] = sorted(_maps() - _before)
_res["platlib"] = sysconfig.get_paths()["platlib"]
_res["stdlib"] = sysconfig.get_paths()["stdlib"]
print("@@RESULT@@" + json.dumps(_res, default=repr))
'''


_STDLIB_PROBE = r'''
import importlib, json, sys
exec(_MAPS_SRC)
_before = _maps()
for name in sys.argv[1:]:
    try:
        importlib.import_module(name)
    except Exception:
        pass
print("@@RESULT@@" + json.dumps(sorted(_maps() - _before)))
'''


def _python(python: Path, script: str, args: list[str], cwd: Path) -> tuple[Any, subprocess.CompletedProcess]:
    env = {k: v for k, v in repaircache.repair_env().items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    proc = subprocess.run([str(python), "-I", "-c", script, *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=300)
    for line in proc.stdout.splitlines():
        if line.startswith("@@RESULT@@"):
            return json.loads(line[len("@@RESULT@@"):]), proc
    return None, proc


def _run_work(python: Path, project: repaircache.Project, cwd: Path) -> dict[str, Any]:
    script = _WRAPPER.replace("_MAPS_SRC", repr(_MAPS_SRC), 1).replace("WORK", repr(project.work), 1)
    res, proc = _python(python, script, [], cwd)
    if res is None:
        pytest.fail(f"the work snippet for {project.key} died (rc={proc.returncode}):\n"
                    f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}", pytrace=False)
    return res


def _stdlib_maps(python: Path, res: dict[str, Any], cwd: Path) -> set[str]:
    """Files mapped by the interpreter's own extension modules that the work loaded.

    E.g. psycopg2 imports ssl, whose _ssl module maps the host's libssl.so.3 and
    libcrypto.so.3: that host copy is the interpreter's, not the wheel's.
    """
    dynload = [m for m in res["new_maps"] if m.startswith(res["stdlib"].rstrip("/") + "/")]
    names = sorted({os.path.basename(m).split(".", 1)[0] for m in dynload})
    if not names:
        return set()
    found, proc = _python(python, _STDLIB_PROBE.replace("_MAPS_SRC", repr(_MAPS_SRC), 1), names, cwd)
    if found is None:
        pytest.fail(f"probing the stdlib modules {names} failed:\n{proc.stderr[-3000:]}", pytrace=False)
    return {os.path.realpath(m) for m in found}


@pytest.mark.parametrize("project_key", KEYS)
def test_repaired_wheel_works_from_grafted_copies(repair_suite, repaired_venv, project_key, tmp_path):
    project = repaircache.PROJECTS_BY_KEY[project_key]
    wheel, actual = repair_suite.repaired(project_key)  # fails here if the tool did
    if project_key not in repaired_venv.installed:
        pytest.fail(f"{wheel.name} could not be installed in a fresh venv: "
                    f"{repaired_venv.problems.get(project_key)}", pytrace=False)
    res = _run_work(repaired_venv.python, project, tmp_path)
    assert res["ok"], f"{project_key} failed to do its work:\n{res.get('error')}"

    dist, _ = repaircache.wheel_name_parts(wheel.name)
    libs_dir = os.path.realpath(os.path.join(res["platlib"], f"{dist}.libs"))
    new_maps = [os.path.realpath(m) for m in res["new_maps"]]
    interpreters_own = _stdlib_maps(repaired_venv.python, res, tmp_path)
    problems = []
    for base in project.primary:
        copies = [g for g in actual["grafted"] if (g["source_name"] or "").split(".", 1)[0] == base]
        if not copies:
            problems.append(f"{base}: not grafted into {wheel.name} at all "
                            f"(grafted: {[g['file'] for g in actual['grafted']]})")
            continue
        wanted = {os.path.join(libs_dir, g["file"]) for g in copies}
        if not wanted & set(new_maps):
            like = [m for m in new_maps if os.path.basename(m).startswith((base + "-", base + "."))]
            problems.append(f"{base}: {sorted(wanted)} is not mapped by the process; "
                            f"mapped {base} files: {like or 'none'}")
    # The host's copy of a grafted library must not be loaded on the wheel's behalf. It may
    # be loaded for something else: the interpreter's own modules (_ssl -> libssl.so.3), or
    # host plugins a grafted library dlopens (libsasl2 loads /usr/lib/.../sasl2/*.so, which
    # need the host's libcrypto.so.3); leftover DT_NEEDED entries in the wheel are caught
    # by test_grafted_libraries_are_rewired.
    sources = {os.path.realpath(g["source_path"]): g["file"] for g in actual["grafted"] if g["source_path"]}
    venv_root = os.path.realpath(repaired_venv.python.parent.parent)
    in_wheel = {m for m in new_maps if m.startswith(venv_root + "/")}
    host_copies = [m for m in new_maps if m in sources]
    others = [m for m in new_maps if m not in in_wheel and m not in sources and m not in interpreters_own]
    explained = _needed_by_host_files(others, host_copies)
    for m in host_copies:
        if m not in interpreters_own and m not in explained:
            problems.append(f"the host's {m} is mapped, though the wheel grafted it as {sources[m]}")
    assert not problems, "\n".join(problems) + (
        f"\n(result {res.get('result')}; new mappings: {new_maps}; "
        f"mapped by the interpreter's own modules: {sorted(interpreters_own)}; "
        f"host copies needed by other host files: {explained})")


def _needed_by_host_files(roots: list[str], candidates: list[str]) -> dict[str, str]:
    """Which candidate files (host libraries) some root file, or an already explained
    candidate, needs by SONAME: {candidate: the file that needs it}."""

    def dyn(path: str) -> dict[str, Any]:
        try:
            with open(path, "rb") as fh:
                return repaircache.elf_dynamic(fh.read()) or {}
        except OSError:
            return {}

    soname_of = {c: (dyn(c).get("soname") or os.path.basename(c)) for c in candidates}
    explained: dict[str, str] = {}
    frontier = list(roots)
    while frontier:
        needer = frontier.pop()
        needed = set(dyn(needer).get("needed", []))
        for c, so in soname_of.items():
            if c not in explained and so in needed:
                explained[c] = needer
                frontier.append(c)
    return explained
