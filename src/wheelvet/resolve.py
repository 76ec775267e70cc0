"""Library resolution: the dynamic loader's rules as code over an index of files.

Given an ELF file and a view of the files around it (:class:`Files`), find
what each ``DT_NEEDED`` entry would load, in the order the loader uses
(docs/resolution.md):

1. a name with a slash is a path (glibc expands its tokens); under musl,
   ``libc.so``, ``libm.so``, ``libpthread.so``... (any version) are the
   loader itself;
2. a library already loaded (by the name it was needed as, or its SONAME) is
   reused;
3. glibc: if the requesting object has no ``DT_RUNPATH``, the ``DT_RPATH``
   of the object, then of each object that loaded it, up to the root; then
   ``LD_LIBRARY_PATH`` (here ``AUDITWHEEL_LD_LIBRARY_PATH`` then
   ``LD_LIBRARY_PATH``); then the object's own ``DT_RUNPATH``.  musl:
   ``LD_LIBRARY_PATH`` first, then the ``DT_RUNPATH`` (or else ``DT_RPATH``)
   of the object and of each object that loaded it;
4. the configured directories (``/etc/ld.so.conf`` with its ``include``
   globs; ``/etc/ld-musl-*.path`` for musl) then the default directories.

Each search-path entry is read as that libc's loader reads it
(:func:`search_path`): ``$ORIGIN`` is the requesting object's directory;
glibc takes ``$NAME``/``${NAME}`` for a token only when NAME is ORIGIN, LIB
or PLATFORM and (without braces) the next character cannot continue a name,
and leaves any other ``$`` as it is; musl takes any ``$`` followed by
``ORIGIN`` or ``{ORIGIN}`` for the token and ignores the object's whole list
when a ``$`` starts anything else.  Where the directory depends on the target
system (``$LIB``, ``$PLATFORM``), on the current directory (a relative or,
for glibc, empty entry) or on where the wheel is installed (``$ORIGIN/..``
out of the wheel), wheelvet cannot know what the loader finds there: such an
entry is not searched, and a library the loader may take from it is reported
as unknown (:attr:`Library.unknown`), never as found.

Dependencies are loaded breadth first, as ``ld.so`` does.  A candidate whose
ELF class, machine, byte order or OS ABI differ from the root's is skipped,
as glibc's loader skips it: a wheel for aarch64 never matches x86-64 host
libraries.

Files inside the wheel live under the virtual root :data:`WHEEL_ROOT`, which
no real path can equal (it holds a NUL byte), so the same rules serve wheel
members and host libraries without unpacking anything.

The work is bounded: each directory is listed once per wheel, each
(directory, name) probe is a set lookup, and all the trees of one wheel
together may take at most :data:`MAX_RESOLVE_STEPS` steps.
"""

from __future__ import annotations

import bisect
import functools
import glob
import os
import posixpath
import re
import string
from collections import deque
from dataclasses import dataclass, field
from fnmatch import fnmatch
from typing import Collection, Iterable, Mapping, Protocol

from .elf import ElfFacts, open_regular, read_elf_file
from .errors import InvalidElf

WHEEL_ROOT = "/\0wheel"
LIBPYTHON_RE = re.compile(r"^libpython\d+\.\d+m?\.so(\.\d)*$")
_ORIGIN_RE = re.compile(r"\$(ORIGIN|\{ORIGIN\})")

# The steps all the trees of one wheel may take together: a base, and one
# more per RESOLVE_BYTES_PER_STEP bytes of its ELF files (so the bound grows
# with the input, not with a product of its parts).  A step is one directory
# tried for one name, or one needed name of a library in a tree.  Real
# wheels take far less: torch (700 MB of ELF files) about 30,000; 800
# crafted modules each needing 20 others and 5 system libraries (a VTK-like
# layout in 800 KB) 6.9 million, which real modules of that number outweigh.
RESOLVE_BASE_STEPS = 1_000_000
RESOLVE_BYTES_PER_STEP = 8
MAX_RESOLVE_STEPS = RESOLVE_BASE_STEPS  # for a tree resolved on its own
# A host directory with more entries than this is probed name by name
# instead of listed (its listing would cost more than it saves).
MAX_LISTING = 1 << 16

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

    def names_in(self, directory: str) -> Collection[str] | None:
        """The names in ``directory`` (a superset will do), or None when it
        is cheaper to :meth:`lookup` each candidate."""

    def dirs_holding(self, name: str) -> Iterable[str]:
        """The wheel's directories that hold a file called ``name``."""


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

    def names_in(self, directory: str) -> Collection[str] | None:
        if "\0" in directory:
            return ()
        try:
            with os.scandir(directory) as it:
                names = set()
                for entry in it:
                    names.add(entry.name)
                    if len(names) > MAX_LISTING:
                        return None
                return names
        except OSError:
            return None

    def dirs_holding(self, name: str) -> Iterable[str]:
        return ()

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
            with open_regular(real) as f:
                if f.read(4) != b"\x7fELF":
                    return None
            return read_elf_file(real)
        except (OSError, InvalidElf) as exc:
            self.skipped[real] = str(exc)
            return None


class Budget:
    """The steps all the trees of one wheel may take together."""

    def __init__(self, limit: int | None = None) -> None:
        self.limit = MAX_RESOLVE_STEPS if limit is None else limit
        self.steps = 0

    def spend(self, n: int) -> None:
        self.steps += n
        if self.steps > self.limit:
            raise InvalidElf(f"resolving the libraries its ELF files load takes more than the {self.limit} "
                             "steps wheelvet allows for one wheel")


class WheelFiles:
    """The wheel's members under :data:`WHEEL_ROOT`, over another :class:`Files`.

    Made once per wheel: it lists each host directory once, answers for the
    wheel's own directories from an index of the members, and carries the
    wheel's :class:`Budget`.  (No set of every directory prefix: a member
    name thousands of directories deep would make that quadratic.)
    """

    def __init__(self, members: Mapping[str, ElfFacts | None], host: Files, *, input_bytes: int = 0) -> None:
        self.members = members
        self.host = host
        self.budget = Budget(RESOLVE_BASE_STEPS + input_bytes // RESOLVE_BYTES_PER_STEP)
        # (object, the libc's view of it, its search path) -> (the directories
        # worth trying, name -> result): every tree that loads an object the
        # same way shares its searches.
        self.searches: dict[tuple, tuple[list[SearchDir], dict]] = {}
        self._sorted = sorted(members)
        self._by_dir: dict[str, set[str]] = {}
        self._by_name: dict[str, list[str]] = {}
        for name in members:
            parent, _, base = name.rpartition("/")
            d = wheel_path(parent) if parent else WHEEL_ROOT
            self._by_dir.setdefault(d, set()).add(base)
            self._by_name.setdefault(base, []).append(d)
        self._host_dirs: dict[str, bool] = {}
        self._host_names: dict[str, Collection[str] | None] = {}
        self._host_files: dict[str, tuple[str, ElfFacts] | None] = {}

    def is_dir(self, path: str) -> bool:
        if not in_wheel(path):
            if path not in self._host_dirs:
                self._host_dirs[path] = self.host.is_dir(path)
            return self._host_dirs[path]
        if path == WHEEL_ROOT:
            return True
        below = member_name(path) + "/"
        i = bisect.bisect_left(self._sorted, below)
        return i < len(self._sorted) and self._sorted[i].startswith(below)

    def names_in(self, directory: str) -> Collection[str] | None:
        if in_wheel(directory):
            return self._by_dir.get(directory, ())
        if directory not in self._host_names:
            self._host_names[directory] = self.host.names_in(directory)
        return self._host_names[directory]

    def dirs_holding(self, name: str) -> Iterable[str]:
        return self._by_name.get(name, ())

    def lookup(self, path: str) -> tuple[str, ElfFacts] | None:
        if not in_wheel(path):
            if path not in self._host_files:  # (every tree looks up libc.so.6 again)
                self._host_files[path] = self.host.lookup(path)
            return self._host_files[path]
        facts = self.members.get(member_name(path))
        return (path, facts) if facts is not None else None


# ------------------------------------------------------------------ search paths


@dataclass(frozen=True, eq=False)
class SearchDir:
    """One entry of a search path, as the loader reads it.

    ``path`` is the directory, normalised, or None when wheelvet cannot know
    it (``why`` says why).  ``pattern`` matches the wheel directories such
    an entry may name (an entry inside the wheel with ``$LIB`` or
    ``$PLATFORM``).  ``doubt`` is False for an entry the loader is known to
    skip (musl's reading of a list with another ``$``).

    Compared by identity (hashing fields on every lookup of the resolver's
    memo costs more than the search it saves): the same entry of the same
    file is one object, :func:`search_path` being cached.
    """

    entry: str
    path: str | None
    why: str | None = None
    pattern: re.Pattern[str] | None = field(default=None, compare=False)
    doubt: bool = True

    def describe(self) -> str:
        return f"{self.entry!r} ({self.why})"


_NAME_CHARS = frozenset(string.ascii_letters + string.digits + "_")
_TOKENS = ("ORIGIN", "PLATFORM", "LIB")  # in the order glibc's is_dst tries them
_SYSTEM_TOKENS = {
    "LIB": "$LIB is the target system's library directory (lib, lib64, lib/x86_64-linux-gnu...)",
    "PLATFORM": "$PLATFORM is the processor as the target's loader names it (x86_64, haswell...)",
}
# What a token may expand to, to match wheel directories against: $LIB one
# or more directory names (lib/x86_64-linux-gnu), $PLATFORM one; neither is
# ever written with a "$" (glibc's configured library directory, the
# kernel's or glibc's name for the processor).
_TOKEN_PATTERNS = {"LIB": r"[^/$]+(?:/[^/$]+)*", "PLATFORM": r"[^/$]+"}
_RELATIVE = "relative: the loader looks in the current directory, which wheelvet cannot know"
_EMPTY = "empty: glibc's loader looks in the current directory, which wheelvet cannot know"
_OUTSIDE = "it leads out of the wheel, to a directory that depends on where the wheel is installed"


def _glibc_token(text: str, i: int) -> tuple[str | None, int]:
    """The token glibc's loader reads at ``text[i:]`` (just after a ``$``):
    (name, characters it spans) or (None, 0).  ``$NAME`` ends where a
    character cannot continue a name; ``${NAME}`` must close right after."""
    curly = text.startswith("{", i)
    j = i + curly
    for name in _TOKENS:
        if text.startswith(name, j):
            k = j + len(name)
            if curly:
                if text.startswith("}", k):
                    return name, len(name) + 2
            elif k >= len(text) or text[k] not in _NAME_CHARS:
                return name, len(name)
    return None, 0


def _glibc_pieces(item: str, origin: str) -> tuple[list[str | tuple[str]], bool]:
    """An entry with ``$ORIGIN`` expanded: literal strings, and ``(name,)``
    for the tokens only the target system knows; whether ``$ORIGIN`` was used.
    A ``$`` starting anything else stays as it is (glibc copies it)."""
    pieces: list[str | tuple[str]] = []
    literal: list[str] = []
    used = False
    i = 0
    while i < len(item):
        dollar = item.find("$", i)
        if dollar < 0:
            literal.append(item[i:])
            break
        literal.append(item[i:dollar])
        name, span = _glibc_token(item, dollar + 1)
        if name == "ORIGIN":
            literal.append(origin)
            used = True
        elif name is not None:
            pieces.append("".join(literal))
            literal = []
            pieces.append((name,))
        else:
            literal.append("$")
        i = dollar + 1 + span
    pieces.append("".join(literal))
    return pieces, used


def _squash(literal: str) -> str:
    """A path fragment with ``//`` and ``/./`` taken out (what the kernel ignores)."""
    literal = re.sub("/+", "/", literal)
    while "/./" in literal:
        literal = literal.replace("/./", "/")
    return literal


def _entry(entry: str, pieces: list[str | tuple[str]], origin: str, used_origin: bool) -> SearchDir:
    tokens = [p[0] for p in pieces if isinstance(p, tuple)]
    if not tokens:
        text = "".join(p for p in pieces if isinstance(p, str))
        if not text.startswith("/"):
            return SearchDir(entry, None, _RELATIVE)
        path = posixpath.normpath(text)
        if used_origin and in_wheel(origin) and not in_wheel(path):
            return SearchDir(entry, None, _OUTSIDE)
        return SearchDir(entry, path)
    why = "; ".join(dict.fromkeys(_SYSTEM_TOKENS[t] for t in tokens))
    head = pieces[0]
    assert isinstance(head, str)
    if not head.startswith("/"):
        return SearchDir(entry, None, f"{why}, and the entry is relative")
    if not in_wheel(posixpath.normpath(head)) and not head.startswith(WHEEL_ROOT + "/"):
        return SearchDir(entry, None, why)
    # Inside the wheel: which of its directories could it name?
    rest = pieces[1:]
    if ".." in _squash(head).split("/") or any(isinstance(p, str) and ".." in _squash(p).split("/") for p in rest):
        pattern = re.compile(re.escape(WHEEL_ROOT) + "(?:/.*)?", re.S)  # anywhere in the wheel
    else:
        text = re.escape(_squash(head))
        for p in rest:
            text += _TOKEN_PATTERNS[p[0]] if isinstance(p, tuple) else re.escape(_squash(p))
        pattern = re.compile(text.rstrip("/") if not text.endswith("\\/") else text[:-2], re.S)
    return SearchDir(entry, None, why, pattern)


@functools.lru_cache(maxsize=4096)
def search_path(value: str | None, origin: str, libc: str | None) -> tuple[SearchDir, ...]:
    """An RPATH/RUNPATH as the loader of ``libc`` reads it for an object in
    directory ``origin``: one :class:`SearchDir` per entry it searches."""
    if not value:
        return ()  # (glibc ignores an empty list; musl has nothing to search)
    if libc == "musl":
        return _musl_search_path(value, origin)
    out = []
    for item in value.split(":"):
        if not item:
            out.append(SearchDir(item, None, _EMPTY))
            continue
        pieces, used = _glibc_pieces(item, origin)
        found = _entry(item, pieces, origin, used)
        if found.path is None and "$" in "".join(p for p in pieces if isinstance(p, str)).replace(origin, ""):
            found = SearchDir(item, None, f"a '$' there starts no token glibc's loader knows and stays as written; "
                                          f"{found.why}", found.pattern)
        out.append(found)
    return tuple(out)


def _musl_search_path(value: str, origin: str) -> tuple[SearchDir, ...]:
    used = False
    if "$" in value:
        i = value.find("$")
        while i >= 0:
            if not value.startswith(("$ORIGIN", "${ORIGIN}"), i):
                return (SearchDir(value, None, f"musl's loader ignores this whole list: {value[i:i + 12]!r} is not "
                                               "$ORIGIN or ${ORIGIN}", doubt=False),)
            i = value.find("$", i + 1)
        used = True
    # Any "$ORIGIN" is the token, whatever follows ("$ORIGINAL" is origin +
    # "AL").  musl substitutes, then splits; entry by entry is the same
    # unless the directory itself holds a separator (then the entries shown
    # are the substituted ones).
    def expand(text: str) -> str:
        return re.sub(r"\$\{ORIGIN\}|\$ORIGIN", lambda _m: origin, text) if used else text

    if ":" in origin or "\n" in origin:
        pairs = [(item, item) for item in re.split("[:\n]", expand(value))]
    else:
        pairs = [(item, expand(item)) for item in re.split("[:\n]", value)]
    return tuple(_entry(item, [full], origin, used) for item, full in pairs if full)  # (musl skips empty entries)


def needed_path(name: str, origin: str, libc: str | None) -> SearchDir:
    """A DT_NEEDED name with a slash, which is a path: glibc expands its
    tokens first (musl does not); a relative one is from the current directory."""
    if libc == "musl":
        return _entry(name, [name], origin, False)
    pieces, used = _glibc_pieces(name, origin)
    return _entry(name, pieces, origin, used)


def unknown_entries(facts: ElfFacts, path: str, libc: str | None) -> list[tuple[str, SearchDir]]:
    """("DT_RPATH" or "DT_RUNPATH", entry) for each entry of the search path
    the loader reads for the file at ``path`` that wheelvet cannot search
    (for the audit to report).  With both, glibc and musl read DT_RUNPATH."""
    tag, value = ("DT_RUNPATH", facts.runpath) if facts.runpath else ("DT_RPATH", facts.rpath)
    return [(tag, d) for d in search_path(value, posixpath.dirname(path), libc) if d.path is None]


def entries_inside_wheel(value: str | None, member_dir: str, libc: str | None) -> list[str]:
    """The entries of an RPATH/RUNPATH that name a directory inside the
    wheel, as written (a repair keeps them)."""
    origin = wheel_path(member_dir) if member_dir else WHEEL_ROOT
    return list(dict.fromkeys(d.entry for d in search_path(value, origin, libc) if in_wheel(d.path)))


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


def parse_ld_so_conf(path: str) -> list[str]:
    """Directories from an ld.so.conf file, following ``include`` globs
    (relative ones from the including file's directory), each included file
    read where it is included, as ldconfig does.  Each file is read once,
    however often it is included: an include can reach itself."""
    out: list[str] = []
    seen: set[str] = set()
    named: set[str] = set()
    globbed: dict[str, list[str]] = {}  # (the same include in every file of a loop)
    # A stack of what is left to do at each level: files to read, or lines
    # of a file being read (an explicit stack: includes can nest deeply).
    frames: list = [iter([("file", path, "")])]
    while frames:
        item = next(frames[-1], None)
        if item is None:
            frames.pop()
            continue
        kind, value, base = item
        if kind == "file":
            if value in named:  # (as named: no realpath for a file met again)
                continue
            named.add(value)
            real = os.path.realpath(value)
            if real in seen:
                continue
            seen.add(real)
            try:
                with open_regular(value) as f:  # (a fifo among the includes must not hang us)
                    text = f.read().decode("utf-8", "replace")
            except OSError:
                continue
            frames.append(iter([("line", line, os.path.dirname(value)) for line in text.splitlines()]))
            continue
        line = value.split("#", 1)[0].strip()
        if not line or line.startswith("hwcap"):
            continue
        if line.startswith("include") and line[7:8].isspace():
            files = []
            for pattern in line[8:].split():
                if not pattern.startswith("/"):
                    pattern = os.path.join(base, pattern)
                if pattern not in globbed:
                    globbed[pattern] = sorted(glob.glob(pattern))
                files += globbed[pattern]
            frames.append(iter([("file", f, "") for f in files]))
        else:
            out.append(posixpath.normpath(line))
    return out


def system_dirs(libc: str | None, root: str = "/") -> list[str]:
    """The configured then default directories for ``libc``."""
    if libc == "musl":
        found = sorted(glob.glob(os.path.join(root, "etc", "ld-musl-*.path")))
        if found:
            try:
                with open_regular(found[0]) as f:
                    text = f.read().decode("utf-8", "replace")
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
    # Why wheelvet cannot know what the loader loads for it (then path is
    # None): an entry of the search path it cannot search came first.
    unknown: str | None = None
    # A library another wheel installs (a provider: :class:`Provided`), at
    # its place in site-packages under WHEEL_ROOT.  ``unreached``: the
    # requesting object's search path does not lead there (a repair adds
    # the directory to it).
    provided: bool = False
    unreached: bool = False

    @property
    def needed(self) -> tuple[str, ...]:
        return self.facts.needed if self.facts else ()


@dataclass(frozen=True)
class Provided:
    """The libraries of the wheels a wheel depends on (its providers), laid
    out where they install: both wheels go to the same site-packages, so a
    provider's ``nvidia/cuda_runtime/lib/libcudart.so.12`` is
    ``WHEEL_ROOT/nvidia/cuda_runtime/lib/libcudart.so.12`` (the Files view
    holds it there, beside the wheel's own members).

    ``by_name``: file name -> its path, for the names a library the loader
    does not find inside the wheel is taken from (then it is ``unreached``
    unless the search path led there); ``paths``: every provider file."""

    by_name: Mapping[str, str] = field(default_factory=dict)
    paths: frozenset[str] = frozenset()


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
    provided: Provided | None = None,
) -> Tree:
    """Resolve every library ``path`` loads, directly or not.

    ``conf_dirs`` maps a libc to its system directories (callers cache the
    parsed ld.so.conf there; by default it is read here).  The steps count
    against ``files.budget`` when it has one (a :class:`WheelFiles` does:
    one budget for all the trees of a wheel); past it, :class:`InvalidElf`.

    ``provided``: libraries other wheels install (:class:`Provided`).  A
    name the search finds in one of their files is provided; a name it does
    not find inside the wheel (found on the host, not found, unknown) that a
    provider ships is taken from the provider, ``unreached``: a repair puts
    the provider's directory in the file's DT_RPATH, which the loader reads
    before anything else on the host.
    """
    exclude = tuple(exclude)
    libc = libc or elf_libc(facts, posixpath.basename(path))
    musl = libc == "musl"
    if config.conf is not None:
        system_list = list(config.conf)
    elif conf_dirs is not None and libc in conf_dirs:
        system_list = list(conf_dirs[libc])
    else:
        system_list = system_dirs(libc)
    if facts.interpreter and config.use_interp_dirs:
        d = posixpath.dirname(posixpath.normpath(facts.interpreter))
        system_list += [d, posixpath.normpath("/usr" + d)]
    system = list(_fixed_dirs(tuple(system_list)))
    env = list(_fixed_dirs(tuple(config.env)))
    budget: Budget = getattr(files, "budget", None) or Budget()
    searches: dict = getattr(files, "searches", None)
    if searches is None:
        searches = {}
    # what decides whether a candidate is taken (is_compatible)
    compat = (facts.elf_class, facts.little_endian, facts.machine, facts.osabi in (0, 3) or facts.osabi)

    libraries: dict[str, Library] = {}
    by_soname: dict[str, Library] = {}
    excluded: set[str] = set()
    if facts.interpreter:
        interp = posixpath.normpath(facts.interpreter)
        found = files.lookup(interp)
        libraries[posixpath.basename(interp)] = Library(
            posixpath.basename(interp), interp, found[0] if found else None, found[1] if found else None)

    # Each queue item: (real path, facts, the search path it inherits from
    # the objects that loaded it, nearest first, each entry once).
    queue: deque[tuple[str, ElfFacts, tuple[SearchDir, ...]]] = deque([(path, facts, ())])
    while queue:
        obj_path, obj, chain = queue.popleft()
        origin = posixpath.dirname(obj_path)
        if musl:  # DT_RUNPATH, else DT_RPATH, inherited either way, after LD_LIBRARY_PATH
            own = search_path(obj.runpath if obj.runpath is not None else obj.rpath, origin, libc)
        else:  # DT_RPATH chain (unless DT_RUNPATH), LD_LIBRARY_PATH, own DT_RUNPATH
            own = search_path(obj.rpath, origin, libc) if obj.rpath and not obj.runpath else ()
        inherited = tuple(dict.fromkeys(own + chain)) if own else chain
        if musl:
            order = [*env, *inherited, *system]
        else:
            order = list(inherited) if not obj.runpath else []
            order += env
            order += search_path(obj.runpath, origin, libc) if obj.runpath else ()
            order += system
        key = (obj_path, compat, tuple(order))
        memo = searches.get(key)
        budget.spend(len(order))  # (built and hashed for every object of every tree)
        if memo is None:
            memo = searches[key] = ([(d, None if d.path is None else files.names_in(d.path))
                                     for d in _searchable(order, files)], {})
        dirs, results = memo
        budget.spend(len(obj.needed) + 1)

        for soname in obj.needed:
            if soname in libraries or soname in excluded:
                continue
            if soname in by_soname:
                libraries[soname] = by_soname[soname]
                continue
            if _excluded(soname, exclude):
                excluded.add(soname)
                continue
            if LIBPYTHON_RE.match(soname) or (musl and is_musl_builtin(soname)):
                libraries[soname] = Library(soname, None, None, None, obj_path)
                continue
            if soname not in results:
                results[soname] = _find(soname, origin, dirs, files, facts, libc, budget)
            found, unknown = results[soname]
            unreached = False
            if provided is not None and (found is None or not in_wheel(found[1])) and soname in provided.by_name:
                where = provided.by_name[soname]
                hit = files.lookup(where)
                if hit is not None and facts.is_compatible(hit[1]):
                    found, unknown, unreached = (where, *hit), None, True
            # A path glob matches the path as the loader found it (through a
            # symlinked directory: /usr/local/cuda/...) or the real path.
            if found and (_excluded(found[0], exclude) or _excluded(found[1], exclude)):
                excluded.add(soname)
                continue
            if not found:
                libraries[soname] = Library(soname, None, None, None, obj_path, unknown)
                continue
            lib = Library(soname, found[0], found[1], found[2], obj_path,
                          provided=provided is not None and found[1] in provided.paths, unreached=unreached)
            libraries[soname] = lib
            if found[2].soname:
                by_soname.setdefault(found[2].soname, lib)
            queue.append((found[1], found[2], inherited))

    return Tree(path, facts, libc, tuple(n for n in facts.needed if n not in excluded), libraries, frozenset(excluded))


@functools.lru_cache(maxsize=256)
def _fixed_dirs(paths: tuple[str, ...]) -> tuple[SearchDir, ...]:
    """The configured directories, one object each however often asked for."""
    return tuple(SearchDir(d, d) for d in paths)


def _searchable(order: list[SearchDir], files: Files) -> list[SearchDir]:
    """The entries worth trying, in order: each directory once, if it exists;
    the entries wheelvet cannot search, where they stand."""
    seen: set[str] = set()
    out = []
    for d in order:
        if d.path is None:
            if d.doubt and d not in out:
                out.append(d)
        elif d.path not in seen:
            seen.add(d.path)
            if files.is_dir(d.path):
                out.append(d)
    return out


def _find(soname: str, origin: str, dirs: list[tuple[SearchDir, Collection[str] | None]], files: Files,
          root: ElfFacts, libc: str | None, budget: Budget) -> tuple[tuple[str, str, ElfFacts] | None, str | None]:
    """(where ``soname`` is found: the path tried, the real path, facts) or
    None, and why wheelvet cannot know what the loader loads, if so.
    ``dirs``: the entries to try, each with the names its directory holds
    (None: unknown, look the file up).

    An entry with ``$LIB`` or ``$PLATFORM`` inside the wheel names wheel
    directories only: before the directory where the library is found (or
    with none found), it leaves the result unknown if one of the wheel
    directories it may name holds a file of that name.  Any other entry
    wheelvet cannot search (relative, out of the wheel, on the host with a
    token) leaves the result unknown when no directory holds the library:
    the loader may find it there on the target."""
    if "/" in soname:
        where = needed_path(soname, origin, libc)
        if where.path is None:
            return None, f"the name is a path {where.describe()}"
        hit = files.lookup(where.path)
        return ((where.path, *hit) if hit is not None and root.is_compatible(hit[1]) else None), None
    doubts: list[SearchDir] = []
    holding: list[str] | None = None
    tried = 0
    try:
        for d, names in dirs:
            tried += 1
            if d.path is None:
                if d.pattern is not None:
                    if holding is None:
                        holding = list(files.dirs_holding(soname))
                        tried += len(holding)
                    if any(d.pattern.fullmatch(h) for h in holding):
                        return None, f"the loader first looks in {d.describe()}, which may hold it"
                    continue  # it names wheel directories, and none of those holds it
                doubts.append(d)
                continue
            if names is not None and soname not in names:
                continue
            cand = posixpath.join(d.path, soname)
            hit = files.lookup(cand)
            if hit is not None and root.is_compatible(hit[1]):
                return (cand, *hit), None
    finally:
        budget.spend(tried)
    if doubts:
        return None, "the loader also looks in " + ", ".join(d.describe() for d in doubts)
    return None, None


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
