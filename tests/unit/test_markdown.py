"""The pull-request comment: real audits and repair plans, rendered by GitHub's Markdown library.

Wheels are crafted (aarch64 binaries never match host libraries, so the
audits are deterministic), audited and planned by wheelvet itself; the
Markdown is rendered with cmarkgfm (cmark-gfm, the library GitHub renders
comments with) and the assertions are on the HTML.  Regenerate the golden
files with ``WHEELVET_UPDATE_GOLDEN=1 pytest tests/unit/test_markdown.py``
and review the diff.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import zipfile
from html.parser import HTMLParser
from importlib import resources
from pathlib import Path

import cmarkgfm
import pytest
from cmarkgfm.cmark import Options
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from support import build_extension, cc, check_golden, craft_elf, write_wheel
from wheelvet.audit import AuditOptions, analyze, audit_wheel
from wheelvet.errors import WheelvetError
from wheelvet.policy import load_policies
from wheelvet.repair import RepairFailed, RepairOptions, RepairRefused, plan_repair, repair_wheel
from wheelvet.report import markdown as md
from wheelvet.report import markup
from wheelvet.report.markdown import Report, WheelOutcome, combine, outcome_from_audit, outcome_from_error, render_markdown
from wheelvet.wheelfile import read_wheel

GOLDEN = Path(__file__).parent / "golden"
UPDATE = bool(os.environ.get("WHEELVET_UPDATE_GOLDEN"))
EVIL_SONAME = "lib|x<script>alert(1)</script>.so"
EVIL_MEMBER = "demo/_core`x|y`<img src=x onerror=alert(1)>.cpython-311-aarch64-linux-gnu.so"
EVIL_WHEEL = "ev`il|<b>x-1.0-cp311-cp311-linux_x86_64.whl"
SUMMARY = "https://github.com/octo/demo/actions/runs/42"




# ------------------------------------------------------------------ HTML, as GitHub renders it


def github_html(text: str) -> str:
    """cmarkgfm's GitHub preset (table, autolink, tagfilter, ...) keeping raw HTML, as github.com does before sanitizing."""
    return cmarkgfm.github_flavored_markdown_to_html(text, options=Options.CMARK_OPT_UNSAFE)


def unfiltered_html(text: str) -> str:
    """The same without the tagfilter extension: an escaping slip would show as a real tag."""
    return cmarkgfm.markdown_to_html_with_extensions(
        text, options=Options.CMARK_OPT_UNSAFE, extensions=["table", "autolink", "strikethrough", "tasklist"])


class Node:
    def __init__(self, tag: str, attrs: dict) -> None:
        self.tag, self.attrs, self.children = tag, attrs, []

    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def walk(self):
        for c in self.children:
            if isinstance(c, Node):
                yield c
                yield from c.walk()

    def find(self, tag: str) -> list[Node]:
        return [n for n in self.walk() if n.tag == tag]

    def tags(self) -> set[str]:
        return {n.tag for n in self.walk()}


class _Tree(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#root", {})
        self.stack = [self.root]
        self.comments: list[str] = []

    def handle_starttag(self, tag, attrs):
        node = Node(tag, dict(attrs))
        self.stack[-1].children.append(node)
        self.stack.append(node)

    def handle_endtag(self, tag):
        assert self.stack[-1].tag == tag, f"</{tag}> closes <{self.stack[-1].tag}>"
        self.stack.pop()

    def handle_data(self, data):
        self.stack[-1].children.append(data)

    def handle_comment(self, data):
        self.comments.append(data)


def parse(html_text: str) -> _Tree:
    tree = _Tree()
    tree.feed(html_text)
    tree.close()
    assert tree.stack == [tree.root], "unclosed elements"
    return tree


ALLOWED = {"h3", "p", "table", "thead", "tbody", "tr", "th", "td", "details", "summary", "ul", "li", "code", "strong",
           "sub", "a"}


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
    try:
        audit_wheel(str(evil), opts)
    except WheelvetError as exc:
        broken = outcome_from_error(evil.name, str(exc), input_size=evil.stat().st_size)
    out = {
        "repaired": outcome_from_audit(analysis.audit, plan=plan_repair(analysis)),
        "failed": outcome_from_audit(audit_wheel(str(demo), opts)),
        "ok": outcome_from_audit(audit_wheel(str(ok), opts)),
        "isa": outcome_from_audit(audit_wheel(str(fast), opts)),
        "pure": outcome_from_audit(audit_wheel(str(pure), opts)),
        "broken": broken,
    }
    return {k: _normalise(v, d) for k, v in out.items()}, {"demo": demo, "greeter": greeter, "libs": libs, "opts": opts}


@pytest.fixture(scope="module")
def outcomes(crafted):
    return crafted[0]


@pytest.fixture(scope="module")
def report(outcomes):
    return Report("pr-42", title="wheelvet", jobs=("linux-aarch64", "linux-x86_64"), outcomes=tuple(outcomes.values()))


# ------------------------------------------------------------------ the view model from real data


def test_outcomes_from_real_audits(outcomes):
    assert {k: o.status for k, o in outcomes.items()} == {
        "repaired": "repaired", "failed": "failed", "ok": "ok", "isa": "failed", "pure": "error", "broken": "error"}

    r = outcomes["repaired"]
    assert (r.tag_before, r.tag_after) == ("linux_aarch64", "manylinux2014_aarch64.manylinux_2_17_aarch64")
    assert r.output == "greeter-0.1-cp311-cp311-manylinux2014_aarch64.manylinux_2_17_aarch64.whl"
    assert [(g.soname, g.source, g.size) for g in r.grafted] == [("libgreet.so.1", "/build/libs/libgreet.so.1", 552)]
    assert r.policy == "manylinux_2_17_aarch64" and r.hint is None

    f = outcomes["failed"]
    assert (f.policy, f.tag_before, f.tag_after) == ("manylinux_2_17_aarch64", "manylinux_2_17_aarch64", "linux_aarch64")
    assert [(e.soname, e.path) for e in f.external] == [("libffi.so.8", None), (EVIL_SONAME, None)]
    (v,) = f.too_recent
    best = next(p for p in reversed(list(load_policies("glibc", "aarch64"))) if p.allows_version("GLIBC_2.29"))
    assert (v.version, v.library, v.best_policy) == ("GLIBC_2.29", "libm.so.6", best.name)
    assert [(s.file, s.symbols) for s in v.files] == [(EVIL_MEMBER, ("exp", "log"))]
    assert [(b.library, b.symbols) for b in f.blacklisted] == [("libc.so.6", ("__cxa_thread_atexit_impl",))]
    assert f.hint.startswith("build in the manylinux_2_17 image (e.g. quay.io/pypa/manylinux2014_aarch64); ")
    assert "in the build image (before-repair) or pass --exclude" in f.hint
    assert f.hint.endswith("avoid __cxa_thread_atexit_impl or target a newer policy")

    i = outcomes["isa"]
    assert [(x.file, x.level) for x in i.isa] == [("fast.cpython-311-x86_64-linux-gnu.so", "x86_64_v3")]
    assert i.hint == "build for the baseline (no -march=native) or pass --disable-isa-ext-check"

    assert outcomes["ok"].tag_after == outcomes["ok"].tag_before == "manylinux2014_aarch64"
    assert "--allow-pure-python-wheel" in outcomes["pure"].hint
    assert outcomes["broken"].wheel == EVIL_WHEEL and "not a valid wheel file name" in outcomes["broken"].error


def test_refusal_is_a_failure_other_errors_are_errors(crafted):
    _, paths = crafted
    analysis = analyze(read_wheel(str(paths["demo"])), paths["opts"])
    with pytest.raises(RepairRefused) as refused:
        plan_repair(analysis, RepairOptions(plat="manylinux_2_17"))
    o = outcome_from_audit(analysis.audit, error=refused.value)
    assert o.status == "failed" and o.error.startswith("cannot repair") and o.too_recent
    assert outcome_from_audit(analysis.audit, error=RepairFailed("patchelf failed")).status == "error"

    # A wheel named linux_*: judged against the policy asked for.
    greeter = analyze(read_wheel(str(paths["greeter"])), AuditOptions(environ={}, ldpaths=""))
    assert outcome_from_audit(greeter.audit).status == "ok"
    held = outcome_from_audit(greeter.audit, policy="manylinux2014")
    assert (held.status, held.policy) == ("failed", "manylinux_2_17_aarch64")
    assert held.hint == "install libgreet.so.1 in the build image (before-repair) or pass --exclude"


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
    cells = [td.text() for td in parse(github_html(render_markdown(Report("r", outcomes=(o,))))).root.find("td")]
    assert cells[0] == wheel.name and cells[2] == "🔧 repaired" and cells[3] == "1" and " → " in cells[4]


# ------------------------------------------------------------------ rendering


def test_golden_report(report):
    check_golden("report.md", render_markdown(report))


def test_golden_all_good(outcomes):
    good = Report("main", outcomes=(outcomes["ok"], outcomes["repaired"]))
    text = render_markdown(good)
    assert text.splitlines()[1] == "### ✅ 2 wheels meet their tags (1 repaired)"
    check_golden("report-good.md", text)


def test_golden_shortened(report):
    text = render_markdown(report, max_chars=2500, summary_url=SUMMARY)
    assert len(text) <= 2500
    check_golden("report-shortened.md", text)


def test_html_structure(report):
    text = render_markdown(report)
    tree = parse(github_html(text))
    assert text.startswith("<!-- wheelvet-report: pr-42 -->\n")
    assert tree.comments == [" wheelvet-report: pr-42 "]
    (h3,) = tree.root.find("h3")
    assert h3.text() == "❌ 2 of 6 wheels cannot meet manylinux_2_17; 2 of 6 wheels could not be checked"

    table = tree.root.find("table")[0]  # the first is the summary
    head = [th.text() for th in table.find("th")]
    assert head == ["Wheel", "Tags", "Status", "Grafted", "Size"]
    rows = table.find("tbody")[0].find("tr")
    assert len(rows) == len(report.outcomes)
    assert all(len(r.find("td")) == 5 for r in rows)
    cells = {r.find("td")[0].text(): [td.text() for td in r.find("td")] for r in rows}
    assert cells["greeter-0.1-cp311-cp311-linux_aarch64.whl"][1:4] == [
        "linux_aarch64 → manylinux2014_aarch64.manylinux_2_17_aarch64", "🔧 repaired", "1"]
    assert cells["ok-2.0-cp311-cp311-manylinux2014_aarch64.whl"][1:4] == ["manylinux2014_aarch64", "✅ ok", "—"]

    details = tree.root.find("details")
    assert len(details) == 5  # every wheel but the one already compliant has something to say
    summaries = [d.find("summary")[0].text() for d in details]
    assert summaries[0] == "❌ failed demo-1.0-cp311-cp311-manylinux_2_17_aarch64.whl: cannot meet manylinux_2_17_aarch64"
    failed = details[0]
    assert failed.find("p")[0].text().startswith("Fix: build in the manylinux_2_17 image")
    items = [li for li in failed.find("li")]
    assert any(li.find("code") and li.find("code")[0].text() == "GLIBC_2.29" for li in items)
    nested = [li for li in items if li.find("code")[0].text() == EVIL_MEMBER]
    assert [c.text() for c in nested[0].find("code")] == [EVIL_MEMBER, "exp", "log"]
    repaired = next(d for d in details if "repaired" in d.find("summary")[0].text())
    graft_rows = repaired.find("table")[0].find("tbody")[0].find("tr")
    assert [td.text() for td in graft_rows[0].find("td")] == ["libgreet.so.1", "/build/libs/libgreet.so.1", "552 B"]
    assert tree.root.find("sub")[0].text() == "wheelvet · 6 wheels from 2 jobs: linux-aarch64, linux-x86_64"


def test_no_injection(report):
    text = render_markdown(report)
    for html_text in (github_html(text), unfiltered_html(text)):
        tree = parse(html_text)
        assert tree.root.tags() <= ALLOWED, tree.root.tags() - ALLOWED
        assert not tree.root.find("a")  # no autolinks either
        assert "<script" not in html_text and "<img" not in html_text and "<b>" not in html_text
        rows = tree.root.find("table")[0].find("tbody")[0].find("tr")
        assert EVIL_WHEEL in [r.find("td")[0].text() for r in rows]  # the cell holds the whole name
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
                                               for f in dataclasses.fields(obj) if f.name != "status"})
        return obj

    reports = [Report(t, title=t, jobs=(t,), outcomes=poison(tuple(outcomes.values()), t)) for t in ("x", evil)]
    plain, text = (render_markdown(r) for r in reports)
    assert text.count("\n") == plain.count("\n")  # no value adds a line (or a block)
    for html_text in (github_html(text), unfiltered_html(text)):
        tree = parse(html_text)
        assert tree.root.tags() == parse(github_html(plain)).root.tags() <= ALLOWED
        assert not tree.root.find("a") and len(tree.comments) == 1
        assert len(tree.root.find("details")) == len(tree.root.find("summary")) == 5  # "ok" has None, not text
        prose = re.sub(r"<code>.*?</code>", "", html_text)  # GitHub leaves code alone
        assert "@org" not in prose and "#1" not in prose  # no mentions, no issue references


def test_marker_cannot_close_the_comment():
    for rid in ("a-->b", "x --!> y", "<!-- z", "n\nl", "ok_id-1/2"):
        line = render_markdown(Report(rid)).splitlines()[0]
        inner = line[len("<!-- "):-len(" -->")]
        assert line.startswith("<!-- wheelvet-report: ") and line.endswith(" -->")
        assert not set(inner) & set("<>!\n")  # so no "-->", "--!>" or "<!--"
        assert line == md.report_marker(rid)
    assert md.report_marker("ok_id-1/2") == "<!-- wheelvet-report: ok_id-1/2 -->"


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


def _many(outcomes, n: int = 500) -> Report:
    base = outcomes["failed"]
    rows = []
    for i in range(n):
        if i % 4 == 0:
            rows.append(list(outcomes.values())[i % len(outcomes)])
            continue
        versions = tuple(md.TooRecentVersion(
            f"GLIBC_2.{30 + v}", "libm.so.6", "manylinux_2_35_aarch64",
            tuple(md.SymbolFile(f"pkg{i}/_mod{f}.cpython-311-aarch64-linux-gnu.so",
                                tuple(f"sym_{v}_{f}_{k}" for k in range(50))) for f in range(4)))
            for v in range(4))
        rows.append(dataclasses.replace(base, wheel=f"pkg{i}-1.0-cp311-cp311-manylinux_2_17_aarch64.whl", too_recent=versions))
    return Report("matrix", jobs=tuple(f"job-{j}" for j in range(20)), outcomes=tuple(rows))


def _well_formed(text: str, max_chars: int) -> _Tree:
    assert len(text) <= max_chars
    assert text.startswith("<!-- wheelvet-report: matrix -->\n### ❌ ")
    tree = parse(github_html(text))
    assert len(tree.root.find("details")) == len(tree.root.find("summary")) == text.count("</details>")
    for table in tree.root.find("table"):
        widths = {len(tr.find("td")) or len(tr.find("th")) for tr in table.find("tr")}
        assert len(widths) == 1
    return tree


def test_size_limit_500_wheels(outcomes):
    big = _many(outcomes)
    assert len(render_markdown(big, max_chars=10**9)) > 20 * md.GITHUB_COMMENT_LIMIT
    text = render_markdown(big, summary_url=SUMMARY)
    tree = _well_formed(text, md.GITHUB_COMMENT_LIMIT)
    assert len(text) > md.GITHUB_COMMENT_LIMIT - 3000  # filled, not gutted
    (link,) = tree.root.find("a")
    assert link.attrs["href"] == SUMMARY and link.text() == "job summary"
    assert tree.root.find("p")[0].text().startswith("✂️ Shortened to 65,536 characters:")
    # The summary table comes first and the most important wheels keep their details.
    assert tree.root.find("table")[0].find("th")[0].text() == "Wheel"
    assert "failed" in tree.root.find("summary")[0].text()


@pytest.mark.parametrize("limit", [600, 1500, 4000, 12000, 40000])
def test_size_limit_always_holds(outcomes, limit):
    text = render_markdown(_many(outcomes, 120), max_chars=limit)
    tree = _well_formed(text, limit)
    assert "see the job summary" in tree.root.find("p")[0].text()


def test_size_limit_too_small(outcomes):
    with pytest.raises(ValueError, match="not even"):
        render_markdown(_many(outcomes, 3), max_chars=40)


def test_summary_url_must_be_http():
    with pytest.raises(ValueError):
        render_markdown(Report("r"), summary_url="javascript:alert(1)")


# ------------------------------------------------------------------ JSON and combining jobs


def test_json_round_trip(report):
    text = report.to_json()
    data = json.loads(text)
    assert data["schema_version"] == md.SCHEMA_VERSION == 1
    assert data["totals"] == {"wheels": 6, "ok": 1, "repaired": 1, "failed": 2, "error": 2, "grafted": 1}
    assert list(data) == ["schema_version", "report_id", "title", "jobs", "totals", "outcomes"]
    assert list(data["outcomes"][1]) == [f.name for f in dataclasses.fields(WheelOutcome)]
    back = Report.from_json(text)
    assert back == report and back.to_json() == text
    assert render_markdown(back) == render_markdown(report)


@pytest.mark.parametrize("change, message", [
    (lambda d: d.update(schema_version=2), "schema version 1"),
    (lambda d: d["outcomes"][0].update(size_before="12"), "size_before"),
    (lambda d: d["outcomes"][0].update(status="great"), "unknown status"),
    (lambda d: d["outcomes"][0].update(surprise=1), "unknown keys"),
    (lambda d: d["outcomes"][1]["too_recent"][0]["files"][0].update(symbols=[1]), "symbols"),
    (lambda d: d["outcomes"][0].pop("wheel"), "missing 'wheel'"),
])
def test_json_is_validated(report, change, message):
    data = json.loads(report.to_json())
    change(data)
    with pytest.raises(ValueError, match=message):
        Report.from_dict(data)


def test_combine_job_reports(outcomes):
    o = outcomes
    jobs = [Report("pr-42", jobs=("linux-aarch64",), outcomes=(o["repaired"], o["failed"], o["ok"])),
            Report("pr-42", jobs=("linux-x86_64",), outcomes=(o["isa"],)),
            Report("pr-42", jobs=("sdist",), outcomes=(o["pure"], o["broken"]))]
    read_back = [Report.from_json(r.to_json()) for r in jobs]  # as `mode: report` reads the artifacts
    combined = combine(read_back + read_back[:1], report_id="pr-42-all")
    assert combined.report_id == "pr-42-all" and combined.title == "wheelvet"
    assert combined.jobs == ("linux-aarch64", "linux-x86_64", "sdist")
    assert combined.outcomes == tuple(o.values())  # in job order, the repeated artifact once
    assert combined.totals == {"wheels": 6, "ok": 1, "repaired": 1, "failed": 2, "error": 2, "grafted": 1}
    tree = parse(github_html(render_markdown(combined)))
    assert tree.comments == [" wheelvet-report: pr-42-all "]
    assert len(tree.root.find("table")[0].find("tbody")[0].find("tr")) == 6
    assert tree.root.find("h3")[0].text().startswith("❌ 2 of 6 wheels cannot meet manylinux_2_17")
    with pytest.raises(ValueError):
        combine([])
