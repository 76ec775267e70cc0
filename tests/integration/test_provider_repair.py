"""Provider wheels and dlopen'd libraries, end to end: real gcc-built files,
repaired by the CLI, installed with pip into a fresh venv, imported with the
build directories renamed away and LD_LIBRARY_PATH unset."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

from support import EXT_SUFFIX, build_extension, cc, clean_env, write_wheel

TAG = "cp311-cp311-linux_x86_64"
PROV_TAG = "py3-none-manylinux_2_17_x86_64"


def run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    p = subprocess.run([sys.executable, "-m", "wheelvet", *args], capture_output=True, text=True,
                       env=env if env is not None else clean_env(), timeout=600)
    assert "Traceback" not in p.stderr, p.stderr
    return p


def only_wheel(out: Path) -> Path:
    (found,) = list(out.iterdir())
    assert found.suffix == ".whl"
    return found


def fresh_venv(where: Path) -> Path:
    venv.create(where, with_pip=True)
    return where / "bin" / "python"


def pip_install(py: Path, *wheels: Path) -> None:
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-index", "--no-deps", *map(str, wheels)], check=True)


IMPORT_AND_MAPS = ("import pkg.spam, sys; v = pkg.spam.value(); "
                   "maps = {l.split()[-1] for l in open('/proc/self/maps') if 'libprov' in l}; "
                   "print(v, *sorted(maps))")


@pytest.fixture
def provided(tmp_path, need_gcc):
    """prov 1.0 ships prov/lib/libprov.so.1 (prov_value() == 7, needs GLIBC_2.17's clock_gettime);
    pkg 1.0's extension links it and requires prov==1.*."""
    build = tmp_path / "build"
    lib = cc(build / "lib" / "libprov.so.1",
             {"p.c": "#include <time.h>\nint prov_value(void){struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); "
                     "return 7;}"}, "-Wl,-soname,libprov.so.1")
    prov = write_wheel(tmp_path / f"prov-1.0-{PROV_TAG}.whl", {"prov/__init__.py": b"", "prov/lib/libprov.so.1": lib.read_bytes()},
                       tag=PROV_TAG, purelib=True)
    ext = build_extension(build / "ext", "spam", f"-L{build / 'lib'}", "-l:libprov.so.1",
                          body="int prov_value(void);", call="prov_value()")
    pkg = write_wheel(tmp_path / f"pkg-1.0-{TAG}.whl", {"pkg/__init__.py": b"", f"pkg/{ext.name}": ext.read_bytes()},
                      requires=("prov==1.*",))
    return tmp_path, build, prov, pkg


def test_a_provided_library_is_not_grafted_and_loads_from_the_provider(provided):
    tmp, build, prov, pkg = provided
    # the maintainer's machine finds libprov: without --provider it is grafted
    with_lib = clean_env(LD_LIBRARY_PATH=str(build / "lib"))
    assert run("repair", "-w", str(tmp / "grafted"), str(pkg), env=with_lib).returncode == 0
    assert any("libprov" in n for n in zipfile.ZipFile(only_wheel(tmp / "grafted")).namelist())

    shown = run("show", "--json", "--provider", str(prov), str(pkg), env=with_lib)
    report = json.loads(shown.stdout)
    assert report["external_libs"] == {} and report["overall_tag"] == "manylinux_2_17_x86_64"
    assert report["provided_libs"] == {"libprov.so.1": {
        "distribution": "prov", "version": "1.0", "path": "prov/lib/libprov.so.1", "requirement": "prov==1.*",
        "needed_by": [f"pkg/spam{EXT_SUFFIX}"], "unreached": [f"pkg/spam{EXT_SUFFIX}"]}}
    assert [f["code"] for f in report["findings"]] == ["provided-not-reached"]
    text = run("show", "--provider", str(prov), str(pkg), env=with_lib).stdout
    assert "  provided by other wheels (not grafted; loaded from where they install beside it):\n" \
           "    libprov.so.1 => prov 1.0: prov/lib/libprov.so.1 (Requires-Dist: prov==1.*)\n" in text
    assert "nvidia" not in text and "clock_gettime" in text  # the provider's GLIBC_2.17 is named

    out = tmp / "out"
    p = run("repair", "-w", str(out), "--provider", str(prov), str(pkg), env=with_lib)
    assert p.returncode == 0, p.stderr
    fixed = only_wheel(out)
    assert fixed.name == "pkg-1.0-cp311-cp311-manylinux2014_x86_64.manylinux_2_17_x86_64.whl"
    names = zipfile.ZipFile(fixed).namelist()
    assert not any("libprov" in n or ".libs/" in n for n in names), names  # no copy, no SBOM of grafts
    after = json.loads(run("show", "--json", "--provider", str(prov), str(fixed)).stdout)
    assert after["provided_libs"]["libprov.so.1"]["unreached"] == [] and after["findings"] == []
    assert after["files"][0]["rpath"] == "$ORIGIN/../prov/lib"
    assert run("check", "--provider", str(prov), str(fixed)).returncode == 0

    build.rename(tmp / "build-gone")  # the libraries must now come from the installed provider
    py = fresh_venv(tmp / "venv")
    pip_install(py, fixed, prov)
    res = subprocess.run([str(py), "-c", IMPORT_AND_MAPS], capture_output=True, text=True, env=clean_env(), cwd=tmp)
    site = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_path('platlib'))"],
                          capture_output=True, text=True).stdout.strip()
    assert res.stdout.split() == ["7", os.path.realpath(f"{site}/prov/lib/libprov.so.1")], res.stderr


def test_providers_from_an_installed_environment(provided):
    tmp, build, prov, pkg = provided
    env_py = fresh_venv(tmp / "env")
    pip_install(env_py, prov)
    out = tmp / "out"
    p = run("repair", "-w", str(out), "--provider-env", str(env_py), str(pkg))
    assert p.returncode == 0, p.stderr
    fixed = only_wheel(out)
    assert not any("libprov" in n for n in zipfile.ZipFile(fixed).namelist())
    build.rename(tmp / "build-gone")
    pip_install(env_py, fixed)
    res = subprocess.run([str(env_py), "-c", IMPORT_AND_MAPS], capture_output=True, text=True, env=clean_env(), cwd=tmp)
    assert res.stdout.split()[0] == "7", res.stderr
    # the site-packages directory itself works as well
    site = next((tmp / "env" / "lib").glob("python3*/site-packages"))
    shown = json.loads(run("show", "--json", "--provider-env", str(site), str(pkg)).stdout)
    assert list(shown["provided_libs"]) == ["libprov.so.1"]


def test_a_loose_requirement_is_a_warning_and_no_requirement_no_provider(provided):
    tmp, build, prov, _pkg = provided
    ext = next((build / "ext").glob(f"spam{EXT_SUFFIX}"))
    files = {"pkg/__init__.py": b"", f"pkg/{ext.name}": ext.read_bytes()}
    loose = write_wheel(tmp / "loose" / f"pkg-1.0-{TAG}.whl", files, requires=("prov>=1",))
    report = json.loads(run("show", "--json", "--provider", str(prov), str(loose)).stdout)
    (pin,) = [f for f in report["findings"] if f["code"] == "provider-pin"]
    assert pin["severity"] == "warning" and "Requires-Dist prov>=1 allows prov 2" in pin["message"]
    unrequired = write_wheel(tmp / "none" / f"pkg-1.0-{TAG}.whl", files)
    report = json.loads(run("show", "--json", "--provider", str(tmp), str(unrequired)).stdout)  # a directory of wheels
    assert report["provided_libs"] == {} and report["external_libs"] == {"libprov.so.1": None}
    assert [f["code"] for f in report["findings"]] == ["library-not-found", "provider-not-required"]
    p = run("repair", "-w", str(tmp / "out"), "--provider", str(prov), str(unrequired))
    assert p.returncode == 1 and "libprov.so.1 was not found" in p.stderr and "--provider" in p.stderr


def test_bad_providers_are_one_line_exit_3(provided, tmp_path):
    _tmp, _build, _prov, pkg = provided
    for args in (["--provider", "/nonexistent/prov.whl"], ["--provider-env", "/nonexistent/python"]):
        p = run("show", *args, str(pkg))
        assert p.returncode == 3 and p.stderr.count("\n") == 1 and p.stderr.startswith("wheelvet: error: --provider"), p.stderr
    broken = tmp_path / "broken" / f"prov-1.0-{PROV_TAG}.whl"
    broken.parent.mkdir()
    broken.write_bytes(b"not a zip")
    p = run("show", "--provider", str(broken), str(pkg))
    assert p.returncode == 3 and "provider prov-1.0" in p.stderr and "not a zip" in p.stderr, p.stderr
    out = tmp_path / "out"
    assert run("repair", "-w", str(out), "--provider", str(broken), str(pkg)).returncode == 3 and not out.exists()


DLOPEN_BODY = """#include <dlfcn.h>
static long plug(void) { void *h = dlopen("libplug.so.1", RTLD_NOW); if (!h) return -1;
  int (*f)(void) = (int (*)(void))dlsym(h, "plug_value"); return f ? f() : -2; }"""


def test_a_dlopened_library_grafted_with_include_loads_in_a_fresh_venv(tmp_path, need_gcc):
    build = tmp_path / "build"
    cc(build / "libdep.so.2", {"d.c": "int dep_value(void){return 40;}"}, "-Wl,-soname,libdep.so.2")
    cc(build / "libplug.so.1", {"p.c": "int dep_value(void); int plug_value(void){return dep_value()+2;}"},
       "-Wl,-soname,libplug.so.1", f"-L{build}", "-l:libdep.so.2")
    ext = build_extension(build / "ext", "spam", "-ldl", body=DLOPEN_BODY, call="plug()")
    pkg = write_wheel(tmp_path / f"pkg-1.0-{TAG}.whl", {"pkg/__init__.py": b"", f"pkg/{ext.name}": ext.read_bytes()})
    env = clean_env(LD_LIBRARY_PATH=str(build))

    shown = run("show", str(pkg), env=env).stdout
    assert f"  may load with dlopen (named in read-only data, not linked; graft with `wheelvet repair --include`):\n" \
           f"    pkg/spam{EXT_SUFFIX}: libplug.so.1\n" in shown
    assert json.loads(run("show", "--json", str(pkg), env=env).stdout)["files"][0]["dlopen_hints"] == ["libplug.so.1"]

    out = tmp_path / "out"
    p = run("repair", "-w", str(out), "--include", "libplug.so.1", str(pkg), env=env)
    assert p.returncode == 0, p.stderr
    fixed = only_wheel(out)
    libs = sorted(n for n in zipfile.ZipFile(fixed).namelist() if n.startswith("pkg.libs/"))
    assert libs[1] == "pkg.libs/libplug.so.1" and libs[0].startswith("pkg.libs/libdep-") and len(libs) == 2
    again = json.loads(run("show", "--json", str(fixed)).stdout)
    assert again["files"][0]["dlopen_hints"] == []  # it ships it now

    build.rename(tmp_path / "build-gone")
    py = fresh_venv(tmp_path / "venv")
    pip_install(py, fixed)
    res = subprocess.run([str(py), "-c", "import pkg.spam; print(pkg.spam.value())"], capture_output=True, text=True,
                         env=clean_env(), cwd=tmp_path)
    assert res.stdout.strip() == "42", res.stderr
    # without --include it would not have loaded: the same wheel repaired without it has nothing to dlopen
    bare = subprocess.run([sys.executable, "-c", "import sys; sys.path.insert(0, sys.argv[1]); import spam; "
                           "print(spam.value())", str(build.parent / "build-gone" / "ext")],
                          capture_output=True, text=True, env=clean_env(), cwd=tmp_path)
    assert bare.stdout.strip() == "-1", bare.stderr


def test_an_include_that_is_not_found_refuses_the_repair(tmp_path, need_gcc):
    ext = build_extension(tmp_path / "b", "spam", "-ldl", body=DLOPEN_BODY, call="plug()")
    pkg = write_wheel(tmp_path / f"pkg-1.0-{TAG}.whl", {f"pkg/{ext.name}": ext.read_bytes()})
    out = tmp_path / "out"
    p = run("repair", "-w", str(out), "--include", "libplug.so.1", str(pkg))
    assert p.returncode == 1 and "libplug.so.1 was not found" in p.stderr and p.stderr.count("\n") == 1, p.stderr
    assert not out.exists() or not any(out.iterdir())
