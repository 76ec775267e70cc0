#!/usr/bin/env python3
"""Benchmark `wheelvet show` on hostile wheels beside normal wheels of the same size.

Run on demand (this is a report, not a test):

    .venv/bin/python benchmarks/bench_hostile.py            # best of 3 runs
    .venv/bin/python benchmarks/bench_hostile.py --quick    # 1 run
    .venv/bin/python benchmarks/bench_hostile.py --check    # exit 1 if a target fails
    .venv/bin/python benchmarks/bench_hostile.py --only notes-2000 --only chain-2000

Each case is a wheel crafted to make the work or the memory of `show` grow
faster than its input (issue 15, item 4; the generators are tests/hostile.py,
which the tests run at small scales).  Beside it runs a normal wheel of the
same size: real ELF files (PyTorch's when its wheel is in the benchmark
cache or /opt/wheels, else this machine's libraries) adding up to the same
inflated size, since inflating and hashing every byte is the least any
verified read costs.

Both are run as `wheelvet show WHEEL` inside a small wrapper (`_run`),
started by bench_repair's spawner: os.wait4 gives the peak RSS of the largest
process of the run (Linux counts the reaped worker processes in), and the
wrapper records its workers' own (RUSAGE_CHILDREN) to tell them apart.  The ld.so.conf case
cannot be put under a wheel (wheelvet reads the machine's /etc/ld.so.conf):
it times parse_ld_so_conf on a configuration of 100 files whose includes
reach themselves, beside one of 100 files each included once.

Targets, per case: time at most MAX_TIME_RATIO x the normal wheel's, peak
RSS (the larger of the main process and its workers) under MAX_RSS_MB, and a
case the limits refuse exits 3 with one line naming the limit.  The wheels
are generated once into ${WHEELVET_BENCH_CACHE:-~/.cache/wheelvet-bench}/hostile
(a few minutes, and up to ~1.5 GB of memory for the largest, in a child
process).  Results: a table, PASS/FAIL lines, and JSON in
benchmarks/results/hostile-<date>[-quick].json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO / "tests"))

from bench_repair import Spawner  # noqa: E402
from bench_show import Leg, Run, cache_dir, describe_versions, finish, fmt, measured_versions, ratio  # noqa: E402

GENERATION = 5  # bump when a case changes: cached wheels are made again
MAX_TIME_RATIO = 3.0
MAX_RSS_MB = 400.0
SO = "pkg/m.cpython-311-x86_64-linux-gnu.so"
TAG = "cp311-cp311-linux_x86_64"


@dataclass(frozen=True)
class Case:
    key: str
    what: str
    issue: str  # what issue 15 measured before
    refused: str | None  # the line's needle when a limit refuses it, else None (read)


CASES = [
    Case("needed-100k", "100,000 DT_NEEDED entries", "22 s", "DT_NEEDED entries, more than the 4096 allowed"),
    Case("needed-4k", "4,096 DT_NEEDED entries (the limit)", "", None),
    Case("rpath-1000x1000", "an RPATH of 1,000 existing directories x 1,000 needed libraries", "30 s", None),
    Case("verneed-shared", "65,536 version needs sharing one array of 4,096", "38 s, 1.75 GB", "share auxiliary entries"),
    Case("notes-2000", "2,000 PT_NOTE segments over 1 MiB", "killed after 60 s", "its note segments add up to"),
    Case("notes-limit", "one 1 MiB PT_NOTE segment of 87,381 empty notes (the limit)", "", None),
    Case("note-400m", "one 400 MB PT_NOTE segment", "1.2 GB", "its note segments add up to"),
    Case("gnu-hash-60m", "a GNU hash chain over 60 MB of zeros", "17.5 s", "dynamic symbol table"),
    Case("imports-2.5m", "2.5 million imported symbols (60 MB of symbols)", "1.3 GB", "undefined symbols allowed"),
    Case("imports-limit", "131,072 imported symbols (the limit)", "", None),
    Case("noise-12m", "12 million symbols, 100 of them imported", "killed after 60 s", "more than the 134217728 wheelvet holds"),
    Case("noise-4m", "4 million symbols, 100 of them imported (near the kept limit)", "", None),
    Case("names-overlap", "20,000 imported names overlapping in one 20 KB string (200 MB as strings)", "",
         "names of its undefined symbols add up to"),
    Case("chain-2000", "2,000 libraries that each need the next", "", "steps wheelvet allows for one wheel"),
    Case("vtk-like-800", "800 modules each needing 20 others and 5 system libraries", "", "steps wheelvet allows for one wheel"),
    Case("chain-200", "200 libraries that each need the next", "", None),
    Case("members-20k", "20,000 small extension modules", "", "ELF files allowed"),
    Case("members-4k", "4,096 small extension modules (the limit)", "", None),
    Case("missing-4k", "4,096 extension modules, each needing a library of its own that is missing", "", None),
    Case("ld-so-conf-loop", "an ld.so.conf whose includes reach themselves (100 files)", "killed after 60 s", None),
]
BY_KEY = {c.key: c for c in CASES}


# --------------------------------------------------------------------------
# Making the wheels (in a child process: the largest take ~1.5 GB to build)
# --------------------------------------------------------------------------


def host_dirs(n: int) -> list[str]:
    out = []
    for root, dirs, _files in os.walk("/usr"):
        dirs.sort()
        out.append(root)
        if len(out) >= n:
            break
    return out


def hostile_members(key: str, scratch: Path) -> dict[str, bytes]:
    import hostile as H

    if key == "needed-100k":
        return {SO: H.many_needed(100_000)}
    if key == "needed-4k":
        return {SO: H.many_needed(4096)}
    if key == "rpath-1000x1000":
        return {SO: H.rpath_times_needed(host_dirs(1000), 1000)}
    if key == "verneed-shared":
        return {SO: H.shared_version_needs(65_536, 4096)}
    if key == "notes-2000":
        return {SO: H.many_notes(2000, 1 << 20)}
    if key == "notes-limit":
        return {SO: H.many_notes(1, (1 << 20) - (1 << 20) % 12)}
    if key == "note-400m":  # (not all zeros: 1000:1 would be refused as a decompression bomb first)
        return {SO: H.huge_note(400 << 20, fill=os.urandom(64) + bytes(4032))}
    if key == "gnu-hash-60m":
        return {SO: H.gnu_hash_chain(60 << 20)}
    if key == "imports-2.5m":
        return {SO: H.many_imports(2_500_000)}
    if key == "imports-limit":
        return {SO: H.many_imports(131_072)}
    if key == "noise-12m":
        return {SO: H.symbols_with_noise(12_000_000)}
    if key == "noise-4m":
        return {SO: H.symbols_with_noise(4_000_000)}
    if key == "names-overlap":
        return {SO: H.long_names(20_000, 20_000)}
    if key in ("chain-2000", "chain-200"):
        n = int(key.split("-")[1])
        return {SO if i == 0 else f"pkg/libchain{i}.so": H.library_chain(n, i) for i in range(n)}
    if key == "vtk-like-800":
        import random

        from support import craft_elf

        rnd = random.Random(1)
        out = {}
        for i in range(800):
            deps = tuple(f"libvtk{j}.so" for j in rnd.sample(range(i + 1, 800), min(20, 799 - i)))
            system = ("libc.so.6", "libm.so.6", "libstdc++.so.6", "libX11.so.6", "libGL.so.1")
            out[f"vtkmodules/libvtk{i}.so"] = craft_elf("x86_64", soname=f"libvtk{i}.so", needed=deps + system,
                                                         rpath="$ORIGIN", exports=(f"PyInit_libvtk{i}",))
        return out
    if key == "missing-4k":
        out = {}
        for i in range(4096):
            e = H.Elf()
            e.dynamic.append((H.DT["NEEDED"], e.strings.add(f"libmissing{i}.so")))
            out[f"pkg/m{i}.cpython-311-x86_64-linux-gnu.so"] = H.extension(e, f"m{i}").build()
        return out
    if key in ("members-20k", "members-4k"):
        out = {}
        for i in range(20_000 if key == "members-20k" else 4096):
            e = H.Elf()
            e.dynamic.append((H.DT["NEEDED"], e.strings.add("libc.so.6")))
            out[f"pkg/sub{i % 100}/m{i}.cpython-311-x86_64-linux-gnu.so"] = H.extension(e, f"m{i}").build()
        return out
    raise KeyError(key)


def real_elf_sources() -> list[tuple[str, int, object]]:
    """(name, size, how to read it) of real ELF files for the normal wheels."""
    import glob
    import zipfile

    torch = sorted(glob.glob(str(cache_dir() / "torch-*.whl"))) + sorted(glob.glob("/opt/wheels/torch-*.whl"))
    if torch:
        zf = zipfile.ZipFile(torch[0])
        out = []
        for info in zf.infolist():
            if info.file_size >= 4096 and not info.filename.endswith(".py"):
                with zf.open(info) as f:
                    if f.read(4) == b"\x7fELF":
                        out.append((info.filename, info.file_size, lambda i=info: zf.read(i)))
        return out
    out = []
    for p in sorted(glob.glob("/usr/lib/x86_64-linux-gnu/*.so*")):
        if os.path.isfile(p) and not os.path.islink(p) and os.path.getsize(p) >= 4096:
            with open(p, "rb") as f:
                if f.read(4) == b"\x7fELF":
                    out.append((p, os.path.getsize(p), lambda p=p: Path(p).read_bytes()))
    return out


def normal_members(target: int, sources) -> dict[str, bytes]:
    """Real ELF files adding up to ``target`` inflated bytes (or just over):
    each time the largest that still fits, the smallest when none does."""
    by_size = sorted(sources, key=lambda s: s[1], reverse=True)
    out, left, n = {}, target, 0
    while left > 0:
        pick = next((s for s in by_size if s[1] <= left), by_size[-1])
        name, size, read = pick
        out[f"normal/{n:05d}/{os.path.basename(name)}"] = read()
        left -= size
        n += 1
    return out


def generate(cache: Path, keys: list[str]) -> None:
    from support import write_wheel

    sources = None
    for key in keys:
        d = cache / key
        manifest = d / "manifest.json"
        if manifest.exists() and json.loads(manifest.read_text()).get("generation") == GENERATION:
            continue
        d.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        if key == "ld-so-conf-loop":
            import hostile as H

            conf = H.ld_so_conf_loop(d / "conf.d", 100)
            # the normal one: as many files, each included once
            (d / "normal.d").mkdir(exist_ok=True)
            for i in range(100):
                (d / "normal.d" / f"n{i}.conf").write_text(f"/opt/normal{i}\n/opt/normal{i}b\n")
            (d / "normal.conf").write_text(f"include {d}/normal.d/*.conf\n")
            manifest.write_text(json.dumps({"generation": GENERATION, "conf": conf, "normal_conf": str(d / "normal.conf")}))
            continue
        members = hostile_members(key, d)
        inflated = sum(len(v) for v in members.values())
        hostile = write_wheel(d / "hostile" / f"pkg-1.0-{TAG}.whl", members)
        del members
        sources = sources if sources is not None else real_elf_sources()
        normal = write_wheel(d / "normal" / f"normal-1.0-{TAG}.whl", normal_members(inflated, sources))
        manifest.write_text(json.dumps({
            "generation": GENERATION, "hostile": str(hostile), "normal": str(normal),
            "hostile_inflated": inflated, "hostile_size": hostile.stat().st_size,
            "normal_inflated": _inflated(normal), "normal_size": normal.stat().st_size,
        }))
        print(f"  made {key} in {time.perf_counter() - t0:.1f} s", flush=True)


def _inflated(wheel: Path) -> int:
    import zipfile

    with zipfile.ZipFile(wheel) as zf:
        return sum(i.file_size for i in zf.infolist())


# --------------------------------------------------------------------------
# Measuring
# --------------------------------------------------------------------------


def run_wrapped(side: str, argv: list[str]) -> int:
    """The `_run` child: wheelvet's command line in this process, then the
    peak RSS of the worker processes it started, written to ``side``."""
    code = 0
    try:
        if argv[:1] == ["_parse_conf"]:
            from wheelvet.resolve import parse_ld_so_conf

            parse_ld_so_conf(argv[1])
        else:
            from wheelvet.cli import main

            code = main(argv)
    finally:
        children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        Path(side).write_text(json.dumps({"workers_mb": children}))
    return code


class HostileLeg(Leg):
    """A leg whose expected exit code may be 3 (a limit refused the wheel)."""

    def __init__(self, name: str, argv: list[str], expected_code: int, needle: str | None) -> None:
        super().__init__(name, argv)
        self.expected_code = expected_code
        self.needle = needle
        self.workers_mb: list[float] = []

    @property
    def error(self) -> str | None:
        bad = [r for r in self.runs if r.returncode != self.expected_code]
        if bad:
            return f"exit code {bad[0].returncode} (expected {self.expected_code}): {bad[0].stderr_tail}"
        if self.needle and self.runs:
            lines = self.runs[0].stderr_tail.strip().splitlines()
            if len(lines) != 1 or self.needle not in lines[0]:
                return f"not one line naming the limit: {self.runs[0].stderr_tail!r}"
        return None

    @property
    def peak_all_mb(self) -> float | None:
        main = self.peak_rss_mb
        return None if main is None else max([main, *self.workers_mb])

    def as_json(self) -> dict:
        return {**super().as_json(), "expected_code": self.expected_code, "workers_peak_rss_mb": self.workers_mb}


def measure(leg: HostileLeg, spawner: Spawner, scratch: Path, timeout: float) -> None:
    side = tempfile.mktemp(prefix="side-", suffix=".json", dir=scratch)
    argv = [sys.executable, str(Path(__file__).resolve()), "_run", side, *leg.argv]
    r = spawner.run(argv, timeout)
    leg.runs.append(r)
    try:
        leg.workers_mb.append(json.loads(Path(side).read_text())["workers_mb"])
        os.unlink(side)
    except (OSError, ValueError):
        leg.workers_mb.append(0.0)


def print_table(rows: list[dict]) -> None:
    head = (f"{'case':<17} {'hostile MB':>15} {'exit':>4} {'time s':>7} {'RSS MB':>11}   "
            f"{'normal MB':>15} {'time s':>7} {'RSS MB':>11} {'ratio':>6}")
    print(head)
    print("-" * len(head))
    for r in rows:
        h, n = r["legs"]["hostile"], r["legs"]["normal"]
        m = r["manifest"]
        hsize = f"{m.get('hostile_size', 0) / 1e6:6.1f}/{m.get('hostile_inflated', 0) / 1e6:<7.1f}" if "hostile_size" in m else "-"
        nsize = f"{m.get('normal_size', 0) / 1e6:6.1f}/{m.get('normal_inflated', 0) / 1e6:<7.1f}" if "normal_size" in m else "-"
        hrss = f"{fmt(h.peak_rss_mb, '.0f', h)}/{max(h.workers_mb, default=0):.0f}"
        nrss = f"{fmt(n.peak_rss_mb, '.0f', n)}/{max(n.workers_mb, default=0):.0f}"
        code = h.runs[0].returncode if h.runs else "-"
        print(f"{r['key']:<17} {hsize:>15} {code!s:>4} {fmt(h.best_s, '.2f', h):>7} {hrss:>11}   "
              f"{nsize:>15} {fmt(n.best_s, '.2f', n):>7} {nrss:>11} {fmt(ratio(h.best_s, n.best_s), '.2f', h, n):>6}")
    print("(sizes: the wheel file / its members inflated; RSS: the largest process (wait4) / the largest worker)")


def evaluate(rows: list[dict]) -> list[dict]:
    out = []
    for r in rows:
        h, n = r["legs"]["hostile"], r["legs"]["normal"]
        case = BY_KEY[r["key"]]
        if h.error:
            out.append({"wheel": r["key"], "target": "refused in one line" if case.refused else "read",
                        "value": None, "pass": False, "why": h.error})
            continue
        rt = ratio(h.best_s, n.best_s)
        out.append({"wheel": r["key"], "target": f"time <= {MAX_TIME_RATIO:g}x the normal wheel's",
                    "value": rt, "pass": rt is not None and rt <= MAX_TIME_RATIO, "why": n.error})
        peak = h.peak_all_mb
        out.append({"wheel": r["key"], "target": f"peak RSS < {MAX_RSS_MB:.0f} MB", "value": peak,
                    "pass": peak is not None and peak < MAX_RSS_MB, "why": None})
    return out


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_run"]:
        return run_wrapped(argv[1], argv[2:])
    if argv[:1] == ["_generate"]:
        generate(Path(argv[1]), argv[2:])
        return 0
    p = argparse.ArgumentParser(description="Benchmark wheelvet show on hostile wheels beside normal ones.")
    p.add_argument("--quick", action="store_true", help="1 run per leg instead of 3")
    p.add_argument("--runs", type=int, help="runs per leg (best is kept); overrides --quick")
    p.add_argument("--check", action="store_true", help="exit 1 if any target fails")
    p.add_argument("--only", choices=sorted(BY_KEY), action="append", help="only this case (repeatable)")
    p.add_argument("--timeout", type=float, default=120, help="seconds per child run")
    p.add_argument("--json", type=Path, help="where to write results (default: benchmarks/results/hostile-<date>[-quick].json)")
    args = p.parse_args(argv)
    runs = args.runs or (1 if args.quick else 3)
    keys = args.only or [c.key for c in CASES]
    versions = measured_versions()
    print(describe_versions(versions))

    cache = cache_dir() / "hostile"
    import subprocess

    print(f"wheels: {cache} (made once)", flush=True)
    subprocess.run([sys.executable, str(Path(__file__).resolve()), "_generate", str(cache), *keys], check=True)

    spawner = Spawner()
    print(f"RSS floor (/bin/true through the spawner): {spawner.floor_mb:.0f} MB\n", flush=True)
    rows = []
    env_clean = {k: v for k, v in os.environ.items() if k not in ("LD_LIBRARY_PATH", "AUDITWHEEL_LD_LIBRARY_PATH")}
    os.environ.clear()
    os.environ.update(env_clean)
    with tempfile.TemporaryDirectory(prefix="bench-hostile-") as scratch:
        for key in keys:
            case = BY_KEY[key]
            m = json.loads((cache / key / "manifest.json").read_text())
            if key == "ld-so-conf-loop":
                hostile = HostileLeg("hostile", ["_parse_conf", m["conf"]], 0, None)
                normal = HostileLeg("normal", ["_parse_conf", m["normal_conf"]], 0, None)
            else:
                hostile = HostileLeg("hostile", ["show", m["hostile"]], 3 if case.refused else 0, case.refused)
                normal = HostileLeg("normal", ["show", m["normal"]], 0, None)
            for _ in range(runs):
                for leg in (hostile, normal):
                    if leg.runs and leg.error:
                        continue  # not again
                    measure(leg, spawner, Path(scratch), args.timeout)
            rows.append({"key": key, "manifest": m, "legs": {"hostile": hostile, "normal": normal}})
            print(f"  {key}: {fmt(hostile.best_s, '.2f', hostile)} s beside {fmt(normal.best_s, '.2f', normal)} s", flush=True)
    spawner.close()
    print()
    print_table(rows)
    print()
    results = evaluate(rows)
    return finish("hostile", rows, results, args=args, runs=runs, versions=versions,
                  settings={"runs": runs, "timeout": args.timeout, "max_time_ratio": MAX_TIME_RATIO,
                            "max_rss_mb": MAX_RSS_MB, "rss_floor_mb": spawner.floor_mb, "generation": GENERATION},
                  wheel_json=lambda r: {"key": r["key"], "what": BY_KEY[r["key"]].what,
                                        "before": BY_KEY[r["key"]].issue, **r["manifest"]},
                  width=17)


if __name__ == "__main__":
    sys.exit(main())
