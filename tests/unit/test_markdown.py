"""The pull-request comment: real audits and repair plans, rendered by GitHub's Markdown library.

Wheels are crafted (aarch64 binaries never match host libraries, so the
audits are deterministic), audited and planned by wheelvet itself; the
Markdown is rendered with cmarkgfm (cmark-gfm, the library GitHub renders
comments with) and the assertions are on the HTML.  The golden scenarios
(clean, repaired, unrepairable, mislabelled, a 50-wheel matrix with one
failure, a regression against the base branch, no base report, hostile
names) are regenerated with ``WHEELVET_UPDATE_GOLDEN=1 pytest
tests/unit/test_markdown.py``; review the diff.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import zipfile
from importlib import resources
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from support import build_extension, cc, check_golden, craft_elf, write_wheel
from support_html import ALLOWED, github_html, parse, unfiltered_html
from wheelvet.audit import AuditOptions, analyze, audit_wheel
from wheelvet.errors import WheelvetError
from wheelvet.policy import load_policies
from wheelvet.repair import RepairFailed, RepairOptions, RepairRefused, plan_repair, repair_wheel
from wheelvet.report import markdown as md
from wheelvet.report import markup
from wheelvet.report.compare import compare
from wheelvet.report.markdown import Leg, Report, WheelOutcome, combine, outcome_from_audit, outcome_from_error, render_markdown
from wheelvet.report.view import BaseInfo, plain
from wheelvet.wheelfile import read_wheel

EVIL_SONAME = "lib|x<script>alert(1)</script>.so"
EVIL_MEMBER = "demo/_core`x|y`<img src=x onerror=alert(1)>.cpython-311-aarch64-linux-gnu.so"
EVIL_WHEEL = "ev`il|<b>x-1.0-cp311-cp311-linux_x86_64.whl"
RUN = "https://github.com/octo/demo/actions/runs/42"


# ------------------------------------------------------------------ real data


def _normalise(o: WheelOutcome, tmp: Path) -> WheelOutcome:
    """Host paths of grafted libraries without the temporary directory (for golden files)."""
    return dataclasses.replace(o, grafted=tuple(
        dataclasses.replace(g, source=g.source.replace(str(tmp), "/build")) for g in o.grafted))


@pytest.fixture(scope="module")
def crafted(tmp_path_factory):
    d = tmp_path_factory.mktemp("md")
    libs = d / "libs"
    libs.mkdir()
    (libs / "libgreet.so.1").write_bytes(craft_elf(
        "aarch64", soname="libgreet.so.1", needed=("libc.so.6",), exports=("greet",),
        imports=(("memcpy", "GLIBC_2.17", "libc.so.6"),)))
    stored = dict(compression=zipfile.ZIP_STORED)  # sizes independent of the zlib build
    greeter = write_wheel(d / "greeter-0.1-cp311-cp311-linux_aarch64.whl", {
        "greeter/_g.cpython-311-aarch64-linux-gnu.so": craft_elf(
            "aarch64", needed=("libgreet.so.1", "libc.so.6"), exports=("PyInit__g",),
            imports=(("greet", None, "libgreet.so.1"), ("memcpy", "GLIBC_2.17", "libc.so.6")))},
        tag="cp311-cp311-linux_aarch64", **stored)
    demo = write_wheel(d / "demo-1.0-cp311-cp311-manylinux_2_17_aarch64.whl", {
        EVIL_MEMBER: craft_elf(
            "aarch64", needed=("libffi.so.8", "libm.so.6", "libc.so.6", EVIL_SONAME), exports=("PyInit__core",),
            imports=(("exp", "GLIBC_2.29", "libm.so.6"), ("log", "GLIBC_2.29", "libm.so.6"),
                     ("__cxa_thread_atexit_impl", "GLIBC_2.18", "libc.so.6"), ("memcpy", "GLIBC_2.17", "libc.so.6")))},
        tag="cp311-cp311-manylinux_2_17_aarch64", **stored)
    ok = write_wheel(d / "ok-2.0-cp311-cp311-manylinux2014_aarch64.whl", {
        "ok.cpython-311-aarch64-linux-gnu.so": craft_elf(
            "aarch64", needed=("libc.so.6",), exports=("PyInit_ok",), imports=(("memcpy", "GLIBC_2.17", "libc.so.6"),))},
        tag="cp311-cp311-manylinux2014_aarch64", **stored)
    fast = write_wheel(d / "fast-1.0-cp311-cp311-manylinux_2_17_x86_64.whl", {
        "fast.cpython-311-x86_64-linux-gnu.so": craft_elf(
            "x86_64", needed=("libc.so.6",), exports=("PyInit_fast",), isa_needed=0b110,
            imports=(("memcpy", "GLIBC_2.14", "libc.so.6"),))},
        tag="cp311-cp311-manylinux_2_17_x86_64", **stored)
    pure = write_wheel(d / "purelib-1.0-py3-none-any.whl", {"purelib/__init__.py": b""}, tag="py3-none-any", **stored)
    evil = d / EVIL_WHEEL
    evil.write_bytes(b"not a zip")

    opts = AuditOptions(environ={}, ldpaths=str(libs))
    analysis = analyze(read_wheel(str(greeter)), opts)
    demo_analysis = analyze(read_wheel(str(demo)), opts)
    try:
        plan_repair(demo_analysis, RepairOptions(plat="manylinux_2_17"))
    except RepairRefused as exc:
        refused = outcome_from_audit(demo_analysis.audit, error=exc, policy="manylinux_2_17")
    try:
        audit_wheel(str(evil), opts)
    except WheelvetError as exc:
        broken = outcome_from_error(evil.name, str(exc), input_size=evil.stat().st_size)
    out = {
        "repaired": outcome_from_audit(analysis.audit, plan=plan_repair(analysis)),
        "mislabelled": outcome_from_audit(demo_analysis.audit),
        "refused": refused,
        "ok": outcome_from_audit(audit_wheel(str(ok), opts)),
        "isa": outcome_from_audit(audit_wheel(str(fast), opts)),
        "pure": outcome_from_audit(audit_wheel(str(pure), opts)),
        "broken": broken,
    }
    audits = {"demo": demo_analysis.audit, "greeter": analysis.audit}
    return ({k: _normalise(v, d) for k, v in out.items()},
            {"demo": demo, "greeter": greeter, "libs": libs, "opts": opts, "audits": audits})


@pytest.fixture(scope="module")
def outcomes(crafted):
    return crafted[0]


def leg(key, *outcomes, sha="abc1234def5678", run_id=42, label=None):
    return Leg(key, label or key, tuple(outcomes), workflow="wheels", job="build", run_id=run_id, sha=sha, updated=1.0)


@pytest.fixture(scope="module")
def report(outcomes):
    o = outcomes
    return Report("pr-42", title="wheelvet · wheels", commit="abc1234def5678", run_url=RUN, summary_url=RUN, legs=(
        leg("build-aarch64", o["repaired"], o["mislabelled"], o["ok"], label="build · cp311 · aarch64"),
        leg("build-x86_64", o["isa"], label="build · cp311 · x86_64"),
        leg("sdist", o["pure"], o["broken"], label="sdist")))


def fits_860px(rows: list[list[str]]) -> bool:
    """Whether a table fits GitHub's comment column without scrolling, by a generous estimate:
    8.4 px per character of github-markdown-css's code font (it is narrower for prose), 26 px of padding per cell."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return sum(w * 8.4 + 26 for w in widths) <= 860


def headline_of(text: str) -> str:
    return parse(github_html(text)).root.find("h3")[0].text()


def body_lines(text: str) -> list[str]:
    """The rendered comment's lines, without the hidden marker and data."""
    return [line for line in text.splitlines() if not line.startswith("<!-- ")]


# ------------------------------------------------------------------ the view model from real data


def test_outcomes_from_real_audits(outcomes):
    assert {k: o.status for k, o in outcomes.items()} == {
        "repaired": "repaired", "mislabelled": "mislabelled", "refused": "failed", "ok": "ok", "isa": "mislabelled",
        "pure": "error", "broken": "error"}

    r = outcomes["repaired"]
    assert (r.claimed, r.tags_after) == (("linux_aarch64",), ("manylinux2014_aarch64", "manylinux_2_17_aarch64"))
    assert r.output == "greeter-0.1-cp311-cp311-manylinux2014_aarch64.manylinux_2_17_aarch64.whl"
    assert [(g.soname, g.source, g.size) for g in r.grafted] == [("libgreet.so.1", "/build/libs/libgreet.so.1", 552)]
    assert r.policy == r.reached == "manylinux_2_17_aarch64" and r.hint is None
    assert r.short == "cp311 · manylinux_2_17_aarch64"

    f = outcomes["mislabelled"]
    assert (f.policy, f.claimed, f.reached, f.unmet) == ("manylinux_2_17_aarch64", ("manylinux_2_17_aarch64",),
                                                         "linux_aarch64", ("manylinux_2_17_aarch64",))
    assert [(e.soname, e.path) for e in f.external] == [("libffi.so.8", None), (EVIL_SONAME, None)]
    (v,) = f.too_recent
    best = next(p for p in reversed(list(load_policies("glibc", "aarch64"))) if p.allows_version("GLIBC_2.29"))
    assert (v.version, v.library, v.best_policy) == ("GLIBC_2.29", "libm.so.6", best.name)
    assert [(s.file, s.symbols) for s in v.files] == [(EVIL_MEMBER, ("exp", "log"))]
    assert [(b.library, b.symbols) for b in f.blacklisted] == [("libc.so.6", ("__cxa_thread_atexit_impl",))]
    # the fix in the action's own terms
    fixes = [plain(x) for x in f.fixes]
    assert fixes[0] == "build in the manylinux_2_17 image (`quay.io/pypa/manylinux2014_aarch64`)"
    assert fixes[1].startswith(f"install `libffi.so.8`, `{EVIL_SONAME}` with `before-repair`, add its directory")
    assert fixes[-1] == "stop importing `__cxa_thread_atexit_impl`, or set `plat` to a less compatible policy"
    assert f.why.startswith("claims manylinux_2_17_aarch64 but needs GLIBC_2.29 from libm.so.6 (exp, log in demo/")

    i = outcomes["isa"]
    assert [(x.file, x.level) for x in i.isa] == [("fast.cpython-311-x86_64-linux-gnu.so", "x86_64_v3")]
    assert i.hint == "build for the baseline (no -march=native), or set `disable-isa-ext-check: true`"

    assert outcomes["ok"].tags_after == outcomes["ok"].claimed == ("manylinux2014_aarch64",)
    assert "`allow-pure-python-wheel: true`" in outcomes["pure"].hint
    assert outcomes["broken"].wheel == EVIL_WHEEL and "not a valid wheel file name" in outcomes["broken"].error


def test_refusal_is_a_failure_other_errors_are_errors(crafted, outcomes):
    _, paths = crafted
    o = outcomes["refused"]
    assert o.status == "failed" and o.error.startswith("cannot repair") and o.too_recent and o.unmet == ()
    analysis = analyze(read_wheel(str(paths["demo"])), paths["opts"])
    assert outcome_from_audit(analysis.audit, error=RepairFailed("patchelf failed")).status == "error"

    # A wheel named linux_*: judged against the policy asked for.
    greeter = analyze(read_wheel(str(paths["greeter"])), AuditOptions(environ={}, ldpaths=""))
    assert outcome_from_audit(greeter.audit).status == "ok"
    held = outcome_from_audit(greeter.audit, policy="manylinux2014")
    assert (held.status, held.policy) == ("failed", "manylinux_2_17_aarch64")
    assert held.hint == ("install `libgreet.so.1` with `before-repair`, add its directory to `ld-library-path`, "
                         "list the wheel that ships it in `providers`, or list it in `exclude`")


def test_retagged_is_not_repaired(crafted):
    """A wheel whose repair only renames it (more tags, no graft) is retagged."""
    _, paths = crafted
    d = paths["libs"].parent
    plain = write_wheel(d / "plain-1.0-cp311-cp311-manylinux_2_28_aarch64.whl", {
        "plain.cpython-311-aarch64-linux-gnu.so": craft_elf(
            "aarch64", needed=("libc.so.6",), exports=("PyInit_plain",), imports=(("memcpy", "GLIBC_2.17", "libc.so.6"),))},
        tag="cp311-cp311-manylinux_2_28_aarch64")
    analysis = analyze(read_wheel(str(plain)), paths["opts"])
    plan = plan_repair(analysis)
    o = outcome_from_audit(analysis.audit, plan=plan)
    assert not plan.grafts and plan.out_name != plain.name and o.status == "retagged"


def test_real_repair_sizes(tmp_path, need_gcc):
    """A gcc-built wheel really repaired: the sizes are the files' (input, output, grafted)."""
    libs = tmp_path / "libs"
    cc(libs / "libB.so.2", {"b.c": "int b_value(void){return 42;}"}, "-Wl,-soname,libB.so.2")
    ext = build_extension(tmp_path / "build", "spam", f"-L{libs}", "-l:libB.so.2", body="int b_value(void);", call="b_value()")
    wheel = write_wheel(tmp_path / "pkg-1.0-cp311-cp311-linux_x86_64.whl", {f"pkg/{ext.name}": ext.read_bytes()})
    opts = AuditOptions(environ={"LD_LIBRARY_PATH": str(libs)})
    plan, out = repair_wheel(str(wheel), str(tmp_path / "out"), RepairOptions(), opts)
    o = outcome_from_audit(audit_wheel(str(wheel), opts), plan=plan, output_path=out)
    assert o.status == "repaired" and o.output == os.path.basename(out)
    assert (o.size_before, o.size_after) == (wheel.stat().st_size, os.path.getsize(out))
    assert [(g.soname, g.size) for g in o.grafted] == [("libB.so.2", (libs / "libB.so.2").stat().st_size)]
    cells = [td.text() for td in parse(github_html(render_markdown(Report("r", legs=(leg("l", o),))))).root.find("td")]
    assert cells[0] == "🔧 repaired" and cells[1] == o.short and cells[2] == "1" and " → " in cells[3]


# ------------------------------------------------------------------ the ten-second read


def test_golden_report(report):
    check_golden("report.md", render_markdown(report))


def test_first_screen_holds_the_verdict_the_symbol_and_the_file(report):
    text = render_markdown(report)
    tree = parse(github_html(text))
    assert text.startswith("<!-- wheelvet-report: pr-42 -->\n")
    assert tree.comments == [" wheelvet-report: pr-42 "]
    (h3,) = tree.root.find("h3")
    assert h3.text() == "❌ 4 of 6 wheels fail: demo cp311 · manylinux_2_17_aarch64 is mislabelled manylinux2014 and needs GLIBC_2.29"
    first = tree.root.find("ul")[0].find("li")
    texts = [li.text() for li in first]
    assert texts[0].startswith("❌ mislabelled demo 1.0 cp311 · manylinux_2_17_aarch64 (build · cp311 · aarch64): claims "
                               "manylinux_2_17_aarch64 but needs GLIBC_2.29 from libm.so.6 (exp, log in demo/_core")
    assert "Fix: build in the manylinux_2_17 image (quay.io/pypa/manylinux2014_aarch64)" in texts[0]
    codes = [c.text() for c in first[0].find("code")]
    assert {"before-repair", "ld-library-path", "exclude", "plat", EVIL_SONAME} <= set(codes)  # the fix's inputs as code
    assert texts[1].startswith("❌ mislabelled fast 1.0 cp311 · manylinux_2_17_x86_64 (build · cp311 · x86_64): claims "
                               "manylinux_2_17_x86_64 but fast.cpython-311-x86_64-linux-gnu.so needs x86_64_v3")
    assert [t.split(" ", 2)[1] for t in texts] == ["mislabelled", "mislabelled", "error", "error"]
    # the problems come before any table; the passing wheel is folded away
    assert text.index("❌ mislabelled") < text.index("| Status |") < text.index("<summary>✅ 1 wheel OK</summary>")
    lines = body_lines(text)
    assert next(i for i, line in enumerate(lines) if "GLIBC_2.29" in line) < 6
    tables = tree.root.find("table")
    assert [th.text() for th in tables[0].find("th")] == ["Status", "Wheel", "Grafted", "Size"]
    rows = [[td.text() for td in tr.find("td")] for tr in tables[0].find("tbody")[0].find("tr")]
    assert [r[0] for r in rows] == ["❌ mislabelled", "❌ mislabelled", "⚠️ error", "⚠️ error", "🔧 repaired"]
    assert rows[-1][1:3] == ["greeter 0.1 cp311 · manylinux_2_17_aarch64", "1"]  # several projects: named
    assert fits_860px(rows)
    details = tree.root.find("details")
    assert [d.find("summary")[0].text() for d in details][0] == "✅ 1 wheel OK"
    evidence = next(d for d in details if "demo-1.0" in d.text())
    assert [c.text() for li in evidence.find("li") if li.find("code") and li.find("code")[0].text() == EVIL_MEMBER
            for c in li.find("code")] == [EVIL_MEMBER, "exp", "log"]
    footer = tree.root.find("sub")[0]
    assert footer.text().startswith("wheelvet · wheels · 6 wheels from 3 legs: build · cp311 · aarch64 (3 ❌ 1), ")
    assert "commit abc1234def56" in footer.text()
    assert [a.attrs["href"] for a in footer.find("a")] == [RUN, RUN]


def test_golden_clean_and_repaired(outcomes):
    clean = Report("main", legs=(leg("l", outcomes["ok"]),))
    text = render_markdown(clean)
    assert headline_of(text) == "✅ 1 wheel meets its tag"
    check_golden("report-clean.md", text)
    good = Report("main", legs=(leg("l", outcomes["ok"], outcomes["repaired"]),))
    text = render_markdown(good)
    assert headline_of(text) == "✅ 2 wheels meet their tags (1 repaired)"
    assert "<summary>✅ 1 wheel OK</summary>" in text and "🔧 repaired" in text.split("<details>")[0]
    check_golden("report-good.md", text)


def test_golden_unrepairable(outcomes):
    text = render_markdown(Report("r", legs=(leg("l", outcomes["refused"]),)))
    assert headline_of(text) == "❌ 1 wheel cannot be manylinux2014: demo cp311 · manylinux_2_17_aarch64 needs GLIBC_2.29"
    assert "cannot be `manylinux_2_17_aarch64`: needs `GLIBC_2.29`" in text
    check_golden("report-unrepairable.md", text)


def test_golden_mislabelled(outcomes):
    text = render_markdown(Report("r", legs=(leg("l", outcomes["mislabelled"]),)))
    assert headline_of(text) == "❌ 1 wheel is mislabelled manylinux2014: demo cp311 · manylinux_2_17_aarch64 needs GLIBC_2.29"
    assert "✅" not in text
    check_golden("report-mislabelled.md", text)


def matrix(outcomes, n=50, legs=7, failing_last=True):
    """A release matrix: many legs of one job, one wheel failing (the last, in input order)."""
    ok = outcomes["ok"]
    wheels = [dataclasses.replace(ok, wheel=f"timeshift-3.1.{i}-cp3{8 + i % 6}-cp3{8 + i % 6}-manylinux2014_aarch64.whl",
                                  size_before=416_000 + i) for i in range(n - 1)]
    bad = dataclasses.replace(outcomes["mislabelled"], wheel="timeshift-3.1.0-cp311-cp311-manylinux2014_aarch64.whl")
    wheels = wheels + [bad] if failing_last else [bad] + wheels
    per = -(-n // legs)
    return Report("wheelvet", legs=tuple(leg(f"build-{k}", *wheels[k * per:(k + 1) * per], label=f"build · leg {k}")
                                         for k in range(legs)), commit="feedface", run_url=RUN, summary_url=RUN)


def test_golden_matrix_of_50_with_one_failure(outcomes):
    text = render_markdown(matrix(outcomes))
    lines = body_lines(text)
    fail = next(i for i, line in enumerate(lines) if line.startswith("- ❌ mislabelled"))
    assert fail < 25
    assert "GLIBC_2.29" in lines[fail] and "demo/_core" in lines[fail]  # the version and the file
    assert fail < next(i for i, line in enumerate(lines) if "✅ ok" in line)  # before any passing wheel
    assert headline_of(text) == "❌ 1 of 50 wheels is mislabelled manylinux2014: timeshift cp311 · manylinux_2_17_aarch64 needs GLIBC_2.29"
    assert "<summary>✅ 49 wheels OK</summary>" in text
    assert len(lines) < 120
    check_golden("report-matrix.md", text)


def regression(crafted, outcomes):
    """The base branch's report had the demo wheel at manylinux_2_17 and grafted nothing."""
    _, paths = crafted
    before = dataclasses.replace(outcomes["mislabelled"], status="ok", reached="manylinux_2_17_aarch64",
                                 size_after=1000, too_recent=(), external=(), blacklisted=(), fixes=())
    gone = dataclasses.replace(outcomes["ok"], wheel="old-1.0-cp39-cp39-manylinux2014_aarch64.whl")
    base = Report("wheelvet", legs=(leg("build", before, gone, sha="base000"),))
    current = [(outcomes["mislabelled"], paths["audits"]["demo"]), (outcomes["repaired"], paths["audits"]["greeter"])]
    changed, info = compare(current, base, BaseInfo("main", run_url=RUN, sha="base000"))
    g = dataclasses.replace(leg("build", *changed), base_keys=tuple(o.key for o in base.outcomes))
    return Report("wheelvet", legs=(g,), base=dataclasses.replace(
        info, removed=tuple(sorted(set(g.base_keys) - {o.key for o in changed}))))


def test_golden_regression_against_the_base(crafted, outcomes):
    report = regression(crafted, outcomes)
    demo = report.outcomes[0]
    assert demo.change.direction == "less-compatible" and demo.change.before == "manylinux_2_17_aarch64"
    assert demo.change.cause.startswith("exp@GLIBC_2.29 in demo/_core")
    text = render_markdown(report)
    assert "**Against `main`:**" in text
    assert "🔻 `demo 1.0 cp311 · manylinux_2_17_aarch64`: `manylinux2014` → `linux_aarch64`: exp@\u2060GLIBC_2.29 in demo/\\_core" in text
    assert "🆕 `greeter cp311 glibc-aarch64` is new" in text and "🗑️ `old cp39 glibc-aarch64` is gone" in text
    check_golden("report-regression.md", text)


def test_golden_no_base_report(outcomes):
    note = BaseInfo("main", note="no successful run of ci.yml on main left a wheelvet report (the first run, or its "
                                 "artifacts expired)")
    text = render_markdown(Report("r", legs=(leg("l", outcomes["ok"]),), base=note))
    assert "ℹ️ No comparison with `main`: no successful run of ci.yml on main left a wheelvet report" in text
    check_golden("report-no-base.md", text)


def test_no_injection(report):
    text = render_markdown(report)
    for html_text in (github_html(text), unfiltered_html(text)):
        tree = parse(html_text)
        assert tree.root.tags() <= ALLOWED, tree.root.tags() - ALLOWED
        assert {a.attrs["href"] for a in tree.root.find("a")} == {RUN}  # only the links the report makes
        assert "<script" not in html_text and "<img" not in html_text and "<b>" not in html_text
        codes = [c.text() for c in tree.root.find("code")]
        assert EVIL_SONAME in codes and EVIL_MEMBER in codes and EVIL_WHEEL in codes


def test_hostile_strings_everywhere(outcomes):
    """Every string field of the view model hostile, as a crafted JSON report could make it."""
    evil = "x</summary></details><script>alert(1)</script>|`*_[a](javascript:1)`@org/team #1 www.evil.com\n\n# h"

    def poison(obj, text):
        if isinstance(obj, str):
            return text
        if isinstance(obj, tuple):
            return tuple(poison(x, text) for x in obj)
        if dataclasses.is_dataclass(obj):
            return dataclasses.replace(obj, **{f.name: poison(getattr(obj, f.name), text)
                                               for f in dataclasses.fields(obj) if f.name not in ("status", "direction")})
        return obj

    reports = [Report(t, title=t, legs=(Leg(t, t, poison(tuple(outcomes.values()), t)),)) for t in ("x", evil)]
    plain, text = (render_markdown(r) for r in reports)
    assert text.count("\n") == plain.count("\n")  # no value adds a line (or a block)
    for html_text in (github_html(text), unfiltered_html(text)):
        tree = parse(html_text)
        assert tree.root.tags() == parse(github_html(plain)).root.tags() <= ALLOWED
        assert not tree.root.find("a") and len(tree.comments) == 1
        assert len(tree.root.find("details")) == len(tree.root.find("summary"))
        prose = re.sub(r"<code>.*?</code>", "", html_text)  # GitHub leaves code alone
        assert "@org" not in prose and "#1" not in prose  # no mentions, no issue references


def test_marker_cannot_close_the_comment():
    for rid in ("a-->b", "x --!> y", "<!-- z", "n\nl", "ok_id-1/2", "Build wheels/build", "rapport-é"):
        line = render_markdown(Report(rid)).splitlines()[0]
        inner = line[len("<!-- wheelvet-report: "):-len(" -->")]
        assert line.startswith("<!-- wheelvet-report: ") and line.endswith(" -->")
        assert not set(inner) & set("<>!\n ")  # so no "-->", "--!>" or "<!--"; one token (spaces too)
        assert line == md.report_marker(rid)
    assert md.report_marker("ok_id-1/2") == "<!-- wheelvet-report: ok_id-1/2 -->"


def test_legs_of_an_older_commit_are_stale(outcomes):
    old = leg("build-x86_64", outcomes["isa"], sha="0ld", run_id=41, label="build · x86_64")
    replaced = leg("build-aarch64", outcomes["mislabelled"], sha="0ld", run_id=41)
    new = leg("build-aarch64", outcomes["ok"], sha="n3w", run_id=42, label="build · aarch64")
    r = Report("r", legs=(old, replaced, new))
    assert r.current == (new,) and r.stale == (old,)
    text = render_markdown(r)
    assert headline_of(text) == "✅ 1 wheel meets its tag"  # the old failure is not counted
    assert "<summary>1 leg from an older commit (not counted)</summary>" in text and "`0ld`" in text


# ------------------------------------------------------------------ escaping filters, property-based

TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40) | st.text("|`*_[]()<>&\\!#@:$~.w -=+1\n\t\x00\u202eé{}^%\"'", max_size=40)
FAST = settings(max_examples=int(os.environ.get("WHEELVET_MD_EXAMPLES", 300)), deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _shown(s: str) -> str:
    """What a reader sees: one line, controls replaced, @ and # followed by a word joiner."""
    return markup._no_refs(markup._clean(s))


@FAST
@given(TEXT)
def test_md_text_is_literal_everywhere(s):
    expected = _shown(s).strip(" ")
    cell = parse(unfiltered_html(f"| h |\n|---|\n| {md.md_text(s)} |\n")).root
    assert len(cell.find("td")) == 1 and cell.find("td")[0].text() == expected
    for prefix, tag in (("- ", "li"), ("### ", "h3"), ("x ", "p")):
        tree = parse(unfiltered_html(prefix + md.md_text(s) + "\n")).root
        (node,) = tree.find(tag)
        assert node.tags() <= set(), node.tags()
        got = node.text().rstrip("\n")
        assert got == (expected if tag != "p" else ("x " + expected).rstrip(" ")), (s, md.md_text(s))


@FAST
@given(TEXT)
def test_md_code_is_literal(s):
    expected = markup._clean(s) or " "
    for prefix in ("x ", "- "):
        tree = parse(unfiltered_html(f"{prefix}{md.md_code(s)} y\n")).root
        codes = tree.find("code")
        assert len(codes) == 1 and codes[0].text() == expected, (s, md.md_code(s))


@FAST
@given(TEXT)
def test_html_text_is_literal_in_summary(s):
    tree = parse(unfiltered_html(f"<details>\n<summary>{md.html_text(s)}</summary>\n\n- a\n\n</details>\n")).root
    (summary,) = tree.find("summary")
    assert summary.text() == _shown(s) and not summary.find("script")
    assert len(tree.find("li")) == 1  # the body still renders as Markdown


def test_templates_print_only_escaped_values():
    env = md.environment()
    assert env is md.environment()
    with pytest.raises(TypeError, match="without an escaping filter"):
        env.from_string("{{ x }}").render(x="<b>")
    assert env.from_string("{{ x | md }} {{ n }}").render(x="<b>", n=3) == "\\<b\\> 3"
    assert (resources.files("wheelvet") / "templates" / "report.md.j2").is_file()




# ------------------------------------------------------------------ size limit


def _many(outcomes, n: int = 500, failing_every: int = 4) -> Report:
    """A huge matrix: every ``failing_every``-th wheel fails with long evidence, the others pass."""
    base = outcomes["mislabelled"]
    rows = []
    for i in range(n):
        if i % failing_every:
            rows.append(dataclasses.replace(outcomes["ok"], wheel=f"pkg{i}-1.0-cp311-cp311-manylinux2014_aarch64.whl"))
            continue
        versions = tuple(md.TooRecentVersion(
            f"GLIBC_2.{30 + v}", "libm.so.6", "manylinux_2_35_aarch64",
            tuple(md.SymbolFile(f"pkg{i}/_mod{f}.cpython-311-aarch64-linux-gnu.so",
                                tuple(f"sym_{v}_{f}_{k}" for k in range(50))) for f in range(4)))
            for v in range(4))
        rows.append(dataclasses.replace(base, wheel=f"pkg{i}-1.0-cp311-cp311-manylinux_2_17_aarch64.whl", too_recent=versions))
    legs = tuple(leg(f"job-{j}", *rows[j::20]) for j in range(20))
    return Report("matrix", legs=legs, summary_url=RUN)


def _well_formed(text: str, max_chars: int):
    assert len(text) <= max_chars
    assert text.startswith("<!-- wheelvet-report: matrix -->\n### ❌ ")
    tree = parse(github_html(text))
    assert len(tree.root.find("details")) == len(tree.root.find("summary")) == text.count("</details>")
    for table in tree.root.find("table"):
        widths = {len(tr.find("td")) or len(tr.find("th")) for tr in table.find("tr")}
        assert len(widths) == 1
    return tree


def test_size_limit_folds_passing_wheels_first_and_keeps_every_problem(outcomes):
    big = _many(outcomes, 500, failing_every=10)
    data = "<!-- wheelvet-data v2 " + "A" * 5000 + " -->"
    assert len(render_markdown(big, max_chars=10**9)) > 5 * md.GITHUB_COMMENT_LIMIT
    text = render_markdown(big, data=data)
    tree = _well_formed(text, md.GITHUB_COMMENT_LIMIT)
    assert text.endswith(data + "\n")  # the legs' data is never cut
    problems = [li for li in tree.root.find("li") if li.text().startswith("❌")]
    assert len(problems) == 50  # every problem keeps its line
    assert "<summary>✅ 450 wheels OK</summary>" in text
    assert "450 not listed here" in text  # the passing rows went first


@pytest.mark.parametrize("limit", [3000, 8000, 20000, 40000])
def test_size_limit_always_holds(outcomes, limit):
    text = render_markdown(_many(outcomes, 120), max_chars=limit)
    _well_formed(text, limit)
    assert "job summary" in text


def test_size_limit_too_small(outcomes):
    with pytest.raises(ValueError, match="not even"):
        render_markdown(_many(outcomes, 3), max_chars=40)


# ------------------------------------------------------------------ JSON and the legs


def test_json_round_trip(report):
    text = report.to_json()
    data = json.loads(text)
    assert data["schema_version"] == md.SCHEMA_VERSION == 2
    assert data["totals"] == {"wheels": 6, "legs": 3, "mislabelled": 2, "failed": 0, "error": 2, "repaired": 1,
                              "retagged": 0, "ok": 1, "grafted": 1}
    assert list(data["legs"][0]["outcomes"][1]) == [f.name for f in dataclasses.fields(WheelOutcome)]
    back = Report.from_json(text)
    assert back == report and back.to_json() == text
    assert render_markdown(back) == render_markdown(report)


@pytest.mark.parametrize("change, message", [
    (lambda d: d.update(schema_version=1), "schema version 2"),
    (lambda d: d["legs"][0]["outcomes"][0].update(size_before="12"), "size_before"),
    (lambda d: d["legs"][0]["outcomes"][0].update(status="great"), "unknown status"),
    (lambda d: d["legs"][0]["outcomes"][0].update(surprise=1), "unknown keys"),
    (lambda d: d["legs"][0]["outcomes"][1]["too_recent"][0]["files"][0].update(symbols=[1]), "symbols"),
    (lambda d: d["legs"][0]["outcomes"][0].pop("wheel"), "missing 'wheel'"),
    (lambda d: d["legs"][0].update(run_id=-1), "run_id"),
    (lambda d: d.update(base={"ref": 3}), "ref"),
])
def test_json_is_validated(report, change, message):
    data = json.loads(report.to_json())
    change(data)
    with pytest.raises(ValueError, match=message):
        Report.from_dict(data)


@pytest.mark.parametrize("text", ['{"schema_version": 2, "report_id": "x", "legs": [], "expected_legs": ' + "9" * 400 + "}",
                                  '{"schema_version": NaN}', "[" * 100_000, "\ufeff{}", "", "null"])
def test_json_that_is_no_report_is_one_value_error(text):
    with pytest.raises(ValueError):
        Report.from_json(text)


def test_combine_merges_legs_by_key(outcomes):
    o = outcomes
    legs = [leg("linux-aarch64", o["repaired"], o["mislabelled"], o["ok"]), leg("linux-x86_64", o["isa"]),
            leg("sdist", o["pure"], o["broken"])]
    jobs = [Report("pr-42", legs=(g,)) for g in legs]
    read_back = [Report.from_json(r.to_json()) for r in jobs]  # as `mode: report` reads the artifacts
    rerun = Report("pr-42", legs=(dataclasses.replace(legs[1], run_attempt=2, outcomes=(o["ok"],)),))
    combined = combine(read_back + read_back[:1] + [rerun], report_id="pr-42-all", missing_legs=("build (x, cancelled)",))
    assert combined.report_id == "pr-42-all" and [g.key for g in combined.legs] == ["linux-aarch64", "linux-x86_64", "sdist"]
    assert combined.legs[1].outcomes == (o["ok"],)  # the re-run's part replaced its first attempt's
    assert combined.totals["wheels"] == 6 and combined.failed
    text = render_markdown(combined)
    assert "⚠️ 1 leg did not report: build (x, cancelled)" in text
    with pytest.raises(ValueError):
        combine([])


def test_a_leg_says_how_many_legs_have_reported_so_far(outcomes):
    text = render_markdown(Report("r", legs=(leg("a", outcomes["ok"]),), expected_legs=3))
    assert "⏳ 1 of 3 legs have reported so far" in text
    assert headline_of(text) == "✅ 1 wheel meets its tag"  # still running legs are not failures
    assert "⏳" not in render_markdown(Report("r", legs=(leg("a", outcomes["ok"]),), expected_legs=1))


def test_provided_libraries_are_their_own_group_in_the_evidence(outcomes):
    from dataclasses import replace

    from wheelvet.report.markup import md_text
    from wheelvet.report.view import ProvidedLibrary

    o = replace(outcomes["refused"], provided=(ProvidedLibrary("libcudart.so.12", "nvidia-cuda-runtime-cu12",
                                                               "12.9.79", "nvidia/cuda_runtime/lib/libcudart.so.12",
                                                               "nvidia-cuda-runtime-cu12==12.*"),))
    text = render_markdown(Report("r", legs=(leg("l", o),)))
    assert ("**Provided by other wheels** (not grafted)\n\n- `libcudart.so.12`: `nvidia/cuda_runtime/lib/libcudart.so.12` "
            f"from nvidia-cuda-runtime-cu12 {md_text('12.9.79')} (`nvidia-cuda-runtime-cu12==12.*`)\n") in text
    assert Report.from_json(Report("r", legs=(leg("l", o),)).to_json()).legs[0].outcomes[0].provided == o.provided
