"""Work and memory bounded by the input (issue 15, item 4).

Each class of crafted input from ``tests/hostile.py`` is run at several
scales.  The promises checked here hold without a clock (times are the
benchmark's job, ``benchmarks/bench_hostile.py``): results stay right up to
each limit; past it, every command refuses with one line naming the limit;
and where work is counted (the resolver's steps) it grows as the input
does, not as a product of its parts.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import hostile as H
from support import clean_env, craft_elf, write_wheel
from wheelvet import elf, resolve, wheelfile
from wheelvet.audit import AuditOptions, analyze
from wheelvet.elf import parse_elf, read_elf_stream
from wheelvet.errors import InvalidElf, InvalidWheel

TAG = "cp311-cp311-linux_x86_64"
SO = "pkg/m.cpython-311-x86_64-linux-gnu.so"


def _stream(data: bytes):
    import io

    return read_elf_stream(lambda: io.BytesIO(data), len(data), "x.so")


def refused_by_every_command(tmp_path: Path, files: dict[str, bytes], needle: str) -> None:
    from test_bad_input import run_all

    run_all(write_wheel(tmp_path / f"pkg-1.0-{TAG}.whl", files), tmp_path, needle)


# ---------------------------------------------------------------- GNU hash chains


@pytest.mark.parametrize("big_endian", [False, True], ids=["little", "big"])
@pytest.mark.parametrize("chains", [[1], [2], [3, 0, 5], [0, 0, 1], [7, 0, 0], [1000, 1, 2], [1, 4095], [4096],
                                    [5, 5, 5, 5, 5, 5], [0, 1, 0, 1, 0, 1]])
def test_gnu_hash_chains_are_counted_right(chains, big_endian):
    """The chain's end is searched in bulk (a byte taken out of every word):
    on sound tables of either byte order, every symbol is counted."""
    data, total = H.gnu_hash_table(chains, big_endian=big_endian)
    facts = parse_elf(data)
    assert len(facts.imports) == total - 1
    assert _stream(data) == facts


@pytest.mark.parametrize("zeros", [4096, 1 << 20, 3 << 20])
def test_gnu_hash_chains_that_never_end(zeros):
    """A chain of zero words runs on past the zeros (to the first odd word of
    the tables after them, or to the end of the file): refused, after one
    pass in C over the bytes (once a Python step per word)."""
    refused = "GNU hash chain does not terminate|dynamic symbol table .* lies outside the file"
    with pytest.raises(InvalidElf, match=refused):
        parse_elf(H.gnu_hash_chain(zeros))
    with pytest.raises(InvalidElf, match=refused):
        _stream(H.gnu_hash_chain(zeros))


def test_a_chain_running_to_the_end_of_the_file():
    e = H.Elf()
    e.tables["dynsym"] = bytes(48)
    e.dynamic += [(H.DT["SYMTAB"], "dynsym"), (H.DT["SYMENT"], 24), (H.DT["GNU_HASH"], "gnu_hash")]
    e.tables["gnu_hash"] = b"\0" * 8  # placeholder, rewritten below to be the file's last table
    data = bytearray(e.build())
    import struct

    dyn_end = len(data)
    data += struct.pack("<IIII", 1, 1, 1, 6) + b"\0" * 8 + struct.pack("<I", 1) + bytes(1 << 16)
    at = data.find(struct.pack("<qQ", H.DT["GNU_HASH"], 0)[:8])
    struct.pack_into("<Q", data, at + 8, dyn_end)  # DT_GNU_HASH -> the table after the dynamic segment
    struct.pack_into("<QQ", data, 64 + 32, len(data), len(data))  # the loadable segment covers it
    with pytest.raises(InvalidElf, match="GNU hash chain does not terminate"):
        parse_elf(bytes(data))


def test_a_chain_longer_than_any_symbol_table_is_refused(monkeypatch):
    monkeypatch.setattr(elf, "MAX_SYMBOLS", 1000)
    with pytest.raises(InvalidElf, match="GNU hash chain does not terminate"):
        parse_elf(H.gnu_hash_chain(8000))


# ---------------------------------------------------------------- notes


@pytest.mark.parametrize("segments,size", [(1, (1 << 20) + 1), (2, 600_000), (2000, 1 << 20), (65000, 64), (100, 20_000)])
def test_note_segments_past_the_limit_are_refused(segments, size):
    with pytest.raises(InvalidElf, match=r"its note segments add up to \d+ bytes, more than the 1048576 wheelvet reads"):
        parse_elf(H.many_notes(segments, size))


@pytest.mark.parametrize("segments,size", [(1, 1 << 20), (16, 4096), (1000, 12)])
def test_notes_up_to_the_limit_are_read(segments, size):
    facts = parse_elf(H.many_notes(segments, size))
    assert facts.isa_level is None and facts.init_functions == {"PyInit_m"}


def test_an_isa_note_at_the_end_of_a_large_note_segment_is_found():
    import struct

    desc = struct.pack("<III", 0xC0008002, 4, 4) + b"\0" * 4  # x86-64-v3
    note = struct.pack("<III", 4, len(desc), 5) + b"GNU\0" + desc
    e = H.Elf()
    e.tables["notes"] = bytes(12 * 80_000) + note  # 80,000 empty notes first
    e.phdrs.append((H.PT_NOTE, "notes", None))
    assert parse_elf(H.extension(e).build()).isa_level == "x86_64_v3"


def test_huge_note_is_refused_by_every_command(tmp_path):
    refused_by_every_command(tmp_path, {SO: H.huge_note(4 << 20)}, f"{SO}: its note segments add up to 4194304 bytes")


# ---------------------------------------------------------------- version needs


@pytest.mark.parametrize("entries,versions", [(2, 1), (2, 2), (3, 50), (500, 500), (65536, 4)])
def test_version_needs_sharing_auxiliary_entries_are_refused(entries, versions):
    with pytest.raises(InvalidElf, match="version needs share auxiliary entries"):
        parse_elf(H.shared_version_needs(entries, versions))


@pytest.mark.parametrize("libraries,versions", [(1, 1), (10, 20), (300, 3)])
def test_many_version_needs_of_their_own_are_read(libraries, versions):
    imports = tuple((f"f{i}_{j}", f"V{j}", f"lib{i}.so") for i in range(libraries) for j in range(versions))
    facts = parse_elf(craft_elf("x86_64", needed=tuple(f"lib{i}.so" for i in range(libraries)), imports=imports))
    assert sum(len(v.versions) for v in facts.version_needs) == libraries * versions
    assert {(s.name, s.version, s.library) for s in facts.imports} == set(imports)


# ---------------------------------------------------------------- symbols


@pytest.mark.parametrize("n", [1, 1000, 100_000])
def test_imports_are_kept_once_each(n):
    facts = parse_elf(H.many_imports(n, distinct=False))
    assert [s.name for s in facts.imports] == ["imported"]
    facts = parse_elf(H.many_imports(n))
    assert len(facts.imports) == n and len({s.name for s in facts.imports}) == n


@pytest.mark.parametrize("n,imports", [(10, 1), (100_000, 100), (1_000_000, 7)])
def test_symbols_with_noise(n, imports):
    facts = parse_elf(H.symbols_with_noise(n, imports))
    assert {s.name for s in facts.imports} == {f"imp{i}" for i in range(imports)}
    assert facts.init_functions == {"PyInit_m"}


def test_too_many_imports_in_one_file(monkeypatch):
    monkeypatch.setattr(elf, "MAX_IMPORTS", 999)
    parse_elf(H.many_imports(999))
    with pytest.raises(InvalidElf, match="more than the 999 undefined symbols allowed"):
        parse_elf(H.many_imports(1000))


@pytest.mark.parametrize("count,length", [(5000, 6000), (20_000, 20_000), (2, 9 << 20)])
def test_names_that_overlap_in_the_string_table_are_bounded(count, length):
    """Names at successive offsets of one long string: the table holds them
    once, but as strings they add up to about count x length bytes."""
    with pytest.raises(InvalidElf, match="the names of its undefined symbols add up to more than the 16777216 bytes allowed"):
        parse_elf(H.long_names(count, length))


def test_overlapping_names_below_the_limit_are_read():
    facts = parse_elf(H.long_names(300, 300))
    assert sorted(len(s.name) for s in facts.imports) == list(range(1, 301))


@pytest.mark.parametrize("n", [elf.MAX_NEEDED, elf.MAX_NEEDED + 1, 100_000])
def test_needed_entries_of_one_file(n):
    data = H.many_needed(n)
    if n <= elf.MAX_NEEDED:
        assert len(parse_elf(data).needed) == n
    else:
        with pytest.raises(InvalidElf, match=f"{n} DT_NEEDED entries, more than the {elf.MAX_NEEDED} allowed"):
            parse_elf(data)


def test_too_many_elf_files_refused_by_every_command(tmp_path):
    files = {f"pkg/m{i}.cpython-311-x86_64-linux-gnu.so": H.extension(H.Elf(), f"m{i}").build() for i in range(4097)}
    refused_by_every_command(tmp_path, files, "it holds more than the 4096 ELF files allowed")


def test_too_many_needed_entries_refused_by_every_command(tmp_path):
    refused_by_every_command(tmp_path, {SO: H.many_needed(100_000)}, f"{SO}: 100000 DT_NEEDED entries, more than the 4096 allowed")


# ---------------------------------------------------------------- whole wheels


@pytest.mark.parametrize("jobs", [1, 2])
@pytest.mark.parametrize("limit,what", [("MAX_WHEEL_IMPORTS", "symbols allowed in all"),
                                        ("MAX_WHEEL_NEEDED", "DT_NEEDED entries allowed in all"),
                                        ("MAX_WHEEL_IMPORT_NAME_BYTES", "bytes allowed"),
                                        ("MAX_ELF_MEMBERS", "ELF files allowed")])
def test_limits_on_all_the_files_of_a_wheel(tmp_path, monkeypatch, jobs, limit, what):
    """Each file within its own limits, together past the wheel's; read in
    one process or shared between two (the workers check their part, the
    parent the whole)."""
    monkeypatch.setattr(wheelfile, "PARALLEL_MIN_BYTES", 0)
    files = {f"pkg/lib{i}.so": H.many_imports(300) for i in range(8)}
    w = write_wheel(tmp_path / f"pkg-1.0-{TAG}.whl", {SO: H.many_needed(40), **files})
    wheelfile.read_wheel(str(w), jobs=jobs)  # fine as it is
    monkeypatch.setattr(wheelfile, limit, {"MAX_WHEEL_IMPORTS": 2000, "MAX_WHEEL_NEEDED": 45,
                                           "MAX_WHEEL_IMPORT_NAME_BYTES": 6000, "MAX_ELF_MEMBERS": 8}[limit])
    with pytest.raises(InvalidWheel, match=f"pkg-1.0-{TAG}.whl: (its ELF files|the names|it holds) .*{what}"):
        wheelfile.read_wheel(str(w), jobs=jobs)


@pytest.mark.parametrize("depth", [100, 2000])
def test_deep_member_names(tmp_path, depth):
    """A member thousands of directories deep: the resolver's index of the
    wheel's directories is linear in the names (no set of every prefix)."""
    deep = "/".join(["d"] * depth)
    members = {SO: parse_elf(craft_elf("x86_64", needed=("libdeep.so",), rpath="$ORIGIN/../" + deep, exports=("PyInit_m",))),
               f"{deep}/libdeep.so": parse_elf(craft_elf("x86_64", soname="libdeep.so"))}
    files = resolve.WheelFiles(members, resolve.HostFiles())
    assert files.is_dir(resolve.wheel_path("/".join(["d"] * (depth // 2))))
    assert not files.is_dir(resolve.wheel_path("/".join(["d"] * (depth + 1))))
    t = resolve.resolve_tree(resolve.wheel_path(SO), members[SO], files, resolve.SearchConfig(conf=(), use_interp_dirs=False))
    assert t.libraries["libdeep.so"].realpath == resolve.wheel_path(f"{deep}/libdeep.so")


# ---------------------------------------------------------------- resolution


def _steps(members: dict[str, bytes], config=resolve.SearchConfig(conf=(), use_interp_dirs=False)) -> int:
    facts = {m: parse_elf(d) for m, d in members.items()}
    files = resolve.WheelFiles(facts, resolve.HostFiles())
    for m, f in facts.items():
        resolve.resolve_tree(resolve.wheel_path(m), f, files, config)
    return files.budget.steps


def _chain(n: int) -> dict[str, bytes]:
    return {SO if i == 0 else f"pkg/libchain{i}.so": H.library_chain(n, i) for i in range(n)}


def test_a_chain_of_libraries_costs_the_square_of_its_length_not_the_cube():
    """Every member's tree holds the rest of the chain (n trees of up to n
    libraries); what each library inherits from those that loaded it is
    each directory once, so a tree costs its length, not its length squared."""
    small, large = _steps(_chain(50)), _steps(_chain(100))
    assert large < 4.5 * small, (small, large)


def test_rpath_times_needed_is_counted_and_bounded(tmp_path):
    dirs = []
    for i in range(200):
        (tmp_path / f"d{i}").mkdir()
        dirs.append(str(tmp_path / f"d{i}"))
    one = _steps({SO: H.rpath_times_needed(dirs, 100)})
    two = _steps({SO: H.rpath_times_needed(dirs, 200)})
    assert 1.8 * one < two < 2.2 * one  # linear in the needed names at a fixed path
    assert _steps({SO: H.rpath_times_needed([f"/nonexistent/{i}" for i in range(1000)], 1000)}) < 5000  # not searched


def test_the_resolution_budget_refuses_with_one_line(tmp_path):
    refused_by_every_command(tmp_path, _chain(2000), "resolving the libraries its ELF files load takes more than the")


def test_the_budget_grows_with_the_input():
    small = resolve.WheelFiles({}, resolve.HostFiles())
    large = resolve.WheelFiles({}, resolve.HostFiles(), input_bytes=800 << 20)
    assert small.budget.limit == resolve.RESOLVE_BASE_STEPS
    assert large.budget.limit == resolve.RESOLVE_BASE_STEPS + (800 << 20) // resolve.RESOLVE_BYTES_PER_STEP


def test_trees_that_load_a_library_the_same_way_share_its_searches():
    """Each member of a wheel has its tree; a library loaded the same way in
    many of them is searched for once."""
    n = 60
    members = {f"pkg/m{i}.cpython-311-x86_64-linux-gnu.so": H.library_chain(2, 0) for i in range(n)}
    members["pkg/libchain1.so"] = H.library_chain(2, 1)
    facts = {m: parse_elf(d) for m, d in members.items()}
    files = resolve.WheelFiles(facts, resolve.HostFiles())
    config = resolve.SearchConfig(conf=("/nonexistent",), use_interp_dirs=False)
    for m, f in facts.items():
        resolve.resolve_tree(resolve.wheel_path(m), f, files, config)
    # one search per (object, search path): the n roots, and the library,
    # whose own $ORIGIN is what each of them passes on (the same directory)
    assert len(files.searches) == n + 1


def test_a_long_chain_within_the_budget_is_resolved(tmp_path):
    w = write_wheel(tmp_path / f"pkg-1.0-{TAG}.whl", _chain(200))
    analysis = analyze(wheelfile.read_wheel(str(w)), AuditOptions(environ={}))
    tree = analysis.trees[SO]
    assert all(tree.libraries[f"libchain{i}.so"].realpath == resolve.wheel_path(f"pkg/libchain{i}.so") for i in range(1, 200))


# ---------------------------------------------------------------- ld.so.conf


@pytest.mark.parametrize("fanout", [1, 2, 5, 50])
def test_ld_so_conf_that_includes_itself(tmp_path, fanout):
    conf = H.ld_so_conf_loop(tmp_path / "conf.d", fanout)
    got = resolve.parse_ld_so_conf(conf)
    # each file read once, where it is first included (globs sort by name)
    assert got == [f"/opt/{p.stem}" for p in sorted((tmp_path / "conf.d").glob("loop*.conf"))]


def test_ld_so_conf_includes_deeper_than_any_recursion(tmp_path):
    n = 5000
    for i in range(n):
        (tmp_path / f"c{i}.conf").write_text(f"/opt/{i}\ninclude c{i + 1}.conf\n/opt/{i}-after\n")
    got = resolve.parse_ld_so_conf(str(tmp_path / "c0.conf"))
    assert got[:2] == ["/opt/0", "/opt/1"] and got[-1] == "/opt/0-after" and len(got) == 2 * n


def test_ld_so_conf_including_a_fifo_does_not_hang(tmp_path):
    os.mkfifo(tmp_path / "b.conf")
    (tmp_path / "a.conf").write_text("/opt/a\n")
    (tmp_path / "ld.so.conf").write_text(f"include {tmp_path}/*.conf\n/opt/top\n")
    p = subprocess.run([sys.executable, "-c", f"from wheelvet.resolve import parse_ld_so_conf; print(parse_ld_so_conf({str(tmp_path / 'ld.so.conf')!r}))"],
                       capture_output=True, text=True, timeout=30, env=clean_env())
    assert p.stdout.strip() == "['/opt/a', '/opt/top']", p.stderr


@pytest.mark.parametrize("prefix_cap", [1 << 16, 1 << 20, 3 << 20])
def test_tables_beyond_the_kept_prefix_take_one_more_pass_not_two(monkeypatch, prefix_cap):
    """The second pass keeps the tables where the first found them missing;
    a table that starts inside the kept prefix extends it (split between two
    buffers it was missed again, and the whole file was read a third time)."""
    import io

    monkeypatch.setattr(elf, "PREFIX_CAP", prefix_cap)
    monkeypatch.setattr(elf, "NEAR_DYNAMIC", 4096)  # (else the 8 MiB before the dynamic segment hold it all)
    data = H.symbols_with_noise(400_000, 50)
    opened = []

    def open_stream():
        opened.append(1)
        return io.BytesIO(data)

    facts = read_elf_stream(open_stream, len(data), "x.so")
    assert facts == parse_elf(data) and len(opened) == 2
