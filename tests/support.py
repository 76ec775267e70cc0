"""Helpers shared by the tests: compile real ELF files with gcc, write wheels.

Nothing here fakes wheelvet's inputs: the binaries come from the system's
compiler and linker, the wheels are ordinary zip archives with a valid RECORD.
"""

from __future__ import annotations

import base64
import hashlib
import os
import random
import shutil
import subprocess
import sysconfig
import zipfile
from pathlib import Path

PY_INCLUDE = sysconfig.get_paths()["include"]
EXT_SUFFIX = sysconfig.get_config_var("EXT_SUFFIX")
HAVE_GCC = shutil.which("gcc") is not None
HAVE_MUSL_GCC = shutil.which("musl-gcc") is not None


def cc(out: Path, sources: dict[str, str], *flags: str, shared: bool = True) -> Path:
    """Compile C sources (name -> text) into ``out`` with gcc."""
    out.parent.mkdir(parents=True, exist_ok=True)
    src_dir = out.parent / f".src-{out.name}"
    src_dir.mkdir(exist_ok=True)
    files = []
    for name, text in sources.items():
        p = src_dir / name
        p.write_text(text)
        if name.endswith(".c"):
            files.append(str(p))
    cmd = ["gcc", "-O1", "-fPIC", *(["-shared"] if shared else []), "-o", str(out), *files, *flags]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stderr}")
    return out


def extension_source(module: str, body: str = "", call: str = "0") -> str:
    """A minimal CPython extension module whose ``value()`` returns ``call``."""
    return f"""
#include <Python.h>
{body}
static PyObject *value(PyObject *self, PyObject *args) {{ return PyLong_FromLong((long)({call})); }}
static PyMethodDef methods[] = {{{{"value", value, METH_NOARGS, ""}}, {{NULL, NULL, 0, NULL}}}};
static struct PyModuleDef mod = {{PyModuleDef_HEAD_INIT, "{module}", NULL, -1, methods}};
PyMODINIT_FUNC PyInit_{module}(void) {{ return PyModule_Create(&mod); }}
"""


def build_extension(out_dir: Path, module: str, *flags: str, body: str = "", call: str = "0") -> Path:
    return cc(out_dir / f"{module}{EXT_SUFFIX}", {f"{module}.c": extension_source(module, body, call)},
              f"-I{PY_INCLUDE}", *flags)


def _digest(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def library_like(size: int, seed: int = 1) -> bytes:
    """Bytes that deflate as a library does: text-like stretches (many
    Huffman blocks) and incompressible ones (stored blocks)."""
    rng = random.Random(seed)
    words = [bytes(rng.choice(b"abcdefghijklmnop_") for _ in range(rng.randint(3, 12))) for _ in range(400)]
    out = bytearray()
    while len(out) < size:
        if rng.random() < 0.08:
            out += rng.randbytes(rng.randint(20_000, 90_000))  # (deflate stores these)
        else:
            out += b"\0".join(rng.choice(words) for _ in range(rng.randint(500, 4000)))
    return bytes(out[:size])


def add_section(path: Path, name: str, data: bytes) -> Path:
    """``path`` (an ELF file) with a section ``name`` holding ``data``, outside every segment
    (what makes one build of a module differ from another, and a large one large)."""
    blob = path.with_name(path.name + name + ".bin")
    blob.write_bytes(data)
    subprocess.run(["objcopy", "--add-section", f"{name}={blob}", str(path)], check=True)
    blob.unlink()
    return path


def write_wheel(
    path: Path,
    files: dict[str, bytes],
    *,
    tag: str = "cp311-cp311-linux_x86_64",
    purelib: bool = False,
    compression: int = zipfile.ZIP_DEFLATED,
    requires: tuple[str, ...] = (),
) -> Path:
    """Write a wheel named ``path`` holding ``files`` plus a valid dist-info
    (``requires``: its METADATA's Requires-Dist lines)."""
    dist, version = path.name.split("-")[:2]
    info = f"{dist}-{version}.dist-info"
    tags = []
    py, abi, plats = tag.split("-")
    for p in plats.split("."):
        tags.append(f"Tag: {py}-{abi}-{p}")
    members = dict(files)
    members[f"{info}/METADATA"] = (f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n"
                                   + "".join(f"Requires-Dist: {r}\n" for r in requires)).encode()
    members[f"{info}/WHEEL"] = (
        "Wheel-Version: 1.0\nGenerator: wheelvet-tests\n"
        f"Root-Is-Purelib: {'true' if purelib else 'false'}\n" + "\n".join(tags) + "\n"
    ).encode()
    record = "".join(f"{n},{_digest(d)},{len(d)}\n" for n, d in members.items()) + f"{info}/RECORD,,\n"
    members[f"{info}/RECORD"] = record.encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", compression) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def wheel_from_dir(path: Path, root: Path, **kw) -> Path:
    files = {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}
    return write_wheel(path, files, **kw)


def build_lib_chain(d: Path) -> Path:
    """libA.so.1 needs libB.so.2 (b_value() == 42, a_value() == 43), in ``d``."""
    cc(d / "libB.so.2", {"b.c": "int b_value(void){return 42;}"}, "-Wl,-soname,libB.so.2")
    cc(d / "libA.so.1", {"a.c": "int b_value(void); int a_value(void){return b_value()+1;}"},
       "-Wl,-soname,libA.so.1", f"-L{d}", "-l:libB.so.2")
    return d


class DictFiles:
    """An index of files (path -> ELF facts) standing for a file system in
    unit tests of the resolver and the audit (symlinks are not modelled)."""

    def __init__(self, files):
        self.files = files
        self.dirs = {str(Path(p).parent) for p in files} | {str(q) for p in files for q in Path(p).parents}

    def is_dir(self, path):
        return path in self.dirs

    def lookup(self, path):
        f = self.files.get(path)
        return (path, f) if f is not None else None

    def names_in(self, directory):
        return {p.rsplit("/", 1)[1] for p in self.files if p.rsplit("/", 1)[0] == directory}

    def dirs_holding(self, name):
        return ()  # (wheel directories: these files are not a wheel's)


GOLDEN = Path(__file__).parent / "unit" / "golden"


def check_golden(name: str, text: str) -> None:
    """Compare with a golden file; ``WHEELVET_UPDATE_GOLDEN=1`` rewrites it."""
    path = GOLDEN / name
    if os.environ.get("WHEELVET_UPDATE_GOLDEN"):
        path.write_text(text)
    assert path.exists(), f"missing golden file {path} (run with WHEELVET_UPDATE_GOLDEN=1)"
    assert text == path.read_text()


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("LD_LIBRARY_PATH", "AUDITWHEEL_LD_LIBRARY_PATH")}
    env.update(extra)
    return env


# ---------------------------------------------------------------- crafted ELF
# gcc here only targets x86-64; ELF files of the other architectures are
# written byte by byte: a header, program headers, and a dynamic segment with
# real string, symbol, version and hash tables, as a linker lays them out.

MACHINES = {  # arch -> (e_machine, class, little endian, e_flags)
    "x86_64": (62, 64, True, 0),
    "i686": (3, 32, True, 0),
    "aarch64": (183, 64, True, 0),
    "ppc64le": (21, 64, True, 2),
    "ppc64": (21, 64, False, 1),
    "s390x": (22, 64, False, 0),
    "armv7l": (40, 32, True, 0x05000400),
    "riscv64": (243, 64, True, 5),
    "loongarch64": (258, 64, True, 0x43),
}


def craft_elf(
    arch: str = "x86_64",
    *,
    needed: tuple[str, ...] = (),
    soname: str | None = None,
    rpath: str | None = None,
    runpath: str | None = None,
    imports: tuple[tuple[str, str | None, str | None], ...] = (),  # (symbol, version, library)
    exports: tuple[str, ...] = (),  # defined FUNC symbols
    interp: str | None = None,
    isa_needed: int | None = None,
    flags: int | None = None,
    machine: int | None = None,
    elf_type: int = 3,
) -> bytes:
    import struct

    em, cls, little, default_flags = MACHINES[arch]
    em = machine if machine is not None else em
    flags = default_flags if flags is None else flags
    e = "<" if little else ">"
    w = 8 if cls == 64 else 4
    ehsize, phentsize = (64, 56) if cls == 64 else (52, 32)

    strtab = bytearray(b"\0")

    def s(text: str) -> int:
        off = len(strtab)
        strtab.extend(text.encode("utf-8", "surrogateescape") + b"\0")
        return off

    needed_offs = [s(n) for n in needed]
    soname_off = s(soname) if soname else None
    rpath_off = s(rpath) if rpath else None
    runpath_off = s(runpath) if runpath else None
    # version needs: library -> [versions], each version an index from 2
    libs: dict[str, list[str]] = {}
    for _sym, ver, lib in imports:
        if ver:
            libs.setdefault(lib, [])
            if ver not in libs[lib]:
                libs[lib].append(ver)
    index = {}
    nxt = 2
    for lib, vers in libs.items():
        for v in vers:
            index[(lib, v)] = nxt
            nxt += 1
    file_offs = {lib: s(lib) for lib in libs}
    ver_offs = {key: s(key[1]) for key in index}
    sym_rows = [(0, 0, 0, 0)]  # (name, info, shndx, versym)
    for sym, ver, lib in imports:
        sym_rows.append((s(sym), (1 << 4) | 2, 0, index[(lib, ver)] if ver else 1))
    for sym in exports:
        sym_rows.append((s(sym), (1 << 4) | 2, 7, 1))

    def sym_bytes(name, info, shndx):
        if cls == 64:
            return struct.pack(e + "IBBHQQ", name, info, 0, shndx, 0x1000 if shndx else 0, 0)
        return struct.pack(e + "IIIBBH", name, 0x1000 if shndx else 0, 0, info, 0, shndx)

    dynsym = b"".join(sym_bytes(n, i, sh) for n, i, sh, _v in sym_rows)
    versym = b"".join(struct.pack(e + "H", v) for *_x, v in sym_rows)
    verneed = bytearray()
    libs_list = list(libs.items())
    for li, (lib, vers) in enumerate(libs_list):
        size = 16 + 16 * len(vers)
        verneed += struct.pack(e + "HHIII", 1, len(vers), file_offs[lib], 16, size if li < len(libs_list) - 1 else 0)
        for vi, v in enumerate(vers):
            verneed += struct.pack(e + "IHHII", 0, 0, index[(lib, v)], ver_offs[(lib, v)], 16 if vi < len(vers) - 1 else 0)
    nsyms = len(sym_rows)
    hword = "Q" if (arch == "s390x") else "I"
    hashtab = struct.pack(e + hword * 3, 1, nsyms, 0) + struct.pack(e + hword, 0) * nsyms
    note = b""
    if isa_needed is not None:
        desc = struct.pack(e + "III", 0xC0008002, 4, isa_needed) + (b"\0" * 4 if w == 8 else b"")
        note = struct.pack(e + "III", 4, len(desc), 5) + b"GNU\0" + desc
    interp_b = (interp.encode() + b"\0") if interp else b""

    nph = 2 + bool(interp) + bool(note)
    pos = ehsize + nph * phentsize
    blobs = []

    def place(data: bytes, align: int = 8) -> int:
        nonlocal pos
        pos = (pos + align - 1) // align * align
        off = pos
        blobs.append((off, bytes(data)))
        pos += len(data)
        return off

    interp_off = place(interp_b, 1) if interp else None
    note_off = place(note, 8) if note else None
    str_off = place(bytes(strtab), 1)
    sym_off = place(dynsym)
    versym_off = place(versym, 2)
    verneed_off = place(bytes(verneed), 4) if verneed else None
    hash_off = place(hashtab)
    dyn = []
    dyn += [(1, o) for o in needed_offs]
    if soname_off is not None:
        dyn.append((14, soname_off))
    if rpath_off is not None:
        dyn.append((15, rpath_off))
    if runpath_off is not None:
        dyn.append((29, runpath_off))
    dyn += [(4, hash_off), (5, str_off), (10, len(strtab)), (6, sym_off), (11, 24 if cls == 64 else 16), (0x6FFFFFF0, versym_off)]
    if verneed_off is not None:
        dyn += [(0x6FFFFFFE, verneed_off), (0x6FFFFFFF, len(libs))]
    dyn.append((0, 0))
    dfmt = e + ("qQ" if cls == 64 else "iI")
    dyn_off = place(b"".join(struct.pack(dfmt, t, v) for t, v in dyn))
    total = pos

    phdrs = []

    def ph(p_type, p_flags, off, size, align):
        if cls == 64:
            return struct.pack(e + "IIQQQQQQ", p_type, p_flags, off, off, off, size, size, align)
        return struct.pack(e + "IIIIIIII", p_type, off, off, off, size, size, p_flags, align)

    phdrs.append(ph(1, 5, 0, total, 0x1000))
    if interp:
        phdrs.append(ph(3, 4, interp_off, len(interp_b), 1))
    if note:
        phdrs.append(ph(0x6474E553, 4, note_off, len(note), 8))
    phdrs.append(ph(2, 6, dyn_off, total - dyn_off, 8))
    ident = b"\x7fELF" + bytes([1 if cls == 32 else 2, 1 if little else 2, 1, 0]) + b"\0" * 8
    if cls == 64:
        hdr = ident + struct.pack(e + "HHIQQQIHHHHHH", elf_type, em, 1, 0, ehsize, 0, flags, ehsize, phentsize, nph, 64, 0, 0)
    else:
        hdr = ident + struct.pack(e + "HHIIIIIHHHHHH", elf_type, em, 1, 0, ehsize, 0, flags, ehsize, phentsize, nph, 40, 0, 0)
    out = bytearray(total)
    out[: len(hdr)] = hdr
    out[ehsize : ehsize + len(b"".join(phdrs))] = b"".join(phdrs)
    for off, data in blobs:
        out[off : off + len(data)] = data
    return bytes(out)
