"""What `repair` writes, and never writes: an input is never replaced, two
inputs never overwrite each other's output, every output reported is on
disk, what a killed run left is removed, and a full TMPDIR is named as such.

Each class is a set of cases (issue 15, items 6 and 8)."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from support import clean_env, write_wheel
from test_repair import ext_wheel, repair, run, tmpfs

MANY = "cp311-cp311-manylinux_2_17_x86_64"


def digests(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir()) if p.is_file()}


def one_error_line(p: subprocess.CompletedProcess) -> str:
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("wheelvet: error: "), p.stderr
    return lines[0]


def env_for(libs: Path, **extra: str) -> dict:
    return clean_env(LD_LIBRARY_PATH=str(libs), **extra)


# ------------------------------------------------- 6: never over an input
# Each case makes a directory holding the input and returns (input, extra
# options): `repair -w <that directory>` would name its output as the input.


def _compliant_written_by_hand(tmp_path, libs):
    # a manylinux-tagged wheel with no external library: its name stays; the
    # bytes wheelvet writes differ from the hand-made archive's
    from support import build_extension

    ext = build_extension(tmp_path / "b", "plain")
    files = {f"pkg/{ext.name}": ext.read_bytes()}
    probe = write_wheel(tmp_path / "probe" / f"pkg-1.0-{MANY}.whl", files, tag=MANY)
    assert repair(probe, tmp_path / "probe-out").returncode == 0
    (name,) = [p.name for p in (tmp_path / "probe-out").iterdir()]
    tag = name[len("pkg-1.0-"):-len(".whl")]  # the tags wheelvet gives it: the name stays
    return write_wheel(tmp_path / "d" / name, files, tag=tag), ()


def _no_update_tags(tmp_path, libs):
    whl = ext_wheel(tmp_path, libs)
    (tmp_path / "d").mkdir()
    return Path(shutil.move(str(whl), tmp_path / "d" / whl.name)), ("--no-update-tags",)


def _through_a_symlinked_directory(tmp_path, libs):
    whl, extra = _compliant_written_by_hand(tmp_path, libs)
    (tmp_path / "link").symlink_to(tmp_path / "d")
    return tmp_path / "link" / whl.name, extra


def _a_hard_link(tmp_path, libs):
    whl, extra = _compliant_written_by_hand(tmp_path, libs)
    (tmp_path / "elsewhere").mkdir()
    os.link(whl, tmp_path / "elsewhere" / whl.name)
    return tmp_path / "elsewhere" / whl.name, extra


REFUSED = {"compliant-by-hand": _compliant_written_by_hand, "no-update-tags": _no_update_tags,
           "symlinked-dir": _through_a_symlinked_directory, "hard-link": _a_hard_link}


@pytest.mark.parametrize("case", list(REFUSED))
def test_an_output_that_would_replace_its_input_is_refused(tmp_path, libs, case):
    whl, extra = REFUSED[case](tmp_path, libs)
    before = digests(tmp_path / "d")
    p = repair(whl, tmp_path / "d", *extra, env=env_for(libs))
    assert p.returncode == 4, p.stdout + p.stderr
    assert "would replace an input" in one_error_line(p)
    assert digests(tmp_path / "d") == before  # the input untouched, nothing added (no temporary file either)


def test_a_wheel_already_repaired_is_left_as_it_is(tmp_path, libs):
    """wheelvet's own output repaired again into its directory: the same bytes, so nothing is written."""
    first = repair(ext_wheel(tmp_path, libs), tmp_path / "wh", env=env_for(libs))
    assert first.returncode == 0, first.stderr
    (out,) = (tmp_path / "wh").iterdir()
    before, mtime = digests(tmp_path / "wh"), out.stat().st_mtime_ns
    p = repair(out, tmp_path / "wh", env=env_for(libs))
    assert p.returncode == 0, p.stderr
    assert "unchanged" in p.stdout and "nothing written" in p.stdout
    assert digests(tmp_path / "wh") == before and out.stat().st_mtime_ns == mtime


def test_a_pure_wheel_copied_onto_itself_is_left_as_it_is(tmp_path):
    whl = write_wheel(tmp_path / "d" / "p-1.0-py3-none-any.whl", {"p/__init__.py": b""}, tag="py3-none-any")
    before = digests(tmp_path / "d")
    p = repair(whl, tmp_path / "d", "--allow-pure-python-wheel")
    assert p.returncode == 0 and "unchanged" in p.stdout, p.stdout + p.stderr
    assert digests(tmp_path / "d") == before


def test_an_output_never_replaces_a_later_input_of_the_call(tmp_path, libs):
    """`repair -w dist dist/a.whl dist/b.whl` where a.whl repairs to b.whl's name: b.whl is an input."""
    whl = ext_wheel(tmp_path, libs)
    probe = repair(whl, tmp_path / "probe", env=env_for(libs))
    assert probe.returncode == 0, probe.stderr
    (name,) = [p.name for p in (tmp_path / "probe").iterdir()]
    dist = tmp_path / "dist"
    dist.mkdir()
    a = Path(shutil.copy(whl, dist / whl.name))
    b = dist / name
    b.write_bytes(b"another wheel's bytes, which must survive")
    before = digests(dist)
    p = run("repair", "-w", str(dist), str(a), str(b), env=env_for(libs))
    assert p.returncode in (3, 4), p.stdout + p.stderr
    assert "would replace an input" in p.stderr
    assert digests(dist) == before


# ------------------------------------------- 8: outputs lost or left behind


def _two_wheels_one_name(tmp_path, libs) -> tuple[Path, Path]:
    a = ext_wheel(tmp_path / "a", libs)
    b = ext_wheel(tmp_path / "b", libs, extra={"pkg/data.txt": b"not the same wheel"})
    assert a.name == b.name and a.read_bytes() != b.read_bytes()
    return a, b


def test_two_inputs_that_repair_to_one_name_do_not_overwrite_each_other(tmp_path, libs):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a, b = _two_wheels_one_name(tmp_path, libs)
    out = tmp_path / "out"
    p = run("repair", "-w", str(out), str(a), str(b), env=env_for(libs))
    assert p.returncode == 4, p.stdout + p.stderr
    assert f"as {a.name} did earlier in this call" in one_error_line(p)
    (written,) = out.iterdir()
    # the one reported is on disk, and it is a's
    reported = [line.split(" -> ", 1)[1].split(" (", 1)[0] for line in p.stdout.splitlines() if " -> " in line]
    assert reported == [str(written)]
    assert "pkg/data.txt" not in zipfile.ZipFile(written).namelist()


def test_the_same_wheel_given_twice_is_written_once(tmp_path, libs):
    whl = ext_wheel(tmp_path, libs)
    out = tmp_path / "out"
    p = run("repair", "-w", str(out), str(whl), str(whl), env=env_for(libs))
    assert p.returncode == 0, p.stderr
    assert len(list(out.iterdir())) == 1
    assert p.stdout.count("unchanged") == 1


def _start_slow_repair(tmp_path: Path, libs: Path, whl: Path, out: Path, tmp: Path, tag: str) -> subprocess.Popen:
    started = tmp_path / f"started-{tag}"
    slow = tmp_path / f"slow-patchelf-{tag}"
    slow.write_text(f"#!/bin/sh\ntouch {started}\nsleep 60\n")
    slow.chmod(0o755)
    proc = subprocess.Popen([sys.executable, "-m", "wheelvet", "repair", "-w", str(out), str(whl)],
                            env=env_for(libs, WHEELVET_PATCHELF=str(slow), TMPDIR=str(tmp)),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.time() + 60
    while not started.exists():
        assert time.time() < deadline and proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    return proc


def _age(paths, seconds: float = 3600) -> None:
    then = time.time() - seconds
    for p in paths:
        os.utime(p, (then, then), follow_symlinks=False)
        if p.is_dir():
            for q in p.rglob("*"):
                os.utime(q, (then, then), follow_symlinks=False)


def test_what_a_killed_run_left_is_removed_by_the_next(tmp_path, libs):
    whl = ext_wheel(tmp_path, libs)
    out, tmp = tmp_path / "out", tmp_path / "tmp"
    tmp.mkdir()
    proc = _start_slow_repair(tmp_path, libs, whl, out, tmp, "killed")
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    left_out, left_tmp = list(out.iterdir()), list(tmp.iterdir())
    assert [p.name for p in left_out if p.name.endswith(".wheelvet-tmp")] and left_tmp  # what SIGKILL leaves
    _age([*left_out, *left_tmp])
    p = repair(whl, out, env=env_for(libs, TMPDIR=str(tmp)))
    assert p.returncode == 0, p.stderr
    assert [q.suffix for q in out.iterdir()] == [".whl"]
    assert list(tmp.iterdir()) == []
    assert "a killed run left" in p.stderr or "killed runs left" in p.stderr  # and it says so


def test_a_live_run_keeps_its_files(tmp_path, libs):
    """A run still working (its lock held) keeps its temporary files, however old they look."""
    whl = ext_wheel(tmp_path, libs)
    out, tmp = tmp_path / "out", tmp_path / "tmp"
    tmp.mkdir()
    proc = _start_slow_repair(tmp_path, libs, whl, out, tmp, "live")
    try:
        live_out, live_tmp = set(out.iterdir()), set(tmp.iterdir())
        _age([*live_out, *live_tmp])
        (tmp_path / "o").mkdir()
        other = ext_wheel(tmp_path / "o", libs, extra={"pkg/x.txt": b"x"})
        p = repair(other, out, env=env_for(libs, TMPDIR=str(tmp)))
        assert p.returncode in (0, 4), p.stderr  # (the same output name: written, or refused; never the live run's files)
        assert live_out <= set(out.iterdir()) and live_tmp <= set(tmp.iterdir())
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=30)


def test_a_full_tmpdir_is_named_not_the_output_directory(tmp_path, libs):
    whl = ext_wheel(tmp_path, libs)
    out = tmp_path / "out"
    with tmpfs(tmp_path / "small-tmp", "64k", "a full TMPDIR") as small:
        try:
            with open(small / "filler", "wb") as f:
                while True:
                    f.write(b"\0" * 4096)
                    f.flush()
        except OSError:
            pass  # full
        p = repair(whl, out, env=env_for(libs, TMPDIR=str(small)))
        line = one_error_line(p)
        assert p.returncode == 4, p.stderr
        assert f"temporary directory {small} (TMPDIR)" in line and "No space left" in line, line
        assert str(out) not in line
        assert not out.exists() or list(out.iterdir()) == []
