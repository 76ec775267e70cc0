#!/usr/bin/env python3
"""Benchmark `wheelvet show` against `auditwheel show` on real wheels.

Run on demand (this is a report, not a test):

    .venv/bin/python benchmarks/bench_show.py            # best of 3 runs
    .venv/bin/python benchmarks/bench_show.py --quick    # 1 run
    .venv/bin/python benchmarks/bench_show.py --check    # exit 1 if a target fails

For each wheel, three legs run as child processes of this script, in turn,
round after round (so slow drifts of the machine hit every leg alike):

  auditwheel  [python, -m, auditwheel, show, WHEEL]
  wheelvet    [python, -m, wheelvet, show, WHEEL]
  inflate     decompress every ELF member of the wheel with zipfile and
              throw the bytes away: the floor for any tool that has to read
              all of the wheel's binaries (see select_elf_members()).
  floor       inflate every member once, with the best inflater there is
              (ISA-L's igzip_lib when isal is installed, else zlib), on one
              core: the bound the issue-16 target is stated against.
  default     wheelvet show from a fresh venv holding a plain
              `pip install <checkout>` (no extras: what cibuildwheel users
              and the image get), made before the first round.
  zlib        wheelvet show with WHEELVET_INFLATE=zlib (the fallback where
              isal has no wheel).

Wall time is the best of N runs; peak RSS is that child's own ru_maxrss, read
with os.wait4() on its pid (RUSAGE_CHILDREN would mix all children together),
and the largest over the runs is reported. Results are printed as a table
and written to benchmarks/results/show-<date>.json.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
ELF_MAGIC = b"\x7fELF"

# --------------------------------------------------------------------------
# What we measure on
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class WheelTarget:
    key: str
    # Requirement specifiers tried in order; the first one that is in the
    # cache or that pip can download wins (scipy 1.18 may not exist yet).
    specs: tuple[str, ...]
    min_speedup: float  # target for auditwheel_time / wheelvet_time
    python: str = "3.11"  # the interpreter tag the wheel is for


WHEELS = (
    WheelTarget("torch", ("torch==2.13.0+cpu", "torch==2.13.0"), 15.0),
    # scipy 1.18 needs Python >= 3.12: its 35 MB cp312 wheel is the one named
    # in the target (the files are analysed, never imported).
    WheelTarget("scipy", ("scipy==1.18.*", "scipy==1.17.*"), 10.0, python="3.12"),
)
MAX_INFLATE_RATIO = 2.0  # wheelvet within 2x of the inflate floor
MAX_FLOOR_RATIO = 1.2  # torch: the default install within 1.2x of inflating every member once (issue 16)
MIN_DEFAULT_SPEEDUP = {"torch": 25.0}  # the default install against auditwheel (issue 16)
LEG_NAMES = ("auditwheel", "wheelvet", "default", "zlib", "inflate", "floor")
MAX_RSS_MB = 400.0  # wheelvet's peak RSS

# pip download options: a cp311 manylinux x86_64 wheel whatever Python runs
# the benchmark, so numbers stay comparable between machines and sessions.
PIP_TARGET = ["--only-binary", ":all:", "--implementation", "cp"]
PIP_TARGET += [f"--platform=manylinux_2_{v}_x86_64" for v in range(28, 16, -1)]
PIP_TARGET += ["--platform=manylinux2014_x86_64"]


# --------------------------------------------------------------------------
# The inflate leg (also runs as this script's hidden `_inflate` sub-command)
# --------------------------------------------------------------------------


def is_elf_name(member: str) -> bool:
    """ELF by name: the basename ends in ".so" or contains ".so."
    (libfoo.so, libfoo.so.1, libfoo.so.1.2.3, mod.cpython-311-x86_64-linux-gnu.so)."""
    base = member.rsplit("/", 1)[-1]
    return base.endswith(".so") or ".so." in base


def select_elf_members(zf: zipfile.ZipFile, how: str) -> list[zipfile.ZipInfo]:
    """Members that the inflate leg decompresses.

    how="name" (default): decided by file name only (is_elf_name), from the
    central directory, with no extra reads.  This covers every shared
    library and extension module, but NOT executables: torch 2.13.0+cpu has
    ~124 ELF programs in torch/bin/ (~140 MB uncompressed) that auditwheel
    does analyse, since it checks every non-.py file for the ELF magic.
    how="magic": every member that starts with b"\\x7fELF" (what auditwheel
    looks at); costs a small read of every member to decide.
    """
    infos = [i for i in zf.infolist() if not i.is_dir()]
    if how == "name":
        return [i for i in infos if is_elf_name(i.filename)]
    picked = []
    for info in infos:
        if info.file_size < len(ELF_MAGIC):
            continue
        with zf.open(info) as f:
            if f.read(len(ELF_MAGIC)) == ELF_MAGIC:
                picked.append(info)
    return picked


def inflate(wheel: str, how: str, mode: str) -> int:
    """Read the selected members fully and discard them; returns bytes read.

    mode="whole": zf.read() of each member, i.e. the whole member in memory
    at once (peak RSS ~ size of the largest member, ~400+ MB for
    libtorch_cpu.so).  mode="stream": 1 MiB chunks (same work, flat memory).
    """
    total = 0
    with zipfile.ZipFile(wheel) as zf:
        for info in select_elf_members(zf, how):
            if mode == "whole":
                total += len(zf.read(info))
            else:
                with zf.open(info) as f:
                    while chunk := f.read(1 << 20):
                        total += len(chunk)
    return total


def best_inflater():
    """(name, factory of a raw-deflate decompressor with a ``decompress(data)``)."""
    try:
        from isal import igzip_lib
    except ImportError:
        import zlib

        return "zlib", lambda: zlib.decompressobj(-15)
    return "isal.igzip_lib", lambda: igzip_lib.IgzipDecompressor(flag=igzip_lib.DECOMP_DEFLATE, hist_bits=15)


def floor(wheel: str) -> int:
    """Inflate every member once, 1 MiB of compressed bytes at a time, with the best
    inflater, and throw the bytes away; returns the bytes inflated."""
    import struct

    _, new = best_inflater()
    total = 0
    with zipfile.ZipFile(wheel) as zf:
        fd = zf.fp.fileno()
        for info in zf.infolist():
            if info.is_dir() or info.compress_type != zipfile.ZIP_DEFLATED:
                continue
            head = os.pread(fd, 30, info.header_offset)
            name_len, extra_len = struct.unpack_from("<HH", head, 26)
            pos = info.header_offset + 30 + name_len + extra_len
            end = pos + info.compress_size
            d = new()
            while pos < end:
                chunk = os.pread(fd, min(1 << 20, end - pos), pos)
                pos += len(chunk)
                total += len(d.decompress(chunk))
    return total


def default_install(scratch: Path, log) -> Path:
    """A fresh venv with a plain `pip install` of this checkout (no extras); its python."""
    venv_dir = scratch / "default-venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv_dir)], check=True)
    py = venv_dir / "bin" / "python"
    t0 = time.perf_counter()
    done = subprocess.run([str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", str(REPO)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"pip install {REPO} failed: {done.stderr.strip()[-500:]}")
    probe = subprocess.run([str(py), "-c", "from wheelvet.zipin import INFLATE_LIBRARY; print(INFLATE_LIBRARY.__name__)"],
                           capture_output=True, text=True)
    log(f"default install: {venv_dir} in {time.perf_counter() - t0:.1f} s, inflating with {probe.stdout.strip()}")
    return py


# --------------------------------------------------------------------------
# Running one child and measuring it
# --------------------------------------------------------------------------


@dataclass
class Run:
    wall_s: float
    maxrss_mb: float
    returncode: int
    stderr_tail: str = ""


def run_child(argv: list[str], timeout: float) -> Run:
    """Run argv, return wall time, the child's own peak RSS and exit code.

    Output goes to temporary files (not pipes: we reap the child ourselves
    with os.wait4, so nothing would drain a pipe while it runs)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        killer = threading.Timer(timeout, proc.kill)
        killer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            killer.cancel()
        wall = time.perf_counter() - t0
        code = os.waitstatus_to_exitcode(status)
        proc.returncode = code  # already reaped: keep Popen from waiting again
        tail = ""
        if code != 0:
            err.seek(0)
            lines = err.read().decode(errors="replace").strip().splitlines()
            tail = "\n".join(lines[-5:]) or "(no stderr)"
            if code == -9 and wall >= timeout:
                tail = f"killed after the {timeout:.0f} s timeout\n" + tail
    # ru_maxrss is in KiB on Linux.
    return Run(wall, usage.ru_maxrss / 1024, code, tail)


@dataclass
class Leg:
    name: str
    argv: list[str]
    runs: list[Run] = field(default_factory=list)

    @property
    def error(self) -> str | None:
        bad = [r for r in self.runs if r.returncode != 0]
        if not bad:
            return None
        return f"exit code {bad[0].returncode}: {bad[0].stderr_tail}"

    @property
    def best_s(self) -> float | None:
        return None if self.error or not self.runs else min(r.wall_s for r in self.runs)

    @property
    def peak_rss_mb(self) -> float | None:
        return None if self.error or not self.runs else max(r.maxrss_mb for r in self.runs)

    def as_json(self) -> dict:
        return {
            "argv": self.argv,
            "best_s": self.best_s,
            "peak_rss_mb": self.peak_rss_mb,
            "error": self.error,
            "runs": [r.__dict__ for r in self.runs],
        }


# --------------------------------------------------------------------------
# Getting the wheels
# --------------------------------------------------------------------------


def cache_dir() -> Path:
    env = os.environ.get("WHEELVET_BENCH_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "wheelvet-bench"


def find_cached(cache: Path, spec: str, python: str = "3.11") -> Path | None:
    """Newest manylinux x86_64 wheel for `python` in the cache that satisfies spec."""
    from packaging.requirements import Requirement
    from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename

    req = Requirement(spec)
    found = []
    for path in cache.glob("*.whl"):
        try:
            name, version, _, tags = parse_wheel_filename(path.name)
        except InvalidWheelFilename:
            continue
        if canonicalize_name(name) != canonicalize_name(req.name):
            continue
        if not req.specifier.contains(version, prereleases=False):
            continue
        if not any(
            t.interpreter == "cp" + python.replace(".", "") and "manylinux" in t.platform and t.platform.endswith("x86_64")
            for t in tags
        ):
            continue
        found.append((version, path))
    return max(found)[1] if found else None


def fetch(target: WheelTarget, cache: Path, log) -> tuple[Path, str]:
    """Return (wheel path, spec used), downloading with pip if needed."""
    cache.mkdir(parents=True, exist_ok=True)
    errors = []
    for spec in target.specs:
        path = find_cached(cache, spec, target.python)
        if path is None:
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", *PIP_TARGET, "--python-version", target.python,
                   "-d", str(cache), spec]
            log(f"  fetching {spec!r} with pip ...")
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                last = (proc.stderr.strip().splitlines() or ["?"])[-1]
                errors.append(f"{spec}: {last}")
                log(f"  {spec!r} not available: {last}")
                continue
            path = find_cached(cache, spec, target.python)
        if path is not None:
            if spec != target.specs[0]:
                log(f"  NOTE: using {spec!r} instead of {target.specs[0]!r}")
            return path, spec
    raise RuntimeError(f"no wheel for {target.key}: " + "; ".join(errors))


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()  # also warms the page cache before any timing


def wheel_stats(path: Path) -> dict:
    with zipfile.ZipFile(path) as zf:
        by_name = select_elf_members(zf, "name")
        by_magic = select_elf_members(zf, "magic")
        return {
            "members": len(zf.infolist()),
            "elf_by_name": len(by_name),
            "elf_by_name_mb": sum(i.file_size for i in by_name) / 1e6,
            "elf_by_magic": len(by_magic),
            "elf_by_magic_mb": sum(i.file_size for i in by_magic) / 1e6,
            "largest_elf_mb": max((i.file_size for i in by_magic), default=0) / 1e6,
        }


# --------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------


def fmt(x: float | None, spec: str = ".2f", *legs: Leg) -> str:
    """Format a number; a missing one is "ERR" if a leg it comes from failed,
    else "-" (leg not run, see --legs)."""
    if x is not None:
        return format(x, spec)
    return "ERR" if any(leg.error for leg in legs) else "-"


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


def paired(a: Leg, b: Leg) -> float | None:
    """The median over the rounds of a's time / b's time in the same round
    (legs run back to back): this machine's speed drifts by a quarter
    within minutes, and the best of each leg alone may pair a fast moment
    of one with a slow moment of the other."""
    if a.error or b.error or not a.runs or not b.runs:
        return None
    return statistics.median(x.wall_s / y.wall_s for x, y in zip(a.runs, b.runs))


def evaluate(key: str, target: WheelTarget, legs: dict[str, Leg]) -> list[dict]:
    aw, wv, inf, flo, dflt = (legs[k] for k in ("auditwheel", "wheelvet", "inflate", "floor", "default"))
    speedup = ratio(aw.best_s, wv.best_s)
    vs_inflate = ratio(wv.best_s, inf.best_s)
    checks = [
        (f"speedup >= {target.min_speedup:g}x", speedup, lambda v: v >= target.min_speedup, (aw, wv)),
        (f"wheelvet/inflate <= {MAX_INFLATE_RATIO:g}", vs_inflate, lambda v: v <= MAX_INFLATE_RATIO, (wv, inf)),
        (f"wheelvet peak RSS < {MAX_RSS_MB:g} MB", wv.peak_rss_mb, lambda v: v < MAX_RSS_MB, (wv,)),
    ]
    if key in MIN_DEFAULT_SPEEDUP:
        want = MIN_DEFAULT_SPEEDUP[key]
        checks += [
            (f"default install speedup >= {want:g}x", ratio(aw.best_s, dflt.best_s), lambda v: v >= want, (aw, dflt)),
            (f"default install/floor <= {MAX_FLOOR_RATIO:g}", ratio(dflt.best_s, flo.best_s),
             lambda v: v <= MAX_FLOOR_RATIO, (dflt, flo)),
        ]
    out = []
    for label, value, ok, used in checks:
        why = None
        if value is None:
            why = "; ".join(f"{leg.name} failed" for leg in used if leg.error) or "not measured"
        same_round = paired(*used) if len(used) == 2 else None  # (the same quotient as value's)
        out.append({
            "wheel": key,
            "target": label,
            "value": value,
            "pass": value is not None and ok(value),
            "why": why,
            "paired": same_round,
        })
    return out


def print_table(rows: list[dict]) -> None:
    head = ["wheel", "auditwheel s", "wheelvet s", "speedup", "default s", "speedup", "zlib s", "speedup",
            "floor s", "dflt/floor", "inflate s", "wv/inflate", "aw MB", "wv MB"]
    body = []
    for r in rows:
        aw, wv, dflt, zl, inf, flo = (r["legs"][k] for k in LEG_NAMES)
        body.append([
            r["key"],
            fmt(aw.best_s, ".2f", aw),
            fmt(wv.best_s, ".3f", wv),
            fmt(ratio(aw.best_s, wv.best_s), ".1f", aw, wv),
            fmt(dflt.best_s, ".3f", dflt),
            fmt(ratio(aw.best_s, dflt.best_s), ".1f", aw, dflt),
            fmt(zl.best_s, ".3f", zl),
            fmt(ratio(aw.best_s, zl.best_s), ".1f", aw, zl),
            fmt(flo.best_s, ".3f", flo),
            fmt(ratio(dflt.best_s, flo.best_s), ".2f", dflt, flo),
            fmt(inf.best_s, ".2f", inf),
            fmt(ratio(wv.best_s, inf.best_s), ".2f", wv, inf),
            fmt(aw.peak_rss_mb, ".0f", aw),
            fmt(wv.peak_rss_mb, ".0f", wv),
        ])
    widths = [max(len(str(c)) for c in col) for col in zip(head, *body)]

    def line(cells: list[str]) -> str:  # first column left-aligned, numbers right
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths)))

    print(line(head))
    print(line(["-" * w for w in widths]))
    for cells in body:
        print(line(cells))


def git_commit() -> str | None:
    """HEAD of the wheelvet checkout, with "+dirty" if src/ has changes."""
    def git(*cmd: str) -> str:
        return subprocess.run(["git", "-C", str(REPO), *cmd], capture_output=True,
                              text=True, check=True).stdout.strip()
    try:
        head = git("rev-parse", "HEAD")
        return head + ("+dirty" if git("status", "--porcelain", "--", "src") else "")
    except (OSError, subprocess.CalledProcessError):
        return None


def wheelvet_inflater() -> str:
    """What inflates wheel members in wheelvet here: zlib, or ISA-L
    (``isal.isal_zlib``) when wheelvet[fast] is installed."""
    try:
        from wheelvet.zipin import INFLATE_LIBRARY
    except ImportError:
        return "unknown"
    return INFLATE_LIBRARY.__name__


def measured_versions() -> dict:
    """What is being measured (taken at the start of a run)."""
    return {"auditwheel": tool_version("auditwheel"), "wheelvet": tool_version("wheelvet"),
            "wheelvet_commit": git_commit(), "wheelvet_inflater": wheelvet_inflater()}


def describe_versions(versions: dict) -> str:
    return (f"python {sys.executable} ({platform.python_version()}), {os.cpu_count()} CPUs, "
            f"auditwheel {versions['auditwheel']}, wheelvet {versions['wheelvet']} "
            f"({versions['wheelvet_commit']}, inflating with {versions['wheelvet_inflater']})")


def tool_version(module: str) -> str | None:
    from importlib import metadata
    try:
        return metadata.version(module)
    except metadata.PackageNotFoundError:
        return None


# --------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_inflate"]:  # child process of the inflate leg
        _, wheel, how, mode = argv
        inflate(wheel, how, mode)
        return 0
    if argv[:1] == ["_floor"]:  # child process of the floor leg
        floor(argv[1])
        return 0

    p = argparse.ArgumentParser(description="Benchmark wheelvet show vs auditwheel show.")
    p.add_argument("--quick", action="store_true", help="1 run per leg instead of 3")
    p.add_argument("--runs", type=int, help="runs per leg (best is kept); overrides --quick")
    p.add_argument("--check", action="store_true", help="exit 1 if any target fails")
    p.add_argument("--only", choices=[w.key for w in WHEELS], action="append",
                   help="benchmark only this wheel (repeatable)")
    p.add_argument("--legs", default=",".join(LEG_NAMES),
                   help="comma-separated legs to run (default: all: %(default)s)")
    p.add_argument("--inflate-select", choices=["name", "magic"], default="name",
                   help="which members the inflate leg reads (default: by file name)")
    p.add_argument("--inflate-mode", choices=["whole", "stream"], default="whole",
                   help="zf.read() each member whole (default) or stream it in 1 MiB chunks")
    p.add_argument("--timeout", type=float, default=900, help="seconds per child run")
    p.add_argument("--json", type=Path, help="where to write results "
                   "(default: benchmarks/results/show-<date>[-quick].json)")
    args = p.parse_args(argv)

    runs = args.runs or (1 if args.quick else 3)
    legs_wanted = [x.strip() for x in args.legs.split(",") if x.strip()]
    unknown = set(legs_wanted) - set(LEG_NAMES)
    if unknown:
        p.error(f"unknown leg(s): {', '.join(sorted(unknown))}")
    targets = [w for w in WHEELS if not args.only or w.key in args.only]
    cache = cache_dir()

    def log(msg: str) -> None:
        print(msg, flush=True)

    # Versions as of the start of the run, i.e. of what gets measured.
    versions = measured_versions()
    log(describe_versions(versions))
    log(f"cache {cache}; {runs} run(s) per leg; inflate = {args.inflate_select}/{args.inflate_mode}; "
        f"floor = every member with {best_inflater()[0]}")
    scratch = Path(tempfile.mkdtemp(prefix="wheelvet-bench-show-"))
    default_python = None
    if "default" in legs_wanted:
        try:
            default_python = default_install(scratch, log)
        except (RuntimeError, subprocess.CalledProcessError) as exc:
            log(f"  default leg: {exc}")
    zlib_env = ["env", "WHEELVET_INFLATE=zlib"]

    rows = []
    for target in targets:
        log(f"\n[{target.key}]")
        try:
            wheel, spec = fetch(target, cache, log)
        except RuntimeError as e:
            log(f"  SKIP: {e}")
            rows.append({"key": target.key, "error": str(e)})
            continue
        size_mb = wheel.stat().st_size / 1e6
        digest = sha256_of(wheel)
        stats = wheel_stats(wheel)
        log(f"  {wheel.name}  {size_mb:.1f} MB, {stats['members']} members, "
            f"ELF by name {stats['elf_by_name']} ({stats['elf_by_name_mb']:.0f} MB), "
            f"by magic {stats['elf_by_magic']} ({stats['elf_by_magic_mb']:.0f} MB)")

        w = str(wheel)
        legs = {
            "auditwheel": Leg("auditwheel", [sys.executable, "-m", "auditwheel", "show", w]),
            "wheelvet": Leg("wheelvet", [sys.executable, "-m", "wheelvet", "show", w]),
            "default": Leg("default", [str(default_python or "default-install-failed"), "-m", "wheelvet", "show", w]),
            "zlib": Leg("zlib", [*zlib_env, sys.executable, "-m", "wheelvet", "show", w]),
            "inflate": Leg("inflate", [sys.executable, str(Path(__file__).resolve()), "_inflate",
                                       w, args.inflate_select, args.inflate_mode]),
            "floor": Leg("floor", [sys.executable, str(Path(__file__).resolve()), "_floor", w]),
        }
        for i in range(runs):
            for name in legs_wanted:
                leg = legs[name]
                if leg.error:  # it failed once: don't waste time repeating it
                    continue
                r = run_child(leg.argv, args.timeout)
                leg.runs.append(r)
                status = "ok" if r.returncode == 0 else f"FAILED (exit {r.returncode})"
                log(f"  run {i + 1}/{runs} {name:<10} {r.wall_s:8.3f} s  "
                    f"{r.maxrss_mb:7.1f} MB  {status}")
                if r.returncode != 0:
                    log("    " + r.stderr_tail.replace("\n", "\n    "))
        rows.append({"key": target.key, "target": target, "wheel": wheel, "spec": spec,
                     "size_mb": size_mb, "sha256": digest, "stats": stats, "legs": legs})

    import shutil

    shutil.rmtree(scratch, ignore_errors=True)
    done = [r for r in rows if "legs" in r]
    results = []
    print()
    if done:
        print_table(done)
        print()
        for r in done:
            results += evaluate(r["key"], r["target"], r["legs"])
    return finish("show", rows, results, args=args, runs=runs, versions=versions,
                  settings={"runs": runs, "legs": legs_wanted, "floor_inflater": best_inflater()[0],
                            "inflate_select": args.inflate_select,
                            "inflate_mode": args.inflate_mode, "timeout_s": args.timeout},
                  wheel_json=lambda r: {"key": r["key"], "spec": r["spec"], "file": r["wheel"].name,
                                        "size_mb": round(r["size_mb"], 2), "sha256": r["sha256"], **r["stats"]},
                  width=6)


def finish(kind: str, rows: list[dict], results: list[dict], *, args, runs: int, versions: dict, settings: dict,
           wheel_json, width: int, extra: dict | None = None) -> int:
    """The end every benchmark shares: a failed target for each wheel that
    could not be had, a PASS/FAIL line per target, the results JSON
    (benchmarks/results/<kind>-<date>.json), and exit 1 under --check when a
    target fails.  ``wheel_json(row)`` gives a measured wheel's entry; its
    legs are added here."""
    for r in rows:
        if "error" in r:
            results.append({"wheel": r["key"], "target": "wheel available", "value": None,
                            "pass": False, "why": r["error"]})
    for res in results:
        mark = "PASS" if res["pass"] else "FAIL"
        val = "" if res["value"] is None else f"  ({res['value']:.2f}"
        if val:
            val += f"; same round, median: {res['paired']:.2f})" if res.get("paired") is not None else ")"
        why = f"  [{res['why']}]" if res["why"] else ""
        print(f"{mark}  {res['wheel']:<{width}} {res['target']}{val}{why}")

    now = _dt.datetime.now()
    out = args.json or HERE / "results" / f"{kind}-{now:%Y-%m-%d}{'-quick' if runs == 1 else ''}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "date": now.isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "python": platform.python_version(), "executable": sys.executable},
        "versions": versions,
        **(extra or {}),
        "settings": settings,
        "wheels": [
            {"key": r["key"], "error": r["error"]} if "error" in r else {
                **wheel_json(r), "legs": {name: leg.as_json() for name, leg in r["legs"].items()},
            }
            for r in rows
        ],
        "targets": results,
    }
    out.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"\nresults written to {out}")
    if args.check and not all(res["pass"] for res in results):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
