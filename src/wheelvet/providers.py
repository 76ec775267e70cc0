"""Provider wheels: the wheels a wheel depends on that ship libraries it needs.

An extension may link a library that one of its runtime dependencies ships
as a wheel (``libcudart.so.12`` from nvidia-cuda-runtime-cu12,
``libtorch_cpu.so`` from torch).  Such a library is *provided*: it is not
grafted; the file gets an ``$ORIGIN``-relative RPATH entry to where the
provider installs.  This module knows the providers as data:

* :func:`find_providers` turns the command line's ``--provider PATH_OR_DIR``
  (provider wheels) and ``--provider-env PYTHON_OR_SITE_PACKAGES`` (an
  installed environment) into a :class:`Providers` set of
  :class:`ProviderSource`, each read only when a wheel requires it
  (:meth:`ProviderSource.load`: the ELF facts of its shared libraries, by
  their place in site-packages, without unpacking anything);
* :func:`choose_providers` matches a wheel's ``Requires-Dist`` against them
  (names canonicalised, markers evaluated for a Linux interpreter of the
  wheel's tags);
* :func:`pin_problem` is the rule for a requirement that does not pin its
  provider tightly enough to keep the SONAME (docs/resolution.md, "Provided
  libraries").

Both wheels are assumed to install into one site-packages (purelib and
platlib the same directory, as in a virtual environment and on Debian);
members under ``<dist>.data/purelib/`` and ``.data/platlib/`` count at their
installed place, ``.data/scripts``, ``headers`` and ``data`` not at all.
"""

from __future__ import annotations

import functools
import json
import os
import posixpath
import re
import subprocess
import zipfile
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

from packaging.markers import InvalidMarker, UndefinedComparison, UndefinedEnvironmentName
from packaging.requirements import InvalidRequirement, Requirement
from packaging.tags import Tag
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from .elf import ELF_MAGIC, ElfFacts, open_regular, read_elf_file
from .errors import InvalidElf, InvalidInput
from .wheelfile import parse_wheel_name, read_wheel

_SHARED_NAME = re.compile(r"\.so(\.[0-9]+)*$")
_DATA_SITE = re.compile(r"^[^/]+\.data/(?:purelib|platlib)/(.+)$")
ENV_TIMEOUT = 60  # seconds for `PYTHON -c ...` to name its site-packages
# Python versions a requirement's markers are evaluated for when the tags do
# not name one (py3, abi3 from its minimum on).
PYTHON_MINORS = tuple(range(6, 16))


def site_path(member: str) -> str | None:
    """Where a wheel member installs, relative to site-packages (None: elsewhere)."""
    top = member.split("/", 1)[0]
    if not top.endswith(".data"):
        return member
    m = _DATA_SITE.match(member)
    return m.group(1) if m else None


@dataclass(frozen=True)
class ProviderDist:
    """A provider's shared libraries, by their place in site-packages."""

    name: str
    version: str
    origin: str  # the wheel file, or "<site-packages> (installed)"
    files: Mapping[str, ElfFacts]  # site-packages path -> facts
    elf_bytes: int = 0

    @property
    def label(self) -> str:
        return f"{self.name} {self.version}"


@dataclass(frozen=True)
class ProviderSource:
    """One provider distribution as given: a wheel file, or an installed one.

    Cheap to make and to pickle (the CLI hands it to worker processes); its
    libraries are read by :meth:`load`, once per process."""

    name: str
    version: str
    kind: str  # "wheel" | "installed"
    path: str  # the wheel file, or the site-packages directory
    tags: frozenset[Tag] | None = None  # a wheel's tags (None: installed)
    record: tuple[str, ...] = ()  # an installed distribution's files, relative to site-packages

    @property
    def key(self) -> str:
        return canonicalize_name(self.name)

    @property
    def origin(self) -> str:
        return self.path if self.kind == "wheel" else f"{self.path} (installed)"

    def names(self) -> frozenset[str]:
        """The file names it installs into site-packages (no reading of their content)."""
        return frozenset(posixpath.basename(p) for p in self._site_paths())

    def _site_paths(self) -> list[str]:
        if self.kind == "installed":
            return list(self.record)
        try:
            with zipfile.ZipFile(self.path) as zf:
                members = [i.filename for i in zf.infolist() if not i.is_dir()]
        except (OSError, zipfile.BadZipFile) as exc:
            raise InvalidInput(f"provider {self.path}: not a readable wheel ({exc})") from None
        return [p for m in members if (p := site_path(m)) is not None]

    def load(self) -> ProviderDist:
        st = os.stat(self.path)
        return _load(self, (st.st_ino, st.st_size, st.st_mtime_ns))

    def fits(self, libc: str | None, arch: str | None) -> bool:
        """Whether pip could install it beside a wheel for ``libc`` and ``arch``."""
        if self.tags is None:
            return True
        return any(_platform_fits(t.platform, libc, arch) for t in self.tags)


def _platform_fits(platform: str, libc: str | None, arch: str | None) -> bool:
    if platform == "any":
        return True
    if arch is None or not platform.endswith("_" + arch):
        return False
    return platform.startswith("musllinux") == (libc == "musl")


@functools.lru_cache(maxsize=64)
def _load(source: ProviderSource, _identity: tuple) -> ProviderDist:
    """The source's ELF shared libraries (read once per process and file version)."""
    files: dict[str, ElfFacts] = {}
    size = 0
    if source.kind == "wheel":
        try:
            contents = read_wheel(source.path)
        except InvalidInput as exc:
            raise InvalidInput(f"provider {exc}") from None
        for member, facts in contents.elf.items():
            where = site_path(member)
            if where is not None and facts.elf_type == 3:
                files[where] = facts
        size = contents.elf_bytes
    else:
        for rel in source.record:
            if not _SHARED_NAME.search(rel):
                continue
            path = os.path.join(source.path, rel)
            try:
                with open_regular(path) as f:
                    if f.read(4) != ELF_MAGIC:
                        continue
                facts = read_elf_file(path)
                size += os.path.getsize(path)
            except (OSError, InvalidElf):
                continue  # (a file the loader could not use either)
            if facts.elf_type == 3:
                files[rel] = facts
    return ProviderDist(source.name, source.version, source.origin, files, size)


@dataclass(frozen=True)
class Providers:
    """The provider distributions given on the command line or to the action."""

    sources: tuple[ProviderSource, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.sources)

    def named(self, key: str) -> list[ProviderSource]:
        return [s for s in self.sources if s.key == key]


def find_providers(paths: Sequence[str] = (), envs: Sequence[str] = ()) -> Providers:
    """``--provider`` wheels (a ``.whl`` file, or a directory of them) and
    ``--provider-env`` environments (a Python interpreter, whose
    site-packages it names, or a site-packages directory).  Refuses, with one
    line, a path that is none of these."""
    sources: list[ProviderSource] = []
    for path in paths:
        if os.path.isdir(path):
            wheels = sorted(os.path.join(path, n) for n in os.listdir(path) if n.endswith(".whl"))
            if not wheels:
                raise InvalidInput(f"--provider {path}: the directory holds no wheel")
        elif os.path.isfile(path) and path.endswith(".whl"):
            wheels = [path]
        else:
            raise InvalidInput(f"--provider {path}: not a wheel file or a directory of wheels")
        for w in wheels:
            name = parse_wheel_name(os.path.basename(w))
            sources.append(ProviderSource(name.distribution, name.version, "wheel", os.path.abspath(w), name.tags))
    for env in envs:
        for site in _site_dirs(env):
            sources += installed_sources(site)
    return Providers(tuple(sources))


def _site_dirs(env: str) -> list[str]:
    if os.path.isdir(env):
        return [os.path.abspath(env)]
    if not (os.path.isfile(env) and os.access(env, os.X_OK)):
        raise InvalidInput(f"--provider-env {env}: not a Python interpreter or a site-packages directory")
    code = ("import json, sysconfig; "
            "print(json.dumps(sorted({sysconfig.get_path('purelib'), sysconfig.get_path('platlib')})))")
    try:
        done = subprocess.run([env, "-I", "-c", code], capture_output=True, text=True, timeout=ENV_TIMEOUT,
                              stdin=subprocess.DEVNULL)
        dirs = json.loads(done.stdout) if done.returncode == 0 else None
    except (OSError, subprocess.TimeoutExpired, ValueError):
        dirs = None
    if not isinstance(dirs, list) or not all(isinstance(d, str) for d in dirs):
        raise InvalidInput(f"--provider-env {env}: could not ask it for its site-packages "
                           f"(it did not run `{os.path.basename(env)} -c 'import sysconfig'`)")
    return [d for d in dirs if os.path.isdir(d)]


def installed_sources(site: str) -> list[ProviderSource]:
    """Every distribution installed in a site-packages directory (its RECORD's
    files inside that directory)."""
    from importlib import metadata

    out = []
    for dist in metadata.distributions(path=[site]):
        name, version = dist.metadata["Name"], dist.version
        if not name or not version:
            continue
        record = []
        for f in dist.files or ():
            rel = posixpath.normpath(str(f).replace(os.sep, "/"))
            if not rel.startswith("../") and rel != ".." and not rel.startswith("/"):
                record.append(rel)
        out.append(ProviderSource(name, version, "installed", site, None, tuple(record)))
    return out


# ------------------------------------------------------------------ requirements


def marker_environments(tags: Iterable[Tag], arch: str | None, libc: str | None) -> list[dict[str, str]]:
    """The marker environments of the interpreters a wheel's tags install on
    (Linux; CPython unless the tags say PyPy): one per Python version a tag
    names, every version from its minimum on for ``abi3``, and every version
    for ``py3``."""
    versions: set[tuple[str, str]] = set()
    for tag in tags:
        m = re.fullmatch(r"(cp|pp|py)(\d)(\d*)", tag.interpreter)
        if not m:
            continue
        impl = "pypy" if m[1] == "pp" else "cpython"
        if m[3] and tag.abi != "abi3" and m[1] != "py":
            versions.add((impl, f"{m[2]}.{m[3]}"))
        else:
            low = int(m[3]) if m[3] else 0
            versions |= {(impl, f"{m[2]}.{n}") for n in PYTHON_MINORS if n >= low and m[2] == "3"}
    android = libc == "android"
    return [{
        "implementation_name": impl, "implementation_version": f"{v}.0", "os_name": "posix",
        "platform_machine": arch or "", "platform_release": "", "platform_system": "Android" if android else "Linux",
        "platform_version": "", "python_full_version": f"{v}.0",
        "platform_python_implementation": "PyPy" if impl == "pypy" else "CPython", "python_version": v,
        "sys_platform": "android" if android else "linux",
    } for impl, v in sorted(versions)]


def applies(req: Requirement, envs: Sequence[dict[str, str]], extras: Sequence[str]) -> tuple[bool, str | None]:
    """Whether pip installs ``req`` with the wheel on one of ``envs``:
    (True, None) by default, (True, extra) only with that extra, (False, None) never."""
    if req.marker is None:
        return True, None
    for extra in ("", *extras):
        for env in envs or ({},):
            try:
                if req.marker.evaluate({**env, "extra": extra}):
                    return True, extra or None
            except (InvalidMarker, UndefinedComparison, UndefinedEnvironmentName):
                continue
    return False, None


@dataclass(frozen=True)
class Choice:
    """A provider a wheel requires, chosen among those given."""

    source: ProviderSource
    requirement: Requirement
    extra: str | None = None  # installed only with this extra


@dataclass(frozen=True)
class Chosen:
    choices: tuple[Choice, ...] = ()
    # (code, message) for the audit's findings: a requirement that is not
    # valid, a provider given whose version the wheel does not allow
    notes: tuple[tuple[str, str], ...] = ()
    unrequired: tuple[ProviderSource, ...] = ()  # given, of no distribution the wheel requires


def choose_providers(requires_dist: Sequence[str], extras: Sequence[str], tags: Iterable[Tag], libc: str | None,
                     arch: str | None, providers: Providers) -> Chosen:
    """The providers a wheel requires, among those given: for each
    Requires-Dist that applies (markers evaluated for a Linux interpreter of
    its tags, every extra tried), the given distributions of that name that
    pip could install beside it, the newest whose version the requirement
    allows."""
    if not providers:
        return Chosen()
    envs = marker_environments(tags, arch, libc)
    choices: list[Choice] = []
    notes: list[tuple[str, str]] = []
    required: set[str] = set()
    for line in requires_dist:
        try:
            req = Requirement(line)
        except InvalidRequirement as exc:
            notes.append(("invalid-requirement", f"METADATA: Requires-Dist {line!r} is not a valid requirement ({exc})"))
            continue
        key = canonicalize_name(req.name)
        ok, extra = applies(req, envs, extras)
        if not ok or key in required:
            continue
        candidates = [s for s in providers.named(key) if s.fits(libc, arch)]
        if not candidates:
            continue
        required.add(key)
        allowed = [s for s in candidates if _allows(req, s.version)]
        if not allowed:
            shown = ", ".join(sorted({s.version for s in candidates}))
            notes.append(("provider-version", f"requires {req}, and the {req.name} given ({shown}) is not a version it "
                                              "allows: its libraries are not taken as provided"))
            continue
        best = max(allowed, key=lambda s: _version_key(s.version))
        choices.append(Choice(best, req, extra))
    unrequired = tuple(s for s in providers.sources if s.key not in required)
    return Chosen(tuple(choices), tuple(notes), unrequired)


def _allows(req: Requirement, version: str) -> bool:
    try:
        return req.specifier.contains(Version(version), prereleases=True)
    except InvalidVersion:
        return False


def _version_key(version: str):
    try:
        return (1, Version(version))
    except InvalidVersion:
        return (0, version)


# ------------------------------------------------------------------ the pin rule


def soname_versioned(soname: str) -> bool:
    """``libcudart.so.12`` carries its ABI's version; ``libtorch_cpu.so`` none."""
    return re.search(r"\.so\.[0-9]", soname) is not None


def pin_window(version: str, soname: str) -> tuple[str, str] | None:
    """The versions of a provider that keep ``soname`` as the given
    ``version`` ships it: [low, high).  A versioned SONAME is taken to change
    at most with the provider's major version (``12.*``); an unversioned one
    makes no ABI promise, so only the provider's major.minor keeps it
    (``2.13.*``: torch's ABI changes with every minor release)."""
    try:
        release = Version(version).release
    except InvalidVersion:
        return None
    major, minor = release[0], release[1] if len(release) > 1 else 0
    if soname_versioned(soname):
        return f"{major}", f"{major + 1}"
    return f"{major}.{minor}", f"{major}.{minor + 1}"


def _outside(low: str, high: str) -> list[str]:
    """Versions just outside [low, high), on both sides, and far above."""
    lo, hi = Version(low).release, Version(high).release
    above = [high, f"{high}.0.1", f"{high}.1", f"{high}.9",
             ".".join(map(str, hi[:-1] + (hi[-1] + 1,))), ".".join(map(str, hi[:-1] + (hi[-1] + 10,))),
             f"{hi[0] + 1}", f"{hi[0] + 1}.{lo[1] + 1 if len(lo) > 1 else 0}", "9999"]
    below = []
    if lo[-1] > 0:
        prev = lo[:-1] + (lo[-1] - 1,)
        below += [".".join(map(str, prev)), ".".join(map(str, prev)) + ".9999"]
    if lo[0] > 0:
        below += [f"{lo[0] - 1}", f"{lo[0] - 1}.9999"]
    if lo != (0,):
        below.append("0.0.1")
    return list(dict.fromkeys(above + below))


@dataclass(frozen=True)
class PinProblem:
    window: str  # the versions that keep the SONAME: "12.*"
    allowed: str  # a version outside it that the requirement allows
    suggestion: str  # a requirement that keeps it


def pin_problem(req: Requirement, version: str, soname: str) -> PinProblem | None:
    """Whether ``req`` lets pip install a version of the provider outside
    :func:`pin_window` (where the SONAME may be another, and the import
    fail).  Checked by asking the requirement's specifiers about versions
    just outside the window on both sides and far above it."""
    window = pin_window(version, soname)
    if window is None:
        return None
    low, high = window
    for probe in _outside(low, high):
        if req.specifier.contains(probe):
            return PinProblem(f"{low}.*", probe, f"{req.name}=={low}.*")
    return None


__all__ = ["Choice", "Chosen", "PinProblem", "ProviderDist", "ProviderSource", "Providers", "applies",
           "choose_providers", "find_providers", "installed_sources", "marker_environments", "pin_problem",
           "pin_window", "site_path", "soname_versioned"]
