"""Reading zip members as checked, forward-only streams.

:class:`MemberStream` inflates one member straight from the archive's bytes
(``os.pread`` on a shared descriptor: no per-member ``zipfile`` objects, no
seeks shared between threads) and checks what passes through it: the local
header against the central directory, the inflated size against the
declared size (never more is inflated than declared: a lying bomb stops
there), the CRC-32, and optionally a RECORD hash.  :meth:`finish` reads what
the consumer left and returns the first problem found, or ``None``.

A consumer that only needs a prefix (the ELF reader) reads it, then calls
``finish``; the member is inflated once whatever it needs.
"""

from __future__ import annotations

import base64
import hashlib
import os
import struct
import zipfile
import zlib

CHUNK = 1 << 20

# Inflating and CRC-32 take most of a verified read.  ISA-L (the optional
# ``isal`` package, ``pip install wheelvet[fast]``) does both with the same
# results as zlib, about twice and seven times as fast on x86-64; without
# it, zlib.
try:
    from isal import isal_zlib as _fast
except ImportError:  # pragma: no cover - depends on what is installed
    _fast = None
INFLATE_LIBRARY = _fast or zlib
INFLATE_ERRORS: tuple[type[Exception], ...] = (zlib.error,) + ((_fast.error,) if _fast is not None else ())
_LOCAL = struct.Struct("<4s5H3I2H")  # signature .. extra field length (30 bytes)
_LOCAL_SIG = b"PK\x03\x04"

# RECORD hashes PEP 376/427 accept: sha256 or stronger.
RECORD_ALGORITHMS = frozenset({"sha256", "sha384", "sha512", "sha3_256", "sha3_384", "sha3_512", "blake2b", "blake2s"})


class MemberProblem(Exception):
    """A member whose bytes are not what the archive or RECORD says."""


def record_digest(data_hash) -> str:
    """RECORD's form of a digest: urlsafe base64 without padding."""
    return base64.urlsafe_b64encode(data_hash.digest()).rstrip(b"=").decode()


def data_offset(read_at, info: zipfile.ZipInfo) -> int:
    """Where a member's data starts, from its local header, which must name
    the same file as the central directory.  ``read_at(offset, n)`` returns
    the archive's bytes there.  Raises :class:`MemberProblem`."""
    header = read_at(info.header_offset, _LOCAL.size)
    if len(header) < _LOCAL.size:
        raise MemberProblem("local header past the end of the archive")
    sig, _, _, _, _, _, _, _, _, name_len, extra_len = _LOCAL.unpack(header)
    if sig != _LOCAL_SIG:
        raise MemberProblem("bad local header signature")
    raw_name = read_at(info.header_offset + _LOCAL.size, name_len)
    encoding = "utf-8" if info.flag_bits & 0x800 else "cp437"
    if raw_name.decode(encoding, "replace") != info.orig_filename:
        raise MemberProblem("local header names another file than the central directory")
    return info.header_offset + _LOCAL.size + name_len + extra_len


class MemberStream:
    """One member's content, inflated on demand and checked as it passes.

    ``digest`` is ``(algorithm, expected)`` from RECORD, or ``None`` to skip
    the hash.  Raises :class:`MemberProblem` when the local header is bad.
    """

    def __init__(self, fd: int, info: zipfile.ZipInfo, digest: tuple[str, str] | None = None, *,
                 library=None) -> None:
        lib = library or INFLATE_LIBRARY  # zlib, or a module with its interface
        self._fd = fd
        self._pos = data_offset(lambda offset, n: os.pread(fd, n, offset), info)
        self._end = self._pos + info.compress_size
        self._size = info.file_size
        self._crc_expected = info.CRC
        self._crc32 = lib.crc32
        self._inflater = lib.decompressobj(-15) if info.compress_type == zipfile.ZIP_DEFLATED else None
        self._tail = b""  # compressed bytes read but not yet inflated
        self._buf = b""  # inflated bytes not yet handed out
        self._made = 0  # inflated bytes so far
        self._crc = 0
        self._hash = hashlib.new(digest[0]) if digest else None
        self._expected = digest[1].rstrip("=") if digest else None

    # -- the stream --------------------------------------------------------

    def _inflate(self, want: int) -> bytes:
        """Up to ``want`` inflated bytes, feeding the inflater compressed
        input as it needs it and draining what it holds once the input is
        all in; b"" only at the end of the deflate stream, or when the
        compressed data is spent and the inflater has nothing left.

        (An inflater asked for at most ``want`` bytes may consume all its
        input and still hold output: that must be drained with empty input,
        not taken for the end of the data.)"""
        inflater = self._inflater
        while not inflater.eof:
            if not self._tail and self._pos < self._end:
                self._tail = os.pread(self._fd, min(CHUNK, self._end - self._pos), self._pos)
                if not self._tail:  # the archive is shorter than its directory says
                    self._end = self._pos
                self._pos += len(self._tail)
            fed = len(self._tail)
            piece = inflater.decompress(self._tail, want)
            # (at the end of the stream, what is left of the input is in
            # unused_data; zlib leaves a copy in unconsumed_tail too)
            self._tail = b"" if inflater.eof else inflater.unconsumed_tail
            if piece:
                return piece
            if not fed:  # nothing to feed, and draining gave nothing
                return b""
        return b""

    def _more(self) -> bytes:
        """The next inflated piece (at most CHUNK bytes), b"" at the end."""
        want = min(CHUNK, self._size - self._made)
        if want <= 0:
            return b""
        if self._inflater is None:
            piece = os.pread(self._fd, min(want, self._end - self._pos), self._pos)
            self._pos += len(piece)
        else:
            piece = self._inflate(want)
        if not piece:
            raise MemberProblem(f"holds {self._made} bytes, not the {self._size} declared")
        self._made += len(piece)
        self._crc = self._crc32(piece, self._crc)
        if self._hash is not None:
            self._hash.update(piece)
        return piece

    def peek(self, n: int) -> bytes:
        """The next ``n`` bytes (fewer at the end), without consuming them."""
        while len(self._buf) < n and (piece := self._more()):
            self._buf += piece
        return self._buf[:n]

    def read(self, n: int = -1) -> bytes:
        if n < 0:
            parts = [self._buf]
            while piece := self._more():
                parts.append(piece)
            self._buf = b""
            return b"".join(parts)
        if not self._buf:
            self._buf = self._more()
        out, self._buf = self._buf[:n], self._buf[n:]
        return out

    def __enter__(self) -> MemberStream:
        return self

    def __exit__(self, *exc) -> None:
        pass  # the descriptor belongs to the caller; finish() does the checks

    # -- the checks --------------------------------------------------------

    def finish(self) -> str | None:
        """Inflate what is left; the first problem with the member, or None."""
        self._buf = b""
        try:
            while self._more():
                pass
        except MemberProblem as exc:
            return str(exc)
        except INFLATE_ERRORS as exc:
            return f"bad deflate data ({exc})"
        # The deflate stream must end right after the declared size: more
        # output means the sizes lie (asked for a byte at a time, so a bomb
        # behind a small declared size is never inflated).
        if self._inflater is not None and not self._inflater.eof:
            try:
                extra = self._inflate(1)
            except INFLATE_ERRORS as exc:
                return f"bad deflate data ({exc})"
            if extra:
                return f"inflates to more than the {self._size} bytes declared"
            if not self._inflater.eof:
                return "compressed data ends before the end of its deflate stream"
        if self._inflater is not None:
            # Bytes inside the member's compressed size but after its deflate
            # stream: a reader that finds the end of a member by its deflate
            # stream (a streaming unzip) would look for the next entry there.
            trailing = len(self._inflater.unused_data) + (self._end - self._pos)
            if trailing:
                return f"{trailing} bytes of compressed data follow the end of its deflate stream"
        elif self._pos != self._end:
            return f"stores {self._end - self._pos + self._made} bytes, not the {self._size} declared"
        if self._crc != self._crc_expected:
            return f"CRC-32 {self._crc:08x} does not match the {self._crc_expected:08x} recorded in the archive"
        if self._hash is not None and record_digest(self._hash) != self._expected:
            return "content does not match its RECORD hash"
        return None
