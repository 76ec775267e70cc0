"""Writing a wheel archive: raw copies of unchanged members, deflate for the rest.

auditwheel unpacks a wheel and deflates every file again.  Here a member that
does not change is copied as it is: its compressed bytes, CRC and sizes go
from the input archive to the output without being inflated or deflated.
Only new or patched members are compressed, on all cores (``zlib`` releases
the GIL, so threads suffice), and with a :class:`DeflateCache` each distinct
content once per cache: the same bytes at the same level deflate to the same
bytes, so a library grafted into every wheel of a release is compressed for
the first and copied into the others.  A patched member that carries its
input's deflate stream (``NewMember.reuse``) keeps the blocks the patch did
not touch (:mod:`wheelvet.reflate`) when the level is the default.

The output is deterministic: the caller fixes the order and the timestamps, so
the same input gives a byte-identical archive.  Zip64 records are written when
sizes, offsets or the entry count need them.
"""

from __future__ import annotations

import logging
import os
import struct
import tempfile
import threading
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import BinaryIO, Sequence, Union

from . import reflate, scratch
from .zipin import INFLATE_LIBRARY, MemberProblem, data_offset

_LOCAL = b"PK\x03\x04"
_CENTRAL = b"PK\x01\x02"
_EOCD = b"PK\x05\x06"
_EOCD64 = b"PK\x06\x06"
_EOCD64_LOC = b"PK\x06\x07"
_U32 = 0xFFFFFFFF
_U16 = 0xFFFF
_FLAG_UTF8 = 0x800
_UNIX = 3  # "version made by" host: UNIX, so external attributes carry modes

log = logging.getLogger(__name__)

DEFAULT_LEVEL = 6  # zlib's Z_DEFAULT_COMPRESSION


@dataclass(frozen=True)
class RawMember:
    """A member copied from ``source`` (an open zip) without recompression.

    Its mode is given (the caller normalises it): the input's external
    attributes are not copied, so no host's modes or umask reach the output."""

    name: str
    source: zipfile.ZipFile
    info: zipfile.ZipInfo
    date_time: tuple[int, int, int, int, int, int]
    mode: int = 0o644


@dataclass(frozen=True)
class NewMember:
    """A member whose content is given, in memory (``data``) or in a file
    (``path``, read in chunks so that large libraries never sit in memory
    whole); it is compressed here."""

    name: str
    data: bytes | None
    date_time: tuple[int, int, int, int, int, int]
    mode: int = 0o644
    path: str | None = None
    sha256: bytes | None = None  # of the content, when the caller has it: the member's key in a DeflateCache
    reuse: reflate.Blocks | None = None  # the input member this one was patched from, its blocks to keep

    @property
    def size(self) -> int:
        return len(self.data) if self.data is not None else os.path.getsize(self.path)


@dataclass(frozen=True)
class Deflated:
    """A member's content as the archive stores it: compressed bytes (in
    memory, or in a file of a :class:`DeflateCache`), method, CRC-32, size."""

    method: int
    crc: int
    usize: int
    csize: int
    payload: bytes | None = None
    path: str | None = None

    def write_to(self, out: BinaryIO) -> None:
        if self.payload is not None:
            out.write(self.payload)
            return
        with open(self.path, "rb") as f:
            left = self.csize
            while left:
                chunk = f.read(min(left, CHUNK))
                if not chunk:
                    raise OSError(f"{self.path}: the compressed copy is shorter than it was")
                out.write(chunk)
                left -= len(chunk)


class DeflateCache:
    """Compressed members by (sha256 of their content, level), for the
    archives one process writes in a row (a repair of several wheels).

    Deflate is deterministic: the same bytes at the same level (and the same
    pieces, :data:`PIECE`) give the same compressed bytes, so a member met
    again is copied, not compressed again, and each archive is byte for byte
    what it would be written alone.  Compressed copies over :data:`SPILL`
    bytes wait in files of ``directory`` (made on first use, removed by
    :meth:`close`), not in memory.  Once the copies held add up to
    ``max_bytes`` nothing more is added (what is there stays usable): a call
    repairing hundreds of wheels keeps the libraries its first wheels
    grafted, not every wheel's own modules.
    """

    SPILL = 1 << 20
    MAX_IN_MEMORY = 64 << 20  # (the small copies together; past it they are spilled too)
    MAX_BYTES = 1 << 30

    def __init__(self, directory: str | None = None, max_bytes: int | None = None) -> None:
        self._dir = directory
        self._own_dir: str | None = None
        self._entries: dict[tuple[bytes, int], Deflated] = {}
        self._lock = threading.Lock()
        self._held = self._in_memory = 0
        self._max = self.MAX_BYTES if max_bytes is None else max_bytes
        self.hits = 0  # members copied from the cache (for -v and the tests)

    def get(self, sha256: bytes | None, level: int) -> Deflated | None:
        if sha256 is None:
            return None
        with self._lock:
            found = self._entries.get((sha256, level))
            if found is not None:
                self.hits += 1
            return found

    def put(self, sha256: bytes | None, level: int, deflated: Deflated) -> Deflated:
        if sha256 is None:
            return deflated
        with self._lock:
            if self._held + deflated.csize > self._max:
                return deflated  # (full: written from memory, not kept)
            self._held += deflated.csize
            spill = deflated.payload is not None and (len(deflated.payload) > self.SPILL
                                                      or self._in_memory + deflated.csize > self.MAX_IN_MEMORY)
            if deflated.payload is not None and not spill:
                self._in_memory += deflated.csize
        if spill:
            path = None
            try:
                fd, path = tempfile.mkstemp(prefix="deflated-", dir=self._directory())
                with os.fdopen(fd, "wb") as f:
                    f.write(deflated.payload)
            except OSError:  # (TMPDIR full: a cache, not a need; this copy is written from memory)
                if path is not None:  # (no partial copy left for close() to find)
                    try:
                        os.unlink(path)
                    except OSError:
                        pass
                with self._lock:
                    self._held -= deflated.csize
                return deflated
            deflated = Deflated(deflated.method, deflated.crc, deflated.usize, deflated.csize, None, path)
        with self._lock:
            return self._entries.setdefault((sha256, level), deflated)

    def _directory(self) -> str:
        if self._dir is None:
            self._own_dir = self._dir = scratch.work_dir("deflated")
        return self._dir

    def close(self) -> None:
        """Forget every entry and remove the files this cache made."""
        with self._lock:
            self._entries.clear()
            self._held = self._in_memory = 0
        if self._own_dir is not None:
            scratch.remove_work_dir(self._own_dir)
            self._own_dir = self._dir = None


Member = Union[RawMember, NewMember]


@dataclass
class _Prepared:
    name: bytes
    method: int
    crc: int
    csize: int
    usize: int
    dos_time: int
    dos_date: int
    external_attr: int
    flags: int
    payload: Deflated | None  # a NewMember's compressed bytes
    raw: RawMember | None


def _attributes(mode: int) -> int:
    """External attributes of a regular file with permission bits ``mode``
    (the MS-DOS attribute byte left 0)."""
    return ((0o100000 | (mode & 0o777)) << 16) & _U32


def _dos(date_time: tuple[int, ...]) -> tuple[int, int]:
    y, mo, d, h, mi, s = date_time
    y = min(max(y, 1980), 2107)
    return (h << 11) | (mi << 5) | (s // 2), ((y - 1980) << 9) | (mo << 5) | d


CHUNK = 1 << 20
PIECE = 4 << 20  # a large member is deflated in pieces of this size, in parallel


def _read(m: NewMember, off: int, n: int) -> bytes:
    if m.data is not None:
        return m.data[off : off + n]
    with open(m.path, "rb") as f:
        f.seek(off)
        return f.read(n)


def _deflate_piece(m: NewMember, off: int, n: int, last: bool, level: int) -> bytes:
    """Deflate bytes [off, off+n) of a member as one piece of its stream
    (:func:`wheelvet.reflate.deflate_piece`: the pieces concatenate into one
    valid deflate stream, nearly as small as a single-threaded one)."""
    start = max(0, off - reflate.WINDOW)
    window = _read(m, start, off - start) if off else b""
    return reflate.deflate_piece(window, _read(m, off, n), level, last)


def _crc32(data: bytes) -> int:
    return INFLATE_LIBRARY.crc32(data) & _U32  # (ISA-L's where it is: the same CRC, faster)


def _inflate_raw(stream: bytes) -> bytes:
    return INFLATE_LIBRARY.decompress(stream, -15)


def _crc_and_size(m: NewMember) -> tuple[int, int]:
    if m.data is not None:
        return _crc32(m.data), len(m.data)
    crc, size = 0, 0
    with open(m.path, "rb") as f:
        while chunk := f.read(CHUNK):
            crc = INFLATE_LIBRARY.crc32(chunk, crc)
            size += len(chunk)
    return crc & _U32, size


def _reflated(m: NewMember, level: int) -> Deflated | None:
    """``m`` deflated reusing its input's blocks, or None (then it is deflated whole)."""
    data = _read(m, 0, m.size)
    made = reflate.reflate(m.reuse, data, level, check=_inflate_raw)
    if made is None:
        return None
    stream, reused = made
    log.info("%s: %d of its %d bytes kept as the input deflated them", m.name, reused, len(data))
    return Deflated(zipfile.ZIP_DEFLATED, _crc32(data), len(data), len(stream), stream)


def _compress_all(new: list[NewMember], level: int, jobs: int,
                  cache: DeflateCache | None = None, reuse: bool = False) -> dict[int, Deflated]:
    """id(member) -> its Deflated; pieces deflated on ``jobs`` threads, each
    distinct content of the cache once; with ``reuse``, members that carry
    their input's blocks reuse them (those are not cached: what they deflate
    to depends on that input too)."""
    out: dict[int, Deflated] = {}
    todo: list[NewMember] = []
    first: dict[bytes, NewMember] = {}  # the same content twice in one archive: compressed once
    reusing = [m for m in new if reuse and m.reuse is not None and level]
    if reusing:
        if jobs > 1 and len(reusing) > 1:
            with ThreadPoolExecutor(max_workers=jobs) as pool:
                made = list(pool.map(lambda m: _reflated(m, level), reusing))
        else:
            made = [_reflated(m, level) for m in reusing]
        for m, z in zip(reusing, made):
            if z is not None:
                out[id(m)] = z
    for m in new:
        if id(m) in out:
            continue
        found = cache.get(m.sha256, level) if cache is not None else None
        if found is not None:
            out[id(m)] = found
        elif m.sha256 is not None and m.sha256 in first:
            continue  # (filled in below from its twin)
        else:
            if m.sha256 is not None:
                first[m.sha256] = m
            todo.append(m)
    if level == 0:
        for m in todo:
            crc, size = _crc_and_size(m)
            out[id(m)] = Deflated(zipfile.ZIP_STORED, crc, size, size, _read(m, 0, size))
    else:
        sizes = [m.size for m in todo]
        tasks = []  # (member index, offset, length, last): largest members first
        for i in sorted(range(len(todo)), key=lambda i: -sizes[i]):
            offsets = list(range(0, sizes[i], PIECE)) or [0]
            for k, off in enumerate(offsets):
                tasks.append((i, off, min(PIECE, sizes[i] - off), k == len(offsets) - 1))
        if jobs > 1 and sum(sizes) > CHUNK:
            with ThreadPoolExecutor(max_workers=jobs) as pool:
                futures = [pool.submit(_deflate_piece, todo[i], off, n, last, level) for i, off, n, last in tasks]
                crcs = [_crc_and_size(m) for m in todo]  # meanwhile: zlib releases the GIL
                pieces = [f.result() for f in futures]
        else:
            pieces = [_deflate_piece(todo[i], off, n, last, level) for i, off, n, last in tasks]
            crcs = [_crc_and_size(m) for m in todo]
        by_member: dict[int, list[bytes]] = {}
        for (i, _off, _n, _last), piece in zip(tasks, pieces):
            by_member.setdefault(i, []).append(piece)
        for i, m in enumerate(todo):
            crc, size = crcs[i]
            payload = b"".join(by_member[i])
            out[id(m)] = Deflated(zipfile.ZIP_DEFLATED, crc, size, len(payload), payload)
    for m in todo:
        if cache is not None and not (reuse and m.reuse is not None):
            out[id(m)] = cache.put(m.sha256, level, out[id(m)])
    for m in new:
        if id(m) not in out:  # a twin of a member compressed above
            out[id(m)] = out[id(first[m.sha256])]
    return out


def _raw_data_offset(src: BinaryIO, info: zipfile.ZipInfo) -> int:
    def read_at(offset: int, n: int) -> bytes:
        src.seek(offset)
        return src.read(n)

    try:
        return data_offset(read_at, info)
    except MemberProblem as exc:
        raise zipfile.BadZipFile(f"bad local header for {info.filename}: {exc}") from None


def write_zip(out: BinaryIO, members: Sequence[Member], *, level: int = -1, jobs: int | None = None,
              cache: DeflateCache | None = None) -> None:
    """Write ``members`` (in the given order) as a zip archive to ``out``.
    With a ``cache``, a new member whose ``sha256`` it holds at this level is
    copied from it, and the others are added to it.  At the default level
    (``level`` < 0), members carrying ``reuse`` keep their input's unchanged
    deflate blocks; a level given outright deflates every new member anew."""
    reuse = level < 0
    level = DEFAULT_LEVEL if level < 0 else level
    new = [m for m in members if isinstance(m, NewMember)]
    compressed = _compress_all(new, level, jobs or min(2, os.cpu_count() or 1), cache, reuse)

    prepared = []
    for m in members:
        name = m.name.encode("utf-8")
        flags = _FLAG_UTF8 if not m.name.isascii() else 0
        t, d = _dos(m.date_time)
        if isinstance(m, RawMember):
            info = m.info
            if info.flag_bits & 0x1:
                raise zipfile.BadZipFile(f"{info.filename}: encrypted member")
            prepared.append(_Prepared(name, info.compress_type, info.CRC, info.compress_size, info.file_size,
                                      t, d, _attributes(m.mode), flags, None, m))
        else:
            z = compressed[id(m)]
            prepared.append(_Prepared(name, z.method, z.crc, z.csize, z.usize, t, d, _attributes(m.mode), flags,
                                      z, None))

    offsets = []
    pos = 0
    for p in prepared:
        offsets.append(pos)
        zip64 = p.csize >= _U32 or p.usize >= _U32
        extra = struct.pack("<HHQQ", 1, 16, p.usize, p.csize) if zip64 else b""
        header = _LOCAL + struct.pack(
            "<HHHHHIIIHH", 45 if zip64 else 20, p.flags, p.method, p.dos_time, p.dos_date, p.crc,
            _U32 if zip64 else p.csize, _U32 if zip64 else p.usize, len(p.name), len(extra))
        out.write(header + p.name + extra)
        pos += len(header) + len(p.name) + len(extra)
        if p.payload is not None:
            p.payload.write_to(out)
        else:
            _copy_raw(p.raw, out)
        pos += p.csize

    cd_start = pos
    for p, off in zip(prepared, offsets):
        fields = []
        if p.usize >= _U32:
            fields.append(p.usize)
        if p.csize >= _U32:
            fields.append(p.csize)
        if off >= _U32:
            fields.append(off)
        extra = struct.pack(f"<HH{len(fields)}Q", 1, 8 * len(fields), *fields) if fields else b""
        entry = _CENTRAL + struct.pack(
            "<HHHHHHIIIHHHHHII", (_UNIX << 8) | 45 if fields else (_UNIX << 8) | 20, 45 if fields else 20,
            p.flags, p.method, p.dos_time, p.dos_date, p.crc,
            _U32 if p.csize >= _U32 else p.csize, _U32 if p.usize >= _U32 else p.usize,
            len(p.name), len(extra), 0, 0, 0, p.external_attr, _U32 if off >= _U32 else off)
        out.write(entry + p.name + extra)
        pos += len(entry) + len(p.name) + len(extra)
    cd_size = pos - cd_start
    count = len(prepared)
    if count >= _U16 or cd_start >= _U32 or cd_size >= _U32:
        out.write(_EOCD64 + struct.pack("<QHHIIQQQQ", 44, 45, 45, 0, 0, count, count, cd_size, cd_start))
        out.write(_EOCD64_LOC + struct.pack("<IQI", 0, pos, 1))
    out.write(_EOCD + struct.pack("<HHHHIIH", 0, 0, min(count, _U16), min(count, _U16),
                                  min(cd_size, _U32), min(cd_start, _U32), 0))


def _copy_raw(m: RawMember, out: BinaryIO) -> None:
    src = m.source.fp
    start = _raw_data_offset(src, m.info)
    src.seek(start)
    left = m.info.compress_size
    while left:
        chunk = src.read(min(left, 1 << 20))
        if not chunk:
            raise zipfile.BadZipFile(f"{m.info.filename}: archive ends inside the member")
        out.write(chunk)
        left -= len(chunk)
