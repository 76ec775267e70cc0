"""Android wheels (PEP 738), judged and repaired as auditwheel 6.8.2 does.

There is no NDK here: the x86_64 "Android" files are built with gcc
-nostdlib against stub libraries with Android's names (libc.so, liblog.so,
libpython3.13.so: an Android x86_64 ELF file is an x86_64 ELF file, its OS ABI
SYSV), the arm64_v8a ones are crafted (tests/support.py). auditwheel, the
oracle, judges the same wheels."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from support import cc, clean_env, craft_elf, write_wheel

EXT = "demo.cpython-313-x86_64-linux-android.so"


@pytest.fixture
def sysroot(tmp_path, need_gcc) -> Path:
    """Stub libraries with Android's names, and one (libbar) no policy allows."""
    root = tmp_path / "sysroot"
    for name, body in (("libc.so", "int c_fn(void){return 1;}"), ("liblog.so", "int log_fn(void){return 2;}"),
                       ("libpython3.13.so", "int py_fn(void){return 3;}"), ("libbar.so", "int bar_fn(void){return 4;}"),
                       ("libneuralnetworks.so", "int nn_fn(void){return 5;}")):
        cc(root / name, {"s.c": body}, "-nostdlib", f"-Wl,-soname,{name}")
    return root


def android_ext(tmp_path: Path, sysroot: Path, *needs: str) -> bytes:
    libs = [f"-l:{n}" for n in ("libc.so", "liblog.so", "libpython3.13.so", *needs)]
    calls = {"libbar.so": "bar_fn()", "libneuralnetworks.so": "nn_fn()"}
    decl = "int c_fn(void); int log_fn(void); int py_fn(void); int bar_fn(void); int nn_fn(void);"
    body = f"{decl} int PyInit_demo(void){{return c_fn() + log_fn() + py_fn(){''.join(' + ' + calls[n] for n in needs)};}}"
    out = cc(tmp_path / "build" / EXT, {"e.c": body}, "-nostdlib", f"-L{sysroot}", *libs)
    return out.read_bytes()


def android_wheel(tmp_path: Path, sysroot: Path, tag: str, *needs: str) -> Path:
    return write_wheel(tmp_path / f"demo-0.1-cp313-cp313-{tag}.whl", {EXT: android_ext(tmp_path, sysroot, *needs)},
                       tag=f"cp313-cp313-{tag}")


def run(tool: str, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    env = env if env is not None else clean_env()
    env = dict(env, PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}")
    p = subprocess.run([sys.executable, "-m", tool, *args], capture_output=True, text=True, env=env, timeout=600)
    if tool == "wheelvet":
        assert "Traceback" not in p.stderr, p.stderr
    return p


FIELDS = ("overall_tag", "sym_tag", "external_libs", "pure", "pyfpe", "ucs2", "unsupported_isa")


def both_show(wheel: Path, *extra: str, env: dict | None = None) -> tuple[dict, dict]:
    ours, theirs = run("wheelvet", "show", "--json", *extra, str(wheel), env=env), \
        run("auditwheel", "show", "--json", *extra, str(wheel), env=env)
    assert ours.returncode == theirs.returncode == 0, ours.stderr + theirs.stderr
    return json.loads(ours.stdout), json.loads(theirs.stdout)


def test_a_clean_wheel_keeps_its_android_tag(tmp_path, sysroot):
    wheel = android_wheel(tmp_path, sysroot, "android_24_x86_64")
    ours, theirs = both_show(wheel)
    assert {k: ours[k] for k in FIELDS} == {k: theirs[k] for k in FIELDS}
    assert ours["overall_tag"] == ours["sym_tag"] == "android_24_x86_64" and ours["external_libs"] == {}
    assert ours["libc"] == "android"
    assert not any(f["code"] == "links-libpython" for f in ours["findings"])  # libpython is normal there
    p = run("wheelvet", "check", str(wheel))
    assert p.returncode == 0 and "meets android_24_x86_64" in p.stdout


def test_host_directories_are_not_searched_unless_ldpaths(tmp_path, sysroot):
    wheel = android_wheel(tmp_path, sysroot, "android_24_x86_64", "libbar.so")
    env = clean_env(LD_LIBRARY_PATH=str(sysroot))  # not used for Android, as in auditwheel
    ours, theirs = both_show(wheel, env=env)
    assert {k: ours[k] for k in FIELDS} == {k: theirs[k] for k in FIELDS}
    assert ours["overall_tag"] == "linux_x86_64" and ours["sym_tag"] == "android_24_x86_64"
    assert ours["external_libs"] == {"libbar.so": None}
    ours, theirs = both_show(wheel, "--ldpaths", str(sysroot))
    assert {k: ours[k] for k in FIELDS} == {k: theirs[k] for k in FIELDS}
    assert ours["external_libs"] == {"libbar.so": str(sysroot / "libbar.so")}


@pytest.mark.parametrize("api,allowed", [(26, False), (27, True), (35, True)])
def test_the_policy_is_the_newest_level_not_above_the_tag(tmp_path, sysroot, api, allowed):
    """libneuralnetworks.so is in android_27's data and not in android_26's."""
    wheel = android_wheel(tmp_path, sysroot, f"android_{api}_x86_64", "libneuralnetworks.so")
    ours, theirs = both_show(wheel)
    assert {k: ours[k] for k in FIELDS} == {k: theirs[k] for k in FIELDS}
    assert ours["overall_tag"] == (f"android_{api}_x86_64" if allowed else "linux_x86_64")


def test_arm64_v8a_is_aarch64(tmp_path):
    elf = craft_elf("aarch64", needed=("libc.so", "liblog.so", "libpython3.13.so"), exports=("PyInit_demo",))
    wheel = write_wheel(tmp_path / "demo-0.1-cp313-cp313-android_24_arm64_v8a.whl",
                        {"demo.cpython-313-aarch64-linux-android.so": elf}, tag="cp313-cp313-android_24_arm64_v8a")
    ours, theirs = both_show(wheel)
    assert {k: ours[k] for k in FIELDS} == {k: theirs[k] for k in FIELDS}
    assert ours["overall_tag"] == "android_24_arm64_v8a" and ours["arch"] == "aarch64"
    p = run("wheelvet", "check", "--plat", "android_24_arm64_v8a", str(wheel))
    assert p.returncode == 0 and "meets android_24_arm64_v8a" in p.stdout, p.stdout + p.stderr


def test_an_android_executable_is_told_by_its_loader(tmp_path):
    elf = craft_elf("aarch64", needed=("libc.so",), interp="/system/bin/linker64", elf_type=3)
    wheel = write_wheel(tmp_path / "demo-0.1-py3-none-android_21_arm64_v8a.whl", {"demo/bin/tool": elf},
                        tag="py3-none-android_21_arm64_v8a")
    p = run("wheelvet", "show", "--json", str(wheel))
    assert p.returncode == 0, p.stderr
    d = json.loads(p.stdout)
    assert d["libc"] == "android" and d["overall_tag"] == "android_21_arm64_v8a"


@pytest.mark.parametrize("tag,message", [
    ("android_20_x86_64", "android_20_x86_64: no Android policy for API level 20 (the lowest is 21, PEP 738)"),
    ("android_24_x86_64.android_26_x86_64", "an Android wheel has exactly one platform tag, not android_24_x86_64, android_26_x86_64"),
])
def test_tags_auditwheel_raises_on_are_one_line(tmp_path, sysroot, tag, message):
    wheel = android_wheel(tmp_path, sysroot, tag)
    for command in ("show", "repair"):
        p = run("wheelvet", command, str(wheel))
        assert p.returncode == 3 and p.stderr == f"wheelvet: error: {wheel.name}: {message}\n"


def _dyn(data: bytes) -> dict[str, list[str]]:
    import io

    d = ELFFile(io.BytesIO(data)).get_section_by_name(".dynamic")
    out: dict[str, list[str]] = {}
    for t in d.iter_tags():
        for tag, attr in (("DT_NEEDED", "needed"), ("DT_RPATH", "rpath"), ("DT_RUNPATH", "runpath"), ("DT_SONAME", "soname")):
            if t.entry.d_tag == tag:
                out.setdefault(tag, []).append(getattr(t, attr))
    return out


def test_repair_grafts_through_runpath_and_keeps_the_tag(tmp_path, sysroot):
    wheel = android_wheel(tmp_path, sysroot, "android_24_x86_64", "libbar.so")
    env = clean_env(SOURCE_DATE_EPOCH="1700000000")
    ours = run("wheelvet", "repair", "--ldpaths", str(sysroot), "-w", str(tmp_path / "w"), str(wheel), env=env)
    theirs = run("auditwheel", "repair", "--ldpaths", str(sysroot), "-w", str(tmp_path / "a"), str(wheel), env=env)
    assert ours.returncode == theirs.returncode == 0, ours.stderr + theirs.stderr
    (mine,) = (tmp_path / "w").iterdir()
    (oracle,) = (tmp_path / "a").iterdir()
    assert mine.name == oracle.name == wheel.name  # no manylinux tag, no new tag at all
    with zipfile.ZipFile(mine) as zm, zipfile.ZipFile(oracle) as zo:
        grafted = sorted(n for n in zm.namelist() if n.startswith("demo.libs/"))
        assert grafted == sorted(n for n in zo.namelist() if n.startswith("demo.libs/") and not n.endswith("/"))
        assert len(grafted) == 1 and grafted[0].startswith("demo.libs/libbar-")
        ext, ext_aw = _dyn(zm.read(EXT)), _dyn(zo.read(EXT))
        assert ext["DT_RUNPATH"] == ["$ORIGIN/demo.libs"] and "DT_RPATH" not in ext
        assert ext["DT_NEEDED"] == ext_aw["DT_NEEDED"] == ["libc.so", "liblog.so", "libpython3.13.so",
                                                             grafted[0].split("/")[1]]
        assert _dyn(zm.read(grafted[0]))["DT_SONAME"] == [grafted[0].split("/")[1]]
        wheel_file = zm.read("demo-0.1.dist-info/WHEEL").decode()
        assert "manylinux" not in wheel_file and "Tag: cp313-cp313-android_24_x86_64" in wheel_file


def test_repair_below_api_24_cannot_graft(tmp_path, sysroot):
    wheel = android_wheel(tmp_path, sysroot, "android_21_x86_64", "libbar.so")
    out = tmp_path / "w"
    p = run("wheelvet", "repair", "--ldpaths", str(sysroot), "-w", str(out), str(wheel))
    assert p.returncode == 1 and p.stderr.count("\n") == 1
    assert "libbar.so grafted, found through DT_RUNPATH, which Android reads from API level 24; " \
           "its tag android_21_x86_64 says 21" in p.stderr
    assert not out.exists() or not any(out.iterdir())
    clean = android_wheel(tmp_path / "clean", sysroot, "android_21_x86_64")
    p = run("wheelvet", "repair", "-w", str(out), str(clean))
    assert p.returncode == 0, p.stderr
    assert [x.name for x in out.iterdir()] == [clean.name]


def test_repair_without_ldpaths_does_not_graft_host_libraries(tmp_path, sysroot):
    wheel = android_wheel(tmp_path, sysroot, "android_24_x86_64", "libbar.so")
    p = run("wheelvet", "repair", "-w", str(tmp_path / "w"), str(wheel), env=clean_env(LD_LIBRARY_PATH=str(sysroot)))
    assert p.returncode == 1 and "libbar.so was not found" in p.stderr
