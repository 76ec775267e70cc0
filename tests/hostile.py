"""Crafted ELF files and wheels that try to make wheelvet's work or memory
grow faster than its input (issue 15, item 4).

Each generator takes a scale, so the tests run many small members of a
class and ``benchmarks/bench_hostile.py`` runs the large ones.  The files
are laid out as a linker would (one loadable segment holding a dynamic
segment and its tables at offset == address), and are sound but for the
one thing each case is about.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

DT = dict(NULL=0, NEEDED=1, HASH=4, STRTAB=5, SYMTAB=6, STRSZ=10, SYMENT=11, RPATH=15, RUNPATH=29,
          GNU_HASH=0x6FFFFEF5, VERSYM=0x6FFFFFF0, VERNEED=0x6FFFFFFE, VERNEEDNUM=0x6FFFFFFF)
PT_LOAD, PT_DYNAMIC, PT_NOTE, PT_GNU_PROPERTY = 1, 2, 4, 0x6474E553


class Strings:
    """A dynamic string table being built: ``add`` returns an offset."""

    def __init__(self) -> None:
        self.data = bytearray(b"\0")
        self._at: dict[bytes, int] = {}

    def add(self, text: str | bytes) -> int:
        raw = text.encode() if isinstance(text, str) else text
        if raw not in self._at:
            self._at[raw] = len(self.data)
            self.data += raw + b"\0"
        return self._at[raw]


@dataclass
class Elf:
    """An x86-64 shared library, built from tables placed one after another.

    ``tables`` maps a name to bytes placed (8-aligned) after the program
    headers; ``dynamic`` entries may name a table (its address) instead of a
    value; ``phdrs`` are extra (type, table name, size or None) headers.
    """

    strings: Strings = field(default_factory=Strings)
    tables: dict[str, bytes] = field(default_factory=dict)
    dynamic: list[tuple[int, int | str]] = field(default_factory=list)
    phdrs: list[tuple[int, str, int | None]] = field(default_factory=list)
    big_endian: bool = False  # then an s390x file

    @property
    def e(self) -> str:
        return ">" if self.big_endian else "<"

    def build(self) -> bytes:
        e = self.e
        tables = {"dynstr": bytes(self.strings.data), **self.tables}
        dyn = [(DT["STRTAB"], "dynstr"), (DT["STRSZ"], len(tables["dynstr"])), *self.dynamic, (DT["NULL"], 0)]
        nph = 2 + len(self.phdrs)
        pos = 64 + 56 * nph
        where: dict[str, int] = {}
        blobs = []
        for name, data in tables.items():
            pos = (pos + 7) // 8 * 8
            where[name] = pos
            blobs.append((pos, data))
            pos += len(data)
        pos = (pos + 7) // 8 * 8
        dyn_bytes = b"".join(struct.pack(e + "qQ", t, where[v] if isinstance(v, str) else v) for t, v in dyn)
        where["dynamic"] = pos
        blobs.append((pos, dyn_bytes))
        total = pos + len(dyn_bytes)

        def ph(p_type, flags, off, size, align=8):
            return struct.pack(e + "IIQQQQQQ", p_type, flags, off, off, off, size, size, align)

        headers = [ph(PT_LOAD, 5, 0, total, 0x1000)]
        headers += [ph(t, 4, where[name], len(tables[name]) if size is None else size) for t, name, size in self.phdrs]
        headers.append(ph(PT_DYNAMIC, 6, where["dynamic"], len(dyn_bytes)))
        ident = b"\x7fELF" + bytes([2, 2 if self.big_endian else 1, 1, 0]) + b"\0" * 8
        out = bytearray(total)
        out[:64] = ident + struct.pack(e + "HHIQQQIHHHHHH", 3, 22 if self.big_endian else 62, 1, 0, 64, 0, 0, 64, 56,
                                       nph, 64, 0, 0)
        out[64 : 64 + 56 * nph] = b"".join(headers)
        for off, data in blobs:
            out[off : off + len(data)] = data
        return bytes(out)


def symbol(name: int, *, defined: bool = False, kind: int = 2, e: str = "<") -> bytes:
    """One Elf64_Sym: a global function, undefined unless ``defined``."""
    return struct.pack(e + "IBBHQQ", name, (1 << 4) | kind, 0, 7 if defined else 0, 0x1000 if defined else 0, 0)


def with_symbols(elf: Elf, syms: list[bytes] | bytes, count: int, versym: bytes | None = None) -> Elf:
    """Add a symbol table of ``count`` entries (the first is the null one)
    with a SysV hash table that says so."""
    raw = syms if isinstance(syms, bytes) else b"".join(syms)
    elf.tables["dynsym"] = bytes(24) + raw
    elf.tables["hash"] = struct.pack("<II", 1, count + 1) + b"\0" * 4 + b"\0" * 4 * (count + 1)
    elf.dynamic += [(DT["SYMTAB"], "dynsym"), (DT["SYMENT"], 24), (DT["HASH"], "hash")]
    if versym is not None:
        elf.tables["versym"] = b"\0\0" + versym
        elf.dynamic.append((DT["VERSYM"], "versym"))
    return elf


def extension(elf: Elf, module: str = "m") -> Elf:
    """Make it a CPython extension module (a defined PyInit_<module>)."""
    if "dynsym" not in elf.tables:
        with_symbols(elf, [symbol(elf.strings.add(f"PyInit_{module}"), defined=True)], 1)
    return elf


# ------------------------------------------------------------------ the cases


def many_needed(n: int) -> bytes:
    """``n`` DT_NEEDED entries, all different, none to be found."""
    elf = Elf()
    elf.dynamic += [(DT["NEEDED"], elf.strings.add(f"libmissing{i}.so")) for i in range(n)]
    return extension(elf).build()


def rpath_times_needed(dirs: list[str], n: int, *, runpath: bool = False) -> bytes:
    """An RPATH (or RUNPATH) of ``dirs`` and ``n`` needed libraries found in none of them."""
    elf = Elf()
    elf.dynamic.append((DT["RUNPATH" if runpath else "RPATH"], elf.strings.add(":".join(dirs))))
    elf.dynamic += [(DT["NEEDED"], elf.strings.add(f"libnowhere{i}.so")) for i in range(n)]
    return extension(elf).build()


def shared_version_needs(entries: int, versions: int) -> bytes:
    """``entries`` version-need entries whose auxiliary chains all lead into
    one array of ``versions`` entries: a reader that follows each chain does
    entries x versions steps from entries + versions records."""
    elf = Elf()
    lib = elf.strings.add("libc.so.6")
    elf.dynamic.append((DT["NEEDED"], lib))
    names = [elf.strings.add(f"V_{i}") for i in range(min(versions, 4096))]
    vn_size = 16 * entries
    aux = b"".join(struct.pack("<IHHII", 0, 0, 2 + i % 0x7FF0, names[i % len(names)], 16 if i < versions - 1 else 0)
                   for i in range(versions))
    vn = bytearray()
    for i in range(entries):
        # vn_aux is relative to this entry; the shared array follows all entries
        vn += struct.pack("<HHIII", 1, versions, lib, vn_size - 16 * i, 16 if i < entries - 1 else 0)
    elf.tables["verneed"] = bytes(vn) + aux
    elf.dynamic += [(DT["VERNEED"], "verneed"), (DT["VERNEEDNUM"], entries)]
    return extension(elf).build()


def many_notes(segments: int, size: int, fill: bytes = b"\0") -> bytes:
    """``segments`` PT_NOTE program headers over one region of ``size`` bytes,
    zeros by default (each zero word an empty note), else ``fill`` repeated."""
    elf = Elf()
    elf.tables["notes"] = (fill * (size // len(fill) + 1))[:size]
    elf.phdrs += [(PT_NOTE, "notes", None)] * segments
    return extension(elf).build()


def huge_note(size: int, fill: bytes = b"\0") -> bytes:
    """One PT_NOTE segment of ``size`` bytes."""
    return many_notes(1, size, fill)


def gnu_hash_chain(zeros: int) -> bytes:
    """A GNU hash table whose one bucket starts a chain of ``zeros`` zero
    bytes: no word has the end bit, so the chain runs to the end of the file."""
    elf = Elf()
    pyinit = elf.strings.add("PyInit_m")
    elf.tables["dynsym"] = bytes(24) + symbol(pyinit, defined=True)
    elf.tables["gnu_hash"] = struct.pack("<IIII", 1, 1, 1, 6) + b"\0" * 8 + struct.pack("<I", 1) + bytes(zeros)
    elf.dynamic += [(DT["SYMTAB"], "dynsym"), (DT["SYMENT"], 24), (DT["GNU_HASH"], "gnu_hash")]
    return elf.build()


def gnu_hash_table(chains: list[int], symndx: int = 1, *, big_endian: bool = False, odd_noise: bool = True) -> tuple[bytes, int]:
    """A sound GNU hash table with one bucket per chain of the given lengths
    (the file's symbols are symndx + their sum, every one but the null
    symbol imported), and that count.  The hash words are random but for the end bit, so a
    reader that looks at the wrong byte of a word is caught."""
    import random

    rnd = random.Random(len(chains) * 7919 + sum(chains))
    elf = Elf(big_endian=big_endian)
    e = elf.e
    total = symndx + sum(chains)
    # every symbol an import of its own name: a reader that counts wrong
    # imports fewer, or reads the next table as symbols
    elf.tables["dynsym"] = bytes(24) + b"".join(symbol(elf.strings.add(f"s{i}"), e=e) for i in range(1, total))
    buckets, words, at = [], [], symndx
    for length in chains:
        buckets.append(at if length else 0)
        for i in range(length):
            noise = rnd.getrandbits(32) & ~1 & (0xFFFFFFFF if odd_noise else 0xFFFFFF00)
            words.append(noise | (1 if i == length - 1 else 0))
        at += length
    table = struct.pack(e + "IIII", len(chains), symndx, 1, 6) + b"\0" * 8
    table += struct.pack(f"{e}{len(buckets)}I", *buckets) + struct.pack(f"{e}{len(words)}I", *words)
    elf.tables["gnu_hash"] = table
    elf.dynamic += [(DT["SYMTAB"], "dynsym"), (DT["SYMENT"], 24), (DT["GNU_HASH"], "gnu_hash")]
    return elf.build(), total


def many_imports(n: int, *, distinct: bool = True) -> bytes:
    """``n`` undefined symbols (distinct names, or all the same one)."""
    elf = Elf()
    elf.dynamic.append((DT["NEEDED"], elf.strings.add("libc.so.6")))
    same = elf.strings.add("imported")
    syms = b"".join(symbol(elf.strings.add(f"f{i:x}") if distinct else same) for i in range(n))
    syms += symbol(elf.strings.add("PyInit_m"), defined=True)
    return with_symbols(elf, syms, n + 1).build()


def symbols_with_noise(n: int, imports: int = 100) -> bytes:
    """``n`` symbols, nearly all defined (noise), ``imports`` of them
    undefined, spread evenly (built in blocks: n may be tens of millions)."""
    elf = Elf()
    elf.dynamic.append((DT["NEEDED"], elf.strings.add("libc.so.6")))
    noise = symbol(elf.strings.add("noise"), defined=True, kind=1)
    every = max(n // max(imports, 1), 1)
    blocks, left = [], n
    for i in range(imports):
        if left <= 0:
            break
        size = min(every, left)
        blocks.append(symbol(elf.strings.add(f"imp{i}")) + noise * (size - 1))
        left -= size
    blocks.append(noise * left)
    blocks.append(symbol(elf.strings.add("PyInit_m"), defined=True))
    return with_symbols(elf, b"".join(blocks), n + 1).build()


def long_names(count: int, length: int) -> bytes:
    """``count`` undefined symbols whose names all lie in one string of
    ``length`` bytes, at successive offsets (each name is a suffix of the
    next: names the strtab holds once, that add up to count x length)."""
    elf = Elf()
    elf.dynamic.append((DT["NEEDED"], elf.strings.add("libc.so.6")))
    base = elf.strings.add("x" * length)
    syms = b"".join(symbol(base + i) for i in range(count))
    syms += symbol(elf.strings.add("PyInit_m"), defined=True)
    return with_symbols(elf, syms, count + 1).build()


def library_chain(n: int, i: int) -> bytes:
    """Member ``i`` of ``n`` libraries that each need the next, found through
    ``$ORIGIN``: every member's tree holds the rest of the chain."""
    elf = Elf()
    elf.dynamic.append((DT["RPATH"], elf.strings.add("$ORIGIN")))
    if i + 1 < n:
        elf.dynamic.append((DT["NEEDED"], elf.strings.add(f"libchain{i + 1}.so")))
    elf.dynamic.append((DT["NEEDED"], elf.strings.add("libc.so.6")))
    if i == 0:
        return extension(elf).build()
    return elf.build()


def ld_so_conf_loop(directory, fanout: int = 2) -> str:
    """An ld.so.conf whose includes reach itself (through a glob that
    matches itself and ``fanout`` - 1 other files doing the same)."""
    from pathlib import Path

    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    for i in range(fanout):
        (d / f"loop{i}.conf").write_text(f"/opt/loop{i}\ninclude {d}/loop*.conf\ninclude {d}/*.conf\n")
    return str(d / "loop0.conf")
