"""What stands between a wheel and a tag, and what to do about it: one model.

:func:`shortfalls` turns a :class:`~wheelvet.audit.WheelAudit` and a target
policy into :class:`Shortfall` records, one per reason the wheel does not
reach the target: its kind, the evidence (library, symbol version, symbols,
files) and the remedy, as data.  ``check``, ``repair``'s refusals and the
text, JSON and Markdown renderers only format them; the wording of each rule
and of each remedy lives here, once (:func:`describe`, :func:`remedy_text`).
A new rule is one branch of :func:`shortfalls` and, if it needs one, one
remedy.
"""

from __future__ import annotations

from dataclasses import dataclass
import re
from typing import Callable, Sequence

from .audit import WheelAudit
from .policy import Policy, PolicySet
from .resolve import LIBPYTHON_RE

# Kinds, in the order a reader should see them.
KINDS = (
    "symbol-version",  # a symbol version newer than the policy allows
    "library-not-found",  # a needed library nothing found: it can be neither checked nor grafted
    "external-library",  # a library the policy does not allow, found: repair grafts it
    "isa-extension",  # instructions beyond the architecture's baseline
    "blacklisted-symbols",  # symbols the policy forbids importing from an allowed library
    "pyfpe",  # PyFPE_jbuf (rules out every policy)
    "ucs2",  # a narrow-unicode Python 2 build (rules out every policy)
    "links-libpython",  # libpython in DT_NEEDED (repair removes it)
    "unknown-tag",  # the tag names no policy for this wheel's libc and architecture
)

# Remedy kinds and their wording, for the command line and for the action's
# inputs.  ``{names}``, ``{policy}``, ``{image}`` are filled from the remedy.
REMEDIES = {
    "build-older": ("build on an older toolchain: the {policy} image ({image})",
                    "build in the {policy} image ({image})"),
    "graft": ("graft {names} with `wheelvet repair`",
              "graft {names}: keep `mode: repair`"),
    "provide-library": ("make {names} findable so that it can be grafted (LD_LIBRARY_PATH, --ldpaths), pass "
                        "--provider with the wheel that ships it, or pass --exclude",
                        "install {names} with `before-repair`, add its directory to `ld-library-path`, list the "
                        "wheel that ships it in `providers`, or list it in `exclude`"),
    "avoid-symbols": ("stop importing {names}, or target a less compatible policy",
                      "stop importing {names}, or set `plat` to a less compatible policy"),
    "baseline-isa": ("build for the baseline (no -march=native), or pass --disable-isa-ext-check",
                     "build for the baseline (no -march=native), or set `disable-isa-ext-check: true`"),
    "rebuild-pyfpe": ("rebuild with a current CPython (no PyFPE_jbuf)", "rebuild with a current CPython (no PyFPE_jbuf)"),
    "rebuild-wide-unicode": ("rebuild for a wide-unicode Python", "rebuild for a wide-unicode Python"),
    "unlink-libpython": ("do not link libpython (repair drops it from DT_NEEDED)",
                         "do not link libpython (mode `repair` drops it from DT_NEEDED)"),
    "fix-tag": ("fix the platform tag in the file name", "fix the platform tag in the file name"),
}
AUDIENCES = ("cli", "action")


@dataclass(frozen=True)
class Evidence:
    """One file's part in a shortfall."""

    file: str | None  # a member of the wheel, a host library (``external``), or None when not one file
    symbols: tuple[str, ...] = ()
    external: bool = False  # a host library that a repair would graft
    provider: str | None = None  # a library another wheel provides ("prov 1.0"); ``file`` is its place in site-packages


@dataclass(frozen=True)
class Remedy:
    kind: str  # a key of REMEDIES
    names: tuple[str, ...] = ()  # libraries or symbols it is about
    policy: str | None = None  # the policy (base name) whose build image to use
    image: str | None = None


@dataclass(frozen=True)
class Shortfall:
    kind: str  # one of KINDS
    target: str  # the policy (or tag) it keeps the wheel from
    subject: str  # a symbol version, a library's SONAME, a file, a tag...
    remedy: Remedy
    library: str | None = None  # the library a version or blacklisted symbols come from
    path: str | None = None  # where an external library was found
    best: str | None = None  # the most compatible policy that still allows a symbol version
    level: str | None = None  # an ISA level (x86_64_v3)
    evidence: tuple[Evidence, ...] = ()

    @property
    def graftable(self) -> bool:
        """Whether a repair removes it by grafting."""
        return self.kind == "external-library"


def build_image(policy: Policy) -> str:
    """The PyPA build image of a policy: its legacy alias when it has one."""
    return f"quay.io/pypa/{policy.aliases[0] if policy.aliases else policy.name}"


def shortfalls(audit: WheelAudit, target: Policy | str, *, after_repair: bool = False) -> tuple[Shortfall, ...]:
    """Every reason ``audit``'s wheel does not meet ``target`` (a policy, or a
    platform tag of the wheel's libc and architecture), most limiting first;
    empty when it does.  ``after_repair``: leave out what grafting removes."""
    pset = audit.policy_set
    if isinstance(target, str):
        tag = target
        target = pset.get(tag) if pset is not None else None
        if target is None:
            if tag.startswith("linux_") and audit.meets(tag):
                return ()
            return (Shortfall("unknown-tag", tag, tag, Remedy("fix-tag")),)
    if pset is None or pset.reaches(audit.overall, target.name):
        return ()
    gap = next((g for g in audit.gaps if g.policy == target.name), None)
    out: list[Shortfall] = []
    if gap is not None:
        out += _symbol_versions(gap.too_recent_symbols, target, pset)
        paths = dict(audit.external_libs)
        for soname in gap.libs_to_eliminate:
            if LIBPYTHON_RE.match(soname):
                continue
            path = paths.get(soname)
            if path is None:
                out.append(Shortfall("library-not-found", target.name, soname, Remedy("provide-library", (soname,))))
            elif not after_repair:
                out.append(Shortfall("external-library", target.name, soname, Remedy("graft", (soname,)), path=path))
        levels = {f.path: f.isa_level for f in audit.files}
        for file in gap.isa_files:
            out.append(Shortfall("isa-extension", target.name, file, Remedy("baseline-isa"), level=levels.get(file),
                                 evidence=(Evidence(file, external=file not in levels),)))
        for lib, names in gap.blacklisted_symbols:
            out.append(Shortfall("blacklisted-symbols", target.name, lib, Remedy("avoid-symbols", names), library=lib,
                                 evidence=(Evidence(None, names),)))
    if audit.pyfpe:
        out.append(Shortfall("pyfpe", target.name, "PyFPE_jbuf", Remedy("rebuild-pyfpe")))
    if audit.ucs2:
        out.append(Shortfall("ucs2", target.name, "UCS2", Remedy("rebuild-wide-unicode")))
    for f in audit.findings:
        if f.code == "links-libpython":
            soname = f.message.split(" ")[2] if f.message.startswith("linked against ") else "libpython"
            out.append(Shortfall("links-libpython", target.name, soname, Remedy("unlink-libpython")))
    return tuple(out)


def _symbol_versions(uses, target: Policy, pset: PolicySet) -> list[Shortfall]:
    groups: dict[tuple[str, str], list[Evidence]] = {}
    for u in uses:
        groups.setdefault((u.library, u.version), []).append(Evidence(u.file, u.symbols, u.external, u.provider))
    rows = sorted(((pset.best_for_version(v), lib, v, ev) for (lib, v), ev in groups.items()),
                  key=lambda r: (r[0].priority, r[1], r[2]))
    remedy = Remedy("build-older", policy=target.base, image=build_image(target))
    return [Shortfall("symbol-version", target.name, v, remedy, library=lib, best=best.name, evidence=tuple(ev))
            for best, lib, v, ev in rows]


# ------------------------------------------------------------------ wording


def few(names: Sequence[str], n: int = 3) -> str:
    """``a, b, c and 2 more``."""
    return ", ".join(names[:n]) + (f" and {len(names) - n} more" if len(names) > n else "")


def remedy_text(remedy: Remedy, audience: str = "cli", code: Callable[[str], str] | None = None) -> str:
    """What to do, in the terms of the command line or of the action's inputs.

    ``code`` marks what a renderer shows as code (input names, libraries,
    symbols, the image): without it the wording keeps its backticks and the
    names are plain."""
    template = REMEDIES[remedy.kind][AUDIENCES.index(audience)]
    if code is None:
        return template.format(names=few(list(remedy.names)), policy=remedy.policy, image=remedy.image)
    # the template's own `...` spans, then the values (never parsed: names come from wheels)
    parts = template.split("`")
    out = []
    for i, part in enumerate(parts):
        if i % 2:
            out.append(code(part))
            continue
        for j, piece in enumerate(re.split(r"(\{names\}|\{policy\}|\{image\})", part)):
            if piece == "{names}":
                shown = [code(n) for n in remedy.names[:3]]
                out.append(", ".join(shown) + (f" and {len(remedy.names) - 3} more" if len(remedy.names) > 3 else ""))
            elif piece in ("{policy}", "{image}"):
                value = remedy.policy if piece == "{policy}" else remedy.image
                out.append(code(value) if piece == "{image}" else str(value))
            else:
                out.append(piece)
    return "".join(out)


def remedies(found: Sequence[Shortfall], audience: str = "cli", code: Callable[[str], str] | None = None) -> list[str]:
    """The distinct remedies of ``found``, in order; one remedy of a kind
    covers every library or symbol it names."""
    merged: dict[tuple, Remedy] = {}
    for s in found:
        r = s.remedy
        key = (r.kind, r.policy, r.image)
        if key in merged:
            names = merged[key].names
            merged[key] = Remedy(r.kind, names + tuple(n for n in r.names if n not in names), r.policy, r.image)
        else:
            merged[key] = r
    return [remedy_text(r, audience, code) for r in merged.values()]


def symbols_text(names: Sequence[str], n: int = 8) -> str:
    if not names:
        return "no symbol imports it"
    return ", ".join(names[:n]) + (f" and {len(names) - n} more" if len(names) > n else "")


def evidence_label(e: Evidence) -> str:
    """A file as a reader should see it: a wheel member, a library a repair
    would graft, or one another wheel provides."""
    if e.provider:
        return f"{e.file} (provided by {e.provider})"
    return f"{e.file} (external, would be grafted)" if e.external else str(e.file)


def describe(s: Shortfall) -> list[str]:
    """Plain text, one line per piece of evidence: what rules the target out."""
    if s.kind == "symbol-version":
        return [f"{evidence_label(e)}: {s.subject} from {s.library} is too recent ({symbols_text(e.symbols)})"
                for e in s.evidence]
    if s.kind == "external-library":
        return [f"external library {s.subject} ({s.path}), which {s.target} does not allow"]
    if s.kind == "library-not-found":
        return [f"{s.subject} was not found, so it can be neither checked nor grafted"]
    if s.kind == "blacklisted-symbols":
        return [f"imports {', '.join(s.remedy.names)} from {s.library}, which {s.target} forbids"]
    if s.kind == "isa-extension":
        what = f"the {s.level} instruction set" if s.level else "instructions"
        external = " (external library)" if s.evidence and s.evidence[0].external else ""
        return [f"{s.subject}{external} needs {what} beyond the baseline"]
    if s.kind == "pyfpe":
        return ["uses PyFPE_jbuf, which no policy allows (PEP 513)"]
    if s.kind == "ucs2":
        return ["built for a narrow-unicode (UCS2) Python 2"]
    if s.kind == "links-libpython":
        return [f"linked against {s.subject}: extensions must not link libpython (PEP 513)"]
    if s.kind == "unknown-tag":
        return [f"its tag {s.subject} names no policy for what it contains"]
    raise ValueError(f"unknown shortfall kind {s.kind!r}")


def explain(found: Sequence[Shortfall], audience: str = "cli") -> list[str]:
    """Lines: each shortfall described, then ``fix: ...`` with the remedies."""
    lines = [line for s in found for line in describe(s)]
    fixes = remedies(found, audience)
    if fixes:
        lines.append("fix: " + "; ".join(fixes))
    return lines


__all__ = ["AUDIENCES", "Evidence", "KINDS", "REMEDIES", "Remedy", "Shortfall", "build_image", "describe", "evidence_label", "explain",
           "few", "remedies", "remedy_text", "shortfalls", "symbols_text"]
