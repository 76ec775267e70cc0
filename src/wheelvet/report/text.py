"""The human report: the tag a wheel meets, then what holds it back."""

from __future__ import annotations

from typing import Sequence

from ..audit import WheelAudit
from ..escape import printable
from ..policy import Policy
from ..shortfall import evidence_label, shortfalls, symbols_text


def _tag_with_aliases(p: Policy) -> str:
    return f"{p.name} ({', '.join(p.aliases)})" if p.aliases else p.name


def render_one(a: WheelAudit) -> str:
    """The report of one wheel; every line is made printable (names come from the wheel)."""
    return "\n".join(map(printable, _lines(a)))


def _lines(a: WheelAudit) -> list[str]:
    out = [a.wheel]
    if a.error is not None:
        out.append(f"  error: {a.error}")
        return out
    if a.pure:
        out.append("  pure Python wheel: no platform tag applies")
        return out
    out.append(f"  built for:        {a.libc}, {a.arch}")
    out.append(f"  meets:            {_tag_with_aliases(a.overall)}")
    if a.repairable != a.overall:
        out.append(f"  after repair:     {_tag_with_aliases(a.repairable)}")
    out.append(f"  symbol versions:  {_tag_with_aliases(a.symbols)}")

    # What keeps the wheel from the most compatible policy: every too-recent
    # symbol version (those of the external libraries a repair would graft
    # too), each with the best policy that still allows it.
    versions = [s for s in shortfalls(a, a.policy_set.highest) if s.kind == "symbol-version"]
    if versions:
        out.append("")
        out.append("  symbol versions that rule out more compatible tags:")
        for s in versions:
            out.append(f"    {s.subject} from {s.library}: at best {s.best}")
            for e in s.evidence:
                out.append(f"      {evidence_label(e)}: {_symbols(e.symbols)}")
    if a.external_libs:
        out.append("")
        out.append("  external libraries (graft them with `wheelvet repair`, or stop linking them):")
        for soname, path in a.external_libs:
            out.append(f"    {soname} => {path or 'not found'}")
    if a.provided_libs:
        out.append("")
        out.append("  provided by other wheels (not grafted; loaded from where they install beside it):")
        for p in a.provided_libs:
            out.append(f"    {p.soname} => {p.distribution} {p.version}: {p.path} (Requires-Dist: {p.requirement})")
    hinted = [f for f in a.files if f.dlopen_hints]
    if hinted:
        out.append("")
        out.append("  may load with dlopen (named in read-only data, not linked; graft with `wheelvet repair --include`):")
        for f in hinted:
            out.append(f"    {f.path}: {', '.join(f.dlopen_hints)}")
    notes = [f for f in a.findings if f.code not in ("external-library",)]
    if notes:
        out.append("")
        out.append("  findings:")
        for f in notes:
            where = f"{f.file}: " if f.file else ""
            out.append(f"    {f.severity}: {where}{f.message}")
    return out


def _symbols(names: Sequence[str]) -> str:
    return "(no symbol imports it)" if not names else symbols_text(names)


def render_text(audits: Sequence[WheelAudit]) -> str:
    return "\n\n".join(render_one(a) for a in audits) + "\n"
