"""The report's view model: what happened to each wheel of each leg, as plain data.

A :class:`WheelOutcome` per wheel, grouped by :class:`Leg` (one job of a build
matrix, or one run of ``wheelvet action``) into a :class:`Report`.  It is
computed once from the real audit and repair plan (:func:`outcome_from_audit`,
which takes what stands in a wheel's way from :mod:`wheelvet.shortfall`),
serialised to versioned JSON so that the legs of a matrix can be read back,
every field type-checked, merged (:func:`merge_legs`) and compared with the
base branch's report (:mod:`wheelvet.report.compare`).
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

from ..audit import WheelAudit
from ..policy import PolicySet, resolve
from ..shortfall import KINDS, describe, remedies, shortfalls

SCHEMA_VERSION = 2
# The statuses, worst first.  "mislabelled": the wheel claims a tag it does not
# meet even once repaired; "retagged": only its name changed (tag order,
# aliases, a more compatible tag it already met).
STATUSES = ("mislabelled", "failed", "error", "repaired", "retagged", "ok")
PROBLEMS = ("mislabelled", "failed", "error")
GITHUB_COMMENT_LIMIT = 65536
GROWTH_FLAG = 2.0  # a repaired wheel this many times its input size is flagged


@dataclass(frozen=True)
class GraftedLibrary:
    soname: str
    source: str  # where it was copied from, as the build image has it (workspace paths relative)
    size: int | None  # bytes


@dataclass(frozen=True)
class ExternalLibrary:
    """A library the policy does not allow, left in place (not grafted)."""

    soname: str
    path: str | None  # None: not found


@dataclass(frozen=True)
class ProvidedLibrary:
    """A library another wheel installs (a provider the wheel requires): not grafted."""

    soname: str
    distribution: str
    version: str
    path: str  # where it installs, relative to site-packages
    requirement: str | None = None  # the Requires-Dist that brings it


@dataclass(frozen=True)
class SymbolFile:
    file: str  # member of the wheel, the path of a library that would be grafted, or a provided library's
    symbols: tuple[str, ...]
    external: bool = False
    provider: str | None = None  # "prov 1.0" for a library another wheel provides


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
class TagRise:
    """Grafting made the wheel less compatible than its own files are."""

    before: str  # the policy the wheel's own files allow
    after: str  # the policy reached with the grafted libraries
    library: str  # the grafted file that needs more
    version: str  # the symbol version it needs (GLIBC_2.28)


@dataclass(frozen=True)
class Change:
    """What this pull request changed for one wheel, against the base branch's report."""

    before: str | None  # the tag the base's wheel reached (None: not judged)
    after: str | None
    direction: str  # "less-compatible", "more-compatible", "same"
    cause: str | None = None  # "fcntl64@GLIBC_2.28 in torch/lib/libtorch_cpu.so"
    grafted_added: tuple[str, ...] = ()
    grafted_removed: tuple[str, ...] = ()
    size_before: int | None = None  # the base's output size
    size_after: int | None = None


@dataclass(frozen=True)
class WheelOutcome:
    wheel: str  # input file name
    status: str  # one of STATUSES
    output: str | None = None  # output file name
    policy: str | None = None  # the policy the wheel was held to (claimed, or asked for)
    reached: str | None = None  # the policy it meets (after repair, when repaired)
    claimed: tuple[str, ...] = ()  # platform tags of the input name
    tags_after: tuple[str, ...] = ()  # platform tags of the output name (or the input's when judged as it is)
    unmet: tuple[str, ...] = ()  # claimed tags the wheel does not meet (mislabelled)
    size_before: int | None = None
    size_after: int | None = None
    grafted: tuple[GraftedLibrary, ...] = ()
    provided: tuple[ProvidedLibrary, ...] = ()  # taken from other wheels, not grafted
    external: tuple[ExternalLibrary, ...] = ()
    too_recent: tuple[TooRecentVersion, ...] = ()
    blacklisted: tuple[BlacklistedSymbols, ...] = ()
    isa: tuple[IsaProblem, ...] = ()
    problems: tuple[str, ...] = ()
    error: str | None = None
    fixes: tuple[str, ...] = ()  # what to do, in the action's terms
    rise: TagRise | None = None
    change: Change | None = None

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"{self.wheel}: unknown status {self.status!r}")

    @property
    def hint(self) -> str | None:
        """The fixes in one plain line (code spans shown with backticks)."""
        return "; ".join(plain(f) for f in self.fixes) or None

    @property
    def name_parts(self) -> tuple[str, str, str]:
        """(distribution, version, python-abi tags) from the input file name."""
        stem = self.wheel[:-4] if self.wheel.endswith(".whl") else self.wheel
        parts = stem.split("-")
        if len(parts) >= 5:
            return parts[0], parts[1], parts[-3] if parts[-3] == parts[-2] or parts[-2] == "none" else f"{parts[-3]}-{parts[-2]}"
        return stem, "", ""

    @property
    def key(self) -> str:
        """What identifies the same wheel in another run: distribution, Python/ABI, libc and architecture."""
        dist, _version, py = self.name_parts
        tags = [t for t in (self.reached, *self.tags_after, *self.claimed) if t]
        p = next((q for q in map(resolve, tags) if q is not None), None)
        arch = p.arch if p else next((t[len("linux_"):] for t in tags if t.startswith("linux_")), "any")
        libc = p.libc if p else "glibc"  # a linux_* wheel is glibc's: musl wheels are named musllinux
        return f"{dist.lower().replace('_', '-')} {py} {libc}-{arch}"

    @property
    def short(self) -> str:
        """``cp311 · manylinux_2_17_x86_64``: the Python tag and the tag that counts."""
        if self.status == "mislabelled":  # the wheel as its maker named it
            return self._short(self.claimed)
        return self.written_short

    @property
    def written_short(self) -> str:
        """The short form of what was written (the input's, when nothing was)."""
        return self._short(self.tags_after or self.claimed)

    def _short(self, tags: Sequence[str]) -> str:
        _dist, _version, py = self.name_parts
        shown = self.reached if self.reached and self.reached in tags else _canonical(tags)
        return " · ".join(x for x in (py, shown) if x)

    @property
    def why(self) -> str:
        """What rules the wheel's tag out, in one plain line (annotations, logs)."""
        head = (f"claims {', '.join(self.unmet)} but " if self.status == "mislabelled" and self.unmet
                else f"cannot be {self.policy}: " if self.status == "failed" and self.policy else "")
        if self.too_recent:
            v = self.too_recent[0]
            f = next((f for f in v.files if not f.external), v.files[0] if v.files else None)
            where = f" ({', '.join(f.symbols[:3])} in {f.file})" if f and f.symbols else ""
            return f"{head}needs {v.version} from {v.library}{where}"
        if self.external:
            e = self.external[0]
            return f"{head}needs {e.soname}{', not found' if e.path is None else ', which the policy does not allow'}"
        if self.blacklisted:
            b = self.blacklisted[0]
            return f"{head}imports {', '.join(b.symbols[:3])} from {b.library}, which the policy forbids"
        if self.isa:
            return f"{head}{self.isa[0].file} needs {self.isa[0].level or 'instructions'} beyond the baseline"
        return head + (self.problems[0] if self.problems else self.error or self.status)

    @property
    def grew(self) -> bool:
        """A repaired wheel much larger than its input (flagged in the report)."""
        return bool(self.size_before and self.size_after and self.size_after >= GROWTH_FLAG * self.size_before)


# A fix marks what a renderer shows as code between two CODE characters (a
# separator no name can hold: names pass through ``code_span``).
CODE = "\x1f"


def code_span(text: str) -> str:
    return CODE + text.replace(CODE, "\ufffd") + CODE


def plain(fix: str) -> str:
    return fix.replace(CODE, "`")


def _canonical(tags: Sequence[str]) -> str | None:
    """The tag to show for a list of platform tags: the least compatible
    policy's canonical name (what the wheel must at least meet), else the first."""
    found = [p for p in map(resolve, tags) if p is not None]
    if found:
        return PolicySet.least(*found).name
    return tags[0] if tags else None


@dataclass(frozen=True)
class Leg:
    """One job of a build matrix (or one run of the action) and its wheels."""

    key: str  # stable across re-runs: workflow, job and the wheels' tags
    label: str  # for people: "build · cp311-cp312 · manylinux_2_28_x86_64"
    outcomes: tuple[WheelOutcome, ...] = ()
    workflow: str = ""
    job: str = ""
    run_id: int = 0
    run_attempt: int = 0
    sha: str = ""
    artifact_url: str | None = None
    updated: float = 0.0  # time.time() when this leg wrote its part
    base_keys: tuple[str, ...] = ()  # the wheels of the base branch's report this leg compared with

    @classmethod
    def from_dict(cls, data: Any) -> Leg:
        """A leg from its ``dataclasses.asdict`` form, every field type-checked (ValueError)."""
        return _load(cls, data)


@dataclass(frozen=True)
class BaseInfo:
    """The base branch's report this one was compared with, or why there is none."""

    ref: str  # the branch
    note: str | None = None  # one line when there is no comparison (first run, expired, no permission...)
    run_url: str | None = None
    sha: str = ""
    added: tuple[str, ...] = ()  # wheel keys only in this report
    removed: tuple[str, ...] = ()  # wheel keys only in the base's


@dataclass(frozen=True)
class Report:
    report_id: str
    title: str = "wheelvet"
    legs: tuple[Leg, ...] = ()
    commit: str = ""  # the commit the report is for (the newest run's)
    run_url: str | None = None
    summary_url: str | None = None
    base: BaseInfo | None = None
    expected_legs: int | None = None  # mode report: how many legs should have reported
    missing_legs: tuple[str, ...] = ()  # jobs that did not report, or failed before they could

    def __post_init__(self) -> None:
        object.__setattr__(self, "legs", tuple(self.legs))

    @property
    def current(self) -> tuple[Leg, ...]:
        """The legs of the newest run (largest run id): those of an older
        commit whose key a newer leg has are dropped, the others are stale."""
        newest = max(self.legs, key=lambda g: (g.run_id, g.updated), default=None)
        if newest is None:
            return ()
        sha = newest.sha
        return tuple(g for g in self.legs if g.sha == sha)

    @property
    def stale(self) -> tuple[Leg, ...]:
        current = self.current
        keys = {g.key for g in current}
        return tuple(g for g in self.legs if g not in current and g.key not in keys)

    @property
    def outcomes(self) -> tuple[WheelOutcome, ...]:
        return tuple(o for g in self.current for o in g.outcomes)

    @property
    def totals(self) -> dict[str, int]:
        counts = Counter(o.status for o in self.outcomes)
        return {"wheels": len(self.outcomes), "legs": len(self.current), **{s: counts[s] for s in STATUSES},
                "grafted": sum(len(o.grafted) for o in self.outcomes)}

    @property
    def failed(self) -> bool:
        return any(o.status in PROBLEMS for o in self.outcomes) or bool(self.missing_legs)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        return {"schema_version": SCHEMA_VERSION, **data, "totals": self.totals}

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
        try:
            data = json.loads(text, parse_int=_bounded_int, parse_constant=_no_constant)
        except (ValueError, RecursionError) as exc:
            raise ValueError(f"not JSON ({' '.join(str(exc).split())[:120]})") from None
        return cls.from_dict(data)


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > 18:
        raise ValueError(f"number with {len(text)} digits")
    return int(text)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


_NESTED = {  # (class, field) -> class of the field's items (or of the field itself)
    (Report, "legs"): Leg, (Report, "base"): BaseInfo, (Leg, "outcomes"): WheelOutcome,
    (WheelOutcome, "grafted"): GraftedLibrary, (WheelOutcome, "external"): ExternalLibrary,
    (WheelOutcome, "provided"): ProvidedLibrary,
    (WheelOutcome, "too_recent"): TooRecentVersion, (WheelOutcome, "blacklisted"): BlacklistedSymbols,
    (WheelOutcome, "isa"): IsaProblem, (WheelOutcome, "rise"): TagRise, (WheelOutcome, "change"): Change,
    (TooRecentVersion, "files"): SymbolFile,
}
_TYPE_CHECKS = {
    "str": lambda v: isinstance(v, str),
    "str | None": lambda v: v is None or isinstance(v, str),
    "int": lambda v: type(v) is int and v >= 0,
    "int | None": lambda v: v is None or (type(v) is int and v >= 0),
    "float": lambda v: type(v) in (int, float) and v >= 0,
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
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ValueError(f"{name}: missing {key!r}")
            continue
        v = data[key]
        item = _NESTED.get((cls, key))
        if item is not None and (isinstance(v, dict) or v is None) and not f.type.startswith("tuple"):
            values[key] = None if v is None else _load(item, v)
            continue
        if isinstance(v, list):
            v = tuple(_load(item, x) for x in v) if item else tuple(v)
        if not (isinstance(v, tuple) if item else _TYPE_CHECKS[f.type](v)):
            raise ValueError(f"{name}.{key}: {v!r} is not a {f.type}")
        values[key] = v
    return cls(**values)


def merge_legs(legs: Iterable[Leg]) -> tuple[Leg, ...]:
    """One part per leg key: the newest (run, attempt, time) wins; order by key."""
    best: dict[str, Leg] = {}
    for g in legs:
        have = best.get(g.key)
        if have is None or (g.run_id, g.run_attempt, g.updated) >= (have.run_id, have.run_attempt, have.updated):
            best[g.key] = g
    return tuple(best[k] for k in sorted(best))


def combine(reports: Iterable[Report], *, report_id: str | None = None, title: str | None = None,
            expected_legs: int | None = None, missing_legs: Sequence[str] = ()) -> Report:
    """One report from the reports of several jobs (``mode: report``): their
    legs merged by key.  The id and title default to the first report's."""
    reports = list(reports)
    if not reports:
        raise ValueError("combine: no reports")
    legs = merge_legs(g for r in reports for g in r.legs)
    first = reports[0]
    return Report(report_id=first.report_id if report_id is None else report_id,
                  title=first.title if title is None else title, legs=legs,
                  commit=max(legs, key=lambda g: (g.run_id, g.updated)).sha if legs else first.commit,
                  run_url=first.run_url, summary_url=first.summary_url, base=first.base,
                  expected_legs=expected_legs, missing_legs=tuple(missing_legs))


# ------------------------------------------------------------------ from the real data


def _file_size(path: str | None) -> int | None:
    try:
        return os.path.getsize(path) if path else None
    except OSError:
        return None


def name_platforms(filename: str | None) -> tuple[str, ...]:
    """``demo-1.0-cp311-cp311-manylinux_2_17_x86_64.whl`` -> ``("manylinux_2_17_x86_64",)``."""
    if not filename or not filename.endswith(".whl") or filename.count("-") < 4:
        return ()
    return tuple(filename[: -len(".whl")].rsplit("-", 1)[1].split("."))


def outcome_from_error(wheel: str, message: str, *, input_size: int | None = None) -> WheelOutcome:
    """A wheel that could not be read at all (invalid archive, broken ELF...)."""
    return WheelOutcome(wheel=wheel, status="error", claimed=name_platforms(wheel), size_before=input_size, error=message)


def outcome_from_audit(audit: WheelAudit, *, plan: Any = None, output_path: str | None = None,
                       input_size: int | None = None, output_size: int | None = None,
                       error: str | BaseException | None = None, policy: str | None = None,
                       display: Callable[[str], str] = lambda p: p) -> WheelOutcome:
    """What happened to one wheel, from its audit and (once repaired) its plan.

    ``policy`` is the policy the wheel was asked to meet (a name or an alias,
    "auto" for none); by default, as for ``wheelvet check``, every platform tag
    in its file name.  ``error`` says why there is no plan: a
    ``RepairRefused`` (any exception whose ``exit_code`` is 1) or a message
    about a wheel that misses its policy make it ``failed``; any other
    exception, or a message about a wheel that meets it, ``error``.
    ``display`` shows host paths as the user knows them.  Sizes not given are
    read from the files.
    """
    refused = getattr(error, "exit_code", None) == 1
    output = os.path.basename(output_path) if output_path else (plan.out_name if plan is not None else None)
    base = dict(
        wheel=audit.wheel,
        output=output,
        claimed=tuple(audit.platforms) or name_platforms(audit.wheel),
        size_before=input_size if input_size is not None else _file_size(audit.path),
        size_after=output_size if output_size is not None else _file_size(output_path),
        error=(None if error is None else str(error)) or audit.error,
        provided=tuple(ProvidedLibrary(p.soname, p.distribution, p.version, p.path, p.requirement)
                       for p in audit.provided_libs),
    )
    if isinstance(error, BaseException) and not refused:
        return WheelOutcome(status="error", **base)
    if audit.error is not None:
        fixes = () if audit.files else ("build the extension modules into the wheel, or set "
                                        f"{code_span('allow-pure-python-wheel: true')} for a pure wheel",)
        return WheelOutcome(status="error", fixes=fixes, **base)
    if audit.pure:
        return WheelOutcome(status="ok" if error is None else "error", tags_after=base["claimed"], **base)
    pset = audit.policy_set
    if plan is not None and error is None:
        grafted = tuple(GraftedLibrary(g.soname, display(g.source), _file_size(g.source)) for g in plan.grafts)
        reached = pset.get(plan.tags[0])
        common = dict(policy=plan.policy, reached=reached.name if reached else plan.policy,
                      tags_after=name_platforms(output), grafted=grafted, rise=_rise(audit, reached, display), **base)
        if plan.dropped_tags:
            claimed = _most_compatible(plan.dropped_tags, pset)
            return _failed(audit, claimed, (), planned=True, status="mislabelled", unmet=tuple(plan.dropped_tags),
                           display=display, **{**common, "policy": claimed.name})
        if grafted or plan.patches:
            return WheelOutcome(status="repaired", **common)
        return WheelOutcome(status="retagged" if output != audit.wheel else "ok", **common)

    # Judged as it is, as by `wheelvet check`: every tag asked for must be met.
    wanted = [policy] if policy and policy != "auto" else list(audit.platforms)
    unknown = [t for t in wanted if audit.meets(t) is None]
    missed = [t for t in wanted if audit.meets(t) is False]
    named = [p for p in map(pset.get, missed or wanted) if p is not None and not p.is_linux]
    target = max(named, key=lambda p: p.priority, default=None)
    common = dict(reached=audit.overall_tag, tags_after=base["claimed"], **base)
    if not (missed or unknown or refused):
        return WheelOutcome(status="ok" if error is None else "error", policy=target.name if target else None, **common)
    # A tag of its own name it does not meet is a false claim; a policy asked for, a failure.
    own = not (policy and policy != "auto") and not refused
    return _failed(audit, target, unknown, planned=refused, status="mislabelled" if own and missed else "failed",
                   unmet=tuple(missed) if own else (), display=display, **common)


def _most_compatible(tags: Sequence[str], pset: PolicySet):
    return PolicySet.most((p for p in map(pset.get, tags) if p is not None), pset.linux)


def _rise(audit: WheelAudit, reached, display) -> TagRise | None:
    """When the grafted libraries need a newer libc than the wheel's own files."""
    pset = audit.policy_set
    if reached is None or pset is None:
        return None
    own = pset.symbol_policy({u.library: [u.version] for u in audit.symbol_uses})
    if own.priority <= reached.priority:
        return None
    for s in shortfalls(audit, own):
        e = next((e for e in s.evidence if e.external), None) if s.kind == "symbol-version" else None
        if e is not None:
            return TagRise(own.name, reached.name, display(e.file), s.subject)
    return None


def _failed(audit: WheelAudit, target, unknown: Sequence[str], *, planned: bool, status: str,
            display: Callable[[str], str], **base: Any) -> WheelOutcome:
    """A wheel that misses ``target``: what stands in the way (its
    :mod:`~wheelvet.shortfall`), and the fix in the action's terms."""
    if target is None and audit.gaps:
        target = audit.policy_set.get(audit.gaps[0].policy)  # no policy named: what keeps it from the nearest one
    found = list(shortfalls(audit, target)) if target is not None else []
    found += [s for t in unknown for s in shortfalls(audit, t)]
    if planned:  # repaired or refused: grafting is not what stands in the way
        found = [s for s in found if not s.graftable]
    by_kind = {k: [s for s in found if s.kind == k] for k in KINDS}
    other = ("unknown-tag", "pyfpe", "ucs2", "links-libpython")
    base.setdefault("policy", target.name if target else None)
    return WheelOutcome(
        status=status,
        external=tuple(ExternalLibrary(s.subject, display(s.path) if s.path else None)
                       for s in found if s.kind in ("library-not-found", "external-library")),
        too_recent=tuple(TooRecentVersion(s.subject, s.library, s.best,
                                          tuple(SymbolFile(display(e.file) if e.external else e.file, e.symbols,
                                                           e.external, e.provider) for e in s.evidence))
                         for s in by_kind["symbol-version"]),
        blacklisted=tuple(BlacklistedSymbols(s.library, s.remedy.names) for s in by_kind["blacklisted-symbols"]),
        isa=tuple(IsaProblem(s.subject, s.level) for s in by_kind["isa-extension"]),
        problems=tuple(f"{s.subject} names no policy for a {audit.libc} {audit.arch} wheel" if s.kind == "unknown-tag"
                       else line for s in found if s.kind in other for line in describe(s)),
        fixes=tuple(remedies(found, "action", code=code_span)),
        **base,
    )


__all__ = ["BaseInfo", "BlacklistedSymbols", "Change", "ExternalLibrary", "GITHUB_COMMENT_LIMIT", "GraftedLibrary",
           "IsaProblem", "Leg", "PROBLEMS", "ProvidedLibrary", "Report", "SCHEMA_VERSION", "STATUSES", "SymbolFile", "TagRise",
           "TooRecentVersion", "WheelOutcome", "code_span", "combine", "merge_legs", "plain", "name_platforms", "outcome_from_audit",
           "outcome_from_error"]
