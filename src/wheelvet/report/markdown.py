"""The pull-request comment: one Markdown report for one job or a build matrix.

:func:`render_markdown` is a pure function of a :class:`~wheelvet.report.view.Report`
(the view model, :mod:`wheelvet.report.view`), through the Jinja2 templates
(``templates/*.md.j2``: loops and ifs only), every value escaped by the
filters of :mod:`wheelvet.report.markup`.  The size limit is described in
``docs/report.md``.
"""

from __future__ import annotations

import re
from collections import Counter
from importlib import resources
from typing import Sequence

import jinja2

from ..policy import parse_policy_tag
from .markup import Safe, html_text, human_size, link, md_code, md_text, report_marker
from .view import (
    GITHUB_COMMENT_LIMIT,
    SCHEMA_VERSION,
    STATUSES,
    BlacklistedSymbols,
    ExternalLibrary,
    GraftedLibrary,
    IsaProblem,
    Report,
    SymbolFile,
    TooRecentVersion,
    WheelOutcome,
    combine,
    outcome_from_audit,
    outcome_from_error,
)

_STATUS_LABELS = {"ok": "✅ ok", "repaired": "🔧 repaired", "failed": "❌ failed", "error": "⚠️ error"}
_ENV: jinja2.Environment | None = None
_RANK = {"failed": 0, "error": 1, "repaired": 2, "ok": 3}  # whose details and rows matter most


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
        env.filters.update(md=md_text, code=md_code, html=html_text, size=human_size,
                           status=lambda s: Safe(_STATUS_LABELS[s]))
        _ENV = env
    return _ENV


def _has_details(o: WheelOutcome) -> bool:
    return bool(o.hint or o.error or o.grafted or o.external or o.too_recent or o.blacklisted or o.isa
                or o.problems or (o.output and o.output != o.wheel))


def _policy_base(name: str) -> str:
    found = parse_policy_tag(name)
    return name[: -len(found[1]) - 1] if found else name


def _headline(outcomes: Sequence[WheelOutcome]) -> str:
    n = len(outcomes)
    counts = Counter(o.status for o in outcomes)
    if not n:
        return "⚠️ No wheels to report"
    if not counts["failed"] and not counts["error"]:
        text = f"✅ {n} wheels meet their tags" if n > 1 else "✅ 1 wheel meets its tag"
        return text + (f" ({counts['repaired']} repaired)" if counts["repaired"] else "")
    of_n = f"of {n} wheel{'s' if n > 1 else ''}"
    parts = []
    if counts["failed"]:
        bases = {_policy_base(o.policy) if o.policy else None for o in outcomes if o.status == "failed"}
        target = bases.pop() if len(bases) == 1 and None not in bases else "their policies"
        parts.append(f"{counts['failed']} {of_n} cannot meet {target}")
    if counts["error"]:
        parts.append(f"{counts['error']} {of_n} could not be checked")
    return "❌ " + "; ".join(parts)


def _length(text: str) -> int:
    """Length as GitHub may count it (UTF-16 code units): never less than ``len``."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def render_markdown(report: Report, *, max_chars: int = GITHUB_COMMENT_LIMIT, summary_url: str | None = None) -> str:
    """The comment body: marker, verdict, one table row per wheel, details.

    A body longer than ``max_chars`` is shortened whole blocks at a time:
    details are first cut to the summary and fix hint (least important
    wheels first), then left out, then table rows are left out; a line then
    points to the job summary.  ValueError when not even the marker and the
    verdict fit.
    """
    template = environment().get_template("report.md.j2")
    outcomes = report.outcomes
    order = sorted(range(len(outcomes)), key=lambda i: _RANK[outcomes[i].status])
    detailed = [outcomes[i] for i in order if _has_details(outcomes[i])]
    n, d = len(outcomes), len(detailed)
    fixed = dict(marker=Safe(report_marker(report.report_id)), headline=_headline(outcomes), title=report.title,
                 jobs=report.jobs, total=n, summary_url=link(summary_url), limit=Safe(f"{max_chars:,}"))

    def render(rows: int, full: int, brief: int) -> str:
        return template.render(
            fixed,
            rows=[outcomes[i] for i in sorted(order[:rows])],
            details=[(o, True) for o in detailed[:full]] + [(o, False) for o in detailed[full:full + brief]],
            hidden_rows=n - rows, trimmed_details=brief, hidden_details=d - full - brief,
            shortened=(rows, full, brief) != (n, d, 0),
        )

    text = render(n, d, 0)
    if _length(text) <= max_chars:
        return text
    # From the most to the least content; the length decreases along the list.
    levels = ([(n, k, d - k) for k in range(d - 1, -1, -1)] + [(n, 0, j) for j in range(d - 1, -1, -1)]
              + [(m, 0, 0) for m in range(n - 1, -1, -1)])
    lo, hi, best = 0, len(levels) - 1, None
    while lo <= hi:
        mid = (lo + hi) // 2
        candidate = render(*levels[mid])
        if _length(candidate) <= max_chars:
            best, hi = candidate, mid - 1
        else:
            lo = mid + 1
    if best is None:
        raise ValueError(f"max_chars={max_chars}: not even the report's marker and verdict fit")
    return best


__all__ = [
    "BlacklistedSymbols", "ExternalLibrary", "GITHUB_COMMENT_LIMIT", "GraftedLibrary", "IsaProblem", "Report",
    "SCHEMA_VERSION", "STATUSES", "SymbolFile", "TooRecentVersion", "WheelOutcome", "combine", "environment",
    "html_text", "human_size", "md_code", "md_text", "outcome_from_audit", "outcome_from_error", "render_markdown",
    "report_marker",
]
