"""Support code for the conformance suite: the pinned wheel set, its download cache
and the cached auditwheel oracle.

Everything lives under ``${WHEELVET_TEST_CACHE:-~/.cache/wheelvet-tests}``:

* ``wheels/<filename>``  the pinned wheels, verified against their sha256;
* ``oracle/<sha256>-auditwheel-<version>.json``  the output of
  ``auditwheel show --json`` for that wheel, with its exit code and run time.

Environment knobs:

* ``WHEELVET_TEST_CACHE``          cache root (see above);
* ``WHEELVET_TEST_OFFLINE=1``      never touch the network (missing wheels are skipped);
* ``WHEELVET_TEST_REFRESH_ORACLE=1`` ignore cached oracle results and recompute them;
* ``WHEELVET_TEST_JOBS=N``         parallel oracle runs (default: CPU count).

Run as a script to fill the cache and print the oracle's verdicts::

    .venv/bin/python tests/conformance/wheelcache.py            # download + oracle
    .venv/bin/python tests/conformance/wheelcache.py --no-oracle
"""

from __future__ import annotations

import concurrent.futures
import functools
import hashlib
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent.parent
SRC_DIR = REPO_ROOT / "src"
WHEELS_JSON = HERE / "wheels.json"

#: The oracle the suite is calibrated against (pyproject pins the same version).
ORACLE_VERSION = "6.8.2"

#: Variables that change how either tool resolves shared libraries; removed for both.
_LD_VARS = ("LD_LIBRARY_PATH", "AUDITWHEEL_LD_LIBRARY_PATH", "LD_PRELOAD")

DOWNLOAD_TIMEOUT = 60  # seconds without progress on one socket operation
ORACLE_TIMEOUT = 900  # seconds for one `auditwheel show`
TOOL_TIMEOUT = 900  # seconds for one `wheelvet show`


# --------------------------------------------------------------------------- wheel list


@dataclass(frozen=True)
class WheelEntry:
    project: str
    version: str
    filename: str
    sha256: str
    url: str | None = None
    size: int | None = None
    covers: str = ""


def load_wheels(path: Path = WHEELS_JSON) -> list[WheelEntry]:
    raw = json.loads(path.read_text(encoding="utf-8"))
    entries = []
    seen = set()
    for item in raw:
        entry = WheelEntry(
            project=item["project"],
            version=item["version"],
            filename=item["filename"],
            sha256=item["sha256"].lower(),
            url=item.get("url"),
            size=item.get("size"),
            covers=item.get("covers", ""),
        )
        if entry.filename in seen:
            raise ValueError(f"duplicate wheel in {path}: {entry.filename}")
        seen.add(entry.filename)
        entries.append(entry)
    return entries


# --------------------------------------------------------------------------- cache dirs


def cache_root() -> Path:
    env = os.environ.get("WHEELVET_TEST_CACHE")
    root = Path(env).expanduser() if env else Path.home() / ".cache" / "wheelvet-tests"
    return root


def cache_subdir(name: str) -> Path:
    """A directory of the test cache (created on first use)."""
    d = cache_root() / name
    d.mkdir(parents=True, exist_ok=True)
    return d


def flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no")


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# --------------------------------------------------------------------------- downloads


class IntegrityError(Exception):
    """A download did not match its pinned sha256 (or pip fetched another file)."""


@dataclass
class FetchResult:
    entry: WheelEntry
    path: Path | None = None
    skip_reason: str | None = None  # set when the wheel is unavailable offline
    error: str | None = None  # set when something is actually wrong
    downloaded: bool = False


@dataclass
class _FetchState:
    lock: threading.Lock = field(default_factory=threading.Lock)
    network_down: str | None = None


def _download_url(url: str, dest_dir: Path, entry: WheelEntry) -> Path:
    """Stream ``url`` into a temp file in ``dest_dir``; return it after the hash check."""
    req = urllib.request.Request(url, headers={"User-Agent": "wheelvet-conformance-tests"})
    fd, tmp_name = tempfile.mkstemp(prefix=f".{entry.filename}.", suffix=".part", dir=dest_dir)
    tmp = Path(tmp_name)
    try:
        h = hashlib.sha256()
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(req, timeout=DOWNLOAD_TIMEOUT) as resp:
            for chunk in iter(lambda: resp.read(1 << 20), b""):
                h.update(chunk)
                out.write(chunk)
        if h.hexdigest() != entry.sha256:
            raise IntegrityError(
                f"{entry.filename}: sha256 {h.hexdigest()} from {url} != pinned {entry.sha256}"
            )
        return tmp
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _pip_args_for(entry: WheelEntry) -> list[str]:
    """pip download options that select exactly this wheel file (derived from its tags)."""
    from packaging.utils import parse_wheel_filename

    _, _, _, tags = parse_wheel_filename(entry.filename)
    interpreters = {t.interpreter for t in tags}
    abis = sorted({t.abi for t in tags})
    plats = sorted({t.platform for t in tags})
    interp = sorted(interpreters)[0]
    impl = "".join(c for c in interp if c.isalpha())
    digits = interp[len(impl) :]
    if len(digits) > 1:
        pyver = digits[0] + "." + digits[1:]
    elif digits == str(sys.version_info[0]):  # e.g. py3: any 3.x will do, take ours
        pyver = f"{sys.version_info[0]}.{sys.version_info[1]}"
    else:
        pyver = digits
    args = ["--implementation", impl if impl in ("cp", "pp", "py") else "py", "--python-version", pyver]
    for abi in abis:
        args += ["--abi", abi]
    for plat in plats:
        args += ["--platform", plat]
    return args


def _download_pip(dest_dir: Path, entry: WheelEntry) -> Path:
    """Fallback: let pip find the file on the index, then check it is the pinned one."""
    with tempfile.TemporaryDirectory(prefix=".pip-", dir=dest_dir) as td:
        cmd = [
            sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
            "--no-cache-dir", "--disable-pip-version-check", "--ignore-requires-python", "-q",
            *_pip_args_for(entry), f"{entry.project}=={entry.version}", "-d", td,
        ]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
        got = Path(td) / entry.filename
        if proc.returncode != 0 or not got.is_file():
            others = sorted(p.name for p in Path(td).iterdir())
            raise RuntimeError(
                f"pip download of {entry.filename} failed (rc={proc.returncode}, got {others}):\n"
                + proc.stderr[-2000:]
            )
        digest = sha256_of(got)
        if digest != entry.sha256:
            raise IntegrityError(f"{entry.filename}: sha256 {digest} from pip != pinned {entry.sha256}")
        fd, tmp_name = tempfile.mkstemp(prefix=f".{entry.filename}.", suffix=".part", dir=dest_dir)
        os.close(fd)
        os.replace(got, tmp_name)
        return Path(tmp_name)


def _is_network_error(exc: BaseException) -> bool:
    if isinstance(exc, urllib.error.HTTPError):
        return False
    if isinstance(exc, urllib.error.URLError):
        return True
    return isinstance(exc, (socket.timeout, TimeoutError, ConnectionError, socket.gaierror))


def fetch_wheel(entry: WheelEntry, state: _FetchState | None = None) -> FetchResult:
    """Make sure ``entry`` is in the cache; never raises (the result says what happened)."""
    state = state or _FetchState()
    dest_dir = cache_subdir("wheels")
    dest = dest_dir / entry.filename
    if dest.is_file():
        if dest.stat().st_size == entry.size or entry.size is None:
            # Trust size + a previous verification only if the hash still matches.
            if sha256_of(dest) == entry.sha256:
                return FetchResult(entry, path=dest)
        dest.unlink()  # corrupt or stale: fetch again
    if flag("WHEELVET_TEST_OFFLINE"):
        return FetchResult(entry, skip_reason=f"{entry.filename} not in cache {dest_dir} and WHEELVET_TEST_OFFLINE is set")
    with state.lock:
        down = state.network_down
    if down:
        return FetchResult(entry, skip_reason=f"{entry.filename} not in cache {dest_dir} and the network is unavailable ({down})")

    errors = []
    for attempt in range(2):
        try:
            if entry.url:
                try:
                    tmp = _download_url(entry.url, dest_dir, entry)
                except urllib.error.HTTPError as exc:  # index answered: let pip look it up
                    errors.append(f"GET {entry.url}: HTTP {exc.code}")
                    tmp = _download_pip(dest_dir, entry)
            else:
                tmp = _download_pip(dest_dir, entry)
            os.replace(tmp, dest)
            return FetchResult(entry, path=dest, downloaded=True)
        except IntegrityError as exc:
            return FetchResult(entry, error=str(exc))
        except Exception as exc:  # noqa: BLE001
            errors.append(f"{type(exc).__name__}: {exc}")
            if _is_network_error(exc):
                if attempt == 0:
                    time.sleep(2)
                    continue
                with state.lock:
                    state.network_down = state.network_down or f"{type(exc).__name__}: {exc}"
                return FetchResult(
                    entry,
                    skip_reason=f"{entry.filename} not in cache {dest_dir} and the network is unavailable ({exc})",
                )
            if attempt == 0:
                continue
    return FetchResult(entry, error=f"could not download {entry.filename}: " + "; ".join(errors))


def fetch_all(entries: list[WheelEntry], jobs: int = 4) -> dict[str, FetchResult]:
    state = _FetchState()
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        results = list(pool.map(lambda e: fetch_wheel(e, state), entries))
    return {r.entry.filename: r for r in results}


# --------------------------------------------------------------------------- running tools


def tool_env() -> dict[str, str]:
    """The one environment both auditwheel and wheelvet run in."""
    env = {k: v for k, v in os.environ.items() if k not in _LD_VARS}
    # Run wheelvet from this checkout's src/ (an editable install points there too).
    pp = [str(SRC_DIR)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join(pp)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def parse_json_stdout(stdout: str) -> Any:
    """The single JSON object a ``show --json`` run printed (None if there is none)."""
    text = stdout.strip()
    if not text:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    # Tolerate stray lines before the object, but nothing after it.
    start = text.find("{")
    while start != -1:
        try:
            obj, end = json.JSONDecoder().raw_decode(text, start)
        except json.JSONDecodeError:
            start = text.find("{", start + 1)
            continue
        if text[end:].strip() == "":
            return obj
        start = text.find("{", start + 1)
    return None


@dataclass
class ToolRun:
    cmd: list[str]
    returncode: int
    stdout: str
    stderr: str
    elapsed: float
    data: Any = None  # parsed JSON

    def describe(self) -> str:
        return (
            f"$ {' '.join(self.cmd)}\nexit code {self.returncode} after {self.elapsed:.1f}s\n"
            f"--- stdout (tail) ---\n{self.stdout[-3000:]}\n--- stderr (tail) ---\n{self.stderr[-3000:]}"
        )


def run_show(module: str, wheel: Path, timeout: float) -> ToolRun:
    cmd = [sys.executable, "-m", module, "show", "--json", str(wheel)]
    t0 = time.monotonic()
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, env=tool_env(), timeout=timeout, stdin=subprocess.DEVNULL
        )
        rc, out, err = proc.returncode, proc.stdout, proc.stderr
    except subprocess.TimeoutExpired as exc:
        rc = -999
        out = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        err = f"timed out after {timeout}s\n" + (
            exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else (exc.stderr or "")
        )
    elapsed = time.monotonic() - t0
    return ToolRun(cmd, rc, out, err, elapsed, parse_json_stdout(out))


# --------------------------------------------------------------------------- oracle


def installed_auditwheel_version() -> str | None:
    from importlib import metadata

    try:
        return metadata.version("auditwheel")
    except metadata.PackageNotFoundError:
        return None


def oracle_unavailable_reason() -> str | None:
    ver = installed_auditwheel_version()
    if ver is None:
        return f"auditwheel is not installed in {sys.executable}'s environment (need {ORACLE_VERSION})"
    if ver != ORACLE_VERSION:
        return f"the oracle is pinned to auditwheel {ORACLE_VERSION}, but {ver} is installed"
    return None


_HOST_FILES = ("/etc/ld.so.cache", "/etc/ld.so.conf")
_HOST_GLOBS = ("/etc/ld.so.conf.d/*.conf", "/etc/ld-musl-*.path")


@functools.lru_cache(maxsize=None)
def host_fingerprint() -> str:
    """A short digest of what the host's library search looks like.

    auditwheel resolves a wheel's external libraries against the host (and walks the
    ones it finds), so a cached verdict is only reused on a host whose linker
    configuration and ldconfig cache are unchanged (installing a library re-runs
    ldconfig, which changes /etc/ld.so.cache).
    """
    import glob

    h = hashlib.sha256(platform.machine().encode())
    paths = list(_HOST_FILES) + sorted(p for g in _HOST_GLOBS for p in glob.glob(g))
    for name in paths:
        h.update(b"\0" + name.encode() + b"\0")
        try:
            h.update(Path(name).read_bytes())
        except OSError:
            h.update(b"<missing>")
    return h.hexdigest()[:12]


def oracle_cache_path(entry: WheelEntry, aw_version: str) -> Path:
    return cache_subdir("oracle") / f"{entry.sha256}-auditwheel-{aw_version}-{platform.machine()}-{host_fingerprint()}.json"


def oracle_result(entry: WheelEntry, wheel: Path) -> dict[str, Any]:
    """auditwheel's verdict on ``wheel`` (cached); keys: returncode, data, stderr, elapsed, cached."""
    aw_version = installed_auditwheel_version() or "none"
    cpath = oracle_cache_path(entry, aw_version)
    if cpath.is_file() and not flag("WHEELVET_TEST_REFRESH_ORACLE"):
        try:
            cached = json.loads(cpath.read_text(encoding="utf-8"))
            if cached.get("sha256") == entry.sha256:
                cached["cached"] = True
                return cached
        except (OSError, json.JSONDecodeError):
            pass
    run = run_show("auditwheel", wheel, ORACLE_TIMEOUT)
    result = {
        "filename": entry.filename,
        "sha256": entry.sha256,
        "auditwheel": aw_version,
        "cmd": run.cmd[1:-1] + [entry.filename],
        "returncode": run.returncode,
        "data": run.data,
        "stderr": run.stderr[-4000:],
        "elapsed": round(run.elapsed, 2),
        "cached": False,
    }
    # Only a completed run that produced JSON is a verdict worth keeping.
    if run.returncode in (0, 1) and run.data is not None:
        fd, tmp = tempfile.mkstemp(prefix=".oracle.", suffix=".part", dir=cpath.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(result, fh, indent=1, sort_keys=True)
        os.replace(tmp, cpath)
    else:
        result["stdout"] = run.stdout[-4000:]
    return result


def oracle_all(pairs: list[tuple[WheelEntry, Path]], jobs: int | None = None) -> dict[str, dict[str, Any]]:
    """Oracle results for many wheels, computed in parallel, largest first."""
    if jobs is None:
        jobs = int(os.environ.get("WHEELVET_TEST_JOBS") or os.cpu_count() or 1)
    order = sorted(pairs, key=lambda p: p[1].stat().st_size, reverse=True)
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futs = {pool.submit(oracle_result, e, p): e.filename for e, p in order}
        return {futs[f]: f.result() for f in concurrent.futures.as_completed(futs)}


# --------------------------------------------------------------------------- CLI


def _main(argv: list[str]) -> int:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--no-oracle", action="store_true", help="only download and verify the wheels")
    ap.add_argument("--jobs", type=int, default=None, help="parallel oracle runs")
    ap.add_argument("--json", dest="json_out", help="also write the summary as JSON to this file")
    ns = ap.parse_args(argv)

    entries = load_wheels()
    t0 = time.monotonic()
    fetched = fetch_all(entries)
    total = 0
    for e in entries:
        r = fetched[e.filename]
        if r.path:
            total += r.path.stat().st_size
        status = "downloaded" if r.downloaded else ("cached" if r.path else (r.skip_reason or r.error))
        print(f"{e.filename}: {status}")
    print(f"# {sum(1 for r in fetched.values() if r.path)}/{len(entries)} wheels, "
          f"{total / 1e6:.1f} MB, fetch {time.monotonic() - t0:.1f}s, cache {cache_root()}")
    if ns.no_oracle:
        return 0 if all(r.path for r in fetched.values()) else 1
    reason = oracle_unavailable_reason()
    if reason:
        print(f"# oracle unavailable: {reason}")
        return 1
    pairs = [(e, fetched[e.filename].path) for e in entries if fetched[e.filename].path]
    t0 = time.monotonic()
    results = oracle_all(pairs, ns.jobs)
    wall = time.monotonic() - t0
    summary = []
    for e, _ in pairs:
        res = results[e.filename]
        d = res.get("data") or {}
        row = {
            "filename": e.filename,
            "returncode": res["returncode"],
            "elapsed": res["elapsed"],
            "cached": res["cached"],
            "overall_tag": d.get("overall_tag"),
            "sym_tag": d.get("sym_tag"),
            "external_libs": sorted(d.get("external_libs") or {}),
        }
        summary.append(row)
        print(f"{row['elapsed']:7.2f}s{'*' if row['cached'] else ' '} rc={row['returncode']} "
              f"{e.filename}: overall={row['overall_tag']} sym={row['sym_tag']} ext={row['external_libs']}")
    cpu = sum(r["elapsed"] for r in summary)
    print(f"# oracle: {len(summary)} wheels, wall {wall:.1f}s, sum of per-wheel times {cpu:.1f}s "
          "(* = from cache; time shown is the original run's)")
    if ns.json_out:
        Path(ns.json_out).write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
