"""The zip writer: raw copies stay byte-identical, output is deterministic and readable."""

from __future__ import annotations

import io
import os
import zipfile

from wheelvet.zipout import NewMember, RawMember, write_zip

T = (2020, 1, 2, 3, 4, 6)


def _source(tmp_path):
    src = tmp_path / "src.zip"
    with zipfile.ZipFile(src, "w") as zf:
        zf.writestr(zipfile.ZipInfo("stored.txt", T), b"plain " * 100, compress_type=zipfile.ZIP_STORED)
        zf.writestr(zipfile.ZipInfo("deflated.bin", T), os.urandom(1000) + b"\0" * 50000, compress_type=zipfile.ZIP_DEFLATED)
        zf.writestr(zipfile.ZipInfo("dir/\u00fcnicode.txt", T), "h\u00e9llo".encode(), compress_type=zipfile.ZIP_DEFLATED)
    return src


def test_raw_copies_keep_their_compressed_bytes(tmp_path):
    src = _source(tmp_path)
    big = tmp_path / "big.bin"
    big.write_bytes(b"abc" * 500_000)
    with zipfile.ZipFile(src) as zf:
        members = [RawMember(i.filename, zf, i, i.date_time) for i in zf.infolist()]
        members.append(NewMember("new.txt", b"fresh", T, mode=0o755))
        members.append(NewMember("from-file.bin", None, T, path=str(big)))
        out = io.BytesIO()
        write_zip(out, members, level=9)
        originals = {i.filename: (i.compress_type, i.compress_size, i.CRC, zf.read(i)) for i in zf.infolist()}
    with zipfile.ZipFile(io.BytesIO(out.getvalue())) as back:
        assert back.testzip() is None
        for name, (method, csize, crc, data) in originals.items():
            info = back.getinfo(name)
            assert (info.compress_type, info.compress_size, info.CRC) == (method, csize, crc)
            assert back.read(name) == data
        assert back.read("new.txt") == b"fresh" and (back.getinfo("new.txt").external_attr >> 16) & 0o777 == 0o755
        assert back.read("from-file.bin") == big.read_bytes()
        assert back.getinfo("from-file.bin").compress_size < 100_000
        assert [i.filename for i in back.infolist()] == [m.name for m in members]


def test_deterministic(tmp_path):
    src = _source(tmp_path)
    outs = []
    for _ in range(2):
        with zipfile.ZipFile(src) as zf:
            buf = io.BytesIO()
            write_zip(buf, [RawMember(i.filename, zf, i, T) for i in zf.infolist()] + [NewMember("n", b"x" * 3_000_000, T)])
            outs.append(buf.getvalue())
    assert outs[0] == outs[1]


def test_level_zero_stores(tmp_path):
    buf = io.BytesIO()
    write_zip(buf, [NewMember("a", b"aaaa" * 1000, T)], level=0)
    with zipfile.ZipFile(buf) as zf:
        assert zf.getinfo("a").compress_type == zipfile.ZIP_STORED and zf.read("a") == b"aaaa" * 1000


def test_more_than_65535_entries_use_zip64_records():
    members = [NewMember(f"f{i:06d}", b"", T) for i in range(70_000)]
    buf = io.BytesIO()
    write_zip(buf, members, level=0)
    data = buf.getvalue()
    assert b"PK\x06\x06" in data[-200:]  # zip64 end of central directory
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        names = zf.namelist()
    assert len(names) == 70_000 and names[-1] == "f069999"


def test_large_members_deflate_in_pieces_into_one_valid_stream(tmp_path, monkeypatch):
    import random

    from wheelvet import zipout

    monkeypatch.setattr(zipout, "PIECE", 64 << 10)  # many pieces
    rnd = random.Random(5)
    words = [bytes(rnd.choice(b"abcdefgh") for _ in range(rnd.randint(2, 9))) for _ in range(300)]
    data = b" ".join(rnd.choice(words) for _ in range(200_000))  # ~1 MB, compressible, with long-range repeats
    f = tmp_path / "big"
    f.write_bytes(data)
    buf = io.BytesIO()
    write_zip(buf, [NewMember("big", None, T, path=str(f))], level=6, jobs=2)
    with zipfile.ZipFile(buf) as zf:
        info = zf.getinfo("big")
        assert zf.read("big") == data and zf.testzip() is None
    import zlib

    single = zlib.compressobj(6, zlib.DEFLATED, -15)
    whole = len(single.compress(data) + single.flush())
    assert info.compress_size <= whole * 1.01  # pieces primed with their window cost almost nothing


def test_a_deflate_cache_gives_the_same_archives_compressing_each_content_once(tmp_path, monkeypatch):
    import hashlib

    from wheelvet import zipout
    from wheelvet.zipout import DeflateCache

    shared = os.urandom(1_500_000) + b"shared library " * 200_000  # ~4.5 MB, 1.5 MB deflated: spilled to a file
    big = tmp_path / "lib.so"
    big.write_bytes(shared)
    digest = hashlib.sha256(shared).digest()

    def archives(cache):
        outs = []
        for k in range(3):
            own = f"module {k}".encode() * 1000
            members = [NewMember("pkg.libs/lib.so", None, T, path=str(big), sha256=digest),
                       NewMember(f"pkg/m{k}.so", own, T, sha256=hashlib.sha256(own).digest()),
                       NewMember("again/lib.so", shared, T, sha256=digest)]  # the same content twice in one archive
            buf = io.BytesIO()
            write_zip(buf, members, level=6, jobs=2, cache=cache)
            outs.append(buf.getvalue())
        return outs

    alone = archives(None)
    deflated = []
    real = zipout._deflate_piece
    monkeypatch.setattr(zipout, "_deflate_piece", lambda m, *a: deflated.append(m.name) or real(m, *a))
    cache = DeflateCache()
    assert archives(cache) == alone  # byte for byte
    assert deflated.count("pkg.libs/lib.so") + deflated.count("again/lib.so") == -(-len(shared) // zipout.PIECE)
    assert cache.hits == 4  # both copies, in the second and third archives
    spilled = cache._directory()
    assert os.listdir(spilled)  # the large compressed copy waited in a file
    cache.close()
    assert not os.path.exists(spilled)
    with zipfile.ZipFile(io.BytesIO(alone[2])) as zf:
        assert zf.read("pkg.libs/lib.so") == zf.read("again/lib.so") == shared and zf.testzip() is None


def test_a_full_deflate_cache_keeps_nothing_more_and_writes_the_same_bytes(tmp_path):
    import hashlib

    from wheelvet.zipout import DeflateCache

    contents = [os.urandom(50_000) + b"x" * 10_000 for _ in range(3)]

    def archive(cache):
        members = [NewMember(f"m{k}", data, T, sha256=hashlib.sha256(data).digest()) for k, data in enumerate(contents)]
        buf = io.BytesIO()
        write_zip(buf, members, cache=cache)
        return buf.getvalue()

    alone = archive(None)
    cache = DeflateCache(max_bytes=60_000)  # room for one member's compressed copy, not two
    assert archive(cache) == alone and archive(cache) == alone
    assert cache.hits == 1  # the one kept, met again in the second archive
    cache.close()
