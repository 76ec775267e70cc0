"""`wheelvet repair` end to end: real gcc-built binaries, repaired, installed, imported."""

from __future__ import annotations

import base64
import contextlib
import csv
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from support import EXT_SUFFIX, build_extension, cc, clean_env, write_wheel

TAG = "cp311-cp311-linux_x86_64"


def run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    p = subprocess.run([sys.executable, "-m", "wheelvet", *args], capture_output=True, text=True,
                       env=env if env is not None else clean_env(), timeout=600)
    assert "Traceback" not in p.stderr, p.stderr
    return p




def ext_wheel(tmp_path: Path, libs: Path, modules=("spam",), *, extra=None, flags=(), name="pkg-1.0", tag=TAG) -> Path:
    files = {"pkg/__init__.py": b""}
    for m in modules:
        ext = build_extension(tmp_path / "build", m, f"-L{libs}", "-l:libA.so.1", *flags,
                              body="int a_value(void);", call="a_value()")
        files[f"pkg/{ext.name}"] = ext.read_bytes()
    files.update(extra or {})
    return write_wheel(tmp_path / f"{name}-{tag}.whl", files, tag=tag)


def repair(wheel: Path, out: Path, *extra: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return run("repair", "-w", str(out), *extra, str(wheel), env=env)


def only_wheel(out: Path) -> Path:
    files = [p for p in out.iterdir()]
    assert len(files) == 1 and files[0].suffix == ".whl", files  # nothing else: no temporary files
    return files[0]


def elf_of(wheel: Path, member: str) -> ELFFile:
    return ELFFile(io.BytesIO(zipfile.ZipFile(wheel).read(member)))


def dyn(elf: ELFFile, tag: str) -> list[str]:
    d = elf.get_section_by_name(".dynamic")
    attr = {"DT_NEEDED": "needed", "DT_RPATH": "rpath", "DT_RUNPATH": "runpath", "DT_SONAME": "soname"}[tag]
    return [getattr(t, attr) for t in d.iter_tags() if t.entry.d_tag == tag]


def check_record(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        rec_name = next(n for n in zf.namelist() if n.endswith(".dist-info/RECORD"))
        rows = list(csv.reader(io.StringIO(zf.read(rec_name).decode())))
        names = {i.filename for i in zf.infolist() if not i.is_dir()}
        assert {r[0] for r in rows} == names
        for path, digest, size in rows:
            if path == rec_name:
                assert digest == size == ""
                continue
            data = zf.read(path)
            assert size == str(len(data))
            assert digest == "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def test_end_to_end_graft_install_import(tmp_path, libs):
    whl = ext_wheel(tmp_path, libs)
    out = tmp_path / "out"
    p = repair(whl, out, env=clean_env(LD_LIBRARY_PATH=str(libs)))
    assert p.returncode == 0, p.stderr
    fixed = only_wheel(out)
    assert "manylinux" in fixed.name and "linux_x86_64" not in fixed.name.split("-")[-1].replace("manylinux", "")
    names = zipfile.ZipFile(fixed).namelist()
    grafted = sorted(n for n in names if n.startswith("pkg.libs/"))
    assert [n.split("-")[0] for n in grafted] == ["pkg.libs/libA", "pkg.libs/libB"]
    for n in grafted:  # the hash is of the source library's content
        src = libs / (n.split("/")[1].split("-")[0] + "." + n.split(".", 2)[2])
        assert hashlib.sha256(src.read_bytes()).hexdigest()[:8] in n
        assert dyn(elf_of(fixed, n), "DT_SONAME") == [n.split("/")[1]]
    ext = elf_of(fixed, f"pkg/spam{EXT_SUFFIX}")
    assert dyn(ext, "DT_RPATH") == ["$ORIGIN/../pkg.libs"]
    liba = next(n for n in grafted if "libA" in n)
    assert dyn(elf_of(fixed, liba), "DT_RPATH") == ["$ORIGIN"]  # it needs the grafted libB
    assert any("libB-" in n for n in dyn(elf_of(fixed, liba), "DT_NEEDED"))
    check_record(fixed)

    shutil.rmtree(libs)  # the libraries must now come from the wheel
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    py = env_dir / "bin" / "python"
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-index", "--no-deps", str(fixed)], check=True)
    code = ("import pkg.spam, sys; v = pkg.spam.value(); "
            "maps = open('/proc/self/maps').read(); "
            "print(v, 'pkg.libs/libB-' in maps)")
    res = subprocess.run([str(py), "-c", code], capture_output=True, text=True, env=clean_env(), cwd=tmp_path)
    assert res.stdout.split() == ["43", "True"], res.stderr


def test_the_patcher_is_a_seam(tmp_path, libs):
    """apply_plan hands every edit to its patcher: a recording one sees the
    plan's edits, in order, and the commands patchelf ran."""
    from wheelvet.audit import AuditOptions, analyze
    from wheelvet.repair import Patchelf, apply_plan, plan_repair
    from wheelvet.wheelfile import read_wheel

    class Recording(Patchelf):
        def __init__(self):
            super().__init__()
            self.edits, self.commands = [], []

        def apply(self, edits):
            self.edits += edits
            self.commands += [self.command(e) for e in edits]
            super().apply(edits)

    whl = ext_wheel(tmp_path, libs)
    options = AuditOptions(environ={"LD_LIBRARY_PATH": str(libs)})
    analysis = analyze(read_wheel(str(whl)), options)
    plan = plan_repair(analysis)
    patcher = Recording()
    out = apply_plan(plan, analysis, str(tmp_path / "out"), environ=dict(options.environ), audit_options=options,
                     patcher=patcher)
    assert [e.what for e in patcher.edits] == [f"pkg/spam{EXT_SUFFIX}"] + [
        f"{g.member} (grafted from {g.source})" for g in plan.grafts]
    ext_cmd = patcher.commands[0]
    liba = next(g for g in plan.grafts if g.soname == "libA.so.1")
    assert ext_cmd[1:-1] == ["--replace-needed", "libA.so.1", liba.new_soname, "--force-rpath", "--set-rpath",
                             "$ORIGIN/../pkg.libs"]
    assert {c[1:3] == ["--set-soname", g.new_soname] for c, g in zip(patcher.commands[1:], plan.grafts)} == {True}
    assert dyn(elf_of(Path(out), f"pkg/spam{EXT_SUFFIX}"), "DT_NEEDED")[0] == liba.new_soname


def test_two_extensions_share_one_copy(tmp_path, libs):
    whl = ext_wheel(tmp_path, libs, modules=("one", "two"))
    out = tmp_path / "out"
    assert repair(whl, out, env=clean_env(LD_LIBRARY_PATH=str(libs))).returncode == 0
    fixed = only_wheel(out)
    grafted = [n for n in zipfile.ZipFile(fixed).namelist() if n.startswith("pkg.libs/")]
    assert len(grafted) == 2
    a = next(n for n in grafted if "libA" in n).split("/")[1]
    for m in ("one", "two"):
        assert a in dyn(elf_of(fixed, f"pkg/{m}{EXT_SUFFIX}"), "DT_NEEDED")


def test_exclude_leaves_a_library_and_its_subtree(tmp_path, libs):
    whl = ext_wheel(tmp_path, libs)
    out = tmp_path / "out"
    p = repair(whl, out, "--exclude", "libA.so.*", env=clean_env(LD_LIBRARY_PATH=str(libs)))
    assert p.returncode == 0, p.stderr
    fixed = only_wheel(out)
    assert not [n for n in zipfile.ZipFile(fixed).namelist() if ".libs/" in n]
    assert "libA.so.1" in dyn(elf_of(fixed, f"pkg/spam{EXT_SUFFIX}"), "DT_NEEDED")


@pytest.mark.parametrize("pattern", ["libB.so.2", "libB.so.*", "*/libB.so.2"])
def test_exclude_applies_at_every_depth(tmp_path, libs, pattern):
    """libA is grafted; libB, which only libA needs, is excluded by SONAME or path glob."""
    whl = ext_wheel(tmp_path, libs)
    out = tmp_path / "out"
    env = clean_env(LD_LIBRARY_PATH=str(libs))
    shown = json.loads(run("show", "--json", "--exclude", pattern, str(whl), env=env).stdout)
    assert set(shown["external_libs"]) == {"libA.so.1"}
    p = repair(whl, out, "--exclude", pattern, env=env)
    assert p.returncode == 0, p.stderr
    fixed = only_wheel(out)
    grafted = [n for n in zipfile.ZipFile(fixed).namelist() if ".libs/" in n]
    assert [n.split("/")[1].split("-")[0] for n in grafted] == ["libA"]
    liba = elf_of(fixed, grafted[0])
    assert "libB.so.2" in dyn(liba, "DT_NEEDED")  # left for the system to provide
    assert dyn(liba, "DT_RPATH") == []


def test_exclude_path_glob_matches_the_path_through_a_symlinked_directory(tmp_path, libs):
    """``--exclude '/opt/cuda/*'`` keeps out a library found through the
    ``cuda -> cuda-13.0`` symlink, as auditwheel does; the real path matches too."""
    real = tmp_path / "cuda-13.0"
    shutil.move(str(libs), str(real))
    (tmp_path / "cuda").symlink_to(real)
    whl = ext_wheel(tmp_path, tmp_path / "cuda")
    env = clean_env(LD_LIBRARY_PATH=str(tmp_path / "cuda"))
    for pattern in (f"{tmp_path}/cuda/*", f"{real}/*"):
        out = tmp_path / f"out-{len(pattern)}"
        p = repair(whl, out, "--exclude", pattern, env=env)
        assert p.returncode == 0, p.stderr
        assert not [n for n in zipfile.ZipFile(only_wheel(out)).namelist() if ".libs/" in n], pattern


def test_rpath_inside_the_wheel_is_kept_and_outside_dropped(tmp_path, libs):
    inner = cc(tmp_path / "inner" / "libinner.so", {"i.c": "int inner(void){return 7;}"}, "-Wl,-soname,libinner.so")
    ext = build_extension(tmp_path / "build", "mixed", f"-L{libs}", "-l:libA.so.1", f"-L{inner.parent}", "-l:libinner.so",
                          "-Wl,-rpath,$ORIGIN/../pkg.internal:/opt/nowhere", "-Wl,--disable-new-dtags",
                          body="int a_value(void); int inner(void);", call="a_value() + inner()")
    whl = write_wheel(tmp_path / f"pkg-1.0-{TAG}.whl", {f"pkg/{ext.name}": ext.read_bytes(),
                                                      "pkg.internal/libinner.so": inner.read_bytes()})
    out = tmp_path / "out"
    assert repair(whl, out, env=clean_env(LD_LIBRARY_PATH=str(libs))).returncode == 0
    fixed = only_wheel(out)
    assert dyn(elf_of(fixed, f"pkg/{ext.name}"), "DT_RPATH") == ["$ORIGIN/../pkg.internal:$ORIGIN/../pkg.libs"]
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--target", str(target), str(fixed)], check=True)
    shutil.rmtree(libs)
    res = subprocess.run([sys.executable, "-c", "import pkg.mixed; print(pkg.mixed.value())"], capture_output=True, text=True,
                         env=clean_env(PYTHONPATH=str(target)), cwd=tmp_path)
    assert res.stdout.strip() == "50", res.stderr


def test_executable_in_data_scripts_moves_behind_a_launcher(tmp_path, libs):
    exe = cc(tmp_path / "tool", {"t.c": "#include <stdio.h>\nint a_value(void); int main(void){printf(\"%d\\n\", a_value()); return 0;}"},
             f"-L{libs}", "-l:libA.so.1", f"-Wl,-rpath-link,{libs}", shared=False)
    whl = write_wheel(tmp_path / f"pkg-1.0-{TAG}.whl", {"pkg-1.0.data/scripts/tool": exe.read_bytes(), "pkg/__init__.py": b""})
    out = tmp_path / "out"
    p = repair(whl, out, env=clean_env(LD_LIBRARY_PATH=str(libs)))
    assert p.returncode == 0, p.stderr
    fixed = only_wheel(out)
    zf = zipfile.ZipFile(fixed)
    assert dyn(elf_of(fixed, "pkg.scripts/tool"), "DT_RPATH") == ["$ORIGIN/../pkg.libs"]
    assert zf.read("pkg-1.0.data/scripts/tool").startswith(b"#!python")
    shutil.rmtree(libs)
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    subprocess.run([str(env_dir / "bin" / "python"), "-m", "pip", "install", "-q", "--no-index", "--no-deps", str(fixed)], check=True)
    res = subprocess.run([str(env_dir / "bin" / "tool")], capture_output=True, text=True, env=clean_env())
    assert res.stdout.strip() == "43", res.stderr


def test_strip_removes_symbol_tables(tmp_path, libs):
    whl = ext_wheel(tmp_path, libs, flags=("-g",))
    out = tmp_path / "out"
    assert repair(whl, out, "--strip", env=clean_env(LD_LIBRARY_PATH=str(libs))).returncode == 0
    fixed = only_wheel(out)
    for n in zipfile.ZipFile(fixed).namelist():
        if n.endswith(".so") or ".so." in n:
            elf = elf_of(fixed, n)
            assert elf.get_section_by_name(".symtab") is None and elf.get_section_by_name(".debug_info") is None, n
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--target", str(target), str(fixed)], check=True)
    res = subprocess.run([sys.executable, "-c", "import pkg.spam; print(pkg.spam.value())"], capture_output=True, text=True,
                         env=clean_env(PYTHONPATH=str(target)), cwd=tmp_path)
    assert res.stdout.strip() == "43", res.stderr


def test_too_recent_symbol_version_is_refused(tmp_path, need_gcc):
    ext = build_extension(tmp_path / "b", "mathy", "-lm", "-fno-builtin", body="#include <math.h>", call="exp(1.0)")
    whl = write_wheel(tmp_path / f"m-1.0-{TAG}.whl", {f"m/{ext.name}": ext.read_bytes()})
    out = tmp_path / "out"
    p = repair(whl, out, "--plat", "manylinux2014_x86_64")
    assert p.returncode == 1
    assert "GLIBC_2.29 from libm.so.6" in p.stderr and f"m/{ext.name}" in p.stderr and "exp" in p.stderr
    assert p.stderr.count("\n") == 1
    assert not out.exists() or not any(out.iterdir())


MISLABELLED = "cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64"  # as cibuildwheel names a 2014 wheel


def test_repair_drops_tags_the_wheel_does_not_meet(tmp_path, need_gcc):
    """A manylinux2014 wheel that needs GLIBC_2.29 (exp) is renamed to what it
    meets; it keeps no claim to manylinux2014 / manylinux_2_17."""
    ext = build_extension(tmp_path / "b", "mathy", "-lm", "-fno-builtin", body="#include <math.h>", call="exp(1.0)")
    whl = write_wheel(tmp_path / f"m-1.0-{MISLABELLED}.whl", {f"m/{ext.name}": ext.read_bytes()}, tag=MISLABELLED)
    out = tmp_path / "out"
    p = repair(whl, out)
    assert p.returncode == 0, p.stderr
    fixed = only_wheel(out)
    tags = fixed.name[:-4].split("-")[-1].split(".")
    assert "manylinux_2_17_x86_64" not in tags and "manylinux2014_x86_64" not in tags, tags
    best = json.loads(run("show", "--json", str(whl)).stdout)["overall_tag"]
    assert best.startswith("manylinux_2_") and int(best.split("_")[2]) >= 29  # exp@GLIBC_2.29 at least
    assert tags == [best], tags
    wheel_file = zipfile.ZipFile(fixed).read("m-1.0.dist-info/WHEEL").decode()
    assert "manylinux_2_17" not in wheel_file and "manylinux2014" not in wheel_file and best in wheel_file
    assert "dropped tags it does not meet: manylinux2014_x86_64, manylinux_2_17_x86_64" in p.stdout
    assert run("check", str(fixed)).returncode == 0
    # keeping the name would keep the false claim: refused, nothing written
    out2 = tmp_path / "out2"
    p = repair(whl, out2, "--no-update-tags")
    assert p.returncode == 1 and "--no-update-tags" in p.stderr and "manylinux_2_17_x86_64" in p.stderr
    assert not out2.exists() or not any(out2.iterdir())


def test_plat_more_compatible_than_possible_is_refused_less_compatible_is_tagged(tmp_path, libs):
    whl = ext_wheel(tmp_path, libs)
    env = clean_env(LD_LIBRARY_PATH=str(libs))
    best = json.loads(run("show", "--json", str(whl), env=env).stdout)["repairable_tag"]
    assert best.startswith("manylinux_")
    out = tmp_path / "o1"
    p = repair(whl, out, "--plat", "manylinux_2_41_x86_64", env=env)
    assert p.returncode == 0, p.stderr
    tags = only_wheel(out).name[:-4].split("-")[-1].split(".")
    assert "manylinux_2_41_x86_64" in tags and best in tags  # asked for, and the best it meets
    out = tmp_path / "o2"
    assert repair(whl, out, "--plat", "manylinux_2_41_x86_64", "--only-plat", env=env).returncode == 0
    assert only_wheel(out).name.endswith("-manylinux_2_41_x86_64.whl")
    # AUDITWHEEL_PLAT is the default of --plat
    out = tmp_path / "o3"
    assert repair(whl, out, "--only-plat", env=clean_env(LD_LIBRARY_PATH=str(libs), AUDITWHEEL_PLAT="manylinux_2_39_x86_64")).returncode == 0
    assert only_wheel(out).name.endswith("-manylinux_2_39_x86_64.whl")


def test_plat_beyond_what_symbols_allow_is_refused(tmp_path, need_gcc):
    ext = build_extension(tmp_path / "b", "mathy", "-lm", "-fno-builtin", body="#include <math.h>", call="exp(1.0)")
    whl = write_wheel(tmp_path / f"m-1.0-{TAG}.whl", {f"m/{ext.name}": ext.read_bytes()})
    p = repair(whl, tmp_path / "out", "--plat", "manylinux1_x86_64")
    assert p.returncode == 1 and "cannot repair" in p.stderr
    p = repair(whl, tmp_path / "out", "--plat", "manylinux_2_99_x86_64")
    assert p.returncode == 2


def test_reproducible_and_idempotent(tmp_path, libs):
    whl = ext_wheel(tmp_path, libs)
    env = clean_env(LD_LIBRARY_PATH=str(libs), SOURCE_DATE_EPOCH="1700000000")
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    assert repair(whl, a, env=env).returncode == 0
    assert repair(whl, b, env=env).returncode == 0
    assert only_wheel(a).read_bytes() == only_wheel(b).read_bytes()
    assert all(i.date_time == (2023, 11, 14, 22, 13, 20) for i in zipfile.ZipFile(only_wheel(a)).infolist())
    assert repair(only_wheel(a), c, env=env).returncode == 0  # repairing a repaired wheel changes nothing
    assert only_wheel(c).read_bytes() == only_wheel(a).read_bytes()
    names = zipfile.ZipFile(only_wheel(a)).namelist()
    assert names[-1].endswith(".dist-info/RECORD")
    body = [n for n in names if ".dist-info/" not in n]
    assert body == sorted(body)


def test_dry_run_writes_nothing(tmp_path, libs):
    whl = ext_wheel(tmp_path, libs)
    out = tmp_path / "out"
    p = repair(whl, out, "--dry-run", env=clean_env(LD_LIBRARY_PATH=str(libs)))
    assert p.returncode == 0 and "graft libA.so.1" in p.stdout and "rpath $ORIGIN/../pkg.libs" in p.stdout
    assert not out.exists() or not any(out.iterdir())


def test_failing_patchelf_leaves_nothing_behind(tmp_path, libs):
    whl = ext_wheel(tmp_path, libs)
    out = tmp_path / "out"
    out.mkdir()
    (out / "earlier.whl").write_bytes(b"an earlier output")
    p = repair(whl, out, env=clean_env(LD_LIBRARY_PATH=str(libs), WHEELVET_PATCHELF="/bin/false"))
    assert p.returncode == 4 and "patchelf" in p.stderr and p.stderr.count("\n") == 1
    assert [x.name for x in out.iterdir()] == ["earlier.whl"]
    assert (out / "earlier.whl").read_bytes() == b"an earlier output"


def test_not_found_library_is_refused(tmp_path, libs):
    whl = ext_wheel(tmp_path, libs)
    p = repair(whl, tmp_path / "out")  # no LD_LIBRARY_PATH
    assert p.returncode == 1 and "libA.so.1" in p.stderr and "not found" in p.stderr


def test_no_update_tags_and_stored_members(tmp_path, libs):
    whl = ext_wheel(tmp_path, libs)
    out = tmp_path / "out"
    assert repair(whl, out, "--no-update-tags", "-z", "0", env=clean_env(LD_LIBRARY_PATH=str(libs))).returncode == 0
    fixed = only_wheel(out)
    assert fixed.name == whl.name
    zf = zipfile.ZipFile(fixed)
    assert all(i.compress_type == zipfile.ZIP_STORED for i in zf.infolist() if ".libs/" in i.filename)
    check_record(fixed)


def test_pure_wheel(tmp_path):
    whl = write_wheel(tmp_path / "p-1.0-py3-none-any.whl", {"p/__init__.py": b""}, tag="py3-none-any")
    assert repair(whl, tmp_path / "o").returncode == 1
    p = repair(whl, tmp_path / "o2", "--allow-pure-python-wheel")
    assert p.returncode == 0 and (tmp_path / "o2" / whl.name).read_bytes() == whl.read_bytes()


def test_lib_sdir(tmp_path, libs):
    whl = ext_wheel(tmp_path, libs)
    out = tmp_path / "out"
    assert repair(whl, out, "-L", ".vendored", env=clean_env(LD_LIBRARY_PATH=str(libs))).returncode == 0
    assert any(n.startswith("pkg.vendored/libA-") for n in zipfile.ZipFile(only_wheel(out)).namelist())


@pytest.mark.parametrize("signame,code", [("SIGTERM", 143), ("SIGINT", 130)])
def test_signal_during_repair_leaves_nothing(tmp_path, libs, signame, code):
    """A slow patchelf stands in for a long repair; SIGTERM and SIGINT must clean up."""
    import signal
    import time

    slow = tmp_path / "slow-patchelf"
    slow.write_text("#!/bin/sh\nsleep 30\n")
    slow.chmod(0o755)
    whl = ext_wheel(tmp_path, libs)
    out = tmp_path / "out"
    tmp = tmp_path / "tmp"  # its own TMPDIR: another run's work directory is no sign that this one is patching
    tmp.mkdir()
    started = tmp_path / "started"
    slow.write_text(f"#!/bin/sh\ntouch {started}\nsleep 30\n")
    # As a terminal's foreground job starts it: a shell's background job (make
    # test &, a CI step run with &) has SIGINT ignored, its children inherit
    # that, and Python then leaves SIGINT ignored (it is, by Unix convention).
    proc = subprocess.Popen([sys.executable, "-m", "wheelvet", "repair", "-w", str(out), str(whl)],
                            env=clean_env(LD_LIBRARY_PATH=str(libs), WHEELVET_PATCHELF=str(slow), TMPDIR=str(tmp)),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 30
    while time.time() < deadline and not started.exists():  # the (slow) patchelf runs
        time.sleep(0.05)
    time.sleep(0.2)
    proc.send_signal(getattr(signal, signame))
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert "Traceback" not in err
    assert not out.exists() or not any(out.iterdir())
    assert list(tmp.iterdir()) == []  # its work directories went too


# Run as a child: a finalizer that runs while the first wheel is repaired
# takes the SIGINT sent meanwhile (CPython then says "Exception ignored" and
# goes on, the interrupt lost, were it not remembered).
_SWALLOWED_SIGINT = """
import os, signal, sys
import wheelvet.repair as repair
from wheelvet import cli

class Finalized:
    def __del__(self):
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(1000):  # (the handler runs here, inside the finalizer)
            pass

real = repair.repair_wheel
def repair_wheel(*args, **kwargs):
    Finalized()  # (made and dropped at once: its __del__ runs now)
    return real(*args, **kwargs)
repair.repair_wheel = repair_wheel
sys.exit(cli.main(sys.argv[1:]))
"""


def test_an_interrupt_a_finalizer_swallows_still_stops_the_repair(tmp_path, libs):
    """Ctrl-C landing inside a finalizer is not lost: no output takes its
    name after it, the call ends as interrupted (130, one line, no
    "Exception ignored" traceback), and nothing is left in TMPDIR."""
    import signal

    wheels = [ext_wheel(tmp_path / f"w{i}", libs, name=f"pkg{i}-1.0") for i in range(2)]
    out, tmp = tmp_path / "out", tmp_path / "tmp"
    tmp.mkdir()
    p = subprocess.run([sys.executable, "-c", _SWALLOWED_SIGINT, "repair", "-w", str(out), *map(str, wheels)],
                       env=clean_env(LD_LIBRARY_PATH=str(libs), TMPDIR=str(tmp)), capture_output=True, text=True,
                       preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert p.returncode == 130, p.stderr
    assert p.stderr == "wheelvet: interrupted\n"
    assert not out.exists() or not any(out.iterdir())
    assert list(tmp.iterdir()) == []


def test_crashing_patchelf_is_reported_and_leaves_nothing(tmp_path, libs):
    crash = tmp_path / "crash-patchelf"
    crash.write_text("#!/bin/sh\nkill -SEGV $$\n")
    crash.chmod(0o755)
    whl = ext_wheel(tmp_path, libs)
    out = tmp_path / "out"
    p = repair(whl, out, env=clean_env(LD_LIBRARY_PATH=str(libs), WHEELVET_PATCHELF=str(crash)))
    assert p.returncode == 4 and "killed by signal SIGSEGV" in p.stderr and p.stderr.count("\n") == 1
    assert not out.exists() or not any(out.iterdir())


def test_missing_patchelf(tmp_path, libs):
    whl = ext_wheel(tmp_path, libs)
    p = repair(whl, tmp_path / "out", env=clean_env(LD_LIBRARY_PATH=str(libs), WHEELVET_PATCHELF=str(tmp_path / "nope")))
    assert p.returncode == 4 and "cannot run" in p.stderr and p.stderr.count("\n") == 1


def test_output_directory_that_cannot_be_created(tmp_path, libs):
    whl = ext_wheel(tmp_path, libs)
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    p = repair(whl, blocker / "out", env=clean_env(LD_LIBRARY_PATH=str(libs)))
    assert p.returncode == 4 and "cannot create the output directory" in p.stderr and p.stderr.count("\n") == 1


@contextlib.contextmanager
def tmpfs(path: Path, size: str, why: str):
    """A small tmpfs mounted on ``path`` for the test (skips unless root may mount)."""
    path.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                                           capture_output=True).returncode != 0:
        pytest.skip(f"needs root and a mountable tmpfs to make {why}")
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], capture_output=True)


def test_full_disk_leaves_no_partial_wheel(tmp_path, libs):
    """The output directory is a 64 KiB tmpfs: the write fails with ENOSPC."""
    with tmpfs(tmp_path / "small", "64k", "a full disk") as small:
        (small / "earlier.whl").write_bytes(b"earlier output")
        whl = ext_wheel(tmp_path, libs, flags=("-g",))  # debug info makes the output larger than the disk
        big = tmp_path / "libs" / "libB.so.2"
        big.write_bytes(big.read_bytes() + os.urandom(200_000))  # incompressible padding after the ELF data
        p = repair(whl, small, env=clean_env(LD_LIBRARY_PATH=str(libs)))
        assert p.returncode == 4 and "No space left on device" in p.stderr and p.stderr.count("\n") == 1, p.stderr
        assert sorted(x.name for x in small.iterdir()) == ["earlier.whl"]
        assert (small / "earlier.whl").read_bytes() == b"earlier output"


def _assert_unwritable_refused(out: Path, whl: Path, libs: Path, reason: str) -> None:
    before = {x.name: x.read_bytes() for x in out.iterdir()}
    p = repair(whl, out, env=clean_env(LD_LIBRARY_PATH=str(libs)))
    assert p.returncode == 4 and p.stderr.count("\n") == 1 and "Traceback" not in p.stderr, p.stderr
    assert f"cannot write {out}" in p.stderr and reason in p.stderr, p.stderr
    assert {x.name: x.read_bytes() for x in out.iterdir()} == before  # earlier outputs untouched, nothing added


def test_read_only_output_directory(tmp_path, libs):
    """A read-only mount (EROFS: even root cannot write there)."""
    with tmpfs(tmp_path / "ro", "1m", "a read-only directory") as out:
        (out / "earlier.whl").write_bytes(b"earlier output")
        subprocess.run(["mount", "-o", "remount,ro", str(out)], check=True, capture_output=True)
        _assert_unwritable_refused(out, ext_wheel(tmp_path, libs), libs, "Read-only file system")
        pure = write_wheel(tmp_path / "p-1.0-py3-none-any.whl", {"p/__init__.py": b""}, tag="py3-none-any")
        p = repair(pure, out, "--allow-pure-python-wheel")  # copied as it is: the same promise
        assert p.returncode == 4 and p.stderr.count("\n") == 1 and f"cannot write {out}: Read-only" in p.stderr, p.stderr


def test_output_directory_without_write_permission(tmp_path, libs):
    """EACCES, as CI runners (not root) meet it."""
    if os.geteuid() == 0:
        pytest.skip("root ignores directory permissions (test_read_only_output_directory covers this as root)")
    out = tmp_path / "locked"
    out.mkdir()
    (out / "earlier.whl").write_bytes(b"earlier output")
    out.chmod(0o555)
    try:
        _assert_unwritable_refused(out, ext_wheel(tmp_path, libs), libs, "Permission denied")
    finally:
        out.chmod(0o755)


def test_two_repairs_of_one_wheel_into_one_directory(tmp_path, libs):
    whl = ext_wheel(tmp_path, libs)
    out = tmp_path / "out"
    env = clean_env(LD_LIBRARY_PATH=str(libs), SOURCE_DATE_EPOCH="1700000000")
    procs = [subprocess.Popen([sys.executable, "-m", "wheelvet", "repair", "-w", str(out), str(whl)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], results
    fixed = only_wheel(out)  # one wheel, no temporary files left
    check_record(fixed)
    assert zipfile.ZipFile(fixed).testzip() is None
