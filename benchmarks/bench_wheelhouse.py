#!/usr/bin/env python3
"""Benchmark repairing a wheelhouse: one project's wheels for several Pythons, in one call.

Run on demand (this is a report, not a test):

    .venv/bin/python benchmarks/bench_wheelhouse.py            # best of 3 runs
    .venv/bin/python benchmarks/bench_wheelhouse.py --quick    # 1 run
    .venv/bin/python benchmarks/bench_wheelhouse.py --check    # exit 1 if a target fails

A release repairs the same extension for 5-6 Python versions, and every wheel grafts the
same libraries. This machine has one CPython (3.11), so the release is made from each
from-source wheel of the repair conformance suite (lxml, psycopg2, pycurl, pillow; see
bench_repair.py): one wheel per tag of --pythons (default cp39 ... cp313), its tags and its
extension modules' names (``.cpython-311-`` -> ``.cpython-39-``...) changed, and each
extension module made a file of its own with ``objcopy --add-section`` (a section naming the
Python, outside every segment): every wheel's own binaries differ, as real builds for
different Pythons do, while the host libraries they need are the same files.

Per project, four legs run as child processes (bench_repair's spawner), in turn, N rounds,
each into a fresh output directory:

  auditwheel     [python, -m, auditwheel, repair, -w, OUT, W1 ... Wn]   (one call)
  wheelvet       [python, -m, wheelvet, repair, -w, OUT, W1 ... Wn]     (one call)
  wheelvet-one   [python, -m, wheelvet, repair, -w, OUT, W1]            (one of them alone)
  auditwheel-one [python, -m, auditwheel, repair, -w, OUT, W1]

Targets: wheelvet on the n wheels under 1.5x wheelvet on one of them (every project), and
>= 5x auditwheel on the n wheels, summed over the projects. Results: a table, PASS/FAIL
lines, JSON in benchmarks/results/wheelhouse-<date>[-quick].json.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests" / "repair_conformance"))

from bench_repair import FROM_SOURCE, Spawner, get_wheel  # noqa: E402
from bench_show import Leg as ShowLeg  # noqa: E402
from bench_show import cache_dir, describe_versions, finish, fmt, measured_versions, paired, ratio, sha256_of  # noqa: E402

PYTHONS = ("cp39", "cp310", "cp311", "cp312", "cp313")
LEG_NAMES = ("auditwheel", "wheelvet", "wheelvet-one", "auditwheel-one")
MAX_HOUSE_OVER_ONE = 1.5  # wheelvet on n wheels / wheelvet on one
MIN_SUM_SPEEDUP = 5.0  # auditwheel on the n wheels / wheelvet on them, summed over the projects
GENERATION = 1  # change to make the variants again


# --------------------------------------------------------------------------
# One project's release, made from one wheel
# --------------------------------------------------------------------------


def make_release(wheel: Path, pythons: tuple[str, ...], dest: Path) -> list[Path]:
    """The wheel "built for" each of ``pythons`` (see the module's docstring), in ``dest``."""
    import base64
    import csv
    import io

    from packaging.utils import parse_wheel_filename

    name, _version, _build, tags = parse_wheel_filename(wheel.name)
    [tag] = tags
    source_py = tag.interpreter  # cp311
    source_abi = f".cpython-{source_py[2:]}-"
    dest.mkdir(parents=True, exist_ok=True)
    out = []
    with zipfile.ZipFile(wheel) as zf:
        infos = [i for i in zf.infolist() if not i.is_dir()]
        for py in pythons:
            target = dest / wheel.name.replace(f"-{source_py}-{source_py}-", f"-{py}-{py}-")
            out.append(target)
            if target.exists():
                continue
            files: dict[str, bytes] = {}
            record_name = None
            for info in infos:
                data = zf.read(info)
                member = info.filename.replace(source_abi, f".cpython-{py[2:]}-")
                if member.endswith(".dist-info/RECORD"):
                    record_name = member
                    continue
                if member.endswith(".dist-info/WHEEL"):
                    data = data.replace(f"{source_py}-{source_py}-".encode(), f"{py}-{py}-".encode())
                if member != info.filename and data[:4] == b"\x7fELF":
                    data = _own_copy(data, py)
                files[member] = data
            rows = io.StringIO()
            writer = csv.writer(rows, lineterminator="\n")
            for member, data in files.items():
                digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
                writer.writerow([member, f"sha256={digest}", len(data)])
            writer.writerow([record_name, "", ""])
            files[record_name] = rows.getvalue().encode()
            tmp = target.with_suffix(".tmp")
            with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zout:
                for member, data in files.items():
                    zout.writestr(zipfile.ZipInfo(member, (2026, 1, 1, 0, 0, 0)), data,
                                  compress_type=zipfile.ZIP_DEFLATED)
            os.replace(tmp, target)
    return out


def _own_copy(data: bytes, py: str) -> bytes:
    """The ELF file with a non-allocated section naming ``py`` (objcopy): other bytes,
    the same program."""
    with tempfile.TemporaryDirectory() as td:
        src, note = Path(td) / "in.so", Path(td) / "note"
        src.write_bytes(data)
        note.write_bytes(f"built for {py}\n".encode() * 64)
        subprocess.run(["objcopy", "--add-section", f".comment.wheelhouse={note}", str(src)], check=True,
                       capture_output=True)
        return src.read_bytes()


# --------------------------------------------------------------------------
# Legs
# --------------------------------------------------------------------------


@dataclass
class Leg(ShowLeg):
    wants: int = 1  # wheels each run must write
    written: list[int] = field(default_factory=list)  # wheels written per run
    out_bytes: list[int] = field(default_factory=list)

    @property
    def error(self) -> str | None:
        failed = ShowLeg.error.fget(self)
        if failed:
            return failed
        if any(n != self.wants for n in self.written):
            return f"wrote {self.written[-1]} wheels, not {self.wants}"
        return None


def run_leg(leg: Leg, scratch: Path, spawner: Spawner, timeout: float):
    out = Path(tempfile.mkdtemp(prefix=f"{leg.name}-", dir=scratch))
    try:
        r = spawner.run([a.replace("{OUT}", str(out)) for a in leg.argv], timeout)
        wheels = [p for p in out.iterdir() if p.name.endswith(".whl")]
        leg.written.append(len(wheels))
        leg.out_bytes.append(sum(p.stat().st_size for p in wheels))
        leg.runs.append(r)
        return r
    finally:
        shutil.rmtree(out, ignore_errors=True)


def print_table(rows: list[dict]) -> None:
    head = ["project", "wheels", "auditwheel s", "wheelvet s", "speedup", "wv one s", "wv n/one", "aw one s",
            "aw n/one", "wv RSS"]
    body = []
    for r in rows:
        aw, wv, one, awone = (r["legs"][k] for k in LEG_NAMES)
        body.append([r["key"], str(len(r["release"])), fmt(aw.best_s, ".2f", aw), fmt(wv.best_s, ".3f", wv),
                     fmt(ratio(aw.best_s, wv.best_s), ".1f", aw, wv), fmt(one.best_s, ".3f", one),
                     fmt(ratio(wv.best_s, one.best_s), ".2f", wv, one), fmt(awone.best_s, ".2f", awone),
                     fmt(ratio(aw.best_s, awone.best_s), ".2f", aw, awone), fmt(wv.peak_rss_mb, ".0f", wv)])
    widths = [max(len(str(c)) for c in col) for col in zip(head, *body)]

    def line(cells):
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    print(line(head))
    print(line(["-" * w for w in widths]))
    for cells in body:
        print(line(cells))


def evaluate(rows: list[dict]) -> list[dict]:
    out = []
    done = [r for r in rows if "legs" in r]
    for r in done:
        wv, one = r["legs"]["wheelvet"], r["legs"]["wheelvet-one"]
        value = ratio(wv.best_s, one.best_s)
        out.append({"wheel": r["key"], "target": f"{len(r['release'])} wheels < {MAX_HOUSE_OVER_ONE:g}x one",
                    "value": value, "pass": value is not None and value < MAX_HOUSE_OVER_ONE,
                    "why": None if value is not None else "not measured", "paired": paired(wv, one)})
    aw = [r["legs"]["auditwheel"].best_s for r in done]
    wv = [r["legs"]["wheelvet"].best_s for r in done]
    value = sum(aw) / sum(wv) if done and None not in aw and None not in wv else None
    out.append({"wheel": "+".join(r["key"] for r in done) or "-", "target": f"summed speedup >= {MIN_SUM_SPEEDUP:g}x",
                "value": value, "pass": value is not None and value >= MIN_SUM_SPEEDUP,
                "why": None if value is not None else "not measured"})
    return out


def main(argv: list[str] | None = None) -> int:
    import bench_repair
    import repaircache

    bench_repair.repaircache = repaircache
    p = argparse.ArgumentParser(description="Benchmark repairing a wheelhouse in one call.")
    p.add_argument("--quick", action="store_true", help="1 run per leg instead of 3")
    p.add_argument("--runs", type=int, help="runs per leg (best is kept); overrides --quick")
    p.add_argument("--check", action="store_true", help="exit 1 if any target fails")
    p.add_argument("--only", choices=FROM_SOURCE, action="append", help="only this project (repeatable)")
    p.add_argument("--pythons", default=",".join(PYTHONS), help="the tags of the release (default: %(default)s)")
    p.add_argument("--legs", default=",".join(LEG_NAMES), help="comma-separated legs (default: all four)")
    p.add_argument("--timeout", type=float, default=900, help="seconds per child run")
    p.add_argument("--json", type=Path, help="where to write results "
                   "(default: benchmarks/results/wheelhouse-<date>[-quick].json)")
    args = p.parse_args(sys.argv[1:] if argv is None else argv)
    runs = args.runs or (1 if args.quick else 3)
    pythons = tuple(x.strip() for x in args.pythons.split(",") if x.strip())
    legs_wanted = [x.strip() for x in args.legs.split(",") if x.strip()]
    if set(legs_wanted) - set(LEG_NAMES):
        p.error(f"unknown leg(s): {', '.join(sorted(set(legs_wanted) - set(LEG_NAMES)))}")
    env = repaircache.repair_env()
    os.environ.clear()
    os.environ.update(env)

    def log(msg: str) -> None:
        print(msg, flush=True)

    versions = measured_versions()
    log(describe_versions(versions))
    log(f"{runs} run(s) per leg; release: {', '.join(pythons)}")
    spawner = Spawner()
    scratch = Path(tempfile.mkdtemp(prefix="wheelvet-bench-wheelhouse-"))
    rows = []
    try:
        for key in [k for k in FROM_SOURCE if not args.only or k in args.only]:
            log(f"\n[{key}]")
            try:
                wheel, spec = get_wheel(key, log)
            except Exception as e:  # noqa: BLE001
                log(f"  SKIP: {e}")
                rows.append({"key": key, "error": str(e)})
                continue
            dest = cache_dir() / "wheelhouse" / f"{key}-{sha256_of(wheel)[:12]}-g{GENERATION}"
            release = make_release(wheel, pythons, dest)
            for w in release:
                sha256_of(w)  # (warms the page cache)
            log(f"  {len(release)} wheels from {wheel.name} [{spec}], {sum(w.stat().st_size for w in release) / 1e6:.1f} MB")
            py, ws = sys.executable, [str(w) for w in release]
            legs = {
                "auditwheel": Leg("auditwheel", [py, "-m", "auditwheel", "repair", "-w", "{OUT}", *ws], wants=len(ws)),
                "wheelvet": Leg("wheelvet", [py, "-m", "wheelvet", "repair", "-w", "{OUT}", *ws], wants=len(ws)),
                "wheelvet-one": Leg("wheelvet-one", [py, "-m", "wheelvet", "repair", "-w", "{OUT}", ws[0]]),
                "auditwheel-one": Leg("auditwheel-one", [py, "-m", "auditwheel", "repair", "-w", "{OUT}", ws[0]]),
            }
            for i in range(runs):
                for name in legs_wanted:
                    leg = legs[name]
                    if leg.error:
                        continue
                    r = run_leg(leg, scratch, spawner, args.timeout)
                    status = "ok" if r.returncode == 0 else f"FAILED (exit {r.returncode})"
                    log(f"  run {i + 1}/{runs} {name:<14} {r.wall_s:8.3f} s  {r.maxrss_mb:7.1f} MB RSS  "
                        f"{leg.written[-1]} wheels, {leg.out_bytes[-1] / 1e6:7.2f} MB  {status}")
                    if r.returncode != 0:
                        log("    " + r.stderr_tail.replace("\n", "\n    "))
            rows.append({"key": key, "spec": spec, "wheel": wheel, "release": [w.name for w in release], "legs": legs})
    finally:
        spawner.close()
        shutil.rmtree(scratch, ignore_errors=True)

    done = [r for r in rows if "legs" in r]
    print()
    if done:
        print_table(done)

        def total(name: str) -> float | None:
            vals = [r["legs"][name].best_s for r in done]
            return None if None in vals else sum(vals)

        print(f"\nsum over {'+'.join(r['key'] for r in done)}: auditwheel {fmt(total('auditwheel'))} s, "
              f"wheelvet {fmt(total('wheelvet'), '.3f')} s, speedup {fmt(ratio(total('auditwheel'), total('wheelvet')), '.1f')}x; "
              f"one wheel each: wheelvet {fmt(total('wheelvet-one'), '.3f')} s, auditwheel {fmt(total('auditwheel-one'))} s")
        print()
    return finish("wheelhouse", rows, evaluate(rows), args=args, runs=runs, versions=versions,
                  settings={"runs": runs, "legs": legs_wanted, "pythons": list(pythons), "timeout_s": args.timeout},
                  wheel_json=lambda r: {"key": r["key"], "spec": r["spec"], "file": r["wheel"].name,
                                        "release": r["release"]},
                  width=8, extra={"rss_floor_mb": spawner.floor_mb})


if __name__ == "__main__":
    sys.exit(main())
