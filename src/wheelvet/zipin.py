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

import hashlib
import os
import struct
import zipfile
import zlib
from dataclasses import dataclass

from .records import record_digest

CHUNK = 1 << 20

# Inflating and CRC-32 take most of a verified read.  ISA-L (the ``isal``
# package, a default dependency where PyPI has a binary wheel of it: CPython
# on x86-64 and aarch64 Linux) does both with the same results as zlib,
# about twice and five times as fast on x86-64; elsewhere, or when it cannot
# be imported, zlib, silently.  ``WHEELVET_INFLATE=zlib`` asks for zlib
# (benchmarks and tests measure the fallback with it).
try:
    if os.environ.get("WHEELVET_INFLATE", "").lower() == "zlib":
        raise ImportError("zlib asked for")
    from isal import igzip_lib as _igzip
    from isal import isal_zlib as _fast
except ImportError:  # pragma: no cover - depends on what is installed
    _fast = _igzip = None
INFLATE_LIBRARY = _fast or zlib
INFLATE_ERRORS: tuple[type[Exception], ...] = (zlib.error,) + ((_fast.error, _igzip.IsalError) if _fast is not None else ())


class _ZlibInflater:
    """zlib's (or a module of its interface's) raw inflater, keeping the input
    it has not consumed yet itself."""

    def __init__(self, lib) -> None:
        self._d = lib.decompressobj(-15)
        self._tail = b""

    @property
    def needs_input(self) -> bool:
        return not self._tail

    @property
    def eof(self) -> bool:
        return self._d.eof

    @property
    def unused_data(self) -> bytes:
        return self._d.unused_data

    def decompress(self, data: bytes, want: int) -> bytes:
        piece = self._d.decompress(data or self._tail, want)
        # (at the end of the stream, what is left of the input is in
        # unused_data; zlib leaves a copy in unconsumed_tail too)
        self._tail = b"" if self._d.eof else self._d.unconsumed_tail
        return piece


def _igzip_inflater():
    """ISA-L's raw inflater.  igzip_lib's decompressor, not isal_zlib's
    decompressobj: it releases the GIL while it inflates (isal 1.9's
    decompressobj does not), so a member is inflated on one core while the
    bytes before it are hashed and parsed on the other.  It keeps its
    unconsumed input itself (``needs_input``), as bz2's does."""
    return _igzip.IgzipDecompressor(flag=_igzip.DECOMP_DEFLATE, hist_bits=15)


def new_inflater(library=None):
    """A raw-deflate inflater (``decompress(data, want)``, ``needs_input``,
    ``eof``, ``unused_data``) from ``library``: zlib, isal_zlib (inflated by
    igzip_lib), or by default the fastest there is."""
    lib = library or INFLATE_LIBRARY
    if _fast is not None and lib is _fast:
        return _igzip_inflater()
    return _ZlibInflater(lib)


_LOCAL = struct.Struct("<4s5H3I2H")  # signature .. extra field length (30 bytes)
_LOCAL_SIG = b"PK\x03\x04"



class MemberProblem(Exception):
    """A member whose bytes are not what the archive or RECORD says."""


@dataclass(frozen=True)
class LocalHeader:
    """A member's local header, as a streaming reader sees the member."""

    flags: int
    method: int
    crc: int
    compress_size: int  # from the zip64 extra field when the header says 0xFFFFFFFF
    file_size: int
    zip64: bool  # it has a zip64 extra field (a data descriptor then holds 8-byte sizes)
    data_start: int


def read_local_header(read_at, info: zipfile.ZipInfo) -> LocalHeader:
    """The local header of ``info``, which must name the same file as the
    central directory.  ``read_at(offset, n)`` returns the archive's bytes
    there.  Raises :class:`MemberProblem`."""
    # (usually all of it at once: an ASCII name's length; the rest is read below if not)
    head = read_at(info.header_offset, _LOCAL.size + len(info.orig_filename) + 64)
    if len(head) < _LOCAL.size:
        raise MemberProblem("local header past the end of the archive")
    sig, _, flags, method, _, _, crc, csize, usize, name_len, extra_len = _LOCAL.unpack_from(head)
    if sig != _LOCAL_SIG:
        raise MemberProblem("bad local header signature")
    end = _LOCAL.size + name_len + extra_len
    if len(head) < end:
        head += read_at(info.header_offset + len(head), end - len(head))
        if len(head) < end:
            raise MemberProblem("local header past the end of the archive")
    raw_name = head[_LOCAL.size : _LOCAL.size + name_len]
    encoding = "utf-8" if flags & 0x800 else "cp437"
    if raw_name.decode(encoding, "replace") != info.orig_filename:
        raise MemberProblem("local header names another file than the central directory")
    extra = head[_LOCAL.size + name_len : end]
    zip64 = False
    pos = 0
    while pos + 4 <= len(extra):
        tag, size = struct.unpack_from("<HH", extra, pos)
        if tag == 0x0001:  # zip64: the sizes that are 0xFFFFFFFF in the header, in this order
            zip64 = True
            field = extra[pos + 4 : pos + 4 + size]
            at = 0
            if usize == 0xFFFFFFFF and at + 8 <= len(field):
                usize = struct.unpack_from("<Q", field, at)[0]
                at += 8
            if csize == 0xFFFFFFFF and at + 8 <= len(field):
                csize = struct.unpack_from("<Q", field, at)[0]
        pos += 4 + size
    return LocalHeader(flags, method, crc, csize, usize, zip64, info.header_offset + end)


def data_offset(read_at, info: zipfile.ZipInfo) -> int:
    """Where a member's data starts, from its local header (which must name
    the same file as the central directory).  Raises :class:`MemberProblem`."""
    return read_local_header(read_at, info).data_start


# ---------------------------------------------------------------- the layout

_EOCD = struct.Struct("<4s4H2IH")  # end of central directory record (22 bytes)
_EOCD64 = struct.Struct("<4sQ2H2I4Q")  # zip64 end of central directory record (56 bytes)
_LOCATOR64 = struct.Struct("<4sIQI")  # zip64 end of central directory locator (20 bytes)
_DESCRIPTOR_SIG = b"PK\x07\x08"
# General purpose flags a streaming reader acts on: encryption, a data
# descriptor after the data, UTF-8 names.
_STREAM_FLAGS = 0x1 | 0x8 | 0x800


class _Window:
    """``read_at(offset, n)`` on a file, reading at least :attr:`SIZE` bytes
    at a time: the local headers of a wheel's small members lie a few
    hundred bytes apart, so one ``pread`` serves dozens of them (torch's
    12,248 headers: 12,250 reads before, 429 now)."""

    SIZE = 64 << 10

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.start = 0
        self.data = b""

    def __call__(self, offset: int, n: int) -> bytes:
        at = offset - self.start
        if 0 <= at and at + n <= len(self.data):
            return self.data[at : at + n]
        self.data, self.start = os.pread(self.fd, max(n, self.SIZE), offset), offset
        return self.data[:n]


def check_layout(fd: int, infos: list[zipfile.ZipInfo], starts: dict[str, int] | None = None) -> list[tuple[str, str]]:
    """Problems with where things lie in the archive: (member, problem), the
    member "" for the archive as a whole.

    pip reads a wheel from its central directory; a streaming reader (and
    many unzip-to-disk steps) reads the local entries one after the other
    from the start.  Both must see the same wheel: the local entries must be
    exactly the central directory's, in its order, the first at offset 0,
    each followed by its data (and its data descriptor when it has one) and
    then the next, the last by the central directory, that by the zip64
    records when there are any and the end record, whose comment ends the
    file.  Each local header must agree with the central directory on the
    name, the flags a reader acts on, the compression method and (when no
    data descriptor follows) the CRC and sizes.

    ``starts``, when given, receives where each member's data begins (its
    local header read and checked here once, not again by each
    :class:`MemberStream`).
    """
    size = os.fstat(fd).st_size
    read_at = _Window(fd)

    tail_start = max(0, size - (_EOCD.size + 0xFFFF))
    tail = read_at(tail_start, size - tail_start)
    at = tail.rfind(b"PK\x05\x06")  # the end record zipfile reads
    if at < 0 or at + _EOCD.size > len(tail):
        return [("", "no end of central directory record")]
    _, disk, cd_disk, disk_entries, entries, cd_size, cd_offset, comment_len = _EOCD.unpack_from(tail, at)
    eocd = tail_start + at
    after = size - (eocd + _EOCD.size + comment_len)
    if after:
        return [("", f"{after} bytes after the end of the archive" if after > 0
                 else "the end record's comment runs past the end of the file")]
    cd_end = eocd  # where the central directory must end
    locator = read_at(eocd - _LOCATOR64.size, _LOCATOR64.size) if eocd >= _LOCATOR64.size else b""
    if locator[:4] == b"PK\x06\x07":
        _, _, record_at, _ = _LOCATOR64.unpack(locator)
        record = read_at(record_at, _EOCD64.size)
        if (record_at + _EOCD64.size != eocd - _LOCATOR64.size or len(record) < _EOCD64.size
                or record[:4] != b"PK\x06\x06"):
            return [("", "the zip64 end record is not where its locator says, just before it")]
        _, record_size, _, _, disk, cd_disk, disk_entries, entries, cd_size, cd_offset = _EOCD64.unpack(record)
        if record_size != _EOCD64.size - 12:
            return [("", "the zip64 end record has an extensible data sector")]
        cd_end = record_at
    if disk or cd_disk or disk_entries != entries:
        return [("", "a multi-disk archive")]
    if entries != len(infos):
        return [("", f"the end record counts {entries} entries, the central directory holds {len(infos)}")]
    if cd_offset + cd_size != cd_end:
        gap = cd_end - cd_offset - cd_size
        if gap < 0:
            return [("", "the central directory overlaps the end record")]
        if read_at(cd_end - cd_size, 4) == b"PK\x01\x02":
            # The directory is there, but its offsets count from `gap` bytes
            # in: whatever lies before them (another whole zip, say) is what
            # a reader going from the start of the file sees first.
            return [("", f"{gap} bytes before the archive's first member (a prefix another reader may take "
                         "for the archive)")]
        return [("", f"{gap} bytes between the central directory and the end record")]
    for before, this in zip(infos, infos[1:]):
        if this.header_offset < before.header_offset:
            return [(this.filename, f"comes before {before.filename} in the archive, after it in the central directory")]
    problems: list[tuple[str, str]] = []
    expected, previous = 0, None  # where the next local entry must start
    for info in infos:
        name = info.filename
        if info.header_offset != expected:
            if previous is None:
                problems.append(("", f"{info.header_offset} bytes before the archive's first member (a prefix "
                                     "another reader may take for the archive)"))
            elif info.header_offset > expected:
                problems.append((name, f"{info.header_offset - expected} bytes between {previous} and this member "
                                       "that the central directory does not list"))
            else:
                problems.append((name, f"overlaps the data of {previous} (an overlapping-member zip bomb)"))
            return problems
        try:
            local = read_local_header(read_at, info)
        except MemberProblem as exc:
            return problems + [(name, str(exc))]
        if starts is not None:
            starts[name] = local.data_start
        if local.flags & _STREAM_FLAGS != info.flag_bits & _STREAM_FLAGS:
            problems.append((name, "local header flags differ from the central directory's"))
        if local.method != info.compress_type:
            problems.append((name, f"local header says compression method {local.method}, "
                                   f"the central directory {info.compress_type}"))
        end = local.data_start + info.compress_size
        if info.flag_bits & 0x8:
            wide = 8 if local.zip64 else 4
            raw = read_at(end, 4 + 4 + 2 * wide)
            body = raw[4:] if raw[:4] == _DESCRIPTOR_SIG else raw[: 4 + 2 * wide]
            if len(body) < 4 + 2 * wide:
                return problems + [(name, "data descriptor past the end of the archive")]
            crc, csize, usize = struct.unpack_from("<I" + ("QQ" if wide == 8 else "II"), body)
            if (crc, csize, usize) != (info.CRC, info.compress_size, info.file_size):
                problems.append((name, "data descriptor differs from the central directory"))
            end += (4 if raw[:4] == _DESCRIPTOR_SIG else 0) + 4 + 2 * wide
        elif (local.crc, local.compress_size, local.file_size) != (info.CRC, info.compress_size, info.file_size):
            problems.append((name, "local header's CRC or sizes differ from the central directory's"))
        expected, previous = end, name
    if not problems and expected != cd_offset:
        problems.append(("", f"{cd_offset - expected} bytes between the last member and the central directory "
                             "that it does not list" if expected < cd_offset
                         else "the last member overlaps the central directory"))
    return problems


# A member this large is inflated a piece ahead on a helper thread while
# the consumer hashes and parses the piece before it (inflating, hashing
# and CRC-32 all release the GIL): a single large library then takes about
# its inflate time, not its inflate time plus its hash time.
AHEAD_MIN = 4 << 20
_AHEAD = None  # (pid, executor): one helper thread per process, made on first use


def _ahead_pool():
    global _AHEAD
    if _AHEAD is None or _AHEAD[0] != os.getpid():  # (a forked worker has no thread of its parent's)
        from concurrent.futures import ThreadPoolExecutor

        _AHEAD = (os.getpid(), ThreadPoolExecutor(max_workers=1, thread_name_prefix="wheelvet-inflate"))
    return _AHEAD[1]


class MemberStream:
    """One member's content, inflated on demand and checked as it passes.

    ``digest`` is ``(algorithm, expected)`` from RECORD, or ``None`` to skip
    the hash.  ``data_start`` is where the member's data begins when the
    caller has already read and checked its local header
    (:func:`check_layout` does); otherwise it is read here.  Raises
    :class:`MemberProblem` when the local header is bad.
    """

    def __init__(self, fd: int, info: zipfile.ZipInfo, digest: tuple[str, str] | None = None, *,
                 library=None, data_start: int | None = None) -> None:
        lib = library or INFLATE_LIBRARY  # zlib, or a module with its interface
        self._fd = fd
        self._pos = data_start if data_start is not None else data_offset(
            lambda offset, n: os.pread(fd, n, offset), info)
        self._end = self._pos + info.compress_size
        self._size = info.file_size
        self._crc_expected = info.CRC
        self._crc32 = lib.crc32
        self._inflater = new_inflater(lib) if info.compress_type == zipfile.ZIP_DEFLATED else None
        self._buf = b""  # inflated bytes not yet handed out
        self._made = 0  # inflated bytes so far
        self._crc = 0
        self._hash = hashlib.new(digest[0]) if digest else None
        self._expected = digest[1].rstrip("=") if digest else None
        self._ahead = None  # the next piece, being inflated on the helper thread
        self._use_ahead = self._inflater is not None and info.file_size >= AHEAD_MIN

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
            data = b""
            buffered = not inflater.needs_input  # it holds input of its own still
            if not buffered and self._pos < self._end:
                data = os.pread(self._fd, min(CHUNK, self._end - self._pos), self._pos)
                if not data:  # the archive is shorter than its directory says
                    self._end = self._pos
                self._pos += len(data)
            piece = inflater.decompress(data, want)
            if piece:
                return piece
            if not data and (not buffered or not inflater.needs_input):
                return b""  # fed nothing new and drained nothing (or made no progress): nothing more will come
        return b""

    def _piece(self, want: int) -> bytes:
        if self._inflater is None:
            piece = os.pread(self._fd, min(want, self._end - self._pos), self._pos)
            self._pos += len(piece)
            return piece
        return self._inflate(want)

    def _more(self) -> bytes:
        """The next inflated piece (at most CHUNK bytes), b"" at the end."""
        if self._ahead is not None:
            future, self._ahead = self._ahead, None
            piece = future.result()  # (its errors are raised here, as if inflated now)
        else:
            want = min(CHUNK, self._size - self._made)
            if want <= 0:
                return b""
            piece = self._piece(want)
        if not piece:
            raise MemberProblem(f"holds {self._made} bytes, not the {self._size} declared")
        self._made += len(piece)
        if self._use_ahead and (want := min(CHUNK, self._size - self._made)) > 0:
            self._ahead = _ahead_pool().submit(self._inflate, want)
        self._crc = self._crc32(piece, self._crc)
        if self._hash is not None:
            self._hash.update(piece)
        return piece

    def close(self) -> None:
        """Abandon the stream: wait for a piece still being inflated ahead and
        drop it (after this the stream must not be read, nor finished)."""
        if self._ahead is not None:
            future, self._ahead = self._ahead, None
            try:
                future.result()
            except Exception:  # noqa: BLE001 - what it found does not matter any more
                pass

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
        pass  # the descriptor belongs to the caller; finish() does the checks, close() abandons

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
