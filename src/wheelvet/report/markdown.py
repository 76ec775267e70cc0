"""The pull-request comment: one Markdown report for one job or a build matrix.

Three layers, each plain:

* the view model: a :class:`WheelOutcome` per wheel and a :class:`Report`,
  frozen data computed once from the real audit and repair plan
  (:func:`outcome_from_audit`), serialised to versioned JSON so that the
  reports of many jobs can be read back and :func:`combine`\\ d;
* :func:`render_markdown`, a pure function of a :class:`Report`;
* the Jinja2 templates (``templates/*.md.j2``): loops and ifs only.  Every
  value they print goes through one of the escaping filters below; the
  environment refuses any other string.

The escaping rules and the size limit are described in ``docs/report.md``.
"""

from __future__ import annotations

import dataclasses
import html
import json
import os
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass
from importlib import resources
from typing import Any, Iterable, Sequence
from urllib.parse import quote, urlsplit

import jinja2

from ..audit import PolicyGap, SymbolUse, WheelAudit
from ..policy import Policy, PolicySet, load_policies, parse_policy_tag
from ..resolve import LIBPYTHON_RE

SCHEMA_VERSION = 1
STATUSES = ("ok", "repaired", "failed", "error")
GITHUB_COMMENT_LIMIT = 65536

# ------------------------------------------------------------------ view model


@dataclass(frozen=True)
class GraftedLibrary:
    soname: str
    source: str  # the host file it was copied from
    size: int | None  # bytes


@dataclass(frozen=True)
class ExternalLibrary:
    """A library the policy does not allow, left in place (not grafted)."""

    soname: str
    path: str | None  # None: not found


@dataclass(frozen=True)
class SymbolFile:
    file: str  # member of the wheel, or the host path of a library that would be grafted
    symbols: tuple[str, ...]
    external: bool = False


@dataclass(frozen=True)
class TooRecentVersion:
    version: str  # GLIBC_2.29
    library: str  # libm.so.6
    best_policy: str  # the most compatible policy that still allows it
    files: tuple[SymbolFile, ...]


@dataclass(frozen=True)
class BlacklistedSymbols:
    library: str
    symbols: tuple[str, ...]


@dataclass(frozen=True)
class IsaProblem:
    file: str
    level: str | None  # x86_64_v3; None when unknown (an external library)


@dataclass(frozen=True)
class WheelOutcome:
    wheel: str  # input file name
    status: str  # "ok" | "repaired" | "failed" | "error"
    output: str | None = None  # output file name
    policy: str | None = None  # the policy the wheel was held to
    tag_before: str | None = None  # platform tags of the input name, "."-joined
    tag_after: str | None = None  # platform tags of the output, or the best tag met
    size_before: int | None = None
    size_after: int | None = None
    grafted: tuple[GraftedLibrary, ...] = ()
    external: tuple[ExternalLibrary, ...] = ()
    too_recent: tuple[TooRecentVersion, ...] = ()
    blacklisted: tuple[BlacklistedSymbols, ...] = ()
    isa: tuple[IsaProblem, ...] = ()
    problems: tuple[str, ...] = ()
    error: str | None = None
    hint: str | None = None  # one line: what to do

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"{self.wheel}: unknown status {self.status!r}")


@dataclass(frozen=True)
class Report:
    report_id: str
    title: str = "wheelvet"
    jobs: tuple[str, ...] = ()
    outcomes: tuple[WheelOutcome, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "jobs", tuple(self.jobs))
        object.__setattr__(self, "outcomes", tuple(self.outcomes))

    @property
    def totals(self) -> dict[str, int]:
        counts = Counter(o.status for o in self.outcomes)
        return {"wheels": len(self.outcomes), **{s: counts[s] for s in STATUSES},
                "grafted": sum(len(o.grafted) for o in self.outcomes)}

    def to_dict(self) -> dict[str, Any]:
        return {"schema_version": SCHEMA_VERSION, "report_id": self.report_id, "title": self.title,
                "jobs": list(self.jobs), "totals": self.totals,
                "outcomes": [dataclasses.asdict(o) for o in self.outcomes]}

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, data: Any) -> Report:
        if not isinstance(data, dict) or data.get("schema_version") != SCHEMA_VERSION:
            found = data.get("schema_version") if isinstance(data, dict) else type(data).__name__
            raise ValueError(f"not a wheelvet report of schema version {SCHEMA_VERSION} (found {found!r})")
        return _load(cls, {k: v for k, v in data.items() if k not in ("schema_version", "totals")})

    @classmethod
    def from_json(cls, text: str) -> Report:
        return cls.from_dict(json.loads(text))


_NESTED = {  # (class, field) -> class of the field's items
    (Report, "outcomes"): WheelOutcome, (WheelOutcome, "grafted"): GraftedLibrary,
    (WheelOutcome, "external"): ExternalLibrary, (WheelOutcome, "too_recent"): TooRecentVersion,
    (WheelOutcome, "blacklisted"): BlacklistedSymbols, (WheelOutcome, "isa"): IsaProblem,
    (TooRecentVersion, "files"): SymbolFile,
}
_TYPE_CHECKS = {
    "str": lambda v: isinstance(v, str),
    "str | None": lambda v: v is None or isinstance(v, str),
    "int | None": lambda v: v is None or (type(v) is int and v >= 0),
    "bool": lambda v: isinstance(v, bool),
    "tuple[str, ...]": lambda v: all(isinstance(x, str) for x in v),
}


def _load(cls: type, data: Any) -> Any:
    """``cls`` from its ``dataclasses.asdict`` form, every field type-checked."""
    name = cls.__name__
    if not isinstance(data, dict):
        raise ValueError(f"{name}: expected an object")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ValueError(f"{name}: unknown keys {unknown}")
    values = {}
    for key, f in fields.items():
        if key not in data:
            if f.default is dataclasses.MISSING:
                raise ValueError(f"{name}: missing {key!r}")
            continue
        v = data[key]
        item = _NESTED.get((cls, key))
        if isinstance(v, list):
            v = tuple(_load(item, x) for x in v) if item else tuple(v)
        if not (isinstance(v, tuple) if item else _TYPE_CHECKS[f.type](v)):
            raise ValueError(f"{name}.{key}: {v!r} is not a {f.type}")
        values[key] = v
    return cls(**values)


def combine(reports: Iterable[Report], *, report_id: str | None = None, title: str | None = None) -> Report:
    """One report from the reports of several jobs (``mode: report``).

    The outcomes keep the order of ``reports``; an outcome repeated verbatim
    (the same artifact read twice) is kept once.  The id and title default to
    the first report's.
    """
    reports = list(reports)
    if not reports:
        raise ValueError("combine: no reports")
    return Report(
        report_id=reports[0].report_id if report_id is None else report_id,
        title=reports[0].title if title is None else title,
        jobs=tuple(dict.fromkeys(j for r in reports for j in r.jobs)),
        outcomes=tuple(dict.fromkeys(o for r in reports for o in r.outcomes)),
    )


# ------------------------------------------------------------------ from the real data

# Findings that rule out every policy, and what to do about them.
_BLOCKING = {
    "links-libpython": "do not link libpython",
    "pyfpe": "rebuild with a current CPython (no PyFPE_jbuf)",
    "ucs2": "rebuild for a wide-unicode Python",
}


def _file_size(path: str | None) -> int | None:
    try:
        return os.path.getsize(path) if path else None
    except OSError:
        return None


def _name_platforms(filename: str | None) -> str | None:
    """``demo-1.0-cp311-cp311-manylinux_2_17_x86_64.whl`` -> ``manylinux_2_17_x86_64``."""
    if not filename or not filename.endswith(".whl") or filename.count("-") < 4:
        return None
    return filename[: -len(".whl")].rsplit("-", 1)[1]


def _few(names: Sequence[str], n: int = 3) -> str:
    return ", ".join(names[:n]) + (f" and {len(names) - n} more" if len(names) > n else "")


def _image(policy: Policy) -> str:
    """The PyPA build image of a policy: its legacy alias when it has one."""
    return f"quay.io/pypa/{policy.aliases[0] if policy.aliases else policy.name}"




def _too_recent(uses: Sequence[SymbolUse], pset: PolicySet) -> tuple[TooRecentVersion, ...]:
    groups: dict[tuple[str, str], list[SymbolFile]] = {}
    for u in uses:
        groups.setdefault((u.library, u.version), []).append(SymbolFile(u.file, u.symbols, u.external))
    rows = [(pset.best_for_version(v), lib, v, files) for (lib, v), files in groups.items()]
    rows.sort(key=lambda r: (r[0].priority, r[1], r[2]))  # the most limiting first
    return tuple(TooRecentVersion(v, lib, best.name, tuple(files)) for best, lib, v, files in rows)


def outcome_from_error(wheel: str, message: str, *, input_size: int | None = None) -> WheelOutcome:
    """A wheel that could not be read at all (invalid archive, broken ELF...)."""
    before = _name_platforms(wheel)
    return WheelOutcome(wheel=wheel, status="error", tag_before=before, size_before=input_size, error=message)


def outcome_from_audit(audit: WheelAudit, *, plan: Any = None, output_path: str | None = None,
                       input_size: int | None = None, output_size: int | None = None,
                       error: str | BaseException | None = None, policy: str | None = None) -> WheelOutcome:
    """What happened to one wheel, from its audit and (once repaired) its plan.

    ``policy`` is the policy the wheel was asked to meet (``--plat``: a name
    or an alias, "auto" for none); by default, as for ``wheelvet check``,
    every platform tag in its file name.  ``error`` says why there is no
    plan: a ``RepairRefused`` (any exception whose ``exit_code`` is 1) or a
    message about a wheel that misses its policy make it ``failed``; any
    other exception, or a message about a wheel that meets it, ``error``.
    Sizes not given are read from the files.
    """
    refused = getattr(error, "exit_code", None) == 1
    output = os.path.basename(output_path) if output_path else (plan.out_name if plan is not None else None)
    base = dict(
        wheel=audit.wheel,
        output=output,
        tag_before=".".join(audit.platforms) or _name_platforms(audit.wheel),
        size_before=input_size if input_size is not None else _file_size(audit.path),
        size_after=output_size if output_size is not None else _file_size(output_path),
        error=(None if error is None else str(error)) or audit.error,
    )
    if isinstance(error, BaseException) and not refused:
        return WheelOutcome(status="error", **base)
    if audit.error is not None:
        hint = None if audit.files else "build the extension modules into the wheel, or pass --allow-pure-python-wheel for a pure wheel"
        return WheelOutcome(status="error", hint=hint, **base)
    if audit.pure:
        return WheelOutcome(status="ok" if error is None else "error", tag_after=base["tag_before"], **base)
    if plan is not None and error is None:
        grafted = tuple(GraftedLibrary(g.soname, g.source, _file_size(g.source)) for g in plan.grafts)
        changed = bool(grafted or plan.patches) or plan.out_name != audit.wheel
        return WheelOutcome(status="repaired" if changed else "ok", policy=plan.policy,
                            tag_after=_name_platforms(output), grafted=grafted, **base)

    # Judged as it is, as by `wheelvet check`: every tag asked for must be met.
    pset = load_policies(audit.libc or "glibc", audit.arch or "", all_musl=True)
    wanted = [policy] if policy and policy != "auto" else list(audit.platforms)
    unknown = [t for t in wanted if audit.meets(t) is None]
    missed = [t for t in wanted if audit.meets(t) is False]
    named = [p for p in map(pset.get, missed or wanted) if p is not None and not p.is_linux]
    target = max(named, key=lambda p: p.priority, default=None)
    if not (missed or unknown or refused):
        return WheelOutcome(status="ok" if error is None else "error", policy=target.name if target else None,
                            tag_after=base["tag_before"], **base)
    return _failed(audit, pset, target, unknown, planned=refused, **base)


def _failed(audit: WheelAudit, pset: PolicySet, target: Policy | None, unknown: Sequence[str], *, planned: bool,
            **base: Any) -> WheelOutcome:
    """A wheel that misses ``target``: what stands in the way, and the fix."""
    gap = next((g for g in audit.gaps if target is not None and g.policy == target.name), None)
    if gap is None and target is None and audit.gaps:
        gap = audit.gaps[0]  # no policy named: what keeps it from the nearest one
        target = pset.get(gap.policy)
    gap = gap or PolicyGap("")
    paths = dict(audit.external_libs)
    external = tuple(ExternalLibrary(s, paths.get(s)) for s in gap.libs_to_eliminate if not LIBPYTHON_RE.match(s))
    levels = {f.path: f.isa_level for f in audit.files}
    blocking = [f for f in audit.findings if f.code in _BLOCKING]

    hints = []
    if gap.too_recent_symbols and target is not None:
        hints.append(f"build in the {target.base} image (e.g. {_image(target)})")
    missing = [e.soname for e in external if e.path is None]
    found = [e.soname for e in external if e.path is not None]
    if missing:
        hints.append(f"install {_few(missing)} in the build image (before-repair) or pass --exclude")
    if found and not planned:
        hints.append(f"graft {_few(found)} with wheelvet repair")
    if gap.isa_files:
        hints.append("build for the baseline (no -march=native) or pass --disable-isa-ext-check")
    if gap.blacklisted_symbols:
        hints.append(f"avoid {_few([s for _lib, names in gap.blacklisted_symbols for s in names])} or target a newer policy")
    if unknown:
        hints.append("fix the platform tag in the file name")
    hints += dict.fromkeys(_BLOCKING[f.code] for f in blocking)

    return WheelOutcome(
        status="failed",
        policy=target.name if target else None,
        tag_after=audit.overall_tag,
        external=external,
        too_recent=_too_recent(gap.too_recent_symbols, pset),
        blacklisted=tuple(BlacklistedSymbols(lib, tuple(names)) for lib, names in gap.blacklisted_symbols),
        isa=tuple(IsaProblem(f, levels.get(f)) for f in gap.isa_files),
        problems=tuple(f"{t} names no policy for a {audit.libc} {audit.arch} wheel" for t in unknown)
        + tuple(f.message for f in blocking),
        hint="; ".join(hints) or None,
        **base,
    )


# ------------------------------------------------------------------ escaping


class _Safe(str):
    """Text an escaping filter produced: the only strings a template may print."""


_NEWLINES = re.compile(r"\r\n?|[\n\t\v\f\x85\u2028\u2029]")
_ASCII_CONTROLS = re.compile(r"[\x00-\x1f\x7f]")
_MD_SPECIAL = re.compile(
    r"[\\`*~\[\]<>&|$:]"  # code, emphasis, strikethrough, links, HTML, entities, cells, math, URL autolinks
    r"|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])"  # "_" can only delimit emphasis next to a non-alphanumeric
    r"|(?<=www)\.",  # www.example.com autolinks
    re.IGNORECASE,
)
_GITHUB_REFS = re.compile(r"[@#]")  # @user, @org/team mentions and #123 references


def _clean(value: object) -> str:
    """One line, no control or format characters (bidi overrides, lone surrogates)."""
    if not isinstance(value, str):
        raise TypeError(f"expected text, got {value!r}")
    text = _NEWLINES.sub(" ", value)
    if text.isascii():
        return _ASCII_CONTROLS.sub("\ufffd", text)
    return "".join("\ufffd" if unicodedata.category(c) in ("Cc", "Cf", "Cs") else c for c in text)


def _no_refs(text: str) -> str:
    """A word joiner after @ and # keeps GitHub from notifying users or linking issues."""
    return _GITHUB_REFS.sub(lambda m: m.group() + "\u2060", text)


_LINE_START = re.compile(r"^(?:[#+=-]|\d+(?=[.)]))")  # headings, list items, setext underlines


def md_text(value: object) -> str:
    """Literal text in GFM inline content: table cells, paragraphs, list items, headings.

    Leading and trailing spaces go (Markdown would drop them anyway).
    """
    text = _MD_SPECIAL.sub(lambda m: "\\" + m.group(), _clean(value).strip(" "))
    text = _LINE_START.sub(lambda m: m.group() + "\\" if m.group()[0].isdigit() else "\\" + m.group(), text)
    return _Safe(_no_refs(text))


def md_code(value: object) -> str:
    """A code span (not for table cells, where ``|`` would split it)."""
    text = _clean(value) or " "
    fence = "`" * (max(map(len, re.findall("`+", text)), default=0) + 1)
    if text.strip(" ") and (text[0] == "`" or text[-1] == "`" or (text[0] == " " and text[-1] == " ")):
        text = f" {text} "  # one space each side is stripped back off
    return _Safe(f"{fence}{text}{fence}")


def html_text(value: object) -> str:
    """Text inside an HTML block (``<summary>``) or an HTML element."""
    return _Safe(html.escape(_no_refs(_clean(value)), quote=True))


def human_size(value: int | None) -> str:
    if value is None:
        return _Safe("—")
    if value < 1024:
        return _Safe(f"{value} B")
    size = float(value)
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        size /= 1024
        if size < 1024 or unit == "TiB":
            return _Safe(f"{size:.1f} {unit}")
    raise AssertionError  # unreachable


_STATUS_LABELS = {"ok": "✅ ok", "repaired": "🔧 repaired", "failed": "❌ failed", "error": "⚠️ error"}


def report_marker(report_id: str) -> str:
    """The hidden first line the action finds its comment by."""
    return f"<!-- wheelvet-report: {quote(report_id, safe='/:+=', errors='surrogatepass')} -->"


def _link(url: str | None) -> str | None:
    if url is None:
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"summary_url must be an http(s) URL, not {url!r}")
    return _Safe(quote(url, safe=":/?#&=%+,;@!$*", errors="surrogatepass"))


# ------------------------------------------------------------------ rendering

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
    if isinstance(value, _Safe) or type(value) is int:
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
                           status=lambda s: _Safe(_STATUS_LABELS[s]))
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
    fixed = dict(marker=_Safe(report_marker(report.report_id)), headline=_headline(outcomes), title=report.title,
                 jobs=report.jobs, total=n, summary_url=_link(summary_url), limit=_Safe(f"{max_chars:,}"))

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
