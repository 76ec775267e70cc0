"""The pull-request comment: one Markdown report for a whole build matrix.

Laid out for the ten-second read, in an 860 px comment column:

1. the hidden marker, then a headline that states the worst problem
   concretely (which wheel, which tag, which symbol version);
2. the problems, one line each, outside any ``<details>``: the wheel in
   short form (``cp311 · manylinux_2_17_x86_64``), what rules its tag out
   (version, symbol, file) and the fix in the action's own terms;
   mislabelled and failed wheels first;
3. what this pull request changed against its base branch;
4. a narrow table of the wheels that were changed or need a look (status
   first, size before → after with its growth), the passing ones folded into
   one "N wheels OK" block, then the evidence of each problem, folded;
5. a footer with the commit, the links (run, artifact, job summary) and the legs.

:func:`render_markdown` is a pure function of a :class:`~wheelvet.report.view.Report`;
the view below is prepared in Python and the Jinja2 templates
(``templates/*.md.j2``) only loop and branch, printing values through the
escaping filters of :mod:`wheelvet.report.markup` (the environment refuses any
other string).  A body over GitHub's limit is shortened by folding passing
wheels first, then the evidence; a problem's line is the last thing to go.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from typing import Sequence

import jinja2

from ..policy import resolve
from .markup import Safe, html_text, human_size, link, md_cell_code, md_code, md_text, report_marker
from .view import (
    CODE,
    GITHUB_COMMENT_LIMIT,
    PROBLEMS,
    SCHEMA_VERSION,
    STATUSES,
    BlacklistedSymbols,
    ExternalLibrary,
    GraftedLibrary,
    IsaProblem,
    Leg,
    Report,
    SymbolFile,
    TooRecentVersion,
    WheelOutcome,
    combine,
    outcome_from_audit,
    outcome_from_error,
)

STATUS_LABELS = {"mislabelled": "❌ mislabelled", "failed": "❌ failed", "error": "⚠️ error",
                 "repaired": "🔧 repaired", "retagged": "🏷️ retagged", "ok": "✅ ok"}
_RANK = {s: i for i, s in enumerate(STATUSES)}
MAX_SYMBOLS = 3  # symbols named on a problem's line (all of them are in its details)


# ------------------------------------------------------------------ the view


@dataclass(frozen=True)
class Line:
    """One problem, as its line reads."""

    status: str
    wheel: Safe  # the short form, as code
    leg: Safe | None
    reason: Safe
    fix: Safe | None

    @property
    def text(self) -> Safe:
        leg = f" ({self.leg})" if self.leg else ""
        fix = f". **Fix:** {self.fix}" if self.fix else ""
        return Safe(f"{STATUS_LABELS[self.status]} {self.wheel}{leg}: {self.reason.rstrip('.')}{fix}")


@dataclass(frozen=True)
class Row:
    status: str
    wheel: Safe
    grafted: int
    size: Safe


def _policy_base(name: str | None) -> str | None:
    """``manylinux_2_17_x86_64`` -> ``manylinux2014`` (its legacy alias, the name people know), else ``manylinux_2_28``."""
    p = resolve(name) if name else None
    if p is None:
        return name
    return p.aliases[0][: -len(p.arch) - 1] if p.aliases else p.base


def _name(o: WheelOutcome, several_dists: bool) -> str:
    dist, version, _py = o.name_parts
    return f"{dist} {version} {o.short}" if several_dists else o.short


def _symbols(names: Sequence[str]) -> str:
    shown = ", ".join(md_code(s) for s in names[:MAX_SYMBOLS])
    return shown + (f" +{len(names) - MAX_SYMBOLS}" if len(names) > MAX_SYMBOLS else "")


def reason(o: WheelOutcome) -> Safe:
    """What rules the wheel's tag out, first and most limiting thing first, as Markdown."""
    parts: list[str] = []
    if o.status == "mislabelled" and o.unmet:
        parts.append(f"claims {', '.join(md_code(t) for t in o.unmet)} but")
    elif o.status == "failed" and o.policy:
        parts.append(f"cannot be {md_code(o.policy)}:")
    if o.too_recent:
        v = o.too_recent[0]
        where = next((f for f in v.files if not f.external), v.files[0] if v.files else None)
        ev = f" ({_symbols(where.symbols)} in {md_code(where.file)})" if where and where.symbols else \
            (f" (in {md_code(where.file)})" if where else "")
        more = f", and {len(o.too_recent) - 1} more version{'s' if len(o.too_recent) > 2 else ''}" if len(o.too_recent) > 1 else ""
        parts.append(f"needs {md_code(v.version)} from {md_code(v.library)}{ev}{more}")
    elif o.external:
        missing = [e.soname for e in o.external if e.path is None]
        found = [e.soname for e in o.external if e.path is not None]
        if missing:
            parts.append(f"needs {', '.join(md_code(s) for s in missing[:3])}, not found")
        if found:
            parts.append(f"needs {', '.join(md_code(s) for s in found[:3])}, not allowed")
    elif o.blacklisted:
        b = o.blacklisted[0]
        parts.append(f"imports {_symbols(b.symbols)} from {md_code(b.library)}, which the policy forbids")
    elif o.isa:
        i = o.isa[0]
        parts.append(f"{md_code(i.file)} needs {md_text(i.level or 'instructions')} beyond the baseline")
    elif o.problems:
        parts.append(md_text(o.problems[0]))
    elif o.error:
        parts.append(md_text(o.error if len(o.error) <= 300 else o.error[:297] + "..."))
    if o.status == "mislabelled" and o.output and o.tags_after != o.claimed:
        parts.append(f"(written as {md_code(o.written_short)})")
    return Safe(" ".join(parts) or md_text(o.status))


def _size(o: WheelOutcome) -> Safe:
    if o.size_after is None or o.size_after == o.size_before:
        return human_size(o.size_before)
    text = f"{human_size(o.size_before)} → {human_size(o.size_after)}"
    if o.size_before:
        ratio = o.size_after / o.size_before
        growth = f"×{ratio:.1f}" if ratio >= 2 else f"{(ratio - 1) * 100:+.0f}%"
        text += f" ({growth}{' ⚠️' if o.grew else ''})"
    return Safe(text)


@dataclass(frozen=True)
class _View:
    outcomes: tuple[WheelOutcome, ...]  # worst first
    legs: dict  # id(outcome) -> leg label


def _view(report: Report) -> _View:
    current = report.current
    order, legs = [], {}
    for g in current:
        for o in g.outcomes:
            order.append(o)
            legs[id(o)] = g.label
    order.sort(key=lambda o: _RANK[o.status])  # stable: input order within a status
    return _View(tuple(order), legs)


def headline(report: Report) -> str:
    """The verdict, concretely: the worst problem's wheel, tag and cause."""
    outcomes = report.outcomes
    n = len(outcomes)
    if not n:
        return "⚠️ No wheels to report" + (f": {len(report.missing_legs)} legs did not report" if report.missing_legs else "")
    bad = [o for o in sorted(outcomes, key=lambda o: _RANK[o.status]) if o.status in PROBLEMS]
    if not bad:
        counts = {s: sum(o.status == s for o in outcomes) for s in ("repaired", "retagged")}
        extra = ", ".join(f"{c} {s}" for s, c in counts.items() if c)
        text = f"✅ {n} wheels meet their tags" if n > 1 else "✅ 1 wheel meets its tag"
        text += f" ({extra})" if extra else ""
        if report.missing_legs:
            text = f"⚠️ {text}, but {len(report.missing_legs)} leg{'s' if len(report.missing_legs) > 1 else ''} did not report"
        return text
    worst = bad[0]
    of_n = f"{len(bad)} of {n} wheels" if n > 1 else "1 wheel"
    cause = ""
    if worst.too_recent:
        cause = f" needs {worst.too_recent[0].version}"
    elif worst.external:
        cause = f" needs {worst.external[0].soname}"
    elif worst.blacklisted:
        cause = f" imports {worst.blacklisted[0].symbols[0]}"
    elif worst.isa:
        cause = f" needs {worst.isa[0].level or 'more than the baseline'}"

    def verb(o: WheelOutcome, plural: bool) -> str:
        if o.status == "mislabelled":
            return f"{'are' if plural else 'is'} mislabelled {_policy_base(o.unmet[0]) if o.unmet else ''}".rstrip()
        if o.status == "failed":
            return f"cannot be {_policy_base(o.policy)}" if o.policy else "fail"
        return "could not be checked"

    alike = len({(o.status, _policy_base(o.unmet[0] if o.unmet else o.policy)) for o in bad}) == 1
    name = f"{worst.name_parts[0]} {worst.short}"
    if worst.status == "error":
        return f"❌ {of_n} {verb(worst, len(bad) > 1)}: {name}"
    if len(bad) == 1 or alike:
        return f"❌ {of_n} {verb(worst, len(bad) > 1)}: {name}{cause}"
    return f"❌ {of_n} fail: {name} {verb(worst, False)}{' and' + cause if cause else ''}"


def _fix(fix: str) -> str:
    """A fix as Markdown: its code spans as code, the rest as text."""
    return "".join(md_code(p) if i % 2 else md_text(p) for i, p in enumerate(fix.split(CODE)))


def _lines(view: _View, several_legs: bool, several_dists: bool) -> list[Line]:
    out = []
    for o in view.outcomes:
        if o.status not in PROBLEMS:
            continue
        fix = "; ".join(_fix(f) for f in o.fixes) if o.fixes else None
        out.append(Line(o.status, md_code(_name(o, several_dists)), md_text(view.legs[id(o)]) if several_legs else None,
                        reason(o), Safe(fix) if fix else None))
    return out


def _notes(view: _View, several_dists: bool) -> list[Safe]:
    """Things a passing wheel's reviewer should see: grafting that raised the tag, growth."""
    out = []
    for o in view.outcomes:
        name = md_code(_name(o, several_dists))
        if o.rise:
            r = o.rise
            out.append(Safe(f"🔺 {name}: grafting raised it from {md_code(r.before)} to {md_code(r.after)} "
                            f"({md_code(r.library)} needs {md_code(r.version)}): repair in the {md_text(_policy_base(r.before) or '')} image"))
        if o.grew:
            out.append(Safe(f"📦 {name} grew from {human_size(o.size_before)} to {human_size(o.size_after)} "
                            f"by grafting {', '.join(md_code(g.soname) for g in o.grafted[:4])}"))
    return out


def _changes(report: Report, view: _View, several_dists: bool) -> tuple[list[Safe], Safe | None]:
    """Lines on what this pull request changed against the base branch, and a note when there is no base."""
    base = report.base
    if base is None:
        return [], None
    ref = md_code(base.ref)
    if base.note:
        return [], Safe(f"ℹ️ No comparison with {ref}: {md_text(base.note)}")
    out = []
    for o in view.outcomes:
        c = o.change
        if c is None:
            continue
        name = md_code(_name(o, several_dists))
        if c.direction != "same":
            arrow = "🔻" if c.direction == "less-compatible" else "🔼"
            cause = f": {md_text(c.cause)}" if c.cause else ""
            out.append(Safe(f"{arrow} {name}: {md_code(_policy_base(c.before) or '?')} → {md_code(_policy_base(c.after) or '?')}{cause}"))
        if c.grafted_added:
            out.append(Safe(f"➕ {name} now grafts {', '.join(md_code(s) for s in c.grafted_added)}"))
        if c.grafted_removed:
            out.append(Safe(f"➖ {name} no longer grafts {', '.join(md_code(s) for s in c.grafted_removed)}"))
        if c.size_before and c.size_after and abs(c.size_after - c.size_before) >= 0.05 * c.size_before:
            pct = (c.size_after - c.size_before) / c.size_before * 100
            out.append(Safe(f"{'📈' if pct > 0 else '📉'} {name}: {human_size(c.size_before)} → {human_size(c.size_after)} ({pct:+.0f}%)"))
    out += [Safe(f"🆕 {md_code(k)} is new") for k in base.added]
    out += [Safe(f"🗑️ {md_code(k)} is gone") for k in base.removed]
    return out, None


def _head(o: WheelOutcome, leg: str | None) -> Safe:
    """The first line of a problem's evidence: the wheel's full name, its leg, what was written."""
    text = f"**Wheel:** {md_code(o.wheel)}"
    if leg:
        text += f" (leg {md_text(leg)})"
    if o.output and o.output != o.wheel:
        text += f"; written as {md_code(o.output)}"
    return Safe(text)


def _rows(outcomes: Sequence[WheelOutcome], several_dists: bool) -> list[Row]:
    return [Row(o.status, md_cell_code(_name(o, several_dists)), len(o.grafted), _size(o)) for o in outcomes]


def _legs_note(report: Report) -> Safe | None:
    """Legs that did not report (a combined report), or how many have so far (a leg's view of its matrix)."""
    missing, expected, have = report.missing_legs, report.expected_legs, len(report.current)
    if missing:
        of = f" (of {expected} expected)" if expected else ""
        return Safe(f"⚠️ {len(missing)} leg{'s' if len(missing) != 1 else ''} did not report{of}: "
                    + ", ".join(md_text(m) for m in missing))
    if expected and have < expected:
        return Safe(f"⏳ {have} of {expected} legs have reported so far")
    return None


def _legs_line(report: Report) -> Safe | None:
    current = report.current
    if not current:
        return None
    parts = []
    for g in current:
        bad = sum(o.status in PROBLEMS for o in g.outcomes)
        parts.append(f"{md_text(g.label)} ({len(g.outcomes)}{' ❌ ' + str(bad) if bad else ' ✅'})")
    return Safe(", ".join(parts))


def _footer_links(report: Report) -> Safe:
    bits = []
    if report.commit:
        bits.append(f"commit {md_code(report.commit[:12])}")
    if report.run_url:
        bits.append(f"[workflow run]({link(report.run_url)})")
    arts = [g.artifact_url for g in report.current if g.artifact_url]
    if len(arts) == 1:
        bits.append(f"[artifact]({link(arts[0])})")
    elif arts:
        bits.append(f"{len(arts)} artifacts (" + ", ".join(f"[{i}]({link(u)})" for i, u in enumerate(arts, 1)) + ")")
    if report.summary_url:
        bits.append(f"[job summary]({link(report.summary_url)})")
    return Safe(" · ".join(bits))


# ------------------------------------------------------------------ the templates

_ENV: jinja2.Environment | None = None


def _template_source(name: str) -> str | None:
    if not re.fullmatch(r"[a-z_]+\.md\.j2", name):
        return None
    try:
        return (resources.files("wheelvet") / "templates" / name).read_text("utf-8")
    except FileNotFoundError:
        return None


def _finalize(value: object) -> object:
    if isinstance(value, Safe) or type(value) is int:
        return value
    raise TypeError(f"the report template printed {value!r} without an escaping filter")


def environment() -> jinja2.Environment:
    """The process's one Jinja2 environment (created on first use)."""
    global _ENV
    if _ENV is None:
        env = jinja2.Environment(loader=jinja2.FunctionLoader(_template_source), undefined=jinja2.StrictUndefined,
                                 autoescape=False, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
                                 finalize=_finalize)
        env.filters.update(md=md_text, code=md_code, cell=md_cell_code, html=html_text, size=human_size,
                           status=lambda s: Safe(STATUS_LABELS[s]))
        _ENV = env
    return _ENV


def _length(text: str) -> int:
    """Length as GitHub may count it (UTF-16 code units): never less than ``len``."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def render_markdown(report: Report, *, max_chars: int = GITHUB_COMMENT_LIMIT, data: str = "",
                    marker: bool = True) -> str:
    """The comment body.  ``data``, a hidden block of the legs' own data
    (:mod:`wheelvet.github.comment`), ends it and is never cut.

    A body longer than ``max_chars`` is shortened whole blocks at a time: the
    passing wheels' rows go first, then the evidence of the problems (least
    important wheels first), then the notes; a line points to the job summary.
    The problems' own lines go last, and only when nothing else is left.
    ValueError when not even the marker, the verdict and the data fit.
    """
    template = environment().get_template("report.md.j2")
    view = _view(report)
    several_legs = len(report.current) > 1
    several_dists = len({o.name_parts[0] for o in view.outcomes}) > 1
    lines = _lines(view, several_legs, several_dists)
    notes = _notes(view, several_dists)
    changes, base_note = _changes(report, view, several_dists)
    attention = [o for o in view.outcomes if o.status != "ok"]
    passing = [o for o in view.outcomes if o.status == "ok"]
    detailed = [o for o in view.outcomes if o.status in PROBLEMS]
    stale = report.stale
    legs_line = _legs_line(report)
    fixed = dict(
        marker=Safe(report_marker(report.report_id)) if marker else None, headline=md_text(headline(report)),
        title=md_text(report.title), total=len(view.outcomes), nlegs=len(report.current),
        links=_footer_links(report), data=Safe(data) if data else None, base_note=base_note,
        base_ref=md_code(report.base.ref) if report.base else None, changes=changes,
        legs_note=_legs_note(report),
        stale=[(md_text(g.label), md_code(g.sha[:12]), len(g.outcomes)) for g in stale],
        summary_url=link(report.summary_url) if report.summary_url else None, limit=Safe(f"{max_chars:,}"),
    )

    def render(ok_rows: int, full: int, keep_notes: bool, table: bool, keep_lines: int) -> str:
        return template.render(
            fixed, lines=lines[:keep_lines], hidden_lines=len(lines) - keep_lines,
            notes=notes if keep_notes else [], rows=_rows(attention, several_dists) if table else [],
            ok_rows=_rows(passing[:ok_rows], several_dists), ok_count=len(passing), hidden_ok=len(passing) - ok_rows,
            details=[(o, _name(o, several_dists), _head(o, view.legs[id(o)] if several_legs else None))
                     for o in detailed[:full]],
            hidden_details=len(detailed) - full, legs_line=legs_line if keep_lines == len(lines) else None,
            shortened=(ok_rows, full, keep_notes, table, keep_lines) != (len(passing), len(detailed), True, True, len(lines)),
        )

    text = render(len(passing), len(detailed), True, True, len(lines))
    if _length(text) <= max_chars:
        return text
    # From the most to the least content; the length decreases along the list.
    n_lines = len(lines)
    levels = ([(k, len(detailed), True, True, n_lines) for k in range(len(passing) - 1, -1, -1)]
              + [(0, k, True, True, n_lines) for k in range(len(detailed) - 1, -1, -1)]
              + [(0, 0, False, True, n_lines), (0, 0, False, False, n_lines)]
              + [(0, 0, False, False, k) for k in range(n_lines - 1, -1, -1)])
    lo, hi, best = 0, len(levels) - 1, None
    while lo <= hi:
        mid = (lo + hi) // 2
        candidate = render(*levels[mid])
        if _length(candidate) <= max_chars:
            best, hi = candidate, mid - 1
        else:
            lo = mid + 1
    if best is None:
        raise ValueError(f"max_chars={max_chars}: not even the report's marker, verdict and data fit")
    return best


__all__ = [
    "BlacklistedSymbols", "ExternalLibrary", "GITHUB_COMMENT_LIMIT", "GraftedLibrary", "IsaProblem", "Leg", "Line",
    "Report", "SCHEMA_VERSION", "STATUSES", "STATUS_LABELS", "SymbolFile", "TooRecentVersion", "WheelOutcome",
    "combine", "environment", "headline", "html_text", "human_size", "md_code", "md_text", "outcome_from_audit",
    "outcome_from_error", "reason", "render_markdown", "report_marker",
]
