"""``wheelvet lddtree FILE``: what one ELF file loads, in auditwheel's JSON shape.

auditwheel 6.8.2's ``lddtree`` prints (through its logger, on stderr) its
``DynamicExecutable`` serialised with ``indent=4``: ``interpreter``, ``libc``,
``path``, ``realpath``, ``platform``, ``needed``, ``rpath``, ``runpath`` and
``libraries`` (every library loaded, directly or not, by SONAME: ``soname``,
``path``, ``realpath``, ``platform``, ``needed``), its enums as their Python
``repr`` (``"<Libc.GLIBC: 'glibc'>"``).  :func:`lddtree` builds the same
object from :func:`wheelvet.resolve.resolve_tree` (the loader's own order,
``docs/resolution.md``), so that a script reading auditwheel's output reads
this one; the CLI prints it on stdout.
"""

from __future__ import annotations

import json
import os
import posixpath
from typing import Mapping

from .elf import ElfFacts, read_elf_file
from .errors import InvalidInput
from .resolve import HostFiles, SearchConfig, resolve_tree, search_path

_OSABI = {0: "ELFOSABI_SYSV", 1: "ELFOSABI_HPUX", 2: "ELFOSABI_NETBSD", 3: "ELFOSABI_LINUX", 6: "ELFOSABI_SOLARIS",
          7: "ELFOSABI_AIX", 8: "ELFOSABI_IRIX", 9: "ELFOSABI_FREEBSD", 10: "ELFOSABI_TRU64", 11: "ELFOSABI_MODESTO",
          12: "ELFOSABI_OPENBSD", 13: "ELFOSABI_OPENVMS", 14: "ELFOSABI_NSK", 15: "ELFOSABI_AROS",
          16: "ELFOSABI_FENIXOS", 17: "ELFOSABI_CLOUD", 53: "ELFOSABI_SORTIX", 64: "ELFOSABI_ARM_AEABI",
          97: "ELFOSABI_ARM", 102: "ELFOSABI_CELL_LV2", 255: "ELFOSABI_STANDALONE"}
_MACHINE = {3: "EM_386", 21: "EM_PPC64", 22: "EM_S390", 40: "EM_ARM", 62: "EM_X86_64", 183: "EM_AARCH64",
            243: "EM_RISCV", 258: "EM_LOONGARCH", 8: "EM_MIPS", 20: "EM_PPC", 2: "EM_SPARC", 43: "EM_SPARCV9"}
_LIBC = {"glibc": "GLIBC", "musl": "MUSL", "android": "ANDROID"}


def _enum(kind: str, member: str, value: str) -> str:
    return f"<{kind}.{member}: {value!r}>"


def platform(facts: ElfFacts) -> dict:
    """auditwheel's ``Platform`` of a file."""
    ext, error = None, facts.arch_error
    level = facts.isa_level if facts.arch == "x86_64" else None
    if level == "unknown":
        error = "unknown x86_64 ISA"
    elif level:
        ext = _enum("Architecture", level, level)
    return {
        "_elf_osabi": _OSABI.get(facts.osabi, f"<unknown: {facts.osabi:#x}>"),
        "_elf_class": facts.elf_class,
        "_elf_little_endian": facts.little_endian,
        "_elf_machine": _MACHINE.get(facts.machine, f"<unknown>: {facts.machine:#x}"),
        "_base_arch": _enum("Architecture", facts.arch, facts.arch) if facts.arch else None,
        "_ext_arch": ext,
        "_error_msg": error,
    }


def _dirs(value: str | None, origin: str) -> list[str]:
    """An RPATH/RUNPATH as auditwheel lists it: ``$ORIGIN`` expanded, normalised,
    repeats dropped, only directories that exist (entries the loader reads in
    ways wheelvet cannot know, ``$LIB`` or relative ones, are left out)."""
    return [d for d in dict.fromkeys(e.path for e in search_path(value, origin, "glibc") if e.path)
            if os.path.isdir(d)]


def lddtree(path: str, environ: Mapping[str, str], ldpaths: str | None = None) -> dict:
    """The tree of one ELF file on disk, in auditwheel's shape."""
    try:
        facts = read_elf_file(path)
    except FileNotFoundError:
        raise InvalidInput(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InvalidInput(f"{path}: is a directory") from None
    except OSError as exc:
        raise InvalidInput(f"{path}: {exc.strerror}") from None
    real = os.path.realpath(path)
    tree = resolve_tree(real, facts, HostFiles(), SearchConfig.from_environment(environ, ldpaths))
    origin = posixpath.dirname(os.path.abspath(path))
    runpath = _dirs(facts.runpath, origin)
    libraries = {}
    for soname, lib in tree.libraries.items():
        libraries[soname] = {"soname": soname, "path": lib.path, "realpath": lib.realpath,
                             "platform": platform(lib.facts) if lib.facts else None, "needed": list(lib.needed)}
    return {
        "interpreter": facts.interpreter,
        "libc": _enum("Libc", _LIBC[tree.libc], tree.libc) if tree.libc in _LIBC else None,
        "path": path,
        "realpath": path,
        "platform": platform(facts),
        "needed": list(tree.needed),
        "rpath": [] if runpath else _dirs(facts.rpath, origin),
        "runpath": runpath,
        "libraries": libraries,
    }


def render_lddtree(tree: dict) -> str:
    """auditwheel's serialisation: ``indent=4``."""
    return json.dumps(tree, indent=4)


__all__ = ["lddtree", "platform", "render_lddtree"]
