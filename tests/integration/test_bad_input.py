"""Hostile and broken wheels: one clear line, exit 3, no traceback, no output
file, the input untouched -- for show, check and repair alike."""

from __future__ import annotations

import hashlib
import os
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from support import clean_env, craft_elf, write_wheel
from wheelvet.escape import printable

ELF = craft_elf("x86_64", needed=("libc.so.6",), exports=("PyInit_m",), imports=(("memcpy", "GLIBC_2.14", "libc.so.6"),))
TAG = "cp311-cp311-linux_x86_64"


def good(tmp_path: Path, name: str = "pkg-1.0", extra: dict | None = None) -> Path:
    return write_wheel(tmp_path / f"{name}-{TAG}.whl", {"pkg/m.cpython-311-x86_64-linux-gnu.so": ELF, **(extra or {})})


def raw_zip(path: Path, entries: list[tuple[zipfile.ZipInfo | str, bytes]], *, with_dist_info: bool = True) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for info, data in entries:
            zf.writestr(info, data)
        if with_dist_info:
            zf.writestr("pkg-1.0.dist-info/WHEEL", f"Wheel-Version: 1.0\nRoot-Is-Purelib: false\nTag: {TAG}\n")
            zf.writestr("pkg-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: pkg\nVersion: 1.0\n")
    return path


def rewrite_record(path: Path) -> None:
    """Give an archive a RECORD that matches what it holds."""
    import base64

    with zipfile.ZipFile(path) as zf:
        rows = []
        for i in zf.infolist():
            data = zf.read(i)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            rows.append(f"{i.filename},sha256={digest},{len(data)}")
    with zipfile.ZipFile(path, "a") as zf:
        zf.writestr("pkg-1.0.dist-info/RECORD", "\n".join(rows + ["pkg-1.0.dist-info/RECORD,,"]) + "\n")


def run_all(wheel: Path, tmp_path: Path, needle: str, timeout: float = 300) -> None:
    """Every command refuses the wheel the same way and writes nothing."""
    before = hashlib.sha256(wheel.read_bytes()).hexdigest() if wheel.is_file() else None
    out = tmp_path / "wheelhouse"
    for args in (["show"], ["show", "--json"], ["check"], ["repair", "-w", str(out)]):
        p = subprocess.run([sys.executable, "-m", "wheelvet", *args, str(wheel)], capture_output=True, text=True,
                           env=clean_env(), timeout=timeout)
        assert p.returncode == 3, (args, p.stdout, p.stderr)
        assert "Traceback" not in p.stderr
        lines = p.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("wheelvet: error: "), p.stderr
        assert printable(wheel.name) in lines[0] and needle in lines[0], lines[0]
    assert not out.exists() or not any(out.iterdir())
    if before is not None:
        assert hashlib.sha256(wheel.read_bytes()).hexdigest() == before


def test_truncated_zip(tmp_path):
    w = good(tmp_path)
    w.write_bytes(w.read_bytes()[: w.stat().st_size // 2])
    run_all(w, tmp_path, "not a zip archive")


def test_duplicate_entry_names(tmp_path):
    w = tmp_path / f"pkg-1.0-{TAG}.whl"
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        raw_zip(w, [("pkg/a.py", b"1"), ("pkg/a.py", b"2")])
    run_all(w, tmp_path, "pkg/a.py: appears twice in the archive")


@pytest.mark.parametrize("name,problem", [
    ("/etc/evil.py", "absolute path"),
    ("pkg/../../evil.py", "path leaves the wheel"),
    ("pkg\\\\evil.py", "backslash in the path"),
])
def test_dangerous_paths(tmp_path, name, problem):
    w = raw_zip(tmp_path / f"pkg-1.0-{TAG}.whl", [(zipfile.ZipInfo(name), b"x")])
    run_all(w, tmp_path, problem)


def test_symlink_entry(tmp_path):
    info = zipfile.ZipInfo("pkg/link")
    info.external_attr = (0o120777 << 16)
    w = raw_zip(tmp_path / f"pkg-1.0-{TAG}.whl", [(info, b"/etc/passwd")])
    run_all(w, tmp_path, "pkg/link: symbolic link")


def _central_entries(data: bytearray):
    """(offset, name) of each central directory entry."""
    eocd = data.rfind(b"PK\x05\x06")
    pos = struct.unpack_from("<I", data, eocd + 16)[0]
    while data[pos:pos + 4] == b"PK\x01\x02":
        name_len, extra_len, comment_len = struct.unpack_from("<HHH", data, pos + 28)
        yield pos, bytes(data[pos + 46:pos + 46 + name_len]).decode()
        pos += 46 + name_len + extra_len + comment_len


def test_encrypted_entry(tmp_path):
    w = good(tmp_path, extra={"pkg/secret.py": b"x = 1"})
    data = bytearray(w.read_bytes())
    for pos, name in _central_entries(data):
        if name == "pkg/secret.py":
            struct.pack_into("<H", data, pos + 8, struct.unpack_from("<H", data, pos + 8)[0] | 0x1)  # flags
            local = struct.unpack_from("<I", data, pos + 42)[0]
            struct.pack_into("<H", data, local + 6, struct.unpack_from("<H", data, local + 6)[0] | 0x1)
    w.write_bytes(bytes(data))
    run_all(w, tmp_path, "pkg/secret.py: encrypted member")


def test_unsupported_compression(tmp_path):
    info = zipfile.ZipInfo("pkg/data.bin")
    info.compress_type = zipfile.ZIP_BZIP2
    w = raw_zip(tmp_path / f"pkg-1.0-{TAG}.whl", [(info, b"x" * 1000)])
    run_all(w, tmp_path, "compression method 12")


def test_decompression_bomb_declared_size(tmp_path):
    """A member whose central directory declares ~4 GiB from a few bytes."""
    w = good(tmp_path)
    data = bytearray(w.read_bytes())
    with zipfile.ZipFile(w) as zf:
        info = zf.getinfo("pkg/m.cpython-311-x86_64-linux-gnu.so")
    for pos, name in _central_entries(data):
        if name == info.filename:
            struct.pack_into("<I", data, pos + 24, 0xFFFFFFF0)  # uncompressed size
    w.write_bytes(bytes(data))
    run_all(w, tmp_path, "decompression bomb")


def test_too_many_entries_is_refused_but_tens_of_thousands_are_fine(tmp_path, monkeypatch):
    from wheelvet import wheelfile
    from wheelvet.errors import InvalidWheel

    many = {f"pkg/data/f{i:05d}.txt": b"" for i in range(30_000)}
    w = good(tmp_path, extra=many)
    p = subprocess.run([sys.executable, "-m", "wheelvet", "show", "--json", str(w)], capture_output=True, text=True, env=clean_env())
    assert p.returncode == 0, p.stderr
    monkeypatch.setattr(wheelfile, "MAX_ENTRIES", 10_000)
    with pytest.raises(InvalidWheel, match=r"30004 entries, more than the 10000 allowed"):
        wheelfile.read_wheel(str(w))


def test_missing_or_malformed_metadata(tmp_path):
    w = raw_zip(tmp_path / f"pkg-1.0-{TAG}.whl", [("pkg/__init__.py", b"")], with_dist_info=False)
    run_all(w, tmp_path, "no .dist-info directory")
    w = tmp_path / f"pkg-1.0-{TAG}.whl"
    with zipfile.ZipFile(w, "w") as zf:
        zf.writestr("pkg-1.0.dist-info/WHEEL", f"Wheel-Version: 1.0\nRoot-Is-Purelib: false\nTag: {TAG}\n")
    run_all(w, tmp_path, "missing METADATA file")
    with zipfile.ZipFile(w, "w") as zf:
        zf.writestr("pkg-1.0.dist-info/WHEEL", "Wheel-Version: 9.0\nRoot-Is-Purelib: false\n")
    run_all(w, tmp_path, "unsupported Wheel-Version")
    with zipfile.ZipFile(w, "w") as zf:
        zf.writestr("pkg-1.0.dist-info/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: maybe\n")
    run_all(w, tmp_path, "Root-Is-Purelib must be true or false")
    with zipfile.ZipFile(w, "w") as zf:
        zf.writestr("pkg-1.0.dist-info/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: false\n")
        zf.writestr("pkg-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: other\nVersion: 1.0\n")
    run_all(w, tmp_path, "METADATA names 'other'")


def test_record_problems(tmp_path):
    w = raw_zip(tmp_path / f"pkg-1.0-{TAG}.whl", [("pkg/m.cpython-311-x86_64-linux-gnu.so", ELF)])
    run_all(w, tmp_path, "missing RECORD file")
    rewrite_record(w)
    # a file the RECORD does not list
    with zipfile.ZipFile(w, "a") as zf:
        zf.writestr("pkg/extra.py", "x = 1\n")
    run_all(w, tmp_path, "RECORD does not list pkg/extra.py")
    # a size that does not match
    w2 = good(tmp_path, name="pkg2-1.0")
    with zipfile.ZipFile(w2) as zf:
        items = [(i, zf.read(i)) for i in zf.infolist()]
    with zipfile.ZipFile(w2, "w") as zf:
        for info, data in items:
            if info.filename.endswith("RECORD"):
                data = data.replace(f",{len(ELF)}\n".encode(), f",{len(ELF) + 1}\n".encode())
            zf.writestr(info, data)
    run_all(w2, tmp_path, f"RECORD says pkg/m.cpython-311-x86_64-linux-gnu.so has {len(ELF) + 1} bytes")


def test_library_name_that_is_not_elf(tmp_path):
    w = good(tmp_path, extra={"pkg/libfake.so.1": b"GROUP ( /lib/libc.so.6 )\n" * 4})
    run_all(w, tmp_path, "pkg/libfake.so.1: named like a shared library but is not an ELF file")


def test_tags_that_disagree_with_the_contents(tmp_path):
    arm = craft_elf("aarch64", needed=("libc.so.6",), exports=("PyInit_m",))
    w = write_wheel(tmp_path / "pkg-1.0-cp311-cp311-manylinux_2_17_x86_64.whl", {"pkg/m.so": arm},
                    tag="cp311-cp311-manylinux_2_17_x86_64")
    run_all(w, tmp_path, "pkg/m.so: ELF file built for aarch64, but its tags say x86_64")
    musl = craft_elf("x86_64", needed=("libc.musl-x86_64.so.1",), exports=("PyInit_m",))
    w = write_wheel(tmp_path / "q-1.0-cp311-cp311-manylinux_2_17_x86_64.whl", {"q/m.so": musl},
                    tag="cp311-cp311-manylinux_2_17_x86_64")
    run_all(w, tmp_path, "q/m.so: ELF file built for musl, but its tags say glibc")


def test_elf_with_offsets_past_the_end(tmp_path):
    bad = bytearray(ELF)
    struct.pack_into("<Q", bad, 32, len(bad) + 4096)  # e_phoff beyond the file
    w = write_wheel(tmp_path / f"bad-1.0-{TAG}.whl", {"bad/m.so": bytes(bad)})
    run_all(w, tmp_path, "bad/m.so")


def _record_row(name: str, data: bytes, algo: str = "sha256", size: int | None = None) -> str:
    import base64

    digest = base64.urlsafe_b64encode(hashlib.new(algo, data).digest()).rstrip(b"=").decode()
    return f"{name},{algo}={digest},{len(data) if size is None else size}"


def wheel_with_record(path: Path, files: dict[str, bytes], rows: list[str]) -> Path:
    """A wheel holding ``files`` with exactly the RECORD ``rows`` given (plus
    correct rows for WHEEL, METADATA and RECORD itself)."""
    raw_zip(path, list(files.items()))
    with zipfile.ZipFile(path) as zf:
        meta = [_record_row(i.filename, zf.read(i)) for i in zf.infolist() if ".dist-info/" in i.filename]
    with zipfile.ZipFile(path, "a") as zf:
        zf.writestr("pkg-1.0.dist-info/RECORD", "\n".join(rows + meta + ["pkg-1.0.dist-info/RECORD,,"]) + "\n")
    return path


def _patch_sizes(path: Path, member: str, *, crc: int | None = None, size: int | None = None) -> None:
    """Overwrite a member's CRC-32 or uncompressed size in both its headers."""
    data = bytearray(path.read_bytes())
    for pos, name in list(_central_entries(data)):
        if name == member:
            local = struct.unpack_from("<I", data, pos + 42)[0]
            if crc is not None:
                struct.pack_into("<I", data, pos + 16, crc)
                struct.pack_into("<I", data, local + 14, crc)
            if size is not None:
                struct.pack_into("<I", data, pos + 24, size)
                struct.pack_into("<I", data, local + 22, size)
    path.write_bytes(bytes(data))


SO = "pkg/m.cpython-311-x86_64-linux-gnu.so"


@pytest.mark.parametrize("member", [SO, "pkg/__init__.py"])
def test_record_hash_that_does_not_match(tmp_path, member):
    """Same size, other content: every command refuses it, naming the member
    (the ELF one is parsed and hashed from the same stream)."""
    files = {SO: ELF, "pkg/__init__.py": b"x = 1\n"}
    tampered = {**files, member: files[member][:-1] + bytes([files[member][-1] ^ 0x55])}
    w = wheel_with_record(tmp_path / f"pkg-1.0-{TAG}.whl", tampered, [_record_row(n, d) for n, d in files.items()])
    run_all(w, tmp_path, f"{member}: content does not match its RECORD hash")


def test_record_hashes_that_are_too_weak_or_contradictory(tmp_path):
    w = wheel_with_record(tmp_path / f"pkg-1.0-{TAG}.whl", {SO: ELF}, [_record_row(SO, ELF, "md5")])
    run_all(w, tmp_path, f"RECORD hashes {SO} with 'md5' (sha256 or stronger required)")
    w = wheel_with_record(tmp_path / f"pkg-1.0-{TAG}.whl", {SO: ELF}, [_record_row(SO, ELF), _record_row(SO, ELF + b"x", size=len(ELF))])
    run_all(w, tmp_path, f"RECORD lists {SO} twice, differently")
    # The same row twice is harmless, and a stronger hash is fine.
    w = wheel_with_record(tmp_path / f"pkg-1.0-{TAG}.whl", {SO: ELF}, [_record_row(SO, ELF, "sha512")] * 2)
    p = subprocess.run([sys.executable, "-m", "wheelvet", "show", str(w)], capture_output=True, text=True, env=clean_env())
    assert p.returncode == 0, p.stderr


def test_crc_that_does_not_match(tmp_path):
    """RECORD is right but the archive's CRC-32 is not: pip would refuse to
    install it, so every command refuses it too."""
    w = good(tmp_path)
    with zipfile.ZipFile(w) as zf:
        crc = zf.getinfo(SO).CRC
    _patch_sizes(w, SO, crc=crc ^ 0x1)
    run_all(w, tmp_path, f"{SO}: CRC-32 {crc:08x} does not match the {crc ^ 1:08x} recorded in the archive")


def test_member_that_inflates_past_its_declared_size(tmp_path):
    """A deflate stream hiding more than its headers declare (the bomb that
    lies about its size) is stopped at the declared size."""
    body = b"# padding\n" * 100_000  # 1 MB from ~3 KB
    w = wheel_with_record(tmp_path / f"pkg-1.0-{TAG}.whl", {SO: ELF, "pkg/big.py": body},
                          [_record_row(SO, ELF), _record_row("pkg/big.py", body[:100], size=100)])
    _patch_sizes(w, "pkg/big.py", size=100)
    run_all(w, tmp_path, "pkg/big.py: inflates to more than the 100 bytes declared")


def test_member_shorter_than_declared(tmp_path):
    body = b"x = 1\n" * 1000
    w = wheel_with_record(tmp_path / f"pkg-1.0-{TAG}.whl", {SO: ELF, "pkg/short.py": body},
                          [_record_row(SO, ELF), _record_row("pkg/short.py", body, size=len(body) * 2)])
    _patch_sizes(w, "pkg/short.py", size=len(body) * 2)
    run_all(w, tmp_path, f"pkg/short.py: holds {len(body)} bytes, not the {len(body) * 2} declared")


def test_local_header_naming_another_file(tmp_path):
    """The two directories of a zip disagree on a name: tools that read one or
    the other would see different wheels."""
    w = good(tmp_path)
    data = bytearray(w.read_bytes())
    local = data.find(SO.encode())  # the first occurrence is in the local header
    data[local + 4:local + 5] = b"X"
    w.write_bytes(bytes(data))
    run_all(w, tmp_path, f"{SO}: local header names another file than the central directory")


# Found by fuzzing (tests/unit/test_fuzz_wheel.py); each became a test.

def test_member_with_an_empty_name(tmp_path):
    w = raw_zip(tmp_path / f"pkg-1.0-{TAG}.whl", [(zipfile.ZipInfo(""), b"nameless")])
    run_all(w, tmp_path, "a member with an empty name")


def test_local_header_that_does_not_match(tmp_path):
    w = good(tmp_path)
    data = bytearray(w.read_bytes())
    meta = data.find(b"pkg-1.0.dist-info/METADATA")  # its local header's name
    data[meta - 30:meta - 26] = b"XXXX"  # the local header signature
    w.write_bytes(bytes(data))
    # (once "corrupt archive" from the zip layer; the layout check now finds it first)
    run_all(w, tmp_path, "pkg-1.0.dist-info/METADATA: bad local header signature")


# Hostile strings: names inside an ELF file may hold anything but NUL.

HOSTILE = {
    "workflow command": "libx.so\n::error::injected",
    "escape sequence": "liby.so\x1b[2J\x1b]0;owned\x07",
    "bidi override": "libz\u202eos.so",
    "not UTF-8": "libw\udcff.so",
}


def _assert_safe(text: str) -> None:
    assert "\x1b" not in text and "\u202e" not in text and "\udcff" not in text and "\x07" not in text
    assert not any(line.startswith("::") for line in text.splitlines()), text


def test_hostile_names_in_elf_files_are_printed_escaped(tmp_path):
    """DT_NEEDED, RPATH and symbol names that would inject a GitHub workflow
    command, drive the terminal or reorder text reach stdout and stderr only
    escaped; JSON keeps them exactly (escaped by the encoder)."""
    import json

    elf = craft_elf("x86_64", needed=("libc.so.6", *HOSTILE.values()), rpath="/opt\n::warning::r",
                    exports=("PyInit_m",), imports=(("memcpy", "GLIBC_2.14", "libc.so.6"), ("evil\n::notice::s\x1b", None, None)))
    w = write_wheel(tmp_path / f"pkg-1.0-{TAG}.whl", {SO: elf})
    runs = {}
    for args in (["show"], ["check"], ["repair", "--dry-run", "-w", str(tmp_path / "out")], ["show", "--json"]):
        p = subprocess.run([sys.executable, "-m", "wheelvet", *args, str(w)], capture_output=True, text=True,
                           errors="surrogateescape", env=clean_env(), timeout=300)
        assert "Traceback" not in p.stderr and p.stderr.count("\n") <= 1, p.stderr
        _assert_safe(p.stdout + p.stderr)
        runs[args[0] if args != ["show", "--json"] else "json"] = p
    show = runs["show"].stdout
    assert "libx.so\\n::error::injected" in show and "liby.so\\x1b[2J\\x1b]0;owned\\x07" in show
    assert "libz\\u202eos.so" in show and "libw\\xff.so" in show
    assert runs["check"].returncode == 0
    assert runs["repair"].returncode == 1 and "libx.so\\n::error::injected" in runs["repair"].stderr
    doc = json.loads(runs["json"].stdout)
    assert set(HOSTILE.values()) <= set(doc["external_libs"])


@pytest.mark.parametrize("name", ["pkg/evil\n::error::x.py", "pkg/\x1b[2J.py", "pkg/a\rb.py"])
def test_member_names_with_control_characters(tmp_path, name):
    w = raw_zip(tmp_path / f"pkg-1.0-{TAG}.whl", [(zipfile.ZipInfo(name), b"x")])
    run_all(w, tmp_path, "control character in the path")


def test_metadata_files_too_large_or_not_utf8(tmp_path, monkeypatch):
    """WHEEL, METADATA and RECORD are read whole, so each has a size limit."""
    big = f"Wheel-Version: 1.0\nRoot-Is-Purelib: false\nTag: {TAG}\nX-Padding: {'x' * (1 << 20)}\n"
    w = tmp_path / f"pkg-1.0-{TAG}.whl"
    with zipfile.ZipFile(w, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("pkg-1.0.dist-info/WHEEL", big)
    run_all(w, tmp_path, f"pkg-1.0.dist-info/WHEEL: WHEEL file of {len(big)} bytes, more than the 1048576 allowed")
    from wheelvet import wheelfile
    from wheelvet.errors import InvalidWheel

    ok = good(tmp_path, name="ok-1.0")
    monkeypatch.setitem(wheelfile.MAX_TEXT_SIZE, "RECORD", 64)
    with pytest.raises(InvalidWheel, match=r"ok-1\.0\.dist-info/RECORD: RECORD file of \d+ bytes, more than the 64 allowed"):
        wheelfile.read_wheel(str(ok))
    monkeypatch.setitem(wheelfile.MAX_TEXT_SIZE, "METADATA", 8)
    with pytest.raises(InvalidWheel, match=r"METADATA file of \d+ bytes, more than the 8 allowed"):
        wheelfile.read_wheel(str(ok))
    for kind in ("WHEEL", "METADATA", "RECORD"):
        w = good(tmp_path)
        with zipfile.ZipFile(w) as zf:
            items = [(i, zf.read(i)) for i in zf.infolist()]
        with zipfile.ZipFile(w, "w") as zf:
            for info, data in items:
                zf.writestr(info, data + b"\xff\xfe" if info.filename.endswith(f".dist-info/{kind}") else data)
        run_all(w, tmp_path, f"pkg-1.0.dist-info/{kind}: {kind} file is not UTF-8")


@pytest.mark.parametrize("name", ["pkg-1.0-cp311-cp311-linux_x86_64\n::error::x.whl", "pkg-1.0-cp311-cp311-linux\x1b[2J.whl",
                                  "pkg-1.0-cp311-cp311-linux_x86_64\u202e.whl"])
def test_wheel_file_names_with_characters_no_tag_holds(tmp_path, name):
    """packaging accepts these tags; a wheel named so would carry them into
    repaired file names, step outputs and logs."""
    w = good(tmp_path)
    target = tmp_path / name
    w.rename(target)
    run_all(target, tmp_path, "not a valid wheel file name")


def test_overlapping_members(tmp_path):
    """Two directory entries whose data overlap: the overlapping-file zip bomb
    (each entry would inflate the shared bytes again) is refused up front."""
    w = good(tmp_path, extra={"pkg/a.py": b"a = 1\n" * 1000, "pkg/b.py": b"b = 2\n" * 1000})
    data = bytearray(w.read_bytes())
    offsets = {name: struct.unpack_from("<I", data, pos + 42)[0] for pos, name in _central_entries(data)}
    for pos, name in list(_central_entries(data)):
        if name == "pkg/b.py":
            struct.pack_into("<I", data, pos + 42, offsets["pkg/a.py"] + 40)  # b's header inside a's data
    w.write_bytes(bytes(data))
    run_all(w, tmp_path, "pkg/b.py: overlaps the data of pkg/a.py (an overlapping-member zip bomb)")


# Inputs that are not regular files (links followed): a fifo would hang the
# reader in open(), a device would never end.  Each is refused by what the
# opened descriptor is, not by a check before opening.

def _socket(path: Path) -> None:
    import socket

    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(path))  # stays bound while the test runs (the fixture's tmp_path)
    _SOCKETS.append(sock)


_SOCKETS: list = []


def _chain(target, hops: int):
    def make(path: Path) -> None:
        previous = path.with_name(path.name + ".target")
        target(previous)
        for i in range(hops - 1):
            link = path.with_name(f"{path.name}.hop{i}")
            link.symlink_to(previous)
            previous = link
        path.symlink_to(previous)
    return make


NOT_REGULAR = {
    "fifo": (os.mkfifo, "not a regular file (a fifo)"),
    "link to /dev/zero": (lambda p: p.symlink_to("/dev/zero"), "not a regular file (a character device)"),
    "link to /dev/null": (lambda p: p.symlink_to("/dev/null"), "not a regular file (a character device)"),
    "link to /dev/urandom": (lambda p: p.symlink_to("/dev/urandom"), "not a regular file (a character device)"),
    "directory": (lambda p: p.mkdir(), "is a directory"),
    "link to a directory": (lambda p: p.symlink_to("/tmp"), "is a directory"),
    "socket": (_socket, "not a regular file (a socket)"),
    "links to a fifo": (_chain(os.mkfifo, 3), "not a regular file (a fifo)"),
    "links to /dev/zero": (_chain(lambda p: p.symlink_to("/dev/zero"), 5), "not a regular file (a character device)"),
    "dangling link": (lambda p: p.symlink_to(p.with_name("nowhere.whl")), "no such file"),
    "link loop": (lambda p: p.symlink_to(p), "cannot be opened (Too many levels of symbolic links)"),
}


@pytest.mark.parametrize("kind", sorted(NOT_REGULAR))
def test_inputs_that_are_not_regular_files(tmp_path, kind):
    make, needle = NOT_REGULAR[kind]
    w = tmp_path / f"pkg-1.0-{TAG}.whl"
    make(w)
    run_all(w, tmp_path, f"pkg-1.0-{TAG}.whl: {needle}", timeout=60)


def test_a_link_to_a_good_wheel_is_read(tmp_path):
    target = good(tmp_path / "real")
    w = tmp_path / target.name
    w.symlink_to(target)
    p = subprocess.run([sys.executable, "-m", "wheelvet", "show", str(w)], capture_output=True, text=True, env=clean_env())
    assert p.returncode == 0 and target.name in p.stdout, p.stderr


# Metadata that contradicts itself: the names in the archive disagree about
# which project (or version) this is.  Refused up front by every command.

def zip_with_record(path: Path, files: dict[str, bytes], record: str) -> Path:
    """An archive of ``files`` plus a RECORD at ``record`` that lists them all
    rightly: whatever is wrong with it is not its RECORD."""
    rows = [_record_row(n, d) for n, d in files.items()] + [f"{record},,"]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
        zf.writestr(record, "\n".join(rows) + "\n")
    return path


def dist_info(name: str = "pkg", version: str = "1.0", *, dirname: str | None = None) -> dict[str, bytes]:
    d = dirname or f"{name}-{version}.dist-info"
    return {f"{d}/WHEEL": f"Wheel-Version: 1.0\nRoot-Is-Purelib: false\nTag: {TAG}\n".encode(),
            f"{d}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode()}


CONTRADICTIONS = {
    # case: (file name's project-version, files, RECORD's place, what the line says)
    "second dist-info of another project": (
        "pkg-1.0", {**dist_info(), **dist_info("zzz", "2.0")}, "pkg-1.0.dist-info/RECORD",
        "2 .dist-info directories (pkg-1.0.dist-info, zzz-2.0.dist-info): a wheel has exactly one"),
    "second dist-info of another version": (
        "pkg-1.0", {**dist_info(), **dist_info("pkg", "0.9")}, "pkg-1.0.dist-info/RECORD",
        "2 .dist-info directories (pkg-0.9.dist-info, pkg-1.0.dist-info)"),
    "second dist-info, differently cased": (
        "pkg-1.0", {**dist_info(), **dist_info("PKG", "1.0")}, "pkg-1.0.dist-info/RECORD",
        "2 .dist-info directories (PKG-1.0.dist-info, pkg-1.0.dist-info)"),
    "many dist-infos": (
        "pkg-1.0", {k: v for i in range(6) for k, v in dist_info(f"p{i}", "1.0").items()} | dist_info(),
        "pkg-1.0.dist-info/RECORD", "7 .dist-info directories (p0-1.0.dist-info, p1-1.0.dist-info, p2-1.0.dist-info, ...)"),
    "dist-info of another project": (
        "pkg-1.0", dist_info("other", "1.0"), "other-1.0.dist-info/RECORD",
        "other-1.0.dist-info: is for the project 'other', the file name for 'pkg'"),
    "dist-info of another version": (
        "pkg-1.0", dist_info("pkg", "2.0"), "pkg-2.0.dist-info/RECORD",
        "pkg-2.0.dist-info: is for version '2.0', the file name for '1.0'"),
    "dist-info without a version": (
        "pkg-1.0", dist_info(dirname="pkg.dist-info"), "pkg.dist-info/RECORD",
        "pkg.dist-info: not named <project>-<version>.dist-info"),
    "METADATA of another project": (
        "pkg-1.0", {**dist_info(), "pkg-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: other\nVersion: 1.0\n"},
        "pkg-1.0.dist-info/RECORD", "pkg-1.0.dist-info/METADATA: METADATA names 'other', the file name 'pkg'"),
    "METADATA of another version": (
        "pkg-1.0", {**dist_info(), "pkg-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: pkg\nVersion: 1.1\n"},
        "pkg-1.0.dist-info/RECORD", "pkg-1.0.dist-info/METADATA: METADATA says version '1.1', the file name '1.0'"),
    ".data of another project": (
        "pkg-1.0", {**dist_info(), "zzz-1.0.data/scripts/run": b"#!/bin/sh\n"}, "pkg-1.0.dist-info/RECORD",
        "zzz-1.0.data: a .data directory not named like pkg-1.0.dist-info"),
    "a second .data": (
        "pkg-1.0", {**dist_info(), "pkg-1.0.data/scripts/a": b"a", "pkg-2.0.data/scripts/b": b"b"},
        "pkg-1.0.dist-info/RECORD", "pkg-2.0.data: a .data directory not named like pkg-1.0.dist-info"),
}


@pytest.mark.parametrize("case", sorted(CONTRADICTIONS))
def test_metadata_that_contradicts_itself(tmp_path, case):
    stem, files, record, needle = CONTRADICTIONS[case]
    w = zip_with_record(tmp_path / f"{stem}-{TAG}.whl", {SO: ELF, **files}, record)
    run_all(w, tmp_path, needle)


@pytest.mark.parametrize("stem,files", [
    ("pkg_name-1.0", dist_info("Pkg.Name", "1.0", dirname="Pkg.Name-1.0.dist-info")),  # names compare normalised
    ("pkg-1.0", dist_info("pkg", "1.0.0", dirname="pkg-1.0.0.dist-info")),  # PEP 440: 1.0 == 1.0.0
    ("pkg-1.0", {**dist_info(), "pkg-1.0.data/scripts/run": b"#!/bin/sh\n", "pkg/sub.data/x": b"x"}),
])
def test_metadata_that_agrees_after_normalisation_is_accepted(tmp_path, stem, files):
    info = next(n for n in files if n.endswith("/WHEEL")).split("/")[0]
    w = zip_with_record(tmp_path / f"{stem}-{TAG}.whl", {SO: ELF, **files}, f"{info}/RECORD")
    p = subprocess.run([sys.executable, "-m", "wheelvet", "show", str(w)], capture_output=True, text=True, env=clean_env())
    assert p.returncode == 0, p.stderr


# Zip confusion: a reader of the central directory (pip) and a reader of the
# local entries from the start of the file (a streaming unzip) must see the
# same wheel.  Every way of making them differ is refused; the sound
# variations the format allows (data descriptors, zip64 fields, a comment)
# are read.

from zipcraft import Entry, build, local_entry, wheel_entries  # noqa: E402

HIDDEN_ELF = craft_elf("x86_64", needed=("libc.so.6",), exports=("PyInit_evil",))


def _confused(tmp_path: Path, make) -> Path:
    entries = wheel_entries({SO: ELF, "pkg/__init__.py": b"from . import m\n"})
    w = tmp_path / f"pkg-1.0-{TAG}.whl"
    w.write_bytes(make(entries))
    return w


def _hidden(name: str = "pkg/evil.cpython-311-x86_64-linux-gnu.so") -> bytes:
    return local_entry(Entry(name, HIDDEN_ELF))[0]


def _other_wheel() -> bytes:
    return build(wheel_entries({SO: HIDDEN_ELF, "pkg/__init__.py": b"import os\n"}))


def _with(entries, i, **changes):
    out = list(entries)
    e = out[i]
    out[i] = Entry(**{**e.__dict__, **changes})
    return out


CONFUSIONS = {
    "an extension hidden between two members": (
        lambda e: build(e, hidden={1: _hidden()}), f"pkg/__init__.py: {len(_hidden())} bytes between {SO} and this member"),
    "an extension hidden after the last member": (
        lambda e: build(e, hidden={len(e): _hidden()}), f"{len(_hidden())} bytes between the last member and the central directory"),
    "one byte between two members": (
        lambda e: build(e, hidden={2: b"\0"}), "1 bytes between pkg/__init__.py and this member"),
    "a second wheel before the first (offsets from after it)": (
        lambda e: build(e, prefix=_other_wheel()), f"{len(_other_wheel())} bytes before the archive's first member"),
    "a second wheel before the first (offsets counting it)": (
        lambda e: build(e, prefix=_other_wheel(), prefix_counted=True), f"{len(_other_wheel())} bytes before the archive's first member"),
    "a shell script before the first member": (
        lambda e: build(e, prefix=b"#!/bin/sh\nexit 0\n", prefix_counted=True), "17 bytes before the archive's first member"),
    "bytes after the end record": (
        lambda e: build(e, after=b"PK\x03\x04 more"), "9 bytes after the end of the archive"),
    "a whole wheel after the end record": (
        lambda e: build(e, after=_other_wheel()[:-22] + b"x" * 22), f"{len(_other_wheel())} bytes after the end of the archive"),
    "local entries in another order than the directory": (
        lambda e: build(e, central_order=[1, 0] + list(range(2, len(e)))), f"{SO}: comes before pkg/__init__.py in the archive"),
    "an end record counting fewer entries": (
        lambda e: build(e, count=len(e) - 1), "the end record counts 4 entries, the central directory holds 5"),
    "a local header with another compression method": (
        lambda e: build(_with(e, 1, method=0, local={"method": 8})), "pkg/__init__.py: local header says compression method 8, the central directory 0"),
    "a local header with other sizes": (
        lambda e: build(_with(e, 1, local={"usize": 99})), "pkg/__init__.py: local header's CRC or sizes differ from the central directory's"),
    "a local header with another CRC": (
        lambda e: build(_with(e, 0, local={"crc": 1})), f"{SO}: local header's CRC or sizes differ"),
    "a local header with another UTF-8 flag": (
        lambda e: build(_with(e, 1, local={"flags": 0})), "pkg/__init__.py: local header flags differ from the central directory's"),
    "a local header that says a data descriptor follows": (
        lambda e: build(_with(e, 1, local={"flags": 0x808})), "pkg/__init__.py: local header flags differ"),
    "a data descriptor with another size": (
        lambda e: build(_with(e, 1, descriptor=True, descriptor_values={"usize": 5})), "pkg/__init__.py: data descriptor differs from the central directory"),
    "a data descriptor with another CRC, unsigned": (
        lambda e: build(_with(e, 1, descriptor=True, descriptor_sig=False, descriptor_values={"crc": 7})), "pkg/__init__.py: data descriptor differs"),
    "bytes after a member's deflate stream": (
        lambda e: build(_with(e, 1, after_data=_hidden())), f"pkg/__init__.py: {len(_hidden())} bytes of compressed data follow the end of its deflate stream"),
    "a zip64 locator pointing elsewhere than its record": (
        lambda e: build(e, zip64_end=True, locator_offset=0), "the zip64 end record is not where its locator says"),
}


@pytest.mark.parametrize("case", sorted(CONFUSIONS))
def test_zip_confusion_is_refused(tmp_path, case):
    make, needle = CONFUSIONS[case]
    w = _confused(tmp_path, make)
    with zipfile.ZipFile(w) as zf:  # what pip reads is a sound wheel
        assert zf.testzip() is None and SO in zf.namelist()
    run_all(w, tmp_path, needle)


SOUND_VARIATIONS = {
    "plain": lambda e: build(e),
    "data descriptors": lambda e: build([Entry(**{**x.__dict__, "descriptor": True}) for x in e]),
    "unsigned data descriptors": lambda e: build([Entry(**{**x.__dict__, "descriptor": True, "descriptor_sig": False}) for x in e]),
    "zip64 local headers": lambda e: build([Entry(**{**x.__dict__, "zip64": True}) for x in e]),
    "zip64 local headers and descriptors": lambda e: build([Entry(**{**x.__dict__, "zip64": True, "descriptor": True}) for x in e]),
    "stored members": lambda e: build([Entry(**{**x.__dict__, "method": 0}) for x in e]),
    "a zip64 end record": lambda e: build(e, zip64_end=True),
    "a comment": lambda e: build(e, comment=b"built by hand"),
}


@pytest.mark.parametrize("case", sorted(SOUND_VARIATIONS))
def test_sound_variations_of_the_zip_format_are_read(tmp_path, case):
    w = _confused(tmp_path, SOUND_VARIATIONS[case])
    p = subprocess.run([sys.executable, "-m", "wheelvet", "check", str(w)], capture_output=True, text=True, env=clean_env())
    assert p.returncode == 0 and "meets linux_x86_64" in p.stdout, p.stderr


def test_wheels_written_to_a_stream_are_read(tmp_path):
    """zipfile writes data descriptors when it cannot seek back (a pipe)."""
    import io

    class Unseekable(io.RawIOBase):
        def __init__(self):
            self.buf = bytearray()

        def writable(self):
            return True

        def write(self, b):
            self.buf += b
            return len(b)

    entries = wheel_entries({SO: ELF, "pkg/big.bin": b"\0" * ((1 << 20) + 7)})
    sink = Unseekable()
    with zipfile.ZipFile(sink, "w", zipfile.ZIP_DEFLATED) as zf:
        for e in entries:
            with zf.open(e.name, "w") as f:
                f.write(e.data)
    w = tmp_path / f"pkg-1.0-{TAG}.whl"
    w.write_bytes(bytes(sink.buf))
    with zipfile.ZipFile(w) as zf:
        assert all(i.flag_bits & 0x8 for i in zf.infolist())
    p = subprocess.run([sys.executable, "-m", "wheelvet", "check", str(w)], capture_output=True, text=True, env=clean_env())
    assert p.returncode == 0, p.stderr
