"""The SBOM a repair writes: who made each library it grafted (PEP 770).

``<dist>.dist-info/sboms/auditwheel.cdx.json``, CycloneDX 1.4 JSON in the
shape auditwheel 6.8.2 writes (same path, fields, order and serialisation, so
that tools reading auditwheel's SBOM read this one): the wheel as the main
component, then one ``library`` component per grafted file that a package
manager owns, named by that package (``pkg:deb/debian/libffi8@3.4.4-1``).
Two things differ, on purpose (``docs/differences.md``):

* a grafted file no package owns is listed too, as a ``file`` component with
  its name and SHA-256 (auditwheel leaves it out, and writes no SBOM when no
  file is owned);
* on merged-/usr systems (Debian 12) a file is looked up under each of its
  names, ``/lib/...`` and ``/usr/lib/...``: dpkg knows zlib's files under
  ``/lib``, which auditwheel, resolving the symlink first, never finds.

The owners come from dpkg, rpm or apk (whichever this machine has), asked at
repair time, never by the plan, and remembered for the process
(:class:`OwnerLookup`; its ``run`` is the seam tests replace with recorded
answers).  The document depends only on the output file name, wheelvet's
version, the owners and the grafted files, so a repair is reproducible.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import posixpath
import re
import shutil
import subprocess
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence
from urllib.parse import quote

from .. import __version__

log = logging.getLogger(__name__)

SBOM_MEMBER = "sboms/auditwheel.cdx.json"  # under the .dist-info directory, as auditwheel names it
LOOKUP_TIMEOUT = 60  # seconds for one package-manager query


@dataclass(frozen=True)
class Owner:
    """The package that installed a file."""

    type: str  # purl type: "deb", "rpm", "apk"
    distro: str  # /etc/os-release ID
    name: str
    version: str

    @property
    def purl(self) -> str:
        return f"pkg:{self.type}/{_q(self.distro)}/{_q(self.name)}@{_q(self.version)}"


@dataclass(frozen=True)
class GraftedFile:
    """One grafted library, as the SBOM describes it."""

    host_path: str  # the path as the loader found it, its last component resolved (auditwheel's)
    candidates: tuple[str, ...]  # every name to ask the package manager about, in order
    sha256: str  # of the host file's content
    owner: Owner | None = None

    @property
    def name(self) -> str:
        return posixpath.basename(self.host_path)


def _q(value: str) -> str:
    return quote(value, safe="")


# ------------------------------------------------------------------ host paths


def resolve_last_component(path: str) -> str:
    """``path`` with symlinks of its last component followed, its directory kept
    (``/lib/x86_64-linux-gnu/libffi.so.8`` -> ``/lib/x86_64-linux-gnu/libffi.so.8.1.2``)."""
    for _ in range(40):
        try:
            target = os.readlink(path)
        except OSError:
            return path
        path = posixpath.normpath(posixpath.join(posixpath.dirname(path), target))
    return path


def merged_usr_twin(path: str) -> str | None:
    """The other name of a file on a merged-/usr system: ``/lib/x`` <-> ``/usr/lib/x``
    (``/bin``, ``/sbin``, ``/lib*``), when the top directory is a symlink to /usr's."""
    parts = path.split("/")
    if len(parts) < 3 or parts[0] != "":
        return None
    if parts[1] == "usr" and len(parts) > 3:
        top, twin = f"/{parts[2]}", "/" + "/".join(parts[2:])
    else:
        top, twin = f"/{parts[1]}", "/usr" + path
    if not re.fullmatch(r"/(bin|sbin|lib\w*)", top):
        return None
    return twin


def lookup_names(found: str | None, real: str) -> tuple[str, ...]:
    """The names a package manager may know a grafted file by, best first: as
    the loader found it (last component resolved), its real path, and the
    merged-/usr twin of each."""
    first = resolve_last_component(found) if found else real
    names = [first, real]
    names += [t for t in (merged_usr_twin(first), merged_usr_twin(real)) if t]
    return tuple(dict.fromkeys(names))


# ------------------------------------------------------------------ owners

Runner = Callable[[Sequence[str]], "tuple[int, str]"]


def run_quietly(argv: Sequence[str]) -> tuple[int, str]:
    """Run a query: (exit code, standard output); a tool that cannot run is exit 127."""
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, timeout=LOOKUP_TIMEOUT,
                              env={**os.environ, "LC_ALL": "C"})
    except (OSError, subprocess.SubprocessError):
        return 127, ""
    return done.returncode, done.stdout


def read_os_release_id(path: str = "/etc/os-release") -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.strip().partition("=")
                if key == "ID" and value:
                    return value.strip().strip("\"'") or None
    except OSError:
        pass
    return None


_DPKG_OWNER = re.compile(r"^([^:,\s]+(?::[^:,\s]+)?)(?:, [^:]+)*: (/.*)$")
# apk versions end in -r<N> ("3.4.6-r0"); names may hold "-<digit>" ("libxml2-16")
_APK_OWNER = re.compile(r" is owned by (\S+)-(\d[^\s-]*-r\d+)$")


class OwnerLookup:
    """Which package owns a file, asked of dpkg, rpm or apk (those this
    machine has) and remembered for the lifetime of the object.

    ``run`` runs one query (argv -> exit code, stdout), ``which`` finds a tool,
    ``distro`` is the os-release ID: tests pass recorded answers for the
    package managers this machine lacks."""

    def __init__(self, run: Runner = run_quietly, which: Callable[[str], str | None] = shutil.which,
                 distro: str | None | Callable[[], str | None] = read_os_release_id) -> None:
        self.run = run
        self.which = which
        self._distro = distro
        self._cache: dict[str, Owner | None] = {}

    @property
    def distro(self) -> str | None:
        if callable(self._distro):
            self._distro = self._distro()
        return self._distro

    def owners(self, paths: Iterable[str]) -> dict[str, Owner | None]:
        """path -> its owner (None: no package manager here owns it)."""
        paths = list(dict.fromkeys(paths))
        todo = [p for p in paths if p not in self._cache]
        if todo:
            found: dict[str, Owner] = {}
            distro = self.distro
            if distro:
                for tool, ask in (("dpkg", self._dpkg), ("rpm", self._rpm), ("apk", self._apk)):
                    left = [p for p in todo if p not in found]
                    if left and self.which(tool):
                        found.update(ask(left, distro))
            for p in todo:
                self._cache[p] = found.get(p)
                log.debug("owner of %s: %s", p, found[p].purl if p in found else "none found")
        return {p: self._cache[p] for p in paths}

    def _dpkg(self, paths: list[str], distro: str) -> dict[str, Owner]:
        # One `dpkg -S` for every path (it answers those it knows and exits 1
        # if any is unknown), one `dpkg-query -W` for the versions.
        _code, out = self.run(["dpkg", "-S", *paths])
        packages: dict[str, str] = {}
        for line in out.splitlines():
            m = _DPKG_OWNER.match(line)
            if m and m[2] in paths and m[2] not in packages:
                packages[m[2]] = m[1]
        if not packages:
            return {}
        wanted = sorted(set(packages.values()))
        _code, out = self.run(["dpkg-query", "-W", "-f", "${binary:Package}\\t${Version}\\n", *wanted])
        versions: dict[str, str] = {}
        for line in out.splitlines():
            name, _, version = line.partition("\t")
            if version:
                versions[name] = version
                versions.setdefault(name.split(":", 1)[0], version)
        return {p: Owner("deb", distro, pkg.split(":", 1)[0], versions[pkg])
                for p, pkg in packages.items() if pkg in versions}

    def _rpm(self, paths: list[str], distro: str) -> dict[str, Owner]:
        found = {}
        for p in paths:
            code, out = self.run(["rpm", "-qf", "--queryformat", "%{NAME} %{VERSION} %{RELEASE} %{ARCH}\\n", p])
            fields = out.split("\n", 1)[0].split()
            if code == 0 and len(fields) == 4:
                found[p] = Owner("rpm", distro, fields[0], f"{fields[1]}-{fields[2]}")
        return found

    def _apk(self, paths: list[str], distro: str) -> dict[str, Owner]:
        found = {}
        for p in paths:
            code, out = self.run(["apk", "info", "--who-owns", p])
            m = _APK_OWNER.search(out.strip().split("\n", 1)[0]) if code == 0 else None
            if m:
                found[p] = Owner("apk", distro, m[1], m[2])
        return found


_PROCESS_LOOKUP = OwnerLookup()


def process_lookup() -> OwnerLookup:
    """The lookup this process shares: each file is asked about once."""
    return _PROCESS_LOOKUP


def identify(files: Iterable[GraftedFile], lookup: OwnerLookup) -> list[GraftedFile]:
    """The files with their owners: the first of each file's names that a package owns."""
    files = list(files)
    owners = lookup.owners(name for f in files for name in f.candidates)
    out = []
    for f in files:
        owner = next((owners[n] for n in f.candidates if owners[n] is not None), None)
        out.append(GraftedFile(f.host_path, f.candidates, f.sha256, owner))
    return out


# ------------------------------------------------------------------ the document


def wheel_purl(out_name: str) -> tuple[str, str, str]:
    """(name, version, purl) of the output wheel, from its file name's first two
    segments as they stand (not normalised), as auditwheel writes them."""
    name, version = out_name.split("-")[:2]
    return name, version, f"pkg:pypi/{_q(name)}@{_q(version)}?file_name={_q(out_name)}"


def render_sbom(out_name: str, files: Sequence[GraftedFile]) -> bytes:
    """The SBOM's bytes: ``json.dumps`` with its default separators, no
    newline at the end (auditwheel's serialisation), ASCII only."""
    name, version, purl = wheel_purl(out_name)
    wheel = {"type": "library", "bom-ref": purl, "name": name, "version": version, "purl": purl}
    components: list[dict] = [wheel]
    depends: list[str] = []
    owned = sorted((f for f in files if f.owner), key=lambda f: (f.owner.purl, f.host_path))
    for f in owned:
        ref = f.owner.purl + "#" + hashlib.sha256(f.host_path.encode(errors="ignore")).hexdigest()
        components.append({"type": "library", "bom-ref": ref, "name": f.owner.name, "version": f.owner.version,
                           "purl": f.owner.purl})
        depends.append(ref)
    # Unowned: the name and the content's hash, nothing that depends on where it was built.
    unowned = sorted({(f.name, f.sha256) for f in files if not f.owner})
    for file_name, digest in unowned:
        ref = f"file:{_q(file_name)}#{digest}"
        components.append({"type": "file", "bom-ref": ref, "name": file_name,
                           "hashes": [{"alg": "SHA-256", "content": digest}]})
        depends.append(ref)
    document = {
        "bomFormat": "CycloneDX",
        "specVersion": "1.4",
        "version": 1,
        "metadata": {"component": wheel, "tools": [{"name": "wheelvet", "version": __version__}]},
        "components": components,
        "dependencies": [{"ref": purl, "dependsOn": depends}] + [{"ref": ref} for ref in depends],
    }
    return json.dumps(document).encode("ascii")


_FILE_SHA256: dict[tuple[str, int, int, int, int], str] = {}


def file_sha256(path: str) -> str:
    """The hex sha256 of a host file, hashed once per process while the file
    keeps its identity (device, inode, size, mtime): the grafted name, the
    SBOM and a repair session's keys all ask it of the same libraries, for
    every wheel of a call."""
    st = os.stat(path)
    identity = (path, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
    found = _FILE_SHA256.get(identity)
    if found is None:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        found = _FILE_SHA256[identity] = h.hexdigest()
    return found


def build_sbom(out_name: str, grafts: Iterable[tuple[str | None, str]], lookup: OwnerLookup | None = None) -> bytes:
    """The SBOM of a repair that grafted ``grafts`` ((path as found, real path) each)."""
    files = [GraftedFile(resolve_last_component(found) if found else real, lookup_names(found, real), file_sha256(real))
             for found, real in grafts]
    return render_sbom(out_name, identify(files, lookup or process_lookup()))


__all__ = ["GraftedFile", "OwnerLookup", "Owner", "SBOM_MEMBER", "build_sbom", "identify", "lookup_names",
           "merged_usr_twin", "process_lookup", "read_os_release_id", "render_sbom", "resolve_last_component",
           "run_quietly", "wheel_purl"]
