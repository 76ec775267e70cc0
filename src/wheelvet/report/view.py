"""The report's view model: what happened to each wheel, as plain data.

A :class:`WheelOutcome` per wheel and a :class:`Report`, frozen data computed
once from the real audit and repair plan (:func:`outcome_from_audit`, which
takes what stands in a wheel's way from :mod:`wheelvet.shortfall`), and
serialised to versioned JSON so that the reports of many jobs can be read
back, every field type-checked, and :func:`combine`\\ d.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections import Counter
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from ..audit import WheelAudit
from ..policy import Policy
from ..shortfall import KINDS, describe, remedies, shortfalls

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
    pset = audit.policy_set
    wanted = [policy] if policy and policy != "auto" else list(audit.platforms)
    unknown = [t for t in wanted if audit.meets(t) is None]
    missed = [t for t in wanted if audit.meets(t) is False]
    named = [p for p in map(pset.get, missed or wanted) if p is not None and not p.is_linux]
    target = max(named, key=lambda p: p.priority, default=None)
    if not (missed or unknown or refused):
        return WheelOutcome(status="ok" if error is None else "error", policy=target.name if target else None,
                            tag_after=base["tag_before"], **base)
    return _failed(audit, target, unknown, planned=refused, **base)


def _failed(audit: WheelAudit, target: Policy | None, unknown: Sequence[str], *, planned: bool,
            **base: Any) -> WheelOutcome:
    """A wheel that misses ``target``: what stands in the way (its
    :mod:`~wheelvet.shortfall`), and the fix."""
    if target is None and audit.gaps:
        target = audit.policy_set.get(audit.gaps[0].policy)  # no policy named: what keeps it from the nearest one
    found = list(shortfalls(audit, target)) if target is not None else []
    found += [s for t in unknown for s in shortfalls(audit, t)]
    if planned:  # the repair was refused: grafting is not what stands in the way
        found = [s for s in found if not s.graftable]
    by_kind = {k: [s for s in found if s.kind == k] for k in KINDS}
    other = ("unknown-tag", "pyfpe", "ucs2", "links-libpython")
    return WheelOutcome(
        status="failed",
        policy=target.name if target else None,
        tag_after=audit.overall_tag,
        external=tuple(ExternalLibrary(s.subject, s.path) for s in found if s.kind in ("library-not-found", "external-library")),
        too_recent=tuple(TooRecentVersion(s.subject, s.library, s.best, tuple(SymbolFile(e.file, e.symbols, e.external)
                                                                              for e in s.evidence))
                         for s in by_kind["symbol-version"]),
        blacklisted=tuple(BlacklistedSymbols(s.library, s.remedy.names) for s in by_kind["blacklisted-symbols"]),
        isa=tuple(IsaProblem(s.subject, s.level) for s in by_kind["isa-extension"]),
        problems=tuple(f"{s.subject} names no policy for a {audit.libc} {audit.arch} wheel" if s.kind == "unknown-tag"
                       else line for s in found if s.kind in other for line in describe(s)),
        hint="; ".join(remedies(found, "action")) or None,
        **base,
    )


__all__ = ["BlacklistedSymbols", "ExternalLibrary", "GITHUB_COMMENT_LIMIT", "GraftedLibrary", "IsaProblem", "Report",
           "SCHEMA_VERSION", "STATUSES", "SymbolFile", "TooRecentVersion", "WheelOutcome", "combine",
           "outcome_from_audit", "outcome_from_error"]
