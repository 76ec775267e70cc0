"""A patched member deflated by reusing its input's deflate blocks.

patchelf changes a few pages of a library (the headers, the dynamic string
table, ``.dynamic``, a segment it appends) and leaves the rest where it was.
A deflate stream is a chain of blocks, and a block inflates to the same bytes
wherever it stands if the 32 KiB before it (the window its back-references
reach into) are the same.  So the input member's compressed stream is read
once with zlib stopping at every block boundary (``Z_BLOCK``, through
``ctypes``: Python's ``zlib`` module does not offer it), and the patched copy
is written as:

* each run of input blocks whose bytes, and the 32 KiB before them, the patch
  left where they were: copied bit for bit (a block need not start on a byte;
  the bits are shifted into place);
* everything else: deflated here at the default level, primed with the 32 KiB
  before it, ending byte-aligned (a sync flush; after a copied run, an empty
  stored block aligns the stream first);

and the result is inflated again and compared with the patched bytes before
it is used.  Anything that does not fit (zlib not loadable, a stored or an
oversized member, a stream with too few boundaries, a check that fails) gives
``None``: the caller deflates the member as a whole.  The output is a function
of (input stream, patched bytes, level) only, so a wheel repaired alone or in a
wheelhouse gets the same bytes.
"""

from __future__ import annotations

import ctypes
import logging
import zlib
from dataclasses import dataclass

log = logging.getLogger(__name__)

WINDOW = 32 << 10  # deflate's history window: the farthest a back-reference reaches
MAX_SIZE = 256 << 20  # members larger than this (inflated) are deflated as a whole
MIN_REUSED = 0.5  # below this share of the bytes reused, deflating as a whole is as good

_Z_OK, _Z_STREAM_END, _Z_BLOCK = 0, 1, 5


class _ZStream(ctypes.Structure):
    _fields_ = [
        ("next_in", ctypes.c_void_p), ("avail_in", ctypes.c_uint), ("total_in", ctypes.c_ulong),
        ("next_out", ctypes.c_void_p), ("avail_out", ctypes.c_uint), ("total_out", ctypes.c_ulong),
        ("msg", ctypes.c_char_p), ("state", ctypes.c_void_p),
        ("zalloc", ctypes.c_void_p), ("zfree", ctypes.c_void_p), ("opaque", ctypes.c_void_p),
        ("data_type", ctypes.c_int), ("adler", ctypes.c_ulong), ("reserved", ctypes.c_ulong),
    ]


def _load_zlib():
    try:
        libc = ctypes.CDLL(None)
        libc.memcmp.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t]
        libc.memcmp.restype = ctypes.c_int
        lib = ctypes.CDLL("libz.so.1")
        lib.memcmp = libc.memcmp
        lib.zlibVersion.restype = ctypes.c_char_p
        lib.inflateInit2_.argtypes = [ctypes.POINTER(_ZStream), ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.inflate.argtypes = [ctypes.POINTER(_ZStream), ctypes.c_int]
        lib.inflateEnd.argtypes = [ctypes.POINTER(_ZStream)]
        return lib
    except (OSError, AttributeError):
        return None


_ZLIB = _load_zlib()


def available() -> bool:
    return _ZLIB is not None


@dataclass(frozen=True)
class Blocks:
    """A raw deflate stream, what it inflates to, and where its blocks start:
    ``starts[i]`` is (bit offset in ``stream``, byte offset in ``data``) of
    block i; the last block (the final one) ends at (``8*len(stream)`` or
    less, ``len(data)``)."""

    stream: bytes
    data: bytes | bytearray  # (a bytearray zlib wrote into; never changed)
    starts: tuple[tuple[int, int], ...]
    end_bit: int


def inflate_blocks(stream: bytes, size: int) -> Blocks | None:
    """Inflate the raw deflate ``stream`` (``size`` bytes once inflated),
    noting where each block starts; None if zlib cannot be loaded or the
    stream is not sound (the caller reads the member its usual way, which
    says what is wrong)."""
    if _ZLIB is None or size > MAX_SIZE or len(stream) >= 1 << 32:
        return None
    stream = bytes(stream)
    data = bytearray(size + 1)  # (one spare byte: a stream longer than declared is caught)
    z = _ZStream()
    if _ZLIB.inflateInit2_(ctypes.byref(z), -15, _ZLIB.zlibVersion(), ctypes.sizeof(_ZStream)) != _Z_OK:
        return None
    starts = [(0, 0)]
    out = (ctypes.c_char * len(data)).from_buffer(data)
    try:
        z.next_in, z.avail_in = _address(stream), len(stream)  # (zlib only reads it)
        z.next_out, z.avail_out = ctypes.addressof(out), size + 1
        while True:
            rc = _ZLIB.inflate(ctypes.byref(z), _Z_BLOCK)
            if rc == _Z_STREAM_END:
                break
            if rc != _Z_OK:
                return None
            if not z.data_type & 128:  # stopped for want of input or of room: not a sound stream
                return None
            starts.append((z.total_in * 8 - (z.data_type & 63), z.total_out))
        if z.total_out != size:
            return None
        end_bit = z.total_in * 8
    finally:
        _ZLIB.inflateEnd(ctypes.byref(z))
        del out  # (the buffer is the bytearray's again: it may be resized)
    del data[size:]
    if starts[-1][1] == size and len(starts) > 1:
        starts.pop()  # (no block starts at the very end)
    return Blocks(stream, data, tuple(starts), end_bit)


def _address(data: bytes | bytearray) -> int:
    if isinstance(data, bytearray):
        return ctypes.addressof(ctypes.c_char.from_buffer(data))
    return ctypes.cast(ctypes.c_char_p(data), ctypes.c_void_p).value


def _same(a: bytes, b: bytes, lo: int, hi: int) -> bool:
    """a[lo:hi] == b[lo:hi], without copying either."""
    if hi <= lo:
        return True
    return _ZLIB.memcmp(_address(a) + lo, _address(b) + lo, hi - lo) == 0


class _Bits:
    """A deflate stream being written: whole bytes, and up to 7 bits pending."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.acc = 0
        self.n = 0

    def bits(self, value: int, n: int) -> None:
        self.acc |= value << self.n
        self.n += n
        whole = self.n >> 3
        if whole:
            self.parts.append((self.acc & ((1 << (whole << 3)) - 1)).to_bytes(whole, "little"))
            self.acc >>= whole << 3
            self.n &= 7

    def copy(self, stream: bytes, start: int, end: int) -> None:
        """Bits [start, end) of ``stream`` (deflate's order: from each byte's
        least significant bit)."""
        first, last = start >> 3, (end + 7) >> 3
        if not start & 7 and not self.n and not end & 7:
            self.parts.append(stream[first:last])
            return
        if end - start < 64:
            value = int.from_bytes(stream[first:last], "little") >> (start & 7)
            self.bits(value & ((1 << (end - start)) - 1), end - start)
            return
        # One shift of the whole run puts its first bit after the pending ones;
        # the bits past `end` land in the last byte only, cut off there.
        chunk = bytearray(stream[first:last])
        chunk[0] &= 0xFF ^ ((1 << (start & 7)) - 1)
        value = int.from_bytes(chunk, "little")
        shift = self.n - (start & 7)
        value = value << shift if shift >= 0 else value >> -shift
        value |= self.acc
        total = self.n + end - start
        raw = value.to_bytes((total >> 3) + 2, "little")
        self.parts.append(raw[:total >> 3])
        self.n = total & 7
        self.acc = raw[total >> 3] & ((1 << self.n) - 1)

    def align(self) -> None:
        """End on a byte: an empty stored block (its 3-bit header, padding,
        LEN 0 and NLEN 0xffff) if bits are pending."""
        if self.n:
            self.bits(0, 3)
            self.bits(0, (-self.n) & 7)
            self.parts.append(b"\x00\x00\xff\xff")

    def raw(self, data: bytes) -> None:
        assert not self.n
        self.parts.append(data)

    def finish(self) -> bytes:
        if self.n:
            self.bits(0, (-self.n) & 7)
        return b"".join(self.parts)


def deflate_piece(window: bytes, data: bytes, level: int, last: bool) -> bytes:
    """``data`` deflated as one piece of a longer stream, as pigz does: primed
    with ``window`` (the up to 32 KiB before it, which the inflater holds by
    then) and ended with a sync flush (a byte-aligned, non-final block), or
    as the final block where ``last``; pieces so made concatenate into one
    valid deflate stream."""
    if window:
        c = zlib.compressobj(level, zlib.DEFLATED, -15, zdict=window)
    else:
        c = zlib.compressobj(level, zlib.DEFLATED, -15)
    return c.compress(data) + c.flush(zlib.Z_FINISH if last else zlib.Z_SYNC_FLUSH)


def _fresh(patched: bytes, start: int, end: int, level: int, last: bool) -> bytes:
    return deflate_piece(patched[max(0, start - WINDOW):start], patched[start:end], level, last)


def _ends(blocks: Blocks) -> list[int]:
    """Where each block of ``blocks`` ends in its inflated bytes."""
    return [at for _bit, at in blocks.starts[1:]] + [len(blocks.data)]


def _stored(stream: bytes, bit: int) -> bool:
    """Whether the block whose header starts at ``bit`` is a stored one (BTYPE 00)."""
    header = (int.from_bytes(stream[bit >> 3:(bit >> 3) + 2], "little") >> (bit & 7)) & 7
    return header >> 1 == 0


def reusable(blocks: Blocks, patched: bytes) -> list[bool]:
    """For each block of ``blocks``: whether it inflates to the same bytes at
    the same place of ``patched`` (its bytes and the window before it are
    unchanged).  The final block only where ``patched`` ends where it does.
    Never a stored block: its data starts on the byte after its header, so
    it cannot be shifted by a few bits (it is deflated again, as is only
    fair: it is what did not compress)."""
    o, p = blocks.data, patched
    n = len(blocks.starts)
    out = []
    for i, ((bit, start), end) in enumerate(zip(blocks.starts, _ends(blocks))):
        final = i + 1 == n
        if end > len(p) or (final and len(p) != len(o)) or _stored(blocks.stream, bit):
            out.append(False)
            continue
        out.append(_same(o, p, max(0, start - WINDOW), end))
    return out


def reflate(blocks: Blocks, patched: bytes, level: int, check) -> tuple[bytes, int] | None:
    """``patched`` as a raw deflate stream that reuses the blocks of
    ``blocks`` it can (see the module's docstring), and how many of its bytes
    come from reused blocks; ``check(stream)`` must return the bytes the
    stream inflates to.  None where too little can be reused, or the result
    does not inflate to ``patched``."""
    keep = reusable(blocks, patched)
    starts = blocks.starts
    n = len(starts)
    ends = _ends(blocks)
    reused = sum(ends[i] - starts[i][1] for i in range(n) if keep[i])
    if not patched or reused < MIN_REUSED * len(patched):
        return None
    out = _Bits()
    pos = 0  # bytes of `patched` written so far
    done = False  # the final block is written
    i = 0
    while i < n:
        if not keep[i]:
            i += 1
            continue
        j = i
        while j < n and keep[j]:
            j += 1
        first_bit, start = starts[i]
        end_bit = starts[j][0] if j < n else blocks.end_bit
        if start > pos:
            out.align()
            out.raw(_fresh(patched, pos, start, level, last=False))
        out.copy(blocks.stream, first_bit, end_bit)
        pos = ends[j - 1]
        done = j == n  # (the final block is kept only where it ends the patched bytes too)
        i = j
    if not done:
        out.align()
        out.raw(_fresh(patched, pos, len(patched), level, last=True))
    stream = out.finish()
    try:
        ok = check(stream) == patched
    except Exception as exc:  # (any failure to inflate: the stream is not used)
        log.warning("reusing the input's deflate blocks failed its check (%s); deflating it whole", exc)
        return None
    if not ok:
        log.warning("reusing the input's deflate blocks gave other bytes; deflating it whole")
        return None
    return stream, reused


__all__ = ["WINDOW", "Blocks", "available", "deflate_piece", "inflate_blocks", "reflate", "reusable"]
