"""Reusing an input member's deflate blocks for its patched copy (wheelvet.reflate).

The stream reflate builds is checked here by inflating it with zlib, *not*
through reflate's own check (which is given a stand-in that accepts
anything): the construction must be right by itself, the check is only a
guard."""

from __future__ import annotations

import random
import zlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from support import library_like
from wheelvet import reflate

pytestmark = pytest.mark.skipif(not reflate.available(), reason="libz.so.1 cannot be loaded here")


def deflate(data: bytes, level: int = 6) -> bytes:
    c = zlib.compressobj(level, zlib.DEFLATED, -15)
    return c.compress(data) + c.flush()


def inflate(stream: bytes) -> bytes:
    d = zlib.decompressobj(-15)
    out = d.decompress(stream) + d.flush()
    assert d.eof, "the stream has no final block"
    assert not d.unused_data, "bytes after the final block"
    return out


def patch(data: bytes, edits) -> bytes:
    """``data`` with (offset, new bytes) overwritten, and the tail appended (as patchelf does)."""
    out = bytearray(data)
    for off, new in edits:
        out[off:off + len(new)] = new
    return bytes(out)


def unchecked(blocks, patched, level=6):
    """reflate with its check made to pass: what it built, checked here instead."""
    made = reflate.reflate(blocks, patched, level, check=lambda stream: patched)
    return made and made[0]


@pytest.fixture(scope="module")
def original():
    data = library_like(3_000_000)
    stream = deflate(data)
    blocks = reflate.inflate_blocks(stream, len(data))
    assert blocks is not None and blocks.data == data
    return data, stream, blocks


def test_blocks_are_found_where_zlib_starts_them(original):
    data, stream, blocks = original
    assert len(blocks.starts) > 20 and blocks.starts[0] == (0, 0)
    assert blocks.end_bit <= 8 * len(stream)
    # any stored blocks among them (the incompressible stretches): the case a bit shift cannot move
    assert any(reflate._stored(stream, bit) for bit, _ in blocks.starts)
    # each block found is one: its bits alone (after the 32 KiB before it, and
    # followed by an empty final block) inflate to its bytes
    ends = [at for _, at in blocks.starts[1:]] + [len(data)]
    nexts = [bit for bit, _ in blocks.starts[1:]] + [blocks.end_bit]
    for (bit, at), end, next_bit in zip(blocks.starts, ends, nexts):
        if reflate._stored(stream, bit):
            continue
        bits = reflate._Bits()
        bits.copy(stream, bit, next_bit)
        if next_bit != blocks.end_bit:
            bits.bits(0b011, 3)  # BFINAL 1, BTYPE 01 (fixed codes) ...
            bits.bits(0, 7)  # ... and its end-of-block code at once
        d = zlib.decompressobj(-15, zdict=data[max(0, at - reflate.WINDOW):at] or b"\0")
        assert d.decompress(bits.finish()) == data[at:end]
        assert d.eof


def test_a_patch_like_patchelfs_reuses_nearly_every_block(original):
    data, stream, blocks = original
    patched = patch(data, [(0, b"\x7fELF-new-headers" * 20), (1_400_000, b"new .dynamic" * 40)])
    patched += b"appended segment " * 3000
    out = unchecked(blocks, patched)
    assert out is not None
    assert inflate(out) == patched
    kept = sum(reflate.reusable(blocks, patched))
    huffman = sum(not reflate._stored(stream, bit) for bit, _ in blocks.starts)
    assert kept >= huffman - 6
    # about the input's size: the kept blocks are its bits, the rest is small
    assert len(out) < len(stream) + 40_000


def test_a_shift_that_is_not_a_whole_byte_leaves_stored_blocks_to_be_deflated_again(original):
    """A fresh first block of another length moves every kept block by a few
    bits; a stored block's data must start on a byte, so it is never kept."""
    data, stream, blocks = original
    patched = patch(data, [(10, b"x" * 7)])
    keep = reflate.reusable(blocks, patched)
    for (bit, _), kept in zip(blocks.starts, keep):
        if reflate._stored(stream, bit):
            assert not kept
    out = unchecked(blocks, patched)
    assert inflate(out) == patched


def test_the_same_bytes_give_the_input_stream_itself(original):
    data, stream, blocks = original
    out = unchecked(blocks, data)
    assert inflate(out) == data
    # every block but the stored ones kept, so the stream is nearly the input's
    assert len(out) <= len(stream) + 2000


def test_a_shorter_patched_copy(original):
    data, stream, blocks = original
    patched = data[:2_000_000]
    out = unchecked(blocks, patched)
    assert out is not None and inflate(out) == patched


def test_too_little_left_to_reuse_gives_none(original):
    data, stream, blocks = original
    patched = bytes(b ^ 1 for b in data[:200_000]) + data[200_000:]  # (most blocks still match)
    assert unchecked(blocks, patched) is not None
    scrambled = bytes(reversed(data))
    assert unchecked(blocks, scrambled) is None
    assert unchecked(blocks, b"") is None


def test_a_check_that_fails_gives_none_and_a_warning(original, caplog):
    data, stream, blocks = original
    patched = patch(data, [(0, b"changed")])
    assert reflate.reflate(blocks, patched, 6, check=lambda s: b"other bytes") is None
    assert reflate.reflate(blocks, patched, 6, check=lambda s: zlib.decompress(b"not deflate")) is None
    assert "deflating it whole" in caplog.text
    # and the real check accepts what is right
    got, reused = reflate.reflate(blocks, patched, 6, check=inflate)
    assert inflate(got) == patched and len(patched) // 2 < reused < len(patched)


def test_the_output_is_a_function_of_its_inputs(original):
    data, stream, blocks = original
    patched = patch(data, [(5000, b"abc" * 100)]) + b"tail" * 100
    again = reflate.inflate_blocks(stream, len(data))
    assert unchecked(blocks, patched) == unchecked(again, patched)


def test_an_unsound_stream_gives_none():
    data = library_like(200_000, seed=3)
    stream = deflate(data)
    assert reflate.inflate_blocks(stream, len(data) + 1) is None  # (shorter than declared)
    assert reflate.inflate_blocks(stream, len(data) - 1) is None  # (longer)
    assert reflate.inflate_blocks(stream[: len(stream) // 2], len(data)) is None  # (cut)
    assert reflate.inflate_blocks(b"\xff" * 100, 1000) is None  # (not deflate)
    assert reflate.inflate_blocks(stream, reflate.MAX_SIZE + 1) is None


def test_without_zlib_nothing_is_reused(monkeypatch):
    monkeypatch.setattr(reflate, "_ZLIB", None)
    assert not reflate.available()
    data = library_like(100_000)
    assert reflate.inflate_blocks(deflate(data), len(data)) is None


@st.composite
def patched_copies(draw):
    seed = draw(st.integers(0, 50))
    size = draw(st.integers(40_000, 400_000))
    data = library_like(size, seed)
    edits = []
    for _ in range(draw(st.integers(0, 4))):
        off = draw(st.integers(0, size - 1))
        edits.append((off, draw(st.binary(min_size=1, max_size=3000))))
    tail = draw(st.sampled_from([b"", b"tail", b"\x00" * 5000, random.Random(seed).randbytes(9000)]))
    cut = draw(st.sampled_from([None, size // 2, size - 1]))
    patched = patch(data, edits)[:cut] + tail
    level = draw(st.sampled_from([1, 6, 9]))
    return data, patched, level


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(patched_copies())
def test_any_patched_copy_inflates_to_itself_or_is_deflated_whole(case):
    data, patched, level = case
    stream = deflate(data, level)
    blocks = reflate.inflate_blocks(stream, len(data))
    assert blocks is not None and blocks.data == data
    out = unchecked(blocks, patched)
    if out is not None:
        assert inflate(out) == patched
