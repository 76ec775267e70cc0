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
