"""What a pull request changed, wheel by wheel, against the base branch's report.

Wheels are matched by :attr:`~wheelvet.report.view.WheelOutcome.key`
(distribution, Python/ABI tags, libc and architecture), so a version bump or
a new manylinux tag still finds its counterpart.  For each match:
the tag reached before and after (and, when it got less compatible, the
symbol version, symbol and file that did it, from the wheel's audit), the
libraries newly grafted or no longer grafted, and the size.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Sequence

from ..audit import WheelAudit
from ..policy import policy_set, resolve
from ..shortfall import shortfalls
from .view import BaseInfo, Change, Report, WheelOutcome


def _cause(audit: WheelAudit | None, before: str) -> str | None:
    """``fcntl64@GLIBC_2.28 in torch/lib/libtorch_cpu.so``: what rules ``before`` out now."""
    if audit is None or audit.policy_set is None:
        return None
    for s in shortfalls(audit, before, after_repair=True):
        if s.kind == "symbol-version" and s.evidence:
            e = next((e for e in s.evidence if not e.external), s.evidence[0])
            sym = e.symbols[0] if e.symbols else s.library
            return f"{sym}@{s.subject} in {e.file}" + (" (grafted)" if e.external else "")
        return " ".join(s.kind.split("-")) + f" {s.subject}"
    return None


def _policies(a: str | None, b: str | None):
    """Both tags as policies; ``linux_<arch>`` is the other one's set's plain-linux policy."""
    pa, pb = (resolve(x) if x else None for x in (a, b))
    known = pa or pb
    if known is not None:
        linux = policy_set(known.libc, known.arch).linux
        pa = pa or (linux if a == linux.name else None)
        pb = pb or (linux if b == linux.name else None)
    return pa, pb


def change(outcome: WheelOutcome, base: WheelOutcome, audit: WheelAudit | None) -> Change:
    before, after = _policies(base.reached, outcome.reached)
    direction = "same"
    if before is not None and after is not None and before.priority != after.priority:
        direction = "less-compatible" if after.priority < before.priority else "more-compatible"
    had, has = {g.soname for g in base.grafted}, {g.soname for g in outcome.grafted}
    return Change(
        before=base.reached, after=outcome.reached, direction=direction,
        cause=_cause(audit, before.name) if direction == "less-compatible" and before is not None else None,
        grafted_added=tuple(sorted(has - had)), grafted_removed=tuple(sorted(had - has)),
        size_before=base.size_after or base.size_before, size_after=outcome.size_after or outcome.size_before,
    )


def compare(current: Sequence[tuple[WheelOutcome, WheelAudit | None]], base: Report,
            info: BaseInfo) -> tuple[list[WheelOutcome], BaseInfo]:
    """``current``'s outcomes, each with its :class:`Change` against ``base``
    (None for a wheel the base did not have), and ``info`` saying which wheels
    are new.  (Which base wheels are gone is known only once every leg has
    reported: :class:`~wheelvet.report.view.Leg` keeps the base's keys.)"""
    by_key = {o.key: o for o in base.outcomes}
    out = [replace(o, change=change(o, by_key[o.key], audit)) if o.key in by_key else o for o, audit in current]
    return out, replace(info, added=tuple(sorted(o.key for o, _a in current if o.key not in by_key)))


__all__ = ["change", "compare"]
