"""Library resolution: the dynamic loader's rules as code over an index of files.

Given an ELF file and a view of the files around it (:class:`Files`), find
what each ``DT_NEEDED`` entry would load, in the order glibc's ``ld.so`` uses:

1. a name with a slash is a path; under musl, ``libc.so``, ``libm.so``,
   ``libpthread.so``... (any version) are the loader itself;
2. a library already loaded (by the name it was needed as, or its SONAME) is
   reused;
3. if the requesting object has no ``DT_RUNPATH``: the ``DT_RPATH`` of the
   object, then of each object that loaded it, up to the root;
4. ``LD_LIBRARY_PATH`` (here ``AUDITWHEEL_LD_LIBRARY_PATH`` then ``LD_LIBRARY_PATH``);
5. the requesting object's own ``DT_RUNPATH``;
6. the configured directories (``/etc/ld.so.conf`` with its ``include``
   globs; ``/etc/ld-musl-*.path`` for musl) then the default directories.

``$ORIGIN`` expands to the directory of the requesting object.  Dependencies
are loaded breadth first, as ``ld.so`` does.  A candidate whose ELF class,
machine, byte order or OS ABI differ from the root's is skipped, as the
loader skips it: a wheel for aarch64 never matches x86-64 host libraries.

Files inside the wheel live under the virtual root :data:`WHEEL_ROOT`, which
no real path can equal (it holds a NUL byte), so the same rules serve wheel
members and host libraries without unpacking anything.
"""

from __future__ import annotations

import glob
import os
import posixpath
import re
from collections import deque
from dataclasses import dataclass, field
from fnmatch import fnmatch
from typing import Iterable, Mapping, Protocol

from .elf import ElfFacts, read_elf_file
from .errors import InvalidElf

WHEEL_ROOT = "/\0wheel"
LIBPYTHON_RE = re.compile(r"^libpython\d+\.\d+m?\.so(\.\d)*$")
_ORIGIN_RE = re.compile(r"\$(ORIGIN|\{ORIGIN\})")

GLIBC_DEFAULT_DIRS = ("/lib", "/lib64", "/usr/lib", "/usr/lib64")
ANDROID_LINKERS = ("/system/bin/linker", "/system/bin/linker64")  # Android's program interpreters
MUSL_DEFAULT_DIRS = ("/lib", "/usr/local/lib", "/usr/lib")


# musl's dynamic linker answers these names itself, whatever follows them
# ("libc.so", "libm.so.6", "libpthread.so.0"...): they never load a file.
_MUSL_RESERVED = ("c.", "pthread.", "rt.", "m.", "dl.", "util.", "xnet.")


def is_musl_builtin(soname: str) -> bool:
    return soname.startswith("ld-musl-") or (soname.startswith("lib") and soname[3:].startswith(_MUSL_RESERVED))


class Files(Protocol):
    """What the resolver may ask of the file system."""

    def is_dir(self, path: str) -> bool: ...

    def lookup(self, path: str) -> tuple[str, ElfFacts] | None:
        """(real path, facts) of the ELF file at ``path``, or None."""


def in_wheel(path: str | None) -> bool:
    return path is not None and (path == WHEEL_ROOT or path.startswith(WHEEL_ROOT + "/"))


def wheel_path(member: str) -> str:
    return f"{WHEEL_ROOT}/{member}"


def member_name(path: str) -> str:
    """The archive name of a path under :data:`WHEEL_ROOT`."""
    return path[len(WHEEL_ROOT) + 1 :]


class HostFiles:
    """The real file system, with parsed facts cached by file identity."""

    def __init__(self) -> None:
        self._facts: dict[tuple, ElfFacts | None] = {}
        self.skipped: dict[str, str] = {}  # real path -> why it could not be read

    def is_dir(self, path: str) -> bool:
        return "\0" not in path and os.path.isdir(path)

    def lookup(self, path: str) -> tuple[str, ElfFacts] | None:
        if "\0" in path:
            return None
        real = os.path.realpath(path)
        try:
            st = os.stat(real)
        except OSError:
            return None
        if not os.path.isfile(real):
            return None
        key = (real, st.st_ino, st.st_size, st.st_mtime_ns)
        if key not in self._facts:
            self._facts[key] = self._read(real)
        facts = self._facts[key]
        return (real, facts) if facts is not None else None

    def _read(self, real: str) -> ElfFacts | None:
        try:
            with open(real, "rb") as f:
                if f.read(4) != b"\x7fELF":
                    return None
            return read_elf_file(real)
        except (OSError, InvalidElf) as exc:
            self.skipped[real] = str(exc)
            return None


class WheelFiles:
    """The wheel's members under :data:`WHEEL_ROOT`, over another :class:`Files`."""

    def __init__(self, members: Mapping[str, ElfFacts | None], host: Files) -> None:
        self.members = members
        self.host = host
        dirs = {WHEEL_ROOT}
        for name in members:
            parts = name.split("/")[:-1]
            for i in range(1, len(parts) + 1):
                dirs.add(wheel_path("/".join(parts[:i])))
        self.dirs = frozenset(dirs)

    def is_dir(self, path: str) -> bool:
        return path in self.dirs if in_wheel(path) else self.host.is_dir(path)

    def lookup(self, path: str) -> tuple[str, ElfFacts] | None:
        if not in_wheel(path):
            return self.host.lookup(path)
        facts = self.members.get(member_name(path))
        return (path, facts) if facts is not None else None


@dataclass(frozen=True)
class SearchConfig:
    """Where to look beyond an object's own RPATH/RUNPATH."""

    env: tuple[str, ...] = ()  # AUDITWHEEL_LD_LIBRARY_PATH + LD_LIBRARY_PATH
    conf: tuple[str, ...] | None = None  # None: the system's (ld.so.conf + defaults)
    use_interp_dirs: bool = True

    @classmethod
    def from_environment(cls, environ: Mapping[str, str], ldpaths: str | None = None) -> SearchConfig:
        """auditwheel's rules: ``--ldpaths`` replaces the system search and
        then only ``AUDITWHEEL_LD_LIBRARY_PATH`` is added to it."""
        if ldpaths is not None:
            return cls(env=tuple(split_path_list(environ.get("AUDITWHEEL_LD_LIBRARY_PATH", ""))),
                       conf=tuple(split_path_list(ldpaths)), use_interp_dirs=False)
        env = ":".join(v for v in (environ.get("AUDITWHEEL_LD_LIBRARY_PATH"), environ.get("LD_LIBRARY_PATH")) if v)
        return cls(env=tuple(split_path_list(env)))


def split_path_list(value: str) -> list[str]:
    """A colon-separated list as ld.so reads it: an empty entry is the
    current directory; entries with ``$ORIGIN`` make no sense here and go."""
    if not value:
        return []
    out = []
    for item in value.split(":"):
        if _ORIGIN_RE.search(item):
            continue
        out.append(posixpath.normpath(item or os.getcwd()))
    return out


def expand_origin(value: str, origin_dir: str) -> list[str]:
    """An RPATH/RUNPATH value with ``$ORIGIN`` expanded, normalised."""
    out = []
    for item in value.split(":"):
        item = _ORIGIN_RE.sub(lambda _m: origin_dir, item) if item else os.getcwd()
        out.append(posixpath.normpath(item))
    return out


def parse_ld_so_conf(path: str, _depth: int = 0) -> list[str]:
    """Directories from an ld.so.conf file, following ``include`` globs."""
    if _depth > 16:
        return []
    out: list[str] = []
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return out
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("include") and line[7:8].isspace():
            pattern = line[8:].strip()
            if not pattern.startswith("/"):
                pattern = os.path.join(os.path.dirname(path), pattern)
            for inc in sorted(glob.glob(pattern)):
                out += parse_ld_so_conf(inc, _depth + 1)
        elif line.startswith("hwcap"):
            continue
        else:
            out.append(posixpath.normpath(line))
    return out


def system_dirs(libc: str | None, root: str = "/") -> list[str]:
    """The configured then default directories for ``libc``."""
    if libc == "musl":
        found = sorted(glob.glob(os.path.join(root, "etc", "ld-musl-*.path")))
        if found:
            try:
                with open(found[0], encoding="utf-8", errors="replace") as f:
                    text = f.read()
            except OSError:
                text = ""
            return [p.strip() for p in re.split(r"[:\n]", text) if p.strip()]
        return list(MUSL_DEFAULT_DIRS)
    return parse_ld_so_conf(os.path.join(root, "etc", "ld.so.conf")) + list(GLIBC_DEFAULT_DIRS)


def elf_libc(facts: ElfFacts, file_name: str) -> str | None:
    """Which libc an ELF file was built for: its interpreter, then its
    DT_NEEDED, then its extension-module suffix; None when nothing tells."""
    if facts.interpreter:
        if facts.interpreter in ANDROID_LINKERS:  # hook (issue 13, Android): Bionic's loader
            return "android"
        return "musl" if posixpath.basename(facts.interpreter).startswith("ld-musl-") else "glibc"
    found = None
    for soname in facts.needed:
        if soname.startswith(("libc.musl-", "ld-musl-")):
            found = found or "musl"
        elif soname == "libc.so.6" or soname.startswith(("ld-linux-", "ld64.so.")):
            found = found or "glibc"
    if found:
        return found
    if file_name.endswith(("-arm-linux-musleabihf.so", "-linux-musl.so")):
        return "musl"
    if file_name.endswith(("-arm-linux-gnueabihf.so", "-linux-gnu.so")):
        soabi = file_name.rsplit(".", 2)[-2].split("-") if file_name.count(".") >= 2 else []
        if len(soabi) > 1 and soabi[0] == "cpython" and soabi[1].startswith("3") and len(soabi[1]) >= 3 and soabi[1][1:].isdigit() and int(soabi[1][1:]) >= 11:
            return "glibc"
    return None


@dataclass(frozen=True)
class Library:
    """One DT_NEEDED entry as the loader would satisfy it."""

    soname: str
    path: str | None  # where it was found (directory + name), None if not found
    realpath: str | None
    facts: ElfFacts | None = field(default=None, compare=False, repr=False)
    loaded_by: str | None = None  # real path of the object that first needed it

    @property
    def needed(self) -> tuple[str, ...]:
        return self.facts.needed if self.facts else ()


@dataclass(frozen=True)
class Tree:
    """An ELF file and everything it loads."""

    path: str
    facts: ElfFacts
    libc: str | None
    needed: tuple[str, ...]  # the root's DT_NEEDED, excluded ones removed
    libraries: Mapping[str, Library]
    excluded: frozenset[str] = frozenset()

    @property
    def complete(self) -> bool:
        return all(lib.realpath is not None for lib in self.libraries.values())


def _excluded(name: str | None, patterns: Iterable[str]) -> bool:
    return name is not None and any(fnmatch(name, p) for p in patterns)


def resolve_tree(
    path: str,
    facts: ElfFacts,
    files: Files,
    config: SearchConfig,
    *,
    libc: str | None = None,
    exclude: Iterable[str] = (),
    conf_dirs: Mapping[str | None, tuple[str, ...]] | None = None,
) -> Tree:
    """Resolve every library ``path`` loads, directly or not.

    ``conf_dirs`` maps a libc to its system directories (callers cache the
    parsed ld.so.conf there; by default it is read here).
    """
    exclude = tuple(exclude)
    libc = libc or elf_libc(facts, posixpath.basename(path))
    if config.conf is not None:
        system = list(config.conf)
    elif conf_dirs is not None and libc in conf_dirs:
        system = list(conf_dirs[libc])
    else:
        system = system_dirs(libc)
    if facts.interpreter and config.use_interp_dirs:
        d = posixpath.dirname(posixpath.normpath(facts.interpreter))
        system += [d, posixpath.normpath("/usr" + d)]
    env = list(config.env)

    libraries: dict[str, Library] = {}
    by_soname: dict[str, Library] = {}
    excluded: set[str] = set()
    if facts.interpreter:
        interp = posixpath.normpath(facts.interpreter)
        found = files.lookup(interp)
        libraries[posixpath.basename(interp)] = Library(
            posixpath.basename(interp), interp, found[0] if found else None, found[1] if found else None)

    # Each queue item: (real path, facts, RPATH lists of the loader chain).
    queue: deque[tuple[str, ElfFacts, tuple[list[str], ...]]] = deque([(path, facts, ())])
    while queue:
        obj_path, obj, chain = queue.popleft()
        origin = posixpath.dirname(obj_path)
        own_rpath = expand_origin(obj.rpath, origin) if obj.rpath and not obj.runpath else []
        rpath_chain = (own_rpath, *chain)
        dirs: list[str] = []
        if not obj.runpath:
            for rp in rpath_chain:
                dirs += rp
        dirs += env
        if obj.runpath:
            dirs += expand_origin(obj.runpath, origin)
        dirs += system
        seen_dirs: set[str] = set()
        dirs = [d for d in dirs if not (d in seen_dirs or seen_dirs.add(d)) and files.is_dir(d)]

        for soname in obj.needed:
            if soname in libraries or soname in excluded:
                continue
            if soname in by_soname:
                libraries[soname] = by_soname[soname]
                continue
            if _excluded(soname, exclude):
                excluded.add(soname)
                continue
            if LIBPYTHON_RE.match(soname) or (libc == "musl" and is_musl_builtin(soname)):
                libraries[soname] = Library(soname, None, None, None, obj_path)
                continue
            found = None
            candidates = [soname] if "/" in soname else [posixpath.join(d, soname) for d in dirs]
            for cand in candidates:
                hit = files.lookup(cand)
                if hit is not None and facts.is_compatible(hit[1]):
                    found = (cand, *hit)
                    break
            # A path glob matches the path as the loader found it (through a
            # symlinked directory: /usr/local/cuda/...) or the real path.
            if found and (_excluded(found[0], exclude) or _excluded(found[1], exclude)):
                excluded.add(soname)
                continue
            if not found:
                libraries[soname] = Library(soname, None, None, None, obj_path)
                continue
            lib = Library(soname, found[0], found[1], found[2], obj_path)
            libraries[soname] = lib
            if found[2].soname:
                by_soname.setdefault(found[2].soname, lib)
            queue.append((found[1], found[2], rpath_chain))

    return Tree(path, facts, libc, tuple(n for n in facts.needed if n not in excluded), libraries, frozenset(excluded))


def borrow_resolutions(tree: Tree, reference: Tree) -> Tree:
    """Fill a tree's unresolved libraries from a complete tree that loads it.

    A library inside the wheel that is itself loaded by another ELF file can
    rely on what that file has already loaded: the loader reuses a library
    already in the process.  Libraries the reference tree resolved (and what
    they need in turn) replace unresolved entries.
    """
    libraries = dict(tree.libraries)
    todo = [s for s, lib in tree.libraries.items() if lib.realpath is None and s in reference.libraries]
    while todo:
        soname = todo.pop()
        ref = reference.libraries.get(soname)
        if ref is None:
            continue
        libraries[soname] = ref
        for dep in ref.needed:
            if dep not in libraries or libraries[dep].realpath is None:
                if dep in reference.libraries and libraries.get(dep) is not reference.libraries[dep]:
                    todo.append(dep)
    return Tree(tree.path, tree.facts, tree.libc, tree.needed, libraries, tree.excluded)
