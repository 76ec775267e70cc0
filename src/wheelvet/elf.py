"""ELF facts: one pass over a file gives one frozen :class:`ElfFacts`.

The reader works from the *program headers* and the dynamic segment (what the
dynamic loader itself reads), not from section headers.  That lets it read an
ELF member of a wheel as a deflate stream, keep only the byte ranges it needs
and stop inflating as soon as it has them: the dynamic tables (``.dynsym``,
``.dynstr``, ``.gnu.version``, ``.gnu.version_r``) sit near the start of a
file, ``.dynamic`` after the code, and the (often huge) symbol tables and debug
sections at the end are never inflated.  Everything is plain ``struct`` over
bytes; nothing from a parsing library leaks out.

Every offset, size and count read from the file is checked against the file
before it is used: a hostile file gives :class:`InvalidElf`, never an
``IndexError`` or an endless loop.
"""

from __future__ import annotations

import array
import bisect
import errno
import itertools
import mmap
import os
import re
import stat
import struct
import sys
from dataclasses import dataclass, field, fields, replace
from typing import BinaryIO, Iterable

from .errors import InvalidElf

ELF_MAGIC = b"\x7fELF"

# e_machine values (ELF gABI) of the architectures the policies know.
EM_386 = 3
EM_PPC64 = 21
EM_S390 = 22
EM_ARM = 40
EM_X86_64 = 62
EM_AARCH64 = 183
EM_RISCV = 243
EM_LOONGARCH = 258

# (e_machine, ELF class, little endian) -> baseline architecture name.
_ARCHITECTURES = {
    (EM_386, 32, True): "i686",
    (EM_X86_64, 64, True): "x86_64",
    (EM_PPC64, 64, True): "ppc64le",
    (EM_PPC64, 64, False): "ppc64",
    (EM_RISCV, 64, True): "riscv64",
    (EM_AARCH64, 64, True): "aarch64",
    (EM_S390, 64, False): "s390x",
    (EM_ARM, 32, True): "armv7l",
    (EM_LOONGARCH, 64, True): "loongarch64",
}

# ARM e_flags: the EABI version and the hard-float ABI flag (armv7l wheels
# must be EABI5, hard float).
EF_ARM_EABIMASK = 0xFF000000
EF_ARM_EABI_VER5 = 0x05000000
EF_ARM_ABI_FLOAT_HARD = 0x00000400

PT_LOAD = 1
PT_DYNAMIC = 2
PT_INTERP = 3
PT_NOTE = 4
PT_GNU_PROPERTY = 0x6474E553
PF_X = 1
PF_W = 2

DT_NULL = 0
DT_NEEDED = 1
DT_HASH = 4
DT_STRTAB = 5
DT_SYMTAB = 6
DT_STRSZ = 10
DT_SYMENT = 11
DT_SONAME = 14
DT_RPATH = 15
DT_RUNPATH = 29
DT_GNU_HASH = 0x6FFFFEF5
DT_VERSYM = 0x6FFFFFF0
DT_VERNEED = 0x6FFFFFFE
DT_VERNEEDNUM = 0x6FFFFFFF

NT_GNU_PROPERTY_TYPE_0 = 5
GNU_PROPERTY_X86_ISA_1_NEEDED = 0xC0008002

STB_WEAK = 2
STT_NOTYPE = 0
STT_FUNC = 2
SHN_UNDEF = 0

# Limits that keep a hostile file from making us allocate or loop without
# end (docs/hardening.md).  Every loop over a file's structures is bounded by
# the bytes it reads, and each of these by a limit far above what real files
# need (measured on the conformance wheels, PyTorch and this machine's
# libraries: the most in one file is given after each).
MAX_PHNUM = 0xFFFF
MAX_DYNAMIC_ENTRIES = 1 << 20
MAX_SYMBOLS = 1 << 24
MAX_VERNEED = 1 << 16
MAX_NEEDED = 1 << 12  # DT_NEEDED entries of one file (21: gdb; the audit works on each per policy)
MAX_IMPORTS = 1 << 17  # undefined symbols of one file (5,719: libtorch_python.so; ~136 bytes each held)
MAX_IMPORT_NAME_BYTES = 16 << 20  # their distinct names together (344 KB: libtorch_python.so)
MAX_NOTE_BYTES = 1 << 20  # PT_NOTE and PT_GNU_PROPERTY segments together (296 bytes)

# Only these defined functions matter (Python extension module init functions);
# keeping just them spares one string per exported symbol.
_INIT_PREFIXES = (b"PyInit_", b"init", b"_cffi_pypyinit_")


@dataclass(frozen=True)
class ImportedSymbol:
    """An undefined dynamic symbol: what the file needs from elsewhere."""

    # A file may hold a million of these: no per-object __dict__.
    __slots__ = ("name", "version", "library", "weak", "kind")

    name: str
    version: str | None  # e.g. "GLIBC_2.29"; None when unversioned
    library: str | None  # the file the version is needed from (vn_file)
    weak: bool
    kind: int  # STT_* type

    def __reduce__(self):  # (frozen and slotted: pickle cannot set the fields one by one)
        return ImportedSymbol, (self.name, self.version, self.library, self.weak, self.kind)


@dataclass(frozen=True)
class VersionNeed:
    """One ``Elf_Verneed`` entry: versions needed from one library file."""

    library: str
    versions: tuple[str, ...]


@dataclass(frozen=True)
class ElfFacts:
    """Everything wheelvet needs to know about one ELF file."""

    elf_class: int  # 32 or 64
    little_endian: bool
    machine: int
    osabi: int
    elf_type: int
    flags: int
    arch: str | None  # baseline architecture, None when unknown/invalid
    arch_error: str | None
    isa_needed: int  # GNU_PROPERTY_X86_ISA_1_NEEDED bits (0 when absent)
    interpreter: str | None
    soname: str | None
    needed: tuple[str, ...]
    rpath: str | None  # raw DT_RPATH string
    runpath: str | None  # raw DT_RUNPATH string
    version_needs: tuple[VersionNeed, ...]
    imports: tuple[ImportedSymbol, ...]
    init_functions: frozenset[str]  # defined FUNC symbols named like module inits
    # Names like ``libfoo.so.1`` in the read-only data that are not in
    # DT_NEEDED (nor the SONAME): what the file may dlopen.  Found while a
    # wheel member streams by (:class:`DlopenHints`, in the pass that reads
    # it whole); empty for files read otherwise (host libraries, patched
    # files).  A hint, not a fact of the file's structure: not compared.
    dlopen_hints: tuple[str, ...] = field(default=(), compare=False)

    def __reduce__(self):
        # (a worker process hands back torch's 136 files with 35,000 imports:
        # pickled as columns of plain values, not one object each, they
        # cross in a third of the time)
        imports = self.imports
        columns = tuple(tuple(getattr(s, f) for s in imports) for f in ImportedSymbol.__slots__)
        values = tuple(getattr(self, f.name) for f in fields(self) if f.name != "imports")
        return _facts_from_columns, (values, columns)

    @property
    def isa_level(self) -> str | None:
        """The x86-64 micro-architecture level the file needs, or None."""
        bits = self.isa_needed & ~1
        if not bits:
            return None
        if bits & 8:
            return "x86_64_v4"
        if bits & 4:
            return "x86_64_v3"
        if bits & 2:
            return "x86_64_v2"
        return "unknown"

    def is_compatible(self, other: ElfFacts) -> bool:
        """Whether the dynamic loader of this file could load ``other``."""
        linuxish = {0, 3}  # ELFOSABI_NONE/SYSV and ELFOSABI_GNU/LINUX
        return (
            (self.osabi == other.osabi or {self.osabi, other.osabi} <= linuxish)
            and self.elf_class == other.elf_class
            and self.little_endian == other.little_endian
            and self.machine == other.machine
        )


def _facts_from_columns(values: tuple, columns: tuple) -> ElfFacts:
    """Unpickles :meth:`ElfFacts.__reduce__`."""
    names = [f.name for f in fields(ElfFacts) if f.name != "imports"]
    kwargs = dict(zip(names, values))
    return ElfFacts(imports=tuple(map(ImportedSymbol, *columns)), **kwargs)


class _Missing(Exception):
    """Raised when a byte range was not retained; the caller reads again."""

    def __init__(self, start: int, end: int) -> None:
        super().__init__(start, end)
        self.start = start
        self.end = end


class _Bytes:
    """Random access to the parts of a file that were kept.

    ``prefix`` holds bytes ``[0, len(prefix))``; ``pieces`` more ranges
    (start -> bytes), disjoint.  Nothing is copied: :meth:`view` hands out
    memoryviews, :meth:`get` small slices.
    """

    def __init__(self, size: int, prefix: bytes | bytearray | mmap.mmap,
                 pieces: dict[int, bytes | bytearray] | None = None) -> None:
        self.size = size
        self.prefix = prefix
        self.pieces = pieces or {}
        self._starts = sorted(self.pieces)

    def _locate(self, off: int, n: int) -> tuple[bytes | bytearray | mmap.mmap, int]:
        """(buffer, offset in it) holding bytes [off, off + n) of the file."""
        if off < 0 or n < 0 or off + n > self.size:
            raise InvalidElf(f"structure at offset {off:#x} (+{n}) lies past the end of the file ({self.size} bytes)")
        if off + n <= len(self.prefix):
            return self.prefix, off
        i = bisect.bisect_right(self._starts, off) - 1
        if i >= 0:
            start = self._starts[i]
            data = self.pieces[start]
            if off + n <= start + len(data):
                return data, off - start
        raise _Missing(off, off + n)

    def get(self, off: int, n: int) -> bytes:
        data, at = self._locate(off, n)
        return data[at : at + n]

    def view(self, off: int, n: int) -> memoryview:
        """Bytes [off, off + n) without copying them."""
        data, at = self._locate(off, n)
        return memoryview(data)[at : at + n]

    def table(self, off: int, n: int) -> _Table:
        data, at = self._locate(off, n)
        return _Table(data, at, n)

    def available(self, off: int, limit: int) -> memoryview:
        """As many bytes from ``off`` (at most ``limit``) as were kept in one
        piece; raises :class:`_Missing` when not even one was."""
        if off >= len(self.prefix):
            i = bisect.bisect_right(self._starts, off) - 1
            if i < 0 or off >= self._starts[i] + len(self.pieces[self._starts[i]]):
                if off >= self.size:
                    raise InvalidElf(f"structure at offset {off:#x} lies past the end of the file ({self.size} bytes)")
                raise _Missing(off, off + 1)
            start = self._starts[i]
            data = self.pieces[start]
            return memoryview(data)[off - start : off - start + limit]
        return memoryview(self.prefix)[off : min(off + limit, self.size)]


class _Table:
    """A string table inside a kept buffer (not copied out of it)."""

    __slots__ = ("data", "base", "size")

    def __init__(self, data, base: int, size: int) -> None:
        self.data, self.base, self.size = data, base, size

    def string(self, off: int, what: str) -> str:
        if not 0 <= off < self.size:
            raise InvalidElf(f"{what}: string offset {off:#x} is outside the string table ({self.size} bytes)")
        start = self.base + off
        end = self.data.find(b"\0", start, self.base + self.size)
        if end < 0:
            raise InvalidElf(f"{what}: string at {off:#x} has no terminating NUL")
        return self.data[start:end].decode("utf-8", "surrogateescape")

    def startswith(self, prefixes: tuple[bytes, ...], off: int) -> bool:
        if not 0 <= off < self.size:
            return False
        at = self.base + off
        if isinstance(self.data, mmap.mmap):  # (mmap has no startswith)
            return any(self.data[at : at + len(p)] == p for p in prefixes)
        return self.data.startswith(prefixes, at)

    def string_and_length(self, off: int, what: str) -> tuple[str, int]:
        """:meth:`string`, and its length in the table (one search for its end)."""
        if not 0 <= off < self.size:
            raise InvalidElf(f"{what}: string offset {off:#x} is outside the string table ({self.size} bytes)")
        start = self.base + off
        end = self.data.find(b"\0", start, self.base + self.size)
        if end < 0:
            raise InvalidElf(f"{what}: string at {off:#x} has no terminating NUL")
        return self.data[start:end].decode("utf-8", "surrogateescape"), end - start


def is_elf(head: bytes) -> bool:
    return head[:4] == ELF_MAGIC


# ---------------------------------------------------------------- parsing


class _Layout:
    """ELF header and program headers: what decides which bytes we need."""

    def __init__(self, buf: _Bytes) -> None:
        ident = buf.get(0, 16)
        if ident[:4] != ELF_MAGIC:
            raise InvalidElf("not an ELF file")
        if ident[4] not in (1, 2):
            raise InvalidElf(f"invalid ELF class {ident[4]}")
        if ident[5] not in (1, 2):
            raise InvalidElf(f"invalid ELF data encoding {ident[5]}")
        self.elf_class = 32 if ident[4] == 1 else 64
        self.little = ident[5] == 1
        self.osabi = ident[7]
        e = "<" if self.little else ">"
        self.e = e
        if self.elf_class == 64:
            hdr = struct.unpack(e + "HHIQQQIHHHHHH", buf.get(16, 48))
        else:
            hdr = struct.unpack(e + "HHIIIIIHHHHHH", buf.get(16, 36))
        (self.type, self.machine, _version, _entry, phoff, _shoff, self.flags,
         _ehsize, phentsize, phnum, _shentsize, _shnum, _shstrndx) = hdr
        self.word = 8 if self.elf_class == 64 else 4
        self.phdrs: list[tuple[int, int, int, int, int, int]] = []
        self.header_end = (64 if self.elf_class == 64 else 52) + (phnum * phentsize if phnum else 0) + (phoff if phnum else 0)
        if phnum == 0:
            return
        need = 56 if self.elf_class == 64 else 32
        if phentsize < need:
            raise InvalidElf(f"program header entry size {phentsize} is too small")
        if phoff + phnum * phentsize > buf.size:
            raise InvalidElf(f"program headers ({phnum} at {phoff:#x}) lie past the end of the file")
        raw = buf.get(phoff, phnum * phentsize)
        for i in range(phnum):
            ent = raw[i * phentsize : i * phentsize + need]
            if self.elf_class == 64:
                p_type, p_flags, p_offset, p_vaddr, _paddr, p_filesz, _memsz, p_align = struct.unpack(e + "IIQQQQQQ", ent)
            else:
                p_type, p_offset, p_vaddr, _paddr, p_filesz, _memsz, p_flags, p_align = struct.unpack(e + "IIIIIIII", ent)
            self.phdrs.append((p_type, p_flags, p_offset, p_vaddr, p_filesz, p_align))
        notes = sum(p[4] for p in self.phdrs if p[0] in (PT_NOTE, PT_GNU_PROPERTY))
        if notes > MAX_NOTE_BYTES:
            # Each is read whole and walked note by note (real files hold a
            # few hundred bytes of notes).
            raise InvalidElf(f"its note segments add up to {notes} bytes, more than the {MAX_NOTE_BYTES} wheelvet reads")

    def segments(self, kind: int) -> Iterable[tuple[int, int, int, int, int, int]]:
        return (p for p in self.phdrs if p[0] == kind)

    def wanted_ranges(self) -> list[tuple[int, int]]:
        """File ranges read directly from program headers.

        Besides the dynamic segment, interpreter and notes: the
        :data:`NEAR_DYNAMIC` bytes before the dynamic segment, and what
        follows it in non-executable loadable segments.  That is where patchelf
        puts the string and symbol tables it rewrites, next to the dynamic
        section it moves (every wheel repaired by auditwheel has them).
        """
        out = []
        for p_type, flags, off, _v, size, _a in self.phdrs:
            if size and p_type in (PT_INTERP, PT_DYNAMIC, PT_NOTE, PT_GNU_PROPERTY):
                out.append((off, off + size))
        dyn = [(off, off + size) for t, _f, off, _v, size, _a in self.phdrs if t == PT_DYNAMIC and size]
        if dyn:
            start, end = dyn[0]
            out.append((max(0, start - NEAR_DYNAMIC), start))
            for p_type, flags, off, _v, size, _a in self.phdrs:
                if p_type == PT_LOAD and size and not flags & PF_X and off + size > start:
                    out.append((max(off, start), off + size))
        return out

    def table_prefix_end(self, cap: int) -> int:
        """How much of the file's start to keep while streaming.

        The dynamic tables lie in the first loadable segment.  When that
        segment is not executable (``-z separate-code``, the default on
        x86-64 since binutils 2.31) it ends before the code, so keeping
        it is enough; otherwise keep up to ``cap`` bytes and read again in the
        rare case the tables lie further in.
        """
        loads = sorted(self.segments(PT_LOAD), key=lambda p: p[2])
        if loads and not loads[0][1] & PF_X and any(p[1] & PF_X for p in loads[1:]):
            return min(loads[0][2] + loads[0][4], cap)
        return cap

    def to_offset(self, vaddr: int, what: str) -> int:
        for p_type, _f, off, va, size, _a in self.phdrs:
            if p_type == PT_LOAD and va <= vaddr < va + size:
                return vaddr - va + off
        raise InvalidElf(f"{what} address {vaddr:#x} is not inside any loaded segment")


def _parse(buf: _Bytes) -> ElfFacts:
    lay = _Layout(buf)
    e = lay.e
    arch = _ARCHITECTURES.get((lay.machine, lay.elf_class, lay.little))
    arch_error = None if arch else f"unknown architecture (e_machine {lay.machine}, {lay.elf_class}-bit, {'little' if lay.little else 'big'} endian)"
    if arch == "armv7l":
        if lay.flags & EF_ARM_EABIMASK != EF_ARM_EABI_VER5:
            arch, arch_error = None, "ARM file is not EABI version 5"
        elif not lay.flags & EF_ARM_ABI_FLOAT_HARD:
            arch, arch_error = None, "ARM file does not use the hard-float ABI"

    interpreter = None
    for _t, _f, off, _v, size, _a in lay.segments(PT_INTERP):
        interpreter = bytes(buf.view(off, size)).split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
        break

    isa = _read_isa(buf, lay) if lay.machine == EM_X86_64 else 0

    dyn = [p for p in lay.segments(PT_DYNAMIC)]
    if not dyn:
        return ElfFacts(lay.elf_class, lay.little, lay.machine, lay.osabi, lay.type, lay.flags, arch, arch_error,
                        isa, interpreter, None, (), None, None, (), (), frozenset())
    _t, _f, doff, _v, dsize, _a = dyn[0]
    entsize = 2 * lay.word
    count = min(dsize // entsize, MAX_DYNAMIC_ENTRIES)
    raw = buf.view(doff, count * entsize)
    fmt = e + ("qQ" if lay.word == 8 else "iI")
    tags: dict[int, int] = {}
    needed_offs: list[int] = []
    soname_off = rpath_off = runpath_off = None
    for tag, val in struct.iter_unpack(fmt, raw):
        if tag == DT_NULL:
            break
        if tag == DT_NEEDED:
            needed_offs.append(val)
        elif tag == DT_SONAME:
            soname_off = val
        elif tag == DT_RPATH:
            rpath_off = val
        elif tag == DT_RUNPATH:
            runpath_off = val
        else:
            tags.setdefault(tag, val)
    if len(needed_offs) > MAX_NEEDED:
        raise InvalidElf(f"{len(needed_offs)} DT_NEEDED entries, more than the {MAX_NEEDED} allowed")

    if DT_STRTAB not in tags:
        if needed_offs or soname_off is not None:
            raise InvalidElf("dynamic section has DT_NEEDED/DT_SONAME entries but no DT_STRTAB")
        return ElfFacts(lay.elf_class, lay.little, lay.machine, lay.osabi, lay.type, lay.flags, arch, arch_error,
                        isa, interpreter, None, (), None, None, (), (), frozenset())
    stroff = lay.to_offset(tags[DT_STRTAB], "DT_STRTAB")
    strsz = tags.get(DT_STRSZ, 0)
    if strsz <= 0 or stroff + strsz > buf.size:
        raise InvalidElf(f"dynamic string table ({strsz} bytes at {stroff:#x}) lies outside the file")
    strtab = buf.table(stroff, strsz)

    needed = tuple(dict.fromkeys(strtab.string(o, "DT_NEEDED") for o in needed_offs))  # the loader loads each once
    soname = strtab.string(soname_off, "DT_SONAME") if soname_off is not None else None
    rpath = strtab.string(rpath_off, "DT_RPATH") if rpath_off is not None else None
    runpath = strtab.string(runpath_off, "DT_RUNPATH") if runpath_off is not None else None

    by_index, version_needs = _read_version_needs(buf, lay, tags, strtab)

    imports: list[ImportedSymbol] = []
    inits: set[str] = set()
    if DT_SYMTAB in tags:
        symoff = lay.to_offset(tags[DT_SYMTAB], "DT_SYMTAB")
        syment = tags.get(DT_SYMENT, 24 if lay.word == 8 else 16)
        if syment != (24 if lay.word == 8 else 16):
            raise InvalidElf(f"unexpected symbol entry size {syment}")
        nsyms = _count_symbols(buf, lay, tags, symoff, syment)
        if nsyms > MAX_SYMBOLS or symoff + nsyms * syment > buf.size:
            raise InvalidElf(f"dynamic symbol table ({nsyms} symbols at {symoff:#x}) lies outside the file")
        imports, inits = _read_symbols(buf, lay, tags, strtab, symoff, nsyms, by_index)

    return ElfFacts(
        lay.elf_class, lay.little, lay.machine, lay.osabi, lay.type, lay.flags, arch, arch_error, isa,
        interpreter, soname, needed, rpath, runpath, tuple(version_needs), tuple(imports), frozenset(inits),
    )


def _read_version_needs(buf: _Bytes, lay: _Layout, tags: dict[int, int], strtab: _Table
                        ) -> tuple[dict[int, tuple[str, str]], list[VersionNeed]]:
    """Version needs: index (vna_other) -> (version name, library file), and
    the needs per library.

    vn_next and vna_next are added as the target's loader adds them, in its
    address width: on a 32-bit file a large one wraps backwards.  Each
    record is read once: a chain that comes back to an entry it has read
    loops, and two version needs whose auxiliary chains meet share entries
    (no linker writes either; walking them would take entries x versions
    steps from entries + versions records)."""
    by_index: dict[int, tuple[str, str]] = {}
    version_needs: list[VersionNeed] = []
    if DT_VERNEED not in tags:
        return by_index, version_needs
    e = lay.e
    wrap = (1 << (8 * lay.word)) - 1
    off = lay.to_offset(tags[DT_VERNEED], "DT_VERNEED")
    num = tags.get(DT_VERNEEDNUM, MAX_VERNEED)
    seen: set[int] = set()
    aseen: set[int] = set()
    for _ in range(min(num, MAX_VERNEED)):
        if off in seen:
            raise InvalidElf("the vn_next chain of .gnu.version_r loops")
        seen.add(off)
        vn_version, vn_cnt, vn_file, vn_aux, vn_next = struct.unpack(e + "HHIII", buf.get(off, 16))
        library = strtab.string(vn_file, "vn_file")
        versions = []
        aoff = (off + vn_aux) & wrap
        mine: set[int] = set()
        for _j in range(vn_cnt):
            if aoff in aseen:
                raise InvalidElf("the vna_next chain of .gnu.version_r loops" if aoff in mine
                                 else "version needs share auxiliary entries in .gnu.version_r")
            aseen.add(aoff)
            mine.add(aoff)
            _hash, _flags, other, vna_name, vna_next = struct.unpack(e + "IHHII", buf.get(aoff, 16))
            name = strtab.string(vna_name, "vna_name")
            versions.append(name)
            by_index[other & 0x7FFF] = (name, library)
            if vna_next == 0:
                break
            aoff = (aoff + vna_next) & wrap
        version_needs.append(VersionNeed(library, tuple(versions)))
        if vn_next == 0:
            break
        off = (off + vn_next) & wrap
    return by_index, version_needs


def _read_symbols(buf: _Bytes, lay: _Layout, tags: dict[int, int], strtab: _Table, symoff: int, nsyms: int,
                  by_index: dict[int, tuple[str, str]]) -> tuple[list[ImportedSymbol], set[str]]:
    """The imported symbols (each distinct one once) and the module init
    functions.  One pass over the table without copying it; only undefined
    symbols (and defined functions named like an init function) become
    Python objects, and the same name, version and binding become one."""
    e = lay.e
    syment = 24 if lay.word == 8 else 16
    syms = buf.view(symoff, nsyms * syment)
    versym = None
    if DT_VERSYM in tags and by_index:
        vs_off = lay.to_offset(tags[DT_VERSYM], "DT_VERSYM")
        versym = array.array("H")
        versym.frombytes(buf.view(vs_off, nsyms * 2))
        if lay.little != (sys.byteorder == "little"):
            versym.byteswap()
    # (st_name, st_info, st_shndx), the rest skipped as padding
    fmt = e + ("IBxH16x" if lay.word == 8 else "I8xBxH")
    # (taken one past the limit at most: millions are not listed to be refused)
    undefined = list(itertools.islice(
        ((idx, st_name, st_info) for idx, (st_name, st_info, st_shndx) in enumerate(struct.iter_unpack(fmt, syms))
         if st_shndx == SHN_UNDEF and st_name and idx), MAX_IMPORTS + 1))
    if len(undefined) > MAX_IMPORTS:
        raise InvalidElf(f"more than the {MAX_IMPORTS} undefined symbols allowed")
    names: dict[int, str] = {}
    name_bytes = 0
    made: dict[tuple, ImportedSymbol] = {}
    for idx, st_name, st_info in undefined:
        name = names.get(st_name)
        if name is None:
            # (names may overlap in the table, so their sum is bounded here
            # rather than by the table's size; one name is at most the table)
            name, length = strtab.string_and_length(st_name, "symbol name")
            name_bytes += length
            if name_bytes > MAX_IMPORT_NAME_BYTES:
                raise InvalidElf(f"the names of its undefined symbols add up to more than the "
                                 f"{MAX_IMPORT_NAME_BYTES} bytes allowed")
            names[st_name] = name
        version = library = None
        if versym is not None:
            vi = versym[idx] & 0x7FFF
            if vi > 1 and vi in by_index:
                version, library = by_index[vi]
        key = (name, version, library, st_info)
        if key not in made:
            made[key] = ImportedSymbol(name, version, library, (st_info >> 4) == STB_WEAK, st_info & 0xF)
    inits: set[str] = set()
    for st_name, st_info, st_shndx in struct.iter_unpack(fmt, syms):
        if st_shndx != SHN_UNDEF and st_info & 0xF == STT_FUNC and st_name and strtab.startswith(_INIT_PREFIXES, st_name):
            inits.add(strtab.string(st_name, "symbol name"))
    return list(made.values()), inits


def _count_symbols(buf: _Bytes, lay: _Layout, tags: dict[int, int], symoff: int, syment: int) -> int:
    """Number of ``.dynsym`` entries, from the hash tables (no section headers)."""
    e = lay.e
    if DT_GNU_HASH in tags:
        off = lay.to_offset(tags[DT_GNU_HASH], "DT_GNU_HASH")
        nbuckets, symndx, maskwords, _shift = struct.unpack(e + "IIII", buf.get(off, 16))
        if nbuckets > MAX_SYMBOLS or maskwords > MAX_SYMBOLS:
            raise InvalidElf(f"absurd GNU hash table ({nbuckets} buckets, {maskwords} mask words)")
        boff = off + 16 + maskwords * lay.word
        last = 0
        if nbuckets:
            buckets = array.array("I")
            buckets.frombytes(buf.view(boff, 4 * nbuckets))
            if lay.little != (sys.byteorder == "little"):
                buckets.byteswap()
            last = max(buckets)
        if last < symndx:
            return symndx
        # The chain of the last bucket ends at the first word with bit 0 set.
        # Its low bytes are taken out in one slice and searched in C: a
        # chain that never ends (a file full of zeros) costs one pass over
        # what was kept, not a Python step per word.
        # Windows of growing size: a real chain ends within a few words (one
        # small slice), a hostile one costs at most twice one pass.
        start = boff + 4 * nbuckets + 4 * (last - symndx)
        budget = 4 * (MAX_SYMBOLS + 1)
        pos, window = start, 256
        while pos - start < budget and pos < buf.size:
            chunk = buf.available(pos, min(window, budget - (pos - start)))
            words = len(chunk) // 4
            if not words:
                raise _Missing(pos, pos + 4)
            low = chunk[0 : words * 4 : 4] if lay.little else chunk[3 : words * 4 : 4]
            hit = bytes(low).translate(_ODD).find(b"\1")
            if hit >= 0:
                return last + (pos - start) // 4 + hit + 1
            pos += words * 4
            window *= 2
        raise InvalidElf("GNU hash chain does not terminate")
    if DT_HASH in tags:
        off = lay.to_offset(tags[DT_HASH], "DT_HASH")
        # s390x and alpha use 64-bit hash words.
        if lay.machine == EM_S390 and lay.word == 8:
            return struct.unpack(e + "QQ", buf.get(off, 16))[1]
        return struct.unpack(e + "II", buf.get(off, 8))[1]
    # No hash table: the string table conventionally follows the symbols.
    if DT_STRTAB in tags:
        stroff = lay.to_offset(tags[DT_STRTAB], "DT_STRTAB")
        if stroff > symoff:
            return (stroff - symoff) // syment
    return 0


_ODD = bytes(i & 1 for i in range(256))  # byte -> 1 if odd


def _read_isa(buf: _Bytes, lay: _Layout) -> int:
    """GNU_PROPERTY_X86_ISA_1_NEEDED from the first GNU property note.

    The note segments add up to at most MAX_NOTE_BYTES (checked with the
    program headers), and each note is at least 12 bytes, so this loop is
    bounded too."""
    segs = list(lay.segments(PT_GNU_PROPERTY)) or list(lay.segments(PT_NOTE))
    e = lay.e
    for _t, _f, off, _v, size, align in segs:
        data = buf.view(off, size)
        pad = 8 if align == 8 else 4
        pos = 0
        while pos + 12 <= len(data):
            namesz, descsz, ntype = struct.unpack_from(e + "III", data, pos)
            name_start = pos + 12
            desc_start = ((name_start + namesz + pad - 1) // pad) * pad
            desc_end = desc_start + descsz
            if desc_end > len(data):
                break
            name = bytes(data[name_start : name_start + namesz])
            if ntype == NT_GNU_PROPERTY_TYPE_0 and name == b"GNU\0":
                ppos = desc_start
                while ppos + 8 <= desc_end:
                    pr_type, pr_datasz = struct.unpack_from(e + "II", data, ppos)
                    if pr_type == GNU_PROPERTY_X86_ISA_1_NEEDED and pr_datasz == 4 and ppos + 12 <= desc_end:
                        return struct.unpack_from(e + "I", data, ppos + 8)[0]
                    ppos += 8 + ((pr_datasz + lay.word - 1) // lay.word) * lay.word
                return 0
            pos = ((desc_end + pad - 1) // pad) * pad
    return 0


# ---------------------------------------------------------------- dlopen hints

# A name the scan reports: ``lib`` + name characters + ``.so`` + optional
# version numbers, ending a C string (NUL), after a non-name byte or a "/".
_HINT_RE = re.compile(rb"lib[A-Za-z0-9_+-][A-Za-z0-9_.+-]*\.so(?:\.[0-9]+)*")
_NAME_BYTES = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.+-")
_VERSION_BYTES = frozenset(b"0123456789.")
HINT_LOOKBACK = 200  # the longest name looked back for from a ".so"
HINT_TAIL = 64  # the longest version suffix looked at after it
MAX_HINT_HITS = 1 << 14  # ".so" occurrences examined in one file (a few dozen in real ones)
MAX_HINTS = 64  # names kept for one file
HINT_EXEC_TAIL = 64 << 20  # bytes at the end of an executable segment scanned, when it holds the read-only data


class DlopenHints:
    """Library names in a file's read-only data, found as its bytes stream by.

    Only the read-only loadable segments are scanned (no write, no execute:
    ``.rodata`` under ``-z separate-code``; a file linked without such a
    segment has the last :data:`HINT_EXEC_TAIL` bytes of its executable ones
    scanned instead, where ld puts its read-only data after the code).  The work is one ``bytes.find`` for ".so" over those bytes
    plus at most :data:`MAX_HINT_HITS` look-arounds of a few hundred bytes:
    bounded by the bytes read, whatever the file holds."""

    def __init__(self, lay: _Layout) -> None:
        loads = [p for p in lay.segments(PT_LOAD) if p[4]]
        ranges = [(p[2], p[2] + p[4]) for p in loads if not p[1] & (PF_W | PF_X)]
        if not ranges or all(r[0] == 0 for r in ranges):  # only the headers' segment: no separate read-only data
            # ld puts .rodata after .text: the end of the executable segment
            # (for speed: libtorch_cpu.so's is 341 MB, its .rodata in the last 45)
            ranges += [(max(p[2], p[2] + p[4] - HINT_EXEC_TAIL), p[2] + p[4]) for p in loads
                       if p[1] & PF_X and not p[1] & PF_W]
        self.ranges = sorted(set(ranges))
        self.found: dict[str, None] = {}
        self.hits = 0
        self._carry = b""
        self._carry_end = -1
        self._next = 0  # file offset from which ".so" hits are still to be examined

    def feed(self, data, at: int) -> None:
        """``data``: the file's bytes from offset ``at`` (in order, each once)."""
        end = at + len(data)
        for s, e in self.ranges:
            lo, hi = max(s, at), min(e, end)
            if lo < hi and self.hits <= MAX_HINT_HITS:
                self._scan(data, at, lo, hi, final=hi == e)

    def _scan(self, data, at: int, lo: int, hi: int, final: bool) -> None:
        """Examine the ".so" in file bytes [lo, hi) (``data`` holds them from
        ``at``), in place: only the seam with the previous piece is copied
        (a name may straddle it).  A hit too near ``hi`` to see its end
        waits for the next piece."""
        seam = HINT_TAIL + HINT_LOOKBACK + 8
        if self._carry_end != lo:  # a new range
            self._carry, self._next = b"", lo
        stop = hi if final else hi - HINT_TAIL
        if self._carry:
            joint_end = min(hi, lo + seam)
            joint = self._carry + bytes(data[lo - at : joint_end - at])
            self._examine(joint, lo - len(self._carry), 0, stop if joint_end == hi else min(stop, lo + HINT_LOOKBACK))
        if stop > max(self._next, lo):
            self._examine(data, at, lo - at, stop)
        self._carry = (self._carry + bytes(data[max(lo, hi - seam) - at : hi - at]))[-seam:]
        self._carry_end = hi

    def _examine(self, buf, base: int, floor: int, stop: int) -> None:
        """The hits at file offsets [self._next, stop) of ``buf`` (holding the
        file from offset ``base``; names looked back for down to index ``floor``)."""
        i, limit = max(floor, self._next - base), stop - base
        if limit <= i:
            return
        while self.hits <= MAX_HINT_HITS:
            j = buf.find(b".so", i, limit + 2)
            if j < 0 or j >= limit:
                break
            self.hits += 1
            i = j + 3
            k = i
            while k < len(buf) and k - i < HINT_TAIL and buf[k] in _VERSION_BYTES:
                k += 1
            if k >= len(buf) or buf[k] != 0:
                continue  # not the end of a C string
            m = j
            while m > floor and j - m < HINT_LOOKBACK and buf[m - 1] in _NAME_BYTES:
                m -= 1
            token = bytes(buf[m:k]).rstrip(b".")
            if _HINT_RE.fullmatch(token) and len(self.found) < MAX_HINTS:
                self.found[token.decode("ascii")] = None
        self._next = max(self._next, stop, base + i)

    def names(self, facts: ElfFacts) -> tuple[str, ...]:
        known = set(facts.needed) | {facts.soname}
        return tuple(sorted(n for n in self.found if n not in known))


# ---------------------------------------------------------------- reading

PREFIX_CAP = 48 << 20  # bytes of a file's start kept while streaming
NEAR_DYNAMIC = 8 << 20  # bytes kept before the dynamic segment (patchelf's tables)
CHUNK = 1 << 20
# The most bytes of one streamed ELF file held in memory.  Program headers
# decide what is kept, and a hostile file can make them name gigabytes; real
# files need far less: 56 MiB for PyTorch's 414 MiB libtorch_cpu.so (whose
# dynamic tables are 7.4 MiB of it).  Two worker processes may each hold
# this much at once.
MAX_KEPT = 128 << 20


def parse_elf(data: bytes | bytearray | memoryview, name: str = "") -> ElfFacts:
    """Facts of an ELF file held in memory."""
    try:
        return _parse(_Bytes(len(data), data))
    except InvalidElf as exc:
        raise exc.located(name) from None
    except (struct.error, UnicodeError, ValueError, OverflowError) as exc:
        raise InvalidElf(f"malformed ELF structure ({exc})", name) from None


class NotRegularFile(OSError):
    """A path that leads (links followed) to something other than a regular
    file: a fifo, a device, a socket, a directory.  ``kind`` names it."""

    def __init__(self, path: str, kind: str) -> None:
        super().__init__(f"{path}: not a regular file ({kind})")
        self.kind = kind


_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a fifo"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def open_regular(path: str | os.PathLike[str]) -> BinaryIO:
    """The regular file at ``path`` (symbolic links followed), opened for reading.

    Checking before opening is not enough: ``open`` itself blocks on a fifo,
    and the path can change between a check and the open.  So the file is
    opened without blocking and the *descriptor* is checked with ``fstat``;
    whatever is read afterwards comes from that descriptor.  Raises
    :class:`NotRegularFile` (an ``OSError``), or the ``OSError`` of the open.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ENXIO and stat.S_ISSOCK(os.stat(path).st_mode):  # a socket cannot be opened
            raise NotRegularFile(os.fspath(path), "a socket") from None
        raise
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = next((name for test, name in _KINDS if test(mode)), "not a file")
            raise NotRegularFile(os.fspath(path), kind)
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_elf_file(path: str | os.PathLike[str]) -> ElfFacts:
    """Facts of an ELF file on disk (memory-mapped; only touched pages are read)."""
    with open_regular(path) as f:
        size = os.fstat(f.fileno()).st_size
        if size == 0:
            raise InvalidElf("empty file", os.fspath(path))
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            try:
                return _parse(_Bytes(size, mm))
            except InvalidElf as exc:
                raise exc.located(os.fspath(path)) from None
            except (struct.error, UnicodeError, ValueError, OverflowError) as exc:
                raise InvalidElf(f"malformed ELF structure ({exc})", os.fspath(path)) from None


def read_elf_stream(open_stream, size: int, name: str = "") -> ElfFacts:
    """Facts of an ELF file read as a forward-only stream (a zip member).

    ``open_stream()`` returns a fresh binary stream positioned at byte 0.  The
    stream is read once, keeping the file's first segment and the ranges the
    program headers point at, and inflation stops once they are all in; in
    the rare layout where the dynamic tables lie beyond what was kept, the
    member is read a second time keeping exactly those ranges.
    """
    try:
        return _read_stream(open_stream, size)
    except InvalidElf as exc:
        raise exc.located(name) from None
    except (struct.error, UnicodeError, ValueError, OverflowError) as exc:
        raise InvalidElf(f"malformed ELF structure ({exc})", name) from None


def _read_stream(open_stream, size: int) -> ElfFacts:
    with open_stream() as stream:
        head = bytearray()
        # Header and program headers first (they are almost always in the first KiB).
        while True:
            chunk = stream.read(65536 if len(head) < 65536 else CHUNK)
            if chunk:
                head += chunk
            if len(head) > MAX_KEPT:
                raise InvalidElf(f"its program headers lie more than {MAX_KEPT} bytes into the file")
            try:
                lay = _Layout(_Bytes(size, head))
                break
            except _Missing:
                if not chunk:
                    raise InvalidElf("file ends inside its headers") from None
        keep_prefix = max(lay.table_prefix_end(PREFIX_CAP), len(head))
        ranges = [r for r in lay.wanted_ranges() if r[1] > keep_prefix]
        hints = DlopenHints(lay)
        buf = _stream_ranges(stream, head, size, keep_prefix, ranges, hints)
    try:
        facts = _parse(buf)
        return replace(facts, dlopen_hints=hints.names(facts)) if hints.found else facts
    except _Missing as exc:
        # (only the offsets: the exception's traceback holds the first
        # pass's buffer, which must go before the second pass fills another)
        miss = _Missing(exc.start, exc.end)
    # Second pass: the first told us where the dynamic tables are.
    wanted = _table_ranges(buf, lay, miss)
    del buf
    with open_stream() as stream:
        buf = _stream_ranges(stream, bytearray(), size, lay.header_end, lay.wanted_ranges() + wanted)
    try:
        return _parse(buf)
    except _Missing:
        pass
    if size > MAX_KEPT:
        raise InvalidElf(f"dynamic tables not found where the program headers point, and the file is too large "
                         f"({size} bytes) to read whole (at most {MAX_KEPT})")
    with open_stream() as stream:  # pathological layout: read it all
        data = bytearray()
        while chunk := stream.read(CHUNK):
            data += chunk
    return _parse(_Bytes(len(data), data))


def _table_ranges(buf: _Bytes, lay: _Layout, miss: _Missing) -> list[tuple[int, int]]:
    """Ranges around the dynamic tables, for the second pass."""
    start, end = miss.start, miss.end
    try:
        dyn = next(iter(lay.segments(PT_DYNAMIC)))
        raw = buf.get(dyn[2], dyn[4])
        fmt = lay.e + ("qQ" if lay.word == 8 else "iI")
        for tag, val in struct.iter_unpack(fmt, raw[: len(raw) - len(raw) % struct.calcsize(fmt)]):
            if tag in (DT_STRTAB, DT_SYMTAB, DT_VERSYM, DT_VERNEED, DT_GNU_HASH, DT_HASH):
                try:
                    off = lay.to_offset(val, "table")
                except InvalidElf:
                    continue
                start, end = min(start, off), max(end, off)
    except (_Missing, StopIteration):
        pass
    # The tables' own sizes are only known once read; 32 MiB of slack covers them.
    return [(start, min(buf.size, end + (32 << 20)))]


def _stream_ranges(stream: BinaryIO, head: bytearray, size: int, keep_prefix: int, ranges: list[tuple[int, int]],
                   hints: DlopenHints | None = None) -> _Bytes:
    """Read the stream on from ``head`` (what was read of it already),
    keeping bytes [0, keep_prefix) and the ``ranges``.  Each kept range is
    allocated once at its full size and filled in place: appending to a
    growing buffer copies it, and for a while holds it twice."""
    pos = len(head)
    # The prefix and the ranges, merged where they meet: a table must lie
    # in one buffer (a range starting inside the prefix extends it).
    merged: list[list[int]] = [[0, min(keep_prefix, size)]]
    for s, e_ in sorted((s, min(e_, size)) for s, e_ in ranges):
        if s >= e_:
            continue  # empty, or past the end
        if s <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], e_)
        else:
            merged.append([s, e_])
    spans = [(s, e_) for s, e_ in merged]
    kept = sum(e_ - s for s, e_ in spans)
    if kept > MAX_KEPT:
        raise InvalidElf(f"its program headers and dynamic tables name {kept} bytes to keep, more than the "
                         f"{MAX_KEPT} wheelvet holds for one file")
    bufs = [bytearray(e_ - s) for s, e_ in spans]
    filled = [0] * len(spans)  # bytes of each span read so far (from its start, in order)

    def take(data, at: int, first: int) -> int:
        """Copy what ``data`` (file bytes from offset ``at``) holds of each
        span from index ``first`` on; the first span not yet complete."""
        end = at + len(data)
        while first < len(spans) and spans[first][1] <= at:
            first += 1
        for i in range(first, len(spans)):
            s, e_ = spans[i]
            if s >= end:
                break
            lo, hi = max(s, at), min(e_, end)
            if s + filled[i] == lo and hi > lo:  # spans are filled in order
                bufs[i][lo - s : hi - s] = data[lo - at : hi - at]
                filled[i] = hi - s
        return first

    first = take(memoryview(head), 0, 0)
    if hints is not None:
        hints.feed(head, 0)
    stop = max(e_ for _s, e_ in spans)
    while pos < stop:
        chunk = stream.read(CHUNK)
        if not chunk:
            break
        first = take(memoryview(chunk), pos, first)
        if hints is not None:  # (the read-only data passes by on its way to the dynamic segment)
            hints.feed(chunk, pos)
        pos += len(chunk)
    for i, buf in enumerate(bufs):  # the stream ended early: keep what came
        if filled[i] < len(buf):
            del buf[filled[i]:]
    return _Bytes(size, bufs[0], {s: bufs[i] for i, (s, _e) in enumerate(spans) if i})


# ---------------------------------------------------------------- soundness

PAGE_SIZE = 0x1000


def check_structure(data: bytes, name: str = "") -> list[str]:
    """Problems that would keep the loader from using a (patched) file; see
    :func:`inspect_structure`."""
    return inspect_structure(data)[1]


def inspect_structure(data: bytes) -> tuple[ElfFacts | None, list[str]]:
    """The facts of a (patched) file and what would keep the loader from using it.

    Checks what patchelf has been known to break: loadable segments congruent
    with their addresses modulo their alignment (and aligned to at least a
    page), the dynamic segment and the dynamic tables inside loaded segments
    and inside the file, and every library named by a version need also in
    DT_NEEDED.  An empty list means sound.
    """
    problems: list[str] = []
    buf = _Bytes(len(data), data)
    try:
        lay = _Layout(buf)
    except (InvalidElf, _Missing, struct.error) as exc:
        return None, [f"unreadable headers ({exc})"]
    loads = list(lay.segments(PT_LOAD))
    if not loads and lay.type == 3:
        problems.append("no loadable segment")
    for _t, _f, off, vaddr, size, align in loads:
        if off + size > len(data):
            problems.append(f"PT_LOAD at {off:#x} (+{size:#x}) lies past the end of the file")
        if align > 1:
            if align & (align - 1):
                problems.append(f"PT_LOAD at {off:#x}: alignment {align:#x} is not a power of two")
            elif off % align != vaddr % align:
                problems.append(f"PT_LOAD at {off:#x}: offset and address {vaddr:#x} differ modulo the alignment {align:#x}")
            if align < PAGE_SIZE:
                problems.append(f"PT_LOAD at {off:#x}: alignment {align:#x} is below the page size")
    for _t, _f, off, vaddr, size, _a in lay.segments(PT_DYNAMIC):
        if not any(lo <= off and off + size <= lo + sz for _t2, _f2, lo, _v2, sz, _a2 in loads):
            problems.append(f"the dynamic segment ({off:#x}, +{size:#x}) is not inside a loaded segment")
    try:
        facts = _parse(buf)
    except InvalidElf as exc:
        return None, problems + [exc.problem]
    except (_Missing, struct.error, UnicodeError, ValueError) as exc:
        return None, problems + [f"malformed dynamic structures ({exc})"]
    for need in facts.version_needs:
        if need.library not in facts.needed:
            problems.append(f"version needs name {need.library}, which is not in DT_NEEDED")
    return facts, problems
