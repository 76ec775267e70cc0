"""Output mode bits: 0o755 for programs, 0o644 for everything else, whatever
the input's bits beyond that, the host files' modes or the umask say."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

from support import EXT_SUFFIX, build_extension, cc, clean_env

TAG = "cp311-cp311-linux_x86_64"


def _wheel_with_modes(path: Path, members: dict[str, tuple[bytes, int]], *, create_system: int = 3) -> Path:
    """A wheel whose members carry the given mode bits (a valid RECORD)."""
    import base64
    import hashlib

    def digest(data: bytes) -> str:
        return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()

    info = "pkg-1.0.dist-info"
    members = dict(members)
    members[f"{info}/METADATA"] = (b"Metadata-Version: 2.1\nName: pkg\nVersion: 1.0\n", 0o664)
    members[f"{info}/WHEEL"] = (f"Wheel-Version: 1.0\nGenerator: t\nRoot-Is-Purelib: false\nTag: {TAG}\n".encode(), 0o600)
    record = "".join(f"{n},{digest(d)},{len(d)}\n" for n, (d, _m) in members.items()) + f"{info}/RECORD,,\n"
    members[f"{info}/RECORD"] = (record.encode(), 0o666)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, (data, mode) in members.items():
            zi = zipfile.ZipInfo(name, (2020, 1, 1, 0, 0, 0))
            zi.create_system = create_system
            zi.external_attr = ((stat.S_IFREG | mode) << 16) | (0x20 if create_system == 0 else 0)
            zi.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(zi, data)
    return path


def _modes(wheel: Path) -> dict[str, int]:
    with zipfile.ZipFile(wheel) as zf:
        return {i.filename: (i.external_attr >> 16) for i in zf.infolist()}


def _repair(wheel: Path, out: Path, libs: Path, umask: int) -> Path:
    env = clean_env(LD_LIBRARY_PATH=str(libs), SOURCE_DATE_EPOCH="1700000000")
    code = f"import os, sys; os.umask({umask:#o}); from wheelvet.cli import main; sys.exit(main())"
    p = subprocess.run([sys.executable, "-c", code, "repair", "-w", str(out), str(wheel)], capture_output=True,
                       text=True, env=env, timeout=600)
    assert p.returncode == 0, p.stderr
    (found,) = out.glob("*.whl")
    return found


def test_modes_are_normalised_whatever_the_input_host_and_umask(tmp_path, libs):
    ext = build_extension(tmp_path / "build", "spam", f"-L{libs}", "-l:libA.so.1", body="int a_value(void);",
                          call="a_value()")
    prog = cc(tmp_path / "build" / "prog", {"p.c": "int main(void){return 0;}"}, shared=False)
    members = {
        f"pkg/spam{EXT_SUFFIX}": (ext.read_bytes(), 0o700),  # the input's x bit: stays a program
        "pkg/__init__.py": (b"", 0o6666),  # setuid, setgid, world-writable: none survives
        "pkg/data.txt": (b"data\n", 0o600),
        "pkg/tool.sh": (b"#!/bin/sh\necho hi\n", 0o750),
        "pkg/bin/prog": (prog.read_bytes(), 0o600),  # an ELF executable, not marked: 0o755 from its content
        "pkg-1.0.data/scripts/run": (b"#!python\nprint(1)\n", 0o644),  # installed as a script
    }
    whl = _wheel_with_modes(tmp_path / f"pkg-1.0-{TAG}.whl", members)
    # The host's libraries: one host says 0o600, another 0o755 (RHEL's way).
    for lib in libs.iterdir():
        lib.chmod(0o600)
    a = _repair(whl, tmp_path / "a", libs, 0o077)
    for lib in libs.iterdir():
        lib.chmod(0o755)
    b = _repair(whl, tmp_path / "b", libs, 0o002)
    assert a.read_bytes() == b.read_bytes()

    modes = _modes(a)
    assert set(modes.values()) <= {stat.S_IFREG | 0o644, stat.S_IFREG | 0o755}, {n: oct(m) for n, m in modes.items()}
    executable = sorted(n for n, m in modes.items() if m & 0o111)
    assert executable == sorted(["pkg-1.0.data/scripts/run", "pkg/bin/prog", "pkg/tool.sh", f"pkg/spam{EXT_SUFFIX}"])
    grafted = [n for n in modes if n.startswith("pkg.libs/")]
    assert len(grafted) == 2 and all(modes[n] == stat.S_IFREG | 0o644 for n in grafted)
    with zipfile.ZipFile(a) as zf:
        assert {i.create_system for i in zf.infolist()} == {3}
        assert all(i.external_attr & 0xFFFF == 0 for i in zf.infolist())

    # Repairing the repaired wheel keeps every mode (and every byte).
    c = _repair(a, tmp_path / "c", libs, 0o022)
    assert c.read_bytes() == a.read_bytes()


def test_a_wheel_from_a_zip_without_unix_modes(tmp_path, libs):
    """A zip written on Windows (no UNIX modes): programs by content, the rest 0o644."""
    ext = build_extension(tmp_path / "build", "spam", f"-L{libs}", "-l:libA.so.1", body="int a_value(void);",
                          call="a_value()")
    whl = _wheel_with_modes(tmp_path / f"pkg-1.0-{TAG}.whl",
                            {f"pkg/spam{EXT_SUFFIX}": (ext.read_bytes(), 0), "pkg/__init__.py": (b"", 0)},
                            create_system=0)
    modes = _modes(_repair(whl, tmp_path / "out", libs, 0o022))
    assert set(modes.values()) == {stat.S_IFREG | 0o644}  # a shared library is not a program
    assert os.path.exists(tmp_path / "out")
