"""The JSON report: auditwheel 6.8.2's ``show --json`` fields, plus wheelvet's.

auditwheel's fields keep their names and meanings (``version``, ``wheel``,
``pure``, ``overall_tag``, ``sym_tag``, ``pyfpe``, ``ucs2``,
``unsupported_isa``, ``versioned_symbols``, ``external_libs``,
``policy_upgrades`` with ``libs_to_eliminate`` / ``blacklisted_symbols``), so
scripts written for auditwheel keep working.  wheelvet adds, inside each
``policy_upgrades`` entry, ``too_recent_symbols`` and ``unsupported_isa_files``,
and at the top level the keys listed in :data:`ADDED_KEYS`.
"""

from __future__ import annotations

import json as _json
from typing import Any, Sequence

from ..audit import SymbolUse, WheelAudit
from ..shortfall import Shortfall, remedy_text, shortfalls

SCHEMA_VERSION = 1
ADDED_KEYS = ("libc", "arch", "platforms", "repairable_tag", "tags", "symbol_versions", "files", "findings", "shortfalls",
              "provided_libs")


def _use(u: SymbolUse) -> dict[str, Any]:
    d: dict[str, Any] = {"file": u.file, "library": u.library, "version": u.version, "symbols": list(u.symbols)}
    if u.external:
        d["external"] = True
    if u.provider:
        d["provider"] = u.provider
    return d


def _shortfall(s: Shortfall) -> dict[str, Any]:
    d: dict[str, Any] = {"kind": s.kind, "subject": s.subject}
    for key in ("library", "path", "best", "level"):
        if getattr(s, key) is not None:
            d[key] = getattr(s, key)
    if s.evidence:
        d["evidence"] = [{"file": e.file, "symbols": list(e.symbols), **({"external": True} if e.external else {}),
                          **({"provider": e.provider} if e.provider else {})} for e in s.evidence]
    d["remedy"] = {"kind": s.remedy.kind, "text": remedy_text(s.remedy)}
    return d


def audit_to_json(a: WheelAudit) -> dict[str, Any]:
    if a.error is not None:
        return {"version": SCHEMA_VERSION, "wheel": a.wheel, "error": a.error}
    if a.pure:
        return {"version": SCHEMA_VERSION, "wheel": a.wheel, "pure": True}
    upgrades: dict[str, Any] = {}
    for gap in a.gaps:
        entry: dict[str, Any] = {}
        if gap.libs_to_eliminate:
            entry["libs_to_eliminate"] = list(gap.libs_to_eliminate)
        if gap.blacklisted_symbols:
            entry["blacklisted_symbols"] = {lib: list(names) for lib, names in gap.blacklisted_symbols}
        if gap.too_recent_symbols:
            entry["too_recent_symbols"] = [_use(u) for u in gap.too_recent_symbols]
        if gap.isa_files:
            entry["unsupported_isa_files"] = list(gap.isa_files)
        if entry:
            upgrades[gap.policy] = entry
    return {
        "version": SCHEMA_VERSION,
        "wheel": a.wheel,
        "pure": False,
        "overall_tag": a.overall_tag,
        "sym_tag": a.sym_tag,
        "pyfpe": a.pyfpe,
        "ucs2": a.ucs2,
        "unsupported_isa": a.unsupported_isa,
        "versioned_symbols": {lib: list(vs) for lib, vs in a.versioned_symbols},
        "external_libs": dict(a.external_libs),
        "policy_upgrades": upgrades,
        # wheelvet's additions
        "libc": a.libc,
        "arch": a.arch,
        "platforms": list(a.platforms),
        "repairable_tag": a.repairable_tag,
        "tags": list(a.tags_granted),
        "symbol_versions": [_use(u) for u in a.symbol_uses],
        "files": [
            {
                "path": f.path, "arch": f.arch, "class": f.elf_class, "endianness": f.endianness, "libc": f.libc, "extension": f.extension,
                "isa_level": f.isa_level, "soname": f.soname, "needed": list(f.needed),
                "rpath": f.rpath, "runpath": f.runpath, "ignored": f.ignored, "dlopen_hints": list(f.dlopen_hints),
            }
            for f in a.files
        ],
        "findings": [{"code": x.code, "severity": x.severity, "file": x.file, "message": x.message} for x in a.findings],
        # what keeps the wheel from each more compatible policy (wheelvet.shortfall), with the remedy
        "shortfalls": {gap.policy: [_shortfall(s) for s in shortfalls(a, gap.policy)] for gap in a.gaps},
        # libraries other wheels the wheel requires install (not external, never grafted)
        "provided_libs": {p.soname: {"distribution": p.distribution, "version": p.version, "path": p.path,
                                     "requirement": p.requirement, "needed_by": list(p.needed_by),
                                     "unreached": list(p.unreached)} for p in a.provided_libs},
    }


def render_json(audits: Sequence[WheelAudit]) -> str:
    """One object for one wheel, an array (argument order) for several."""
    docs = [audit_to_json(a) for a in audits]
    return _json.dumps(docs[0] if len(docs) == 1 else docs, indent=None, sort_keys=False)
