"""Repairing a wheelhouse in one call: every distinct library patched and
compressed once for all the wheels, every output byte for byte what repairing
its wheel alone writes (issue 16)."""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from support import add_section, build_extension, clean_env, library_like, write_wheel

from test_repair import run

PYTHONS = ("cp39", "cp310", "cp311", "cp312")


def release(tmp_path: Path, libs: Path) -> list[Path]:
    """One project built "for" several Pythons, as a release is: an extension
    module of its own in each (different bytes), all needing libA (and so
    libB); and a second project needing the same libraries."""
    wheels = []
    for k, py in enumerate(PYTHONS):
        ext = build_extension(tmp_path / f"build-{py}", "spam", f"-L{libs}", "-l:libA.so.1",
                              body="int a_value(void);", call=f"a_value() + {k}")
        files = {"pkg/__init__.py": b"", f"pkg/{ext.name}": ext.read_bytes()}
        wheels.append(write_wheel(tmp_path / "dist" / f"pkg-1.0-{py}-{py}-linux_x86_64.whl", files,
                                  tag=f"{py}-{py}-linux_x86_64"))
    ext = build_extension(tmp_path / "build-other", "eggs", f"-L{libs}", "-l:libA.so.1",
                          body="int a_value(void);", call="a_value()")
    wheels.append(write_wheel(tmp_path / "dist" / "other-2.0-cp311-cp311-linux_x86_64.whl",
                              {"other/__init__.py": b"", f"other/{ext.name}": ext.read_bytes()}))
    return wheels


@pytest.mark.parametrize("extra", [(), ("--strip", "-z", "1")], ids=["default", "strip-z1"])
def test_a_wheelhouse_is_byte_identical_to_each_wheel_repaired_alone(tmp_path, libs, extra):
    wheels = release(tmp_path, libs)
    env = clean_env(LD_LIBRARY_PATH=str(libs), SOURCE_DATE_EPOCH="1700000000")
    alone = {}
    for i, whl in enumerate(wheels):
        out = tmp_path / f"alone-{i}"
        p = run("repair", "-w", str(out), *extra, str(whl), env=env)
        assert p.returncode == 0, p.stderr
        [written] = out.iterdir()
        alone[written.name] = written.read_bytes()
    together = tmp_path / "together"
    p = run("-v", "repair", "-w", str(together), *extra, *map(str, wheels), env=env)
    assert p.returncode == 0, p.stderr
    assert sorted(f.name for f in together.iterdir()) == sorted(alone)
    for name, data in alone.items():
        assert (together / name).read_bytes() == data, name
    # ... and the libraries were patched for the first wheel only: libA and
    # libB for each of the others, never the extension modules (other bytes).
    reused = [line for line in p.stderr.splitlines() if line.endswith("patched as in an earlier wheel of this call")]
    assert len(reused) == 2 * (len(wheels) - 1), p.stderr
    assert all(".libs/lib" in line for line in reused)
    with zipfile.ZipFile(together / next(iter(alone))) as zf:
        assert len([n for n in zf.namelist() if ".libs/" in n]) == 2


class CountingPatcher:
    """patchelf and strip, counting the files each is asked to change."""

    def __init__(self) -> None:
        from wheelvet.repair import Patchelf

        self.inner = Patchelf()
        self.program = "patchelf"
        self.edited: list[str] = []

    def strip(self, targets):
        self.inner.strip(targets)

    def apply(self, edits):
        self.edited += [e.what for e in edits]
        self.inner.apply(edits)


def test_one_session_patches_and_compresses_each_library_once(tmp_path, libs):
    from wheelvet.audit import AuditOptions
    from wheelvet.repair import RepairOptions, RepairSession, repair_wheel

    wheels = release(tmp_path, libs)
    options = AuditOptions(environ=clean_env(LD_LIBRARY_PATH=str(libs)))
    patcher = CountingPatcher()
    with RepairSession() as session:
        for whl in wheels:
            repair_wheel(str(whl), str(tmp_path / "out"), RepairOptions(), options, patcher=patcher, session=session)
        grafted = [w for w in patcher.edited if "grafted from" in w]
        assert len(grafted) == 2  # libA and libB, for the first wheel
        assert len(patcher.edited) == 2 + len(wheels)  # and each wheel's own extension module
        assert session.patched_hits == 2 * (len(wheels) - 1)
        assert session.deflated.hits >= 2 * (len(wheels) - 1)  # their compressed bytes copied (and any WHEEL file alike)
        directory = session.directory()
    assert not Path(directory).exists()  # the session's files go with it
    assert len(list((tmp_path / "out").iterdir())) == len(wheels)


def test_a_session_of_one_wheel_keeps_no_compressed_copies_and_writes_the_same_wheel(tmp_path, libs):
    """Nothing is shared in a call repairing one wheel (cibuildwheel's case):
    no compressed copy is kept (none spilled to a file), and the wheel is
    the one a shared session writes."""
    from wheelvet.audit import AuditOptions
    from wheelvet.repair import RepairOptions, RepairSession, repair_wheel

    [whl] = release(tmp_path, libs)[:1]
    options = AuditOptions(environ=clean_env(LD_LIBRARY_PATH=str(libs), SOURCE_DATE_EPOCH="1700000000"))
    with RepairSession(wheels=1) as session:
        _, out = repair_wheel(str(whl), str(tmp_path / "one"), RepairOptions(), options, session=session)
        assert session.deflated is None
    with RepairSession() as shared:
        _, again = repair_wheel(str(whl), str(tmp_path / "shared"), RepairOptions(), options, session=shared)
        assert shared.deflated is not None and shared.deflated._entries  # (kept for the wheels after it)
    assert Path(out).read_bytes() == Path(again).read_bytes()


def test_a_patcher_of_another_program_does_not_reuse_the_files_of_the_first(tmp_path, libs):
    from wheelvet.audit import AuditOptions
    from wheelvet.repair import RepairOptions, RepairSession, repair_wheel

    wheels = release(tmp_path, libs)[:2]
    options = AuditOptions(environ=clean_env(LD_LIBRARY_PATH=str(libs)))
    first, second = CountingPatcher(), CountingPatcher()
    second.program = "lief-patchelf"  # (its key differs: nothing it would make is taken from the first)
    with RepairSession() as session:
        repair_wheel(str(wheels[0]), str(tmp_path / "a"), RepairOptions(), options, patcher=first, session=session)
        repair_wheel(str(wheels[1]), str(tmp_path / "b"), RepairOptions(), options, patcher=second, session=session)
    assert len([w for w in second.edited if "grafted from" in w]) == 2


def test_a_full_session_keeps_nothing_more_and_writes_the_same_wheels(tmp_path, libs, monkeypatch):
    from wheelvet.audit import AuditOptions
    from wheelvet.repair import RepairOptions, RepairSession, repair_wheel

    wheels = release(tmp_path, libs)[:3]
    options = AuditOptions(environ=clean_env(LD_LIBRARY_PATH=str(libs), SOURCE_DATE_EPOCH="1700000000"))
    alone = []
    for i, whl in enumerate(wheels):
        _, out = repair_wheel(str(whl), str(tmp_path / f"alone-{i}"), RepairOptions(), options)
        alone.append(Path(out).read_bytes())
    monkeypatch.setattr(RepairSession, "MAX_PATCHED_BYTES", 0)  # full from the start
    with RepairSession() as session:
        written = [Path(repair_wheel(str(whl), str(tmp_path / "together"), RepairOptions(), options,
                                     session=session)[1]).read_bytes() for whl in wheels]
        assert session.patched_hits == 0
    assert written == alone


def large_release(tmp_path: Path, libs: Path, pythons=("cp310", "cp311")) -> list[Path]:
    """Wheels whose extension module is large (3 MB, as real ones are), so
    that its deflate stream has many blocks for a repair to keep."""
    wheels = []
    for k, py in enumerate(pythons):
        ext = build_extension(tmp_path / f"big-{py}", "spam", f"-L{libs}", "-l:libA.so.1",
                              body="int a_value(void);", call="a_value()")
        add_section(ext, ".wheelvet_data", library_like(3_000_000, seed=k))
        wheels.append(write_wheel(tmp_path / "dist" / f"pkg-1.0-{py}-{py}-linux_x86_64.whl",
                                  {"pkg/__init__.py": b"", f"pkg/{ext.name}": ext.read_bytes()},
                                  tag=f"{py}-{py}-linux_x86_64"))
    return wheels


def test_a_patched_module_keeps_its_input_deflate_blocks_and_still_works(tmp_path, libs):
    """At the default level the patched module's stream is mostly the input's
    own blocks (-v says how much); with a level given outright it is deflated
    anew.  Both hold the same bytes, and the repaired module runs from the
    wheel's own libraries."""
    [wheel] = large_release(tmp_path, libs, pythons=("cp311",))
    env = clean_env(LD_LIBRARY_PATH=str(libs), SOURCE_DATE_EPOCH="1700000000")
    outs = {}
    for label, extra in (("default", ()), ("z6", ("-z", "6"))):
        p = run("-v", "repair", "-w", str(tmp_path / label), *extra, str(wheel), env=env)
        assert p.returncode == 0, p.stderr
        kept = [line for line in p.stderr.splitlines() if "kept as the input deflated them" in line]
        [outs[label]] = (tmp_path / label).iterdir()
        if label == "default":
            [line] = kept
            reused, size = map(int, re.search(r": (\d+) of its (\d+) bytes", line).groups())
            assert reused > 0.6 * size, line  # (all but its stored blocks and the pages patchelf changed)
        else:
            assert not kept, p.stderr
    member = next(n for n in zipfile.ZipFile(outs["default"]).namelist() if n.startswith("pkg/spam"))
    with zipfile.ZipFile(outs["default"]) as a, zipfile.ZipFile(outs["z6"]) as b:
        assert a.testzip() is None and b.testzip() is None
        assert a.read(member) == b.read(member)
        assert a.getinfo(member).CRC == b.getinfo(member).CRC
    # the module runs, from the extracted wheel, with its grafted libraries only
    root = tmp_path / "installed"
    zipfile.ZipFile(outs["default"]).extractall(root)
    res = subprocess.run([sys.executable, "-c", "import pkg.spam; print(pkg.spam.value())"], capture_output=True,
                         text=True, env=clean_env(), cwd=root)
    assert res.stdout.split() == ["43"], res.stderr


def test_large_modules_in_a_wheelhouse_are_byte_identical_to_each_alone(tmp_path, libs):
    wheels = large_release(tmp_path, libs)
    env = clean_env(LD_LIBRARY_PATH=str(libs), SOURCE_DATE_EPOCH="1700000000")
    alone = {}
    for i, whl in enumerate(wheels):
        out = tmp_path / f"alone-{i}"
        assert run("repair", "-w", str(out), str(whl), env=env).returncode == 0
        [written] = out.iterdir()
        alone[written.name] = written.read_bytes()
    p = run("-v", "repair", "-w", str(tmp_path / "together"), *map(str, wheels), env=env)
    assert p.returncode == 0, p.stderr
    assert len([line for line in p.stderr.splitlines() if "kept as the input deflated them" in line]) == len(wheels)
    for name, data in alone.items():
        assert (tmp_path / "together" / name).read_bytes() == data, name


def test_a_wheelhouse_reports_each_wheel_in_its_turn(tmp_path, libs):
    """Each wheel is read while the one before it is repaired, but what is
    said of it (its -v lines, its error, its result) comes in the wheels' order."""
    good = release(tmp_path, libs)[:3]
    bad = tmp_path / "dist" / "bad-1.0-cp311-cp311-linux_x86_64.whl"
    bad.write_bytes(b"not a zip")
    wheels = [good[0], bad, good[1], good[2]]
    env = clean_env(LD_LIBRARY_PATH=str(libs))
    p = run("-v", "repair", "-w", str(tmp_path / "out"), *map(str, wheels), env=env)
    assert p.returncode == 3, p.stderr
    assert [line.split(" -> ")[0] for line in p.stdout.splitlines()] == [w.name for w in good]
    lines = p.stderr.splitlines()

    def first(text):
        return next(i for i, line in enumerate(lines) if text in line)

    read = [first(f"{w.name}: ") for w in wheels]  # the first line about each wheel: its audit
    assert read == sorted(read), p.stderr
    verified = [first(f"verified {w.name.split('-')[0]}-1.0-{w.name.split('-')[2]}") for w in good]
    assert read[0] < verified[0] < read[1] < read[2] < verified[1] < read[3] < verified[2], p.stderr
    assert "error" in lines[read[1]] or "error" in lines[read[1] + 1]


def test_the_sources_read_ahead_are_the_input_members(tmp_path, libs):
    """read_sources: each patched member's inflated bytes, and their sha256
    (RECORD's, once the wheel was read verified: the same as computed)."""
    import hashlib

    from wheelvet.audit import AuditOptions
    from wheelvet.repair import RepairOptions, prepare_repair, read_sources

    [wheel] = large_release(tmp_path, libs, pythons=("cp311",))
    prepared = prepare_repair(str(wheel), RepairOptions(), AuditOptions(environ=clean_env(LD_LIBRARY_PATH=str(libs))))
    [(member, source)] = prepared.sources.items()
    data = zipfile.ZipFile(wheel).read(member)
    assert bytes(source.blocks.data) == data
    assert source.sha256 == hashlib.sha256(data).digest()
    [again] = read_sources(prepared.plan, verified=False).values()
    assert again.sha256 == source.sha256 and bytes(again.blocks.data) == data
    # what it holds, the bound on reading further wheels ahead: the member inflated and as compressed
    info = zipfile.ZipFile(wheel).getinfo(member)
    assert prepared.held_bytes() == info.file_size + info.compress_size
    # a level given outright, or a dry run, reads none
    at_level = prepare_repair(str(wheel), RepairOptions(), AuditOptions(environ=clean_env(LD_LIBRARY_PATH=str(libs))),
                              level=6)
    assert at_level.sources == {} and at_level.held_bytes() == 0
