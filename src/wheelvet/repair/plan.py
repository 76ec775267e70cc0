"""The repair plan: decisions only, printable with ``--dry-run``.

:func:`plan_repair` decides, from an :class:`~wheelvet.audit.Analysis`, which
policy the wheel is repaired to, which host libraries are grafted into
``<dist>.libs/`` under content-hashed names, how every ELF file is patched
(DT_NEEDED, RPATH, SONAME) and how the wheel is retagged.  A library another
wheel provides is not grafted: the file that needs it gets an RPATH entry to
where the provider installs.  A library named by ``--include`` (loaded with
dlopen) is grafted under its own name, which dlopen asks for.  It refuses, with
the reasons (:mod:`wheelvet.shortfall`), a wheel that cannot meet the policy
asked for.  The only thing it reads is the content of the libraries it names
after their hash.
"""

from __future__ import annotations

import os
import posixpath
from dataclasses import dataclass

from ..audit import Analysis, external_refs, in_data_purelib
from ..errors import RepairRefused, UsageError
from ..escape import printable
from ..policy import Policy, PolicySet
from ..providers import site_path
from ..resolve import LIBPYTHON_RE, entries_inside_wheel, member_name
from ..shortfall import explain, shortfalls
from .sbom import SBOM_MEMBER, file_sha256

ANDROID_RUNPATH_API = 24  # the first API level whose loader reads DT_RUNPATH


@dataclass(frozen=True)
class RepairOptions:
    plat: str = "auto"
    only_plat: bool = False
    lib_sdir: str = ".libs"
    strip: bool = False
    update_tags: bool = True
    exclude: tuple[str, ...] = ()


def origin_entry(target_dir: str, member: str) -> str:
    """The ``$ORIGIN``-relative entry from ``member``'s directory to ``target_dir``
    (both relative to the wheel's root, which is site-packages)."""
    rel = posixpath.relpath(target_dir or ".", posixpath.dirname(member) or ".")
    return f"$ORIGIN/{rel}" if rel != "." else "$ORIGIN"


@dataclass(frozen=True)
class Graft:
    """A host library copied into the wheel."""

    soname: str  # the name it is needed as
    source: str  # its real path on this machine
    member: str  # where it goes in the archive
    new_soname: str
    replace_needed: tuple[tuple[str, str], ...] = ()
    rpath: str | None = None  # "$ORIGIN" when it needs other grafted libraries
    found: str | None = None  # the path the loader found it at (the SBOM names the file by it)
    included: bool = False  # --include: loaded with dlopen, so it keeps its name


@dataclass(frozen=True)
class Patch:
    """Changes to one ELF file of the wheel."""

    member: str
    new_member: str | None = None  # an executable moved out of .data/scripts
    replace_needed: tuple[tuple[str, str], ...] = ()
    remove_needed: tuple[str, ...] = ()
    rpath: str | None = None  # None: leave RPATH/RUNPATH as they are

    @property
    def target(self) -> str:
        return self.new_member or self.member


@dataclass(frozen=True)
class RepairPlan:
    wheel: str  # input path
    policy: str  # the policy the repaired wheel must meet
    tags: tuple[str, ...]  # platform tags it gets (best first)
    out_name: str
    grafts: tuple[Graft, ...] = ()
    patches: tuple[Patch, ...] = ()
    shims: tuple[tuple[str, str], ...] = ()  # (member, script text) replacing moved executables
    wheel_tags: tuple[str, ...] | None = None  # new WHEEL Tag: lines (None: unchanged)
    dropped_tags: tuple[str, ...] = ()  # platform tags of the input that the wheel does not meet
    root_is_purelib: bool | None = None  # new value, None: unchanged
    strip: tuple[str, ...] = ()  # members and grafts (by member) to strip
    sbom: str | None = None  # the SBOM member written (when libraries are grafted); owners looked up by apply
    runpath: bool = False  # write the search path as DT_RUNPATH (Android), not DT_RPATH
    provided: tuple[str, ...] = ()  # "libprov.so.1 from prov 1.0 (prov/lib/libprov.so.1)": not grafted

    def describe(self) -> str:
        lines = [f"{os.path.basename(self.wheel)} -> {self.out_name}", f"  policy: {self.policy}",
                 f"  tags: {', '.join(self.tags)}"]
        for g in self.grafts:
            note = " (--include: keeps its name, for dlopen)" if g.included else ""
            lines.append(f"  graft {g.soname} ({g.source}) as {g.member}{note}")
        for p in self.provided:
            lines.append(f"  provided {p}: not grafted")
        if self.dropped_tags:
            lines.append(f"  dropped tags it does not meet: {', '.join(self.dropped_tags)}")
        if self.root_is_purelib is False:
            lines.append("  WHEEL: Root-Is-Purelib: false (binaries belong in platlib)")
        if self.sbom:
            lines.append(f"  sbom: {self.sbom} (the grafted libraries' packages)")
        for p in self.patches:
            ops = [f"needs {a} -> {b}" for a, b in p.replace_needed] + [f"drop {n}" for n in p.remove_needed]
            if p.rpath is not None:
                ops.append(f"{'runpath' if self.runpath else 'rpath'} {p.rpath}")
            if p.new_member:
                ops.append(f"moved to {p.new_member}")
            lines.append(f"  patch {p.member}: {'; '.join(ops) or 'strip only'}")
        return "\n".join(map(printable, lines))


# ------------------------------------------------------------------ planning


def content_hash(path: str) -> str:
    """The first 8 hex digits of a file's sha256 (hashed once per process: sbom.file_sha256)."""
    return file_sha256(path)[:8]


def grafted_name(source: str, hash8=content_hash) -> str:
    """``libffi.so.8.1.2`` -> ``libffi-1a2b3c4d.so.8.1.2`` (hash of the content)."""
    name = posixpath.basename(source)
    short = hash8(source)
    base, dot, rest = name.partition(".")
    if base.endswith(f"-{short}"):
        return name
    return f"{base}-{short}{dot}{rest}"


def _kept_rpath_entries(value: str | None, member_dir: str, libc: str | None = "glibc") -> list[str]:
    """Entries of an RPATH/RUNPATH that point inside the wheel, read as the
    wheel's loader reads them (:func:`wheelvet.resolve.entries_inside_wheel`:
    ``$ORIGINAL`` is no ``$ORIGIN``, ``$LIB`` cannot be known)."""
    return entries_inside_wheel(value, member_dir, libc)


def _target_policy(analysis: Analysis, options: RepairOptions) -> tuple[Policy, tuple[str, ...]]:
    policies = analysis.policies
    v = analysis.verdicts
    base = options.plat
    if base != "auto" and base.endswith("_" + policies.arch):
        base = base[: -len(policies.arch) - 1]
    # Never tag a more compatible policy that would graft more libraries than
    # the one asked for.
    if base == "auto":
        counts = [len(analysis.refs[p.name].libs) for p in policies if not p.is_linux]
    else:
        wanted = policies.get(base)
        counts = [len(analysis.refs[wanted.name].libs)] if wanted is not None else []
    count = min(counts, default=0)
    graft_policy = PolicySet.most((p for p in policies if len(analysis.refs[p.name].libs) <= count), policies.linux)
    best = PolicySet.least(v.symbols, v.ucs2, v.pyfpe, v.blacklist, v.isa, graft_policy)
    if base == "auto":
        # the best reachable policy; when none is, the least compatible one,
        # so that the refusal below says what stands in its way
        requested = best if not best.is_linux else next((p for p in policies if not p.is_linux), best)
    else:
        requested = policies.get(base)
        if requested is None or requested.is_linux:
            known = ", ".join(p.name for p in policies if not p.is_linux) or "none"
            raise UsageError(f"--plat {options.plat}: not a policy for this {policies.libc} {policies.arch} wheel "
                             f"(known: {known})")
    if requested.is_linux:
        raise RepairRefused(f"{analysis.audit.wheel}: no manylinux/musllinux policy is defined for {policies.libc} on {policies.arch}")
    reasons = explain(shortfalls(analysis.audit, requested, after_repair=True))
    if reasons:
        raise RepairRefused(f"cannot repair {analysis.audit.wheel} to {requested.name}: " + "; ".join(reasons))
    tags = requested.tags
    if not options.only_plat and requested.priority < best.priority:
        tags = best.tags + tags
    return requested, tags


def _new_name(filename: str, tags: tuple[str, ...], update: bool, drop: frozenset[str] = frozenset()) -> tuple[str, list[str], bool]:
    """The repaired wheel's file name, its platform tags, and whether 'any' went.

    ``drop``: tags of the input the repaired wheel does not meet."""
    prefix, plats = filename[: -len(".whl")].rsplit("-", 1)
    old = plats.split(".")
    if not update:
        return filename, old, False
    remove = {f"linux_{t.rsplit('_', 1)[-1]}" for t in tags} | set(drop)
    # linux_<arch> for every arch spelling in the tags (x86_64 has an underscore)
    for t in tags:
        for part in ("x86_64", "i686", "aarch64", "armv7l", "ppc64le", "ppc64", "s390x", "riscv64", "loongarch64"):
            if t.endswith("_" + part):
                remove.add(f"linux_{part}")
    kept = [p for p in old if p not in remove]
    new = list(dict.fromkeys(kept + list(tags)))
    dropped_any = "any" in new and len(new) > 1
    if dropped_any:
        new.remove("any")
    return f"{prefix}-{'.'.join(sorted(new))}.whl", sorted(new), dropped_any


def _new_wheel_tags(old_tags: tuple[str, ...], tags: tuple[str, ...], remove: set[str]) -> tuple[str, ...]:
    pairs = list(dict.fromkeys("-".join(t.split("-")[:2]) for t in old_tags))
    unwanted = {f"{pair}-{plat}" for pair in pairs for plat in remove}
    out = [t for t in old_tags if t not in unwanted]
    for pair in pairs:
        for plat in tags:
            tag = f"{pair}-{plat}"
            if tag not in out:
                out.append(tag)
    return tuple(out)


def plan_repair(analysis: Analysis, options: RepairOptions = RepairOptions(), *, hash8=content_hash) -> RepairPlan:
    """The repair of one analysed wheel (``hash8`` names grafted libraries after their content)."""
    a = analysis.audit
    contents = analysis.contents
    in_purelib = sorted(m for m in contents.elf if in_data_purelib(m))
    if in_purelib:
        # as auditwheel: the binaries must be moved to platlib by the build
        raise RepairRefused(f"cannot repair {a.wheel}: ELF file{'s' if len(in_purelib) > 1 else ''} in .data/purelib "
                            f"({', '.join(in_purelib[:3])}{' ...' if len(in_purelib) > 3 else ''}): "
                            "build the wheel with its binaries in platlib")
    target, tags = _target_policy(analysis, options)
    # Never write a name claiming a tag the wheel does not meet: tags of the
    # input more compatible than what it reaches are dropped (auditwheel keeps them).
    reached = analysis.policies.get(tags[0])
    unmet = tuple(t for t in a.platforms if analysis.policies.reaches(reached, t) is False)
    if unmet and not options.update_tags:
        raise RepairRefused(f"cannot repair {a.wheel} with --no-update-tags: its name claims {', '.join(unmet)}, "
                            f"which it does not meet (it reaches {reached.name})")
    dist = os.path.basename(contents.path).split("-", 1)[0]
    lib_dir = f"{dist}{options.lib_sdir}"
    # Android's loader has no DT_RPATH inheritance to rely on: grafted
    # libraries are found through DT_RUNPATH, which it reads from API level 24.
    runpath = analysis.policies.libc == "android"
    policy_for_grafts = analysis.policies.get(tags[0])

    grafts: dict[str, Graft] = {}  # source real path -> graft
    by_soname: dict[str, str] = {}  # needed name -> new soname
    patches: list[Patch] = []
    shims: list[tuple[str, str]] = []
    # --include: each library is grafted under the name dlopen asks for (its
    # SONAME), what it needs as any graft; the files that name it in their
    # read-only data (else every extension module) get the RPATH entry.
    dlopen_users: set[str] = set()
    for name, tree in analysis.included.items():
        libs = external_refs(tree, policy_for_grafts).libs
        root = tree.needed[0] if tree.needed else None
        for soname, source in sorted(libs.items(), key=lambda kv: kv[0] != root):
            if source is None:  # refused above; keep the check local too
                raise RepairRefused(f"cannot repair {a.wheel}: {soname} (--include {name}) was not found")
            if source in grafts:
                continue
            lib = tree.libraries[soname]
            if soname == root:
                keep = lib.facts.soname or posixpath.basename(soname)
                taken = next((g for g in grafts.values() if g.new_soname == keep), None)
                if taken is not None:
                    raise UsageError(f"--include {name}: {taken.source} is grafted as {keep} already")
                grafts[source] = Graft(soname, source, f"{lib_dir}/{keep}", keep, found=lib.path, included=True)
                names = {keep, posixpath.basename(soname)}
                users = {m for m, f in contents.elf.items() if names & set(f.dlopen_hints)}
                dlopen_users |= users or set(analysis.trees) & {f.path for f in a.files if f.extension}
            else:
                new = grafted_name(source, hash8)
                grafts[source] = Graft(soname, source, f"{lib_dir}/{new}", new, found=lib.path)
            by_soname[soname] = grafts[source].new_soname
    provided: dict[str, str] = {}
    for member, tree in analysis.trees.items():
        libs = external_refs(tree, policy_for_grafts).libs
        replace, remove = [], []
        for soname, source in sorted(libs.items()):
            if LIBPYTHON_RE.match(soname):
                if soname in tree.facts.needed:
                    remove.append(soname)
                continue
            if source is None:  # refused above; keep the check local too
                raise RepairRefused(f"cannot repair {a.wheel}: {soname} was not found")
            if source not in grafts:
                new = grafted_name(source, hash8)
                grafts[source] = Graft(soname, source, f"{lib_dir}/{new}", new, found=tree.libraries[soname].path)
            by_soname[soname] = grafts[source].new_soname
            if soname in tree.facts.needed and soname != grafts[source].new_soname:
                replace.append((soname, grafts[source].new_soname))
        # provided libraries its search path does not lead to: their directories, where they install
        to_provider, mine = [], []
        for soname in tree.needed:
            lib = tree.libraries.get(soname)
            if lib is not None and lib.provided:
                owner = analysis.matched.owner(lib.realpath)
                where = member_name(lib.realpath)
                provided[soname] = f"{soname} from {owner[1].label} ({where})" if owner else f"{soname} ({where})"
                if lib.unreached:
                    to_provider.append(posixpath.dirname(where))
                    mine.append(soname)
        if to_provider and site_path(member) != member and not _is_script(member):
            raise RepairRefused(f"cannot repair {a.wheel}: {member} needs {', '.join(mine)} from another "
                                "wheel, and installs from .data/ (wheelvet judges such files where they sit in the "
                                "archive): build it into the wheel's root")
        dlopen = member in dlopen_users
        extra = bool(to_provider or dlopen)
        if not libs and not extra and not (options.strip and member in analysis.trees):
            continue
        new_member = None
        parts = member.split("/")
        if (libs or extra) and _is_script(member):
            # Scripts are not installed at a fixed place relative to platlib:
            # move the executable into platlib and leave a launcher behind.
            new_member = f"{dist}.scripts/{parts[2]}"
            shims.append((member, _script_shim(new_member)))
        rpath = None
        grafted = any(not LIBPYTHON_RE.match(s) for s in libs)
        if grafted or extra:
            kept = _kept_rpath_entries(tree.facts.rpath or tree.facts.runpath, posixpath.dirname(member), tree.libc)
            entries = [origin_entry(lib_dir, new_member or member)] if grafted or dlopen else []
            entries += [origin_entry(d, new_member or member) for d in to_provider]
            rpath = ":".join(dict.fromkeys(kept + entries))
            present, other = (tree.facts.runpath, tree.facts.rpath) if runpath else (tree.facts.rpath, tree.facts.runpath)
            if rpath == present and not other and not new_member:
                rpath = None  # already what it should be (a wheel repaired before)
        if not (replace or remove or rpath or new_member or options.strip):
            continue  # nothing to change: the member is copied as it is
        patches.append(Patch(member, new_member, tuple(replace), tuple(remove), rpath))

    if runpath and grafts:
        api = int(target.base.split("_")[1])
        if api < ANDROID_RUNPATH_API:
            raise RepairRefused(f"cannot repair {a.wheel}: it needs {', '.join(sorted(g.soname for g in grafts.values()))} "
                                f"grafted, found through DT_RUNPATH, which Android reads from API level "
                                f"{ANDROID_RUNPATH_API}; its tag {target.name} says {api}")
    final_grafts = []
    trees = [*analysis.trees.values(), *analysis.included.values()]
    for g in grafts.values():
        facts = next(lib.facts for t in trees for lib in t.libraries.values() if lib.realpath == g.source and lib.facts)
        replace = tuple((n, by_soname[n]) for n in facts.needed if n in by_soname and by_soname[n] != n)
        final_grafts.append(Graft(g.soname, g.source, g.member, g.new_soname, replace, "$ORIGIN" if replace else None,
                                  g.found, g.included))

    out_name, plats, dropped_any = _new_name(os.path.basename(contents.path), tags, options.update_tags, frozenset(unmet))
    wheel_tags = None
    # Binaries belong in platlib: a Root-Is-Purelib: true wheel with ELF files
    # at its root becomes a platlib wheel (nothing else changes where it installs
    # on systems where purelib and platlib are one directory).
    purelib = False if contents.root_is_purelib and any(not m.split("/", 1)[0].endswith(".data") for m in contents.elf) else None
    if options.update_tags:
        remove = {p for p in a.platforms if (p.startswith("linux_") or p in unmet) and p not in tags}
        if dropped_any:
            remove.add("any")
            purelib = False
        wheel_tags = _new_wheel_tags(contents.wheel_tags, tags, remove)
    strip = ()
    if options.strip:
        strip = tuple(sorted(analysis.trees)) + tuple(g.member for g in final_grafts)
    dist_info = next((m.split("/", 1)[0] for m in contents.members if m.count("/") == 1
                      and m.endswith("/WHEEL") and m.split("/", 1)[0].endswith(".dist-info")), None)
    sbom = f"{dist_info}/{SBOM_MEMBER}" if final_grafts and dist_info else None
    return RepairPlan(contents.path, target.name, tuple(tags), out_name, tuple(final_grafts), tuple(patches),
                      tuple(shims), wheel_tags, unmet, purelib, strip, sbom, runpath,
                      tuple(provided[s] for s in sorted(provided)))


def _is_script(member: str) -> bool:
    parts = member.split("/")
    return len(parts) == 3 and parts[0].endswith(".data") and parts[1] == "scripts"


def _script_shim(binary: str) -> str:
    return (
        "#!python\n# Launcher written by wheelvet repair: the real executable lives in platlib,\n"
        "# next to the libraries it was given an RPATH to.\n"
        "import os\nimport sys\nimport sysconfig\n\n"
        "if __name__ == \"__main__\":\n"
        f"    target = os.path.join(sysconfig.get_path(\"platlib\"), {binary!r})\n"
        "    os.execv(target, [target] + sys.argv[1:])\n"
    )


__all__ = ["Graft", "Patch", "RepairOptions", "RepairPlan", "content_hash", "grafted_name", "origin_entry", "plan_repair"]
