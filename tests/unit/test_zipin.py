"""zipin.MemberStream, member by member, with zlib and with ISA-L: the same
bytes and the same verdicts whichever inflates."""

from __future__ import annotations

import base64
import hashlib
import io
import os
import struct
import zipfile
import zlib

import pytest

from wheelvet.zipin import MemberProblem, MemberStream

LIBRARIES = [pytest.param(zlib, id="zlib")]
try:
    from isal import isal_zlib

    LIBRARIES.append(pytest.param(isal_zlib, id="isal"))
except ImportError:  # the fast path is optional
    LIBRARIES.append(pytest.param(None, id="isal", marks=pytest.mark.skip(reason="isal is not installed")))

BODY = os.urandom(300_000) + b"wheelvet " * 200_000  # ~2 MB: several chunks, part incompressible


def digest(data: bytes) -> tuple[str, str]:
    return "sha256", base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def archive(tmp_path, data: bytes, method=zipfile.ZIP_DEFLATED, name="m.so"):
    path = tmp_path / "a.zip"
    with zipfile.ZipFile(path, "w", method) as zf:
        zf.writestr(name, data)
    return path


def patch_central(path, **fields):
    """Overwrite CRC (crc=), sizes (size=) of the only member in both headers."""
    data = bytearray(path.read_bytes())
    central = data.rfind(b"PK\x01\x02")
    for key, value in fields.items():
        struct.pack_into("<I", data, central + {"crc": 16, "size": 24}[key], value)
        struct.pack_into("<I", data, {"crc": 14, "size": 22}[key], value)
    path.write_bytes(bytes(data))


def open_member(path, lib, digest_=None):
    with zipfile.ZipFile(path) as zf:
        info = zf.infolist()[0]
    fh = open(path, "rb")
    try:
        return fh, MemberStream(fh.fileno(), info, digest_, library=lib)
    except MemberProblem:
        fh.close()
        raise


@pytest.mark.parametrize("method", [zipfile.ZIP_DEFLATED, zipfile.ZIP_STORED])
@pytest.mark.parametrize("lib", LIBRARIES)
def test_sound_member_reads_whole_in_any_pieces(tmp_path, lib, method):
    path = archive(tmp_path, BODY, method)
    fh, s = open_member(path, lib, digest(BODY))
    with fh:
        assert s.peek(4) == BODY[:4]
        got = io.BytesIO()
        got.write(s.read(7))
        got.write(s.read(65536))
        got.write(s.read(1 << 20))
        assert s.finish() is None  # reads the rest, checks size, CRC and hash
        assert got.getvalue() == BODY[: len(got.getvalue())]
    fh, s = open_member(path, lib)
    with fh:
        assert s.read() == BODY and s.finish() is None


@pytest.mark.parametrize("lib", LIBRARIES)
def test_hash_and_crc_mismatches(tmp_path, lib):
    path = archive(tmp_path, BODY)
    fh, s = open_member(path, lib, digest(BODY + b"x"))
    with fh:
        assert s.finish() == "content does not match its RECORD hash"
    crc = zlib.crc32(BODY)
    patch_central(path, crc=crc ^ 0xFF)
    fh, s = open_member(path, lib, digest(BODY))
    with fh:
        assert s.finish() == f"CRC-32 {crc:08x} does not match the {crc ^ 0xFF:08x} recorded in the archive"


@pytest.mark.parametrize("lib", LIBRARIES)
def test_declared_size_is_a_hard_stop(tmp_path, lib):
    path = archive(tmp_path, BODY)
    patch_central(path, size=1000)
    fh, s = open_member(path, lib)
    with fh:
        assert s.read() == BODY[:1000]  # never more than declared
        assert s.finish() == "inflates to more than the 1000 bytes declared"
    patch_central(path, size=len(BODY) + 10)
    fh, s = open_member(path, lib)
    with fh:
        assert s.finish() == f"holds {len(BODY)} bytes, not the {len(BODY) + 10} declared"


@pytest.mark.parametrize("lib", LIBRARIES)
def test_stored_member_with_a_wrong_size(tmp_path, lib):
    path = archive(tmp_path, BODY, zipfile.ZIP_STORED)
    patch_central(path, size=len(BODY) - 1)  # one stored byte more than declared
    fh, s = open_member(path, lib)
    with fh:
        assert s.finish() == f"stores {len(BODY)} bytes, not the {len(BODY) - 1} declared"


@pytest.mark.parametrize("lib", LIBRARIES)
def test_damaged_deflate_data(tmp_path, lib):
    path = archive(tmp_path, BODY)
    data = bytearray(path.read_bytes())
    start = 30 + len("m.so")
    data[start:start + 64] = b"\xff" * 64  # an invalid block type
    path.write_bytes(bytes(data))
    fh, s = open_member(path, lib)
    with fh:
        assert s.finish().startswith("bad deflate data")


@pytest.mark.parametrize("lib", LIBRARIES)
def test_local_header_problems(tmp_path, lib):
    path = archive(tmp_path, BODY)
    data = bytearray(path.read_bytes())
    data[30:31] = b"X"  # the local header's copy of the name
    path.write_bytes(bytes(data))
    with pytest.raises(MemberProblem, match="local header names another file"):
        open_member(path, lib)
    data[0:4] = b"XXXX"
    path.write_bytes(bytes(data))
    with pytest.raises(MemberProblem, match="bad local header signature"):
        open_member(path, lib)


# ---------------------------------------------------------------- chunk boundaries
# The stream inflates at most CHUNK bytes at a time.  An inflater asked for at
# most CHUNK bytes may swallow all the compressed input and still hold output:
# a member a few bytes over a multiple of CHUNK was once refused as short.
# Every size around every boundary, with each inflater, each kind of content
# (highly compressible content is what leaves output held back) and each way
# of reading.


def content(kind: str, size: int) -> bytes:
    if kind == "zeros":
        return b"\0" * size
    if kind == "random":
        return os.urandom(size)
    text = b"".join(b"line %d of a member\n" % i for i in range(size // 16 + 1))
    return text[:size]


SMALL_CHUNK = 1024
SMALL_SIZES = sorted({k * SMALL_CHUNK + d for k in range(1, 5) for d in range(-3, 10)})


@pytest.mark.parametrize("size", SMALL_SIZES)
@pytest.mark.parametrize("kind", ["zeros", "random", "text"])
@pytest.mark.parametrize("lib", LIBRARIES)
def test_every_size_around_small_chunk_boundaries(tmp_path, monkeypatch, lib, kind, size):
    from wheelvet import zipin

    monkeypatch.setattr(zipin, "CHUNK", SMALL_CHUNK)
    body = content(kind, size)
    path = archive(tmp_path, body)
    for how in ("whole", "pieces", "finish"):
        fh, s = open_member(path, lib, digest(body))
        with fh:
            if how != "finish":
                got = s.read() if how == "whole" else b"".join(iter(lambda: s.read(97), b""))
                assert got == body, (how, len(got))
            assert s.finish() is None, how


REAL_SIZES = sorted({k * (1 << 20) + d for k in (1, 2, 3) for d in (-1, 0, 1, 2, 7, 8, 4096)})


@pytest.mark.parametrize("size", REAL_SIZES)
@pytest.mark.parametrize("lib", LIBRARIES)
def test_sizes_around_the_real_chunk_boundaries(tmp_path, lib, size):
    body = content("zeros", size)
    path = archive(tmp_path, body)
    fh, s = open_member(path, lib, digest(body))
    with fh:
        assert s.finish() is None
    fh, s = open_member(path, lib)
    with fh:
        assert len(s.read()) == size and s.finish() is None


def _rewrite_compressed(path, transform):
    """Rewrite the only member's compressed bytes (sizes in both headers follow)."""
    with zipfile.ZipFile(path) as zf:
        info = zf.infolist()[0]
    data = bytearray(path.read_bytes())
    start = 30 + len(info.filename)
    old = bytes(data[start:start + info.compress_size])
    new = transform(old)
    data[start:start + info.compress_size] = new
    struct.pack_into("<I", data, 18, len(new))
    central = data.rfind(b"PK\x01\x02")
    struct.pack_into("<I", data, central + 20, len(new))
    end = data.rfind(b"PK\x05\x06")
    struct.pack_into("<I", data, end + 16, struct.unpack_from("<I", data, end + 16)[0] + len(new) - len(old))
    struct.pack_into("<I", data, central + 42, 0)
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("junk", [1, 5, SMALL_CHUNK, 3 * SMALL_CHUNK + 1])
@pytest.mark.parametrize("lib", LIBRARIES)
def test_bytes_after_the_deflate_stream_are_refused(tmp_path, monkeypatch, lib, junk):
    """A streaming reader ends a member where its deflate stream ends; bytes
    between that and the declared compressed size are a place to hide things."""
    from wheelvet import zipin

    monkeypatch.setattr(zipin, "CHUNK", SMALL_CHUNK)
    body = content("text", 5 * SMALL_CHUNK + 3)
    path = archive(tmp_path, body)
    _rewrite_compressed(path, lambda comp: comp + b"J" * junk)
    fh, s = open_member(path, lib, digest(body))
    with fh:
        assert s.finish() == f"{junk} bytes of compressed data follow the end of its deflate stream"


@pytest.mark.parametrize("cut", [1, 2, 10, 100])
@pytest.mark.parametrize("lib", LIBRARIES)
def test_deflate_stream_cut_short(tmp_path, lib, cut):
    """A stream cut short is refused with what an independent full inflate of
    the same bytes says: short output, or all of it but no end of stream."""
    body = content("random", 3000) + content("zeros", 3 * (1 << 20))
    path = archive(tmp_path, body)
    kept = []
    _rewrite_compressed(path, lambda comp: kept.append(comp[:-cut]) or comp[:-cut])
    made = len(zlib.decompressobj(-15).decompress(kept[0]))
    fh, s = open_member(path, lib, digest(body))
    with fh:
        problem = s.finish()
    if made < len(body):
        assert problem == f"holds {made} bytes, not the {len(body)} declared"
    else:
        assert problem == "compressed data ends before the end of its deflate stream"


# ---------------------------------------------------------------- read-ahead
# A member of AHEAD_MIN bytes or more is inflated a piece ahead on a helper
# thread while the piece before it is hashed: the same bytes, the same
# verdicts, errors raised where the piece is read, and an abandoned stream
# leaves nothing running.


@pytest.fixture
def ahead_everything(monkeypatch):
    from wheelvet import zipin

    monkeypatch.setattr(zipin, "AHEAD_MIN", 1)
    monkeypatch.setattr(zipin, "CHUNK", 4096)


@pytest.mark.parametrize("lib", LIBRARIES)
def test_read_ahead_gives_the_same_bytes_and_verdicts(tmp_path, lib, ahead_everything):
    path = archive(tmp_path, BODY)
    fh, s = open_member(path, lib, digest(BODY))
    with fh:
        assert s._use_ahead
        got = s.read(5) + s.peek(70_000)
        assert got == BODY[: len(got)]
        assert s.finish() is None
    fh, s = open_member(path, lib)
    with fh:
        assert s.read() == BODY and s.finish() is None
    fh, s = open_member(path, lib, digest(BODY + b"x"))
    with fh:
        assert s.finish() == "content does not match its RECORD hash"
    patch_central(path, size=len(BODY) + 10)
    fh, s = open_member(path, lib)
    with fh:
        assert s.finish() == f"holds {len(BODY)} bytes, not the {len(BODY) + 10} declared"


@pytest.mark.parametrize("lib", LIBRARIES)
def test_read_ahead_reports_damage_found_on_the_helper_thread(tmp_path, lib, ahead_everything):
    path = archive(tmp_path, os.urandom(200_000))  # stored blocks: damage far in lies in a later piece
    data = bytearray(path.read_bytes())
    start = 30 + len("m.so")
    data[start + 100_000 : start + 100_100] = b"\xff" * 100
    path.write_bytes(bytes(data))
    fh, s = open_member(path, lib)
    with fh:
        problem = s.finish()
    assert problem is not None and problem.startswith(("bad deflate data", "holds", "CRC-32"))


@pytest.mark.parametrize("lib", LIBRARIES)
def test_an_abandoned_stream_waits_for_its_piece_ahead(tmp_path, lib, ahead_everything):
    path = archive(tmp_path, BODY)
    fh, s = open_member(path, lib)
    with fh:
        s.read(10)
        assert s._ahead is not None  # the next piece is on its way
        s.close()
        assert s._ahead is None


# ---------------------------------------------------------------- without isal
# isal is a dependency only where PyPI has its wheel: elsewhere (and with
# WHEELVET_INFLATE=zlib) zlib inflates, silently, and a wheel reads the same.

_WITHOUT_ISAL = """
import sys
if sys.argv[1] == "missing":
    sys.modules["isal"] = None  # `import isal` raises ImportError, as where it is not installed
from wheelvet import zipin
from wheelvet.cli import main
print(zipin.INFLATE_LIBRARY.__name__, zipin.new_inflater().__class__.__name__)
sys.exit(main(["show", "--json", sys.argv[2]]))
"""


@pytest.mark.parametrize("how", ["missing", "asked"])
def test_without_isal_zlib_reads_the_same_wheel_silently(tmp_path, how):
    import json
    import subprocess
    import sys

    from support import write_wheel

    body = BODY + b"\x7fELF" + os.urandom(1000)
    whl = write_wheel(tmp_path / "pkg-1.0-py3-none-any.whl", {"pkg/data.bin": body, "pkg/__init__.py": b""},
                      tag="py3-none-any", purelib=True)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    if how == "asked":
        env["WHEELVET_INFLATE"] = "zlib"
    done = subprocess.run([sys.executable, "-c", _WITHOUT_ISAL, how, str(whl)], capture_output=True, text=True,
                          env=env)
    assert done.stderr == ""
    first, rest = done.stdout.split("\n", 1)
    assert first == "zlib _ZlibInflater"
    # (read whole, every member's CRC and hash checked: a bad one would be exit 3)
    assert "not look like a platform wheel" in json.loads(rest)["error"]
    assert done.returncode == 1  # show's answer for a pure wheel, as auditwheel's


def test_the_layout_checks_windowed_reads_are_the_files_bytes(tmp_path):
    """check_layout reads local headers through one window of the file:
    whatever is asked (inside the window, across its end, past the end of
    the file) is what a pread there returns."""
    import random

    from wheelvet.zipin import _Window

    data = os.urandom(300_000)
    path = tmp_path / "f"
    path.write_bytes(data)
    rng = random.Random(7)
    with open(path, "rb") as f:
        window = _Window(f.fileno())
        at = 0
        for _ in range(2000):
            at = rng.choice([at + rng.randrange(0, 3000), rng.randrange(0, 320_000)])  # (mostly forward, as headers lie)
            n = rng.choice([30, 94, rng.randrange(1, 200_000)])
            assert window(at, n) == data[at : at + n]
