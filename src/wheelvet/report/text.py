"""The human report: the tag a wheel meets, then what holds it back."""

from __future__ import annotations

from collections import defaultdict
from typing import Sequence

from ..audit import WheelAudit
from ..escape import printable
from ..policy import load_policies

_MAX_SYMBOLS = 8


def _symbols(names: Sequence[str]) -> str:
    if not names:
        return "(no symbol imports it)"
    shown = ", ".join(names[:_MAX_SYMBOLS])
    return shown + (f" and {len(names) - _MAX_SYMBOLS} more" if len(names) > _MAX_SYMBOLS else "")


def _tag_with_aliases(a: WheelAudit, name: str) -> str:
    pset = load_policies(a.libc or "glibc", a.arch or "")
    p = pset.get(name)
    return f"{name} ({', '.join(p.aliases)})" if p is not None and p.aliases else name


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
    out.append(f"  meets:            {_tag_with_aliases(a, a.overall_tag)}")
    if a.repairable_tag != a.overall_tag:
        out.append(f"  after repair:     {_tag_with_aliases(a, a.repairable_tag)}")
    out.append(f"  symbol versions:  {_tag_with_aliases(a, a.sym_tag)}")

    pset = load_policies(a.libc or "glibc", a.arch or "")
    highest = pset.highest
    # Symbol versions that keep the wheel below the most compatible policy,
    # each with the best policy that still allows it.
    # The gap to the most compatible policy lists every too-recent version,
    # including those of external libraries a repair would graft.
    top_gap = a.gaps[-1] if a.gaps and a.gaps[-1].policy == highest.name else None
    blocking = defaultdict(list)
    for u in top_gap.too_recent_symbols if top_gap else ():
        blocking[(u.library, u.version)].append(u)
    if blocking:
        out.append("")
        out.append("  symbol versions that rule out more compatible tags:")
        for (lib, version), uses in sorted(blocking.items(), key=lambda kv: (pset.best_for_version(kv[0][1]).priority, kv[0])):
            best = pset.best_for_version(version)
            out.append(f"    {version} from {lib}: at best {best.name}")
            for u in uses:
                where = f"{u.file} (external, would be grafted)" if u.external else u.file
                out.append(f"      {where}: {_symbols(u.symbols)}")
    if a.external_libs:
        out.append("")
        out.append("  external libraries (graft them with `wheelvet repair`, or stop linking them):")
        for soname, path in a.external_libs:
            out.append(f"    {soname} => {path or 'not found'}")
    notes = [f for f in a.findings if f.code not in ("external-library",)]
    if notes:
        out.append("")
        out.append("  findings:")
        for f in notes:
            where = f"{f.file}: " if f.file else ""
            out.append(f"    {f.severity}: {where}{f.message}")
    return out


def render_text(audits: Sequence[WheelAudit]) -> str:
    return "\n\n".join(render_one(a) for a in audits) + "\n"
