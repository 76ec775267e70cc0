"""Carrying out a repair plan: patch, verify, write, verify again, rename.

:func:`apply_plan` copies the members it patches and the libraries it grafts
into a work directory, has the :class:`~wheelvet.repair.patcher.Patcher`
change them, checks every patched file for soundness and for the planned
result, writes the archive under a temporary name in the output directory
(unchanged members copied as compressed bytes, RECORD rewritten by
:mod:`wheelvet.records`), audits the written wheel again, and only then
renames it into place: a failure leaves nothing in the output directory.

A :class:`RepairSession` is what the repairs of one call share (``wheelvet
repair dist/*.whl``, the action's wheels): each distinct (input bytes, edit)
is patched, stripped and verified once, and each distinct new member is
compressed once (:class:`~wheelvet.zipout.DeflateCache`); every output is
byte for byte what repairing its wheel alone writes.
"""

from __future__ import annotations

import dataclasses
import filecmp
import hashlib
import logging
import os
import shutil
import stat
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from .. import reflate, scratch
from ..audit import Analysis, AuditOptions, analyze
from ..elf import ElfFacts, inspect_structure
from ..errors import RepairFailed, WheelvetError, stop_if_signalled
from ..records import digest_from_record, inconsistencies, record_form, record_hash, record_map, render_record
from ..wheelfile import read_wheel
from ..zipin import INFLATE_ERRORS, INFLATE_LIBRARY, MemberProblem, MemberStream, data_offset
from ..zipout import DeflateCache, NewMember, RawMember, write_zip
from .patcher import Edit, Patchelf, Patcher
from .plan import RepairPlan
from .sbom import OwnerLookup, build_sbom, file_sha256

log = logging.getLogger(__name__)


def _record_row(m: NewMember) -> tuple[str, str]:
    """RECORD's hash and size of a new member (its ``sha256``, which the
    member carries: it is also its key in the session's DeflateCache)."""
    return "sha256=" + record_form(m.sha256), str(m.size)


def _sha256_file(path: str) -> bytes:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.digest()


def _with_digest(m: NewMember) -> NewMember:
    if m.sha256 is not None:
        return m
    digest = hashlib.sha256(m.data).digest() if m.data is not None else _sha256_file(m.path)
    return dataclasses.replace(m, sha256=digest)


@dataclass(frozen=True)
class _Patched:
    """One ELF file as a repair made it: patched, stripped if asked, verified."""

    path: str  # in the session's directory; never changed once there
    sha256: bytes
    facts: ElfFacts


class RepairSession:
    """What the repairs of one call share, so that a wheelhouse costs about
    one wheel: the wheels of one release graft the same libraries (libxml2,
    libicu's 30 MB data library, OpenSSL), and each would patch and compress
    them again.

    * patched files, by (sha256 of the input bytes, the edit, strip, the
      patcher): identical input and identical edits give identical output
      (patchelf and strip are deterministic), so each is made and verified
      once;
    * compressed members, by (sha256 of the content, level): the session's
      :class:`~wheelvet.zipout.DeflateCache`.

    Facts of host libraries are cached per process already
    (:class:`wheelvet.resolve.HostFiles`).  Use it as a context manager (its
    files live in a temporary directory until :meth:`close`), and pass it to
    every :func:`apply_plan` (or :func:`wheelvet.repair.repair_wheel`) of
    the call.  One thread at a time.

    It also keeps the call's outputs apart from its inputs and from each
    other: an output never replaces an input of the call (:meth:`protect`
    names them; a repair's own input is always protected), and two inputs
    that repair to the same name do not overwrite each other.  Where the
    bytes would be the same, nothing is written (:meth:`unchanged`).
    """

    # What the patched files kept (uncompressed, in the session's temporary
    # directory) may add up to; past it nothing more is kept and later wheels
    # patch their own (the first wheels' grafts stay shared).  The compressed
    # copies have a bound of their own (DeflateCache.MAX_BYTES).
    MAX_PATCHED_BYTES = 2 << 30

    def __init__(self, wheels: int | None = None) -> None:
        """``wheels``: how many wheels the call repairs, where it is known.
        With one there is nothing to share, and no compressed copy is kept
        (one archive's twice-met contents are compressed once anyway)."""
        self._dir: str | None = None
        self.deflated = DeflateCache() if wheels is None or wheels > 1 else None
        self._patched: dict[tuple, _Patched] = {}
        self._patched_bytes = 0
        self.patched_hits = 0  # files not patched again (for -v and the tests)
        self._inputs: set[tuple[int, int]] = set()  # (st_dev, st_ino) of the call's inputs
        self._written: dict[str, str] = {}  # output (real path) -> the input it was made from (real path)
        self._unchanged: set[str] = set()  # outputs left as they were: the same bytes were there

    def protect(self, paths) -> None:
        """Name the call's inputs: no output of the call replaces one of them."""
        for path in paths:
            try:
                st = os.stat(path)
            except OSError:
                continue  # (reading it will say what is wrong with it)
            self._inputs.add((st.st_dev, st.st_ino))

    def unchanged(self, output: str) -> bool:
        """Whether ``output`` was left as it was (it already held the same bytes)."""
        return os.path.realpath(output) in self._unchanged

    def place(self, tmp: str, final: str, source: str) -> None:
        """Rename the finished ``tmp`` to ``final``, made from the input
        ``source``, unless that would replace an input of the call or an
        output an earlier wheel of the call wrote: then, if ``final``
        already holds the same bytes, nothing is written; otherwise it is
        refused, and ``final`` stays as it was."""
        key, origin = os.path.realpath(final), os.path.realpath(source)
        try:
            st = os.stat(final)
        except FileNotFoundError:
            st = None
        earlier = self._written.get(key)
        is_input = st is not None and ((st.st_dev, st.st_ino) in self._inputs or os.path.samefile(final, source))
        if is_input or (earlier is not None and st is not None):
            if _same_bytes(tmp, final):
                self._unchanged.add(key)
                log.info("%s already holds these bytes: nothing written", final)
                return
            name = os.path.basename(source)
            if earlier is not None and earlier != origin:
                raise RepairFailed(f"{name}: repairs to {os.path.basename(final)}, as {os.path.basename(earlier)} "
                                   "did earlier in this call; not written (the first is kept)")
            raise RepairFailed(f"{name}: the output {final} would replace an input; nothing written "
                               "(write the repaired wheels to another directory, -w)")
        stop_if_signalled()  # (no output takes its name once a stop was asked for)
        os.replace(tmp, final)
        self._written[key] = origin

    def __enter__(self) -> RepairSession:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self.deflated is not None:
            self.deflated.close()
        self._patched.clear()
        self._patched_bytes = 0
        if self._dir is not None:
            scratch.remove_work_dir(self._dir)
            self._dir = None

    def directory(self) -> str:
        if self._dir is None:
            self._dir = scratch.work_dir("session")
        return self._dir

    def find_patched(self, key: tuple) -> _Patched | None:
        found = self._patched.get(key)
        if found is not None:
            self.patched_hits += 1
        return found

    def keep_patched(self, key: tuple, work_path: str, facts: ElfFacts, data: bytes) -> _Patched:
        """Move a patched and verified work file (``data``: its bytes) into
        the session, under its key; once the files kept add up to
        MAX_PATCHED_BYTES, leave it where it is (the repair's own work
        directory) and keep nothing."""
        if key in self._patched:
            return self._patched[key]
        size = len(data)
        if self._patched_bytes + size > self.MAX_PATCHED_BYTES:
            return _Patched(work_path, hashlib.sha256(data).digest(), facts)
        self._patched_bytes += size
        path = os.path.join(self.directory(), f"patched-{len(self._patched)}")
        os.replace(work_path, path)  # (both in TMPDIR: a rename)
        kept = self._patched[key] = _Patched(path, hashlib.sha256(data).digest(), facts)
        return kept


def _date_time(epoch: str | None) -> tuple[int, int, int, int, int, int] | None:
    if epoch:
        try:
            return time.gmtime(max(int(epoch), 315532800))[:6]
        except (ValueError, OverflowError):
            raise WheelvetError(f"SOURCE_DATE_EPOCH={epoch!r} is not a number of seconds") from None
    return None


def _verify_file(path: str, member: str, *, soname: str | None, needed_absent=(), needed_present=(),
                 rpath: str | None = None, runpath: bool = False) -> tuple[ElfFacts, bytes]:
    """The patched file's facts and bytes, once it is sound and patched as planned."""
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
    if rpath is not None and not runpath and (facts.rpath != rpath or facts.runpath is not None):
        problems.append(f"RPATH is {facts.rpath!r} (RUNPATH {facts.runpath!r}), expected {rpath!r}")
    if rpath is not None and runpath and (facts.runpath != rpath or facts.rpath is not None):
        problems.append(f"RUNPATH is {facts.runpath!r} (RPATH {facts.rpath!r}), expected {rpath!r}")
    if problems:
        raise RepairFailed(f"patched {member} failed verification: " + "; ".join(problems))
    return facts, data


def plan_edits(plan: RepairPlan, paths: dict[str, str]) -> list[Edit]:
    """The edits of a plan, on the work copies ``paths`` (final member -> file)."""
    edits = [_patch_edit(plan, p, paths[p.target]) for p in plan.patches]
    edits += [_graft_edit(plan, g, paths[g.member]) for g in plan.grafts]
    return edits


def _patch_edit(plan: RepairPlan, p, path: str) -> Edit:
    return Edit(path, p.member, replace_needed=p.replace_needed, remove_needed=p.remove_needed, rpath=p.rpath,
                runpath=plan.runpath)


def _graft_edit(plan: RepairPlan, g, path: str) -> Edit:
    return Edit(path, f"{g.member} (grafted from {g.source})", soname=g.new_soname, replace_needed=g.replace_needed,
                rpath=g.rpath, clear_rpath=g.rpath is None, runpath=plan.runpath)


def _patcher_key(patcher: Patcher) -> tuple:
    """What tells two patchers' outputs apart: another class, another program
    (patchelf, lief-patchelf), another strip.  (Not the binary's path, which a
    Patchelf finds on its first use: the same program within a process.)"""
    return (type(patcher).__module__, type(patcher).__qualname__, getattr(patcher, "program", None),
            getattr(patcher, "strip_binary", None))


def apply_plan(plan: RepairPlan, analysis: Analysis, out_dir: str, *, level: int = -1,
               environ: dict | None = None, audit_options: AuditOptions | None = None,
               patcher: Patcher | None = None, owners: OwnerLookup | None = None,
               session: RepairSession | None = None, sources: dict | None = None) -> str:
    """Carry out ``plan``; returns the path of the verified output wheel.

    ``owners`` finds the package of each grafted library for the SBOM (by
    default the process's dpkg/rpm/apk lookup).  ``session`` shares patched
    files and compressed members with the other repairs of the call (the
    output is the same with or without it).  ``sources`` is
    :func:`read_sources` of the plan when the caller read it already (ahead
    of time); at the default level it is read here otherwise."""
    environ = dict(os.environ if environ is None else environ)
    _make_output_dir(out_dir)
    final = os.path.join(out_dir, plan.out_name)
    own_session = session is None
    session = session if session is not None else RepairSession(wheels=1)  # (this wheel only: nothing to share)
    tmp_out = work = None
    try:
        tmp_out = scratch.output_temporary(out_dir, plan.out_name)
        try:
            work = scratch.work_dir("repair")
        except OSError as exc:
            raise _scratch_failure(exc, None) from None
        new_facts = _apply(plan, analysis, tmp_out, work, level, environ, patcher or Patchelf(), owners, session,
                           sources)
        _verify_output(plan, analysis, tmp_out, audit_options or AuditOptions(environ=environ), new_facts)
        log.info("verified %s: it meets %s, its RECORD matches its files", plan.out_name, ", ".join(plan.tags))
        session.place(tmp_out, final, plan.wheel)
        return final
    except OSError as exc:
        raise _write_failure(exc, out_dir, tmp_out) from None
    finally:
        if work is not None:
            scratch.remove_work_dir(work)
        if tmp_out is not None:
            scratch.done(tmp_out)
        if own_session:
            session.close()


def _make_output_dir(out_dir: str) -> None:
    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as exc:
        raise RepairFailed(f"cannot create the output directory {out_dir}: {exc.strerror}") from None


def _write_failure(exc: OSError, out_dir: str, tmp: str | None) -> RepairFailed:
    ours = exc.filename is None or exc.filename == tmp or (
        os.path.dirname(str(exc.filename)) == out_dir and str(exc.filename).endswith(scratch.TMP_SUFFIX))
    where = out_dir if ours else exc.filename
    return RepairFailed(f"cannot write {where}: {exc.strerror or exc}")


def _scratch_failure(exc: OSError, work: str | None) -> RepairFailed:
    """A failure to make the work files: the temporary directory (TMPDIR) is
    named, not the output directory; a source that cannot be read, by its path."""
    top = scratch.temp_root()
    if exc.filename and not any(str(exc.filename).startswith(d + os.sep) for d in (top, work) if d):
        return RepairFailed(f"cannot read {exc.filename}: {exc.strerror or exc}")
    return RepairFailed(f"cannot write the work files in the temporary directory {top} (TMPDIR): "
                        f"{exc.strerror or exc}")


def _same_bytes(a: str, b: str) -> bool:
    try:
        return filecmp.cmp(a, b, shallow=False)
    except OSError:
        return False


def _apply(plan: RepairPlan, analysis: Analysis, tmp_out: str, work: str, level: int, environ: dict,
           patcher: Patcher, owners: OwnerLookup | None, session: RepairSession, sources: dict | None) -> dict:
    # The output's RECORD vouches for the members copied raw, so the input
    # must have been read with its RECORD hashes checked (read_wheel's default).
    if analysis.contents is None or not analysis.contents.verified:
        read_wheel(plan.wheel)
    changed: dict[str, str] = {}  # archive member (final name) -> its patched file
    digests: dict[str, bytes] = {}  # archive member -> sha256 of that file
    new_facts: dict[str, ElfFacts] = {}  # what the output's new ELF members hold, checked once
    with zipfile.ZipFile(plan.wheel) as zf:
        fixed = _date_time(environ.get("SOURCE_DATE_EPOCH"))
        files = [i for i in zf.infolist() if not i.is_dir()]
        newest = max((i.date_time for i in files), default=(1980, 1, 1, 0, 0, 0))
        targets = {p.member: p.target for p in plan.patches}
        stripped = {targets.get(m, m) for m in plan.strip}
        patcher_key = _patcher_key(patcher)

        # Each file to patch: its input bytes, its edit and what it must be
        # once patched; one the session has made from the same bytes with
        # the same edit is taken as it is.  (Written in TMPDIR: a failure
        # there names TMPDIR, not the output directory.)
        if sources is None:
            sources = reusable_sources(plan, analysis, level)
        try:
            pending = _prepare(plan, zf, work, stripped, patcher_key, session, changed, digests, new_facts, sources)
        except OSError as exc:
            raise _scratch_failure(exc, work) from None
        to_strip = [(dest, member) for member, _k, dest, _e, _c in pending if member in stripped]
        if to_strip:
            patcher.strip(to_strip)
        patcher.apply([edit for *_, edit, _c in pending])
        patched: dict[str, bytes] = {}  # member -> its patched bytes, for those whose input blocks are reused
        try:
            for member, key, dest, _edit, checks in pending:
                facts, data = _verify_file(dest, member, **checks)
                made = session.keep_patched(key, dest, facts, data)
                changed[member], digests[member], new_facts[member] = made.path, made.sha256, made.facts
                if member in sources:
                    patched[member] = data  # (not read from the file again)
        except OSError as exc:
            raise _scratch_failure(exc, work) from None

        elf = {**(analysis.contents.elf if analysis.contents is not None else {}), **new_facts}
        sbom = build_sbom(plan.out_name, [(g.found, g.source) for g in plan.grafts], owners) if plan.sbom else None
        if sbom is not None:
            log.info("sbom: %s (%d bytes)", plan.sbom, len(sbom))
        members = _members(plan, zf, files, changed, digests, fixed, newest, elf, sbom, sources, patched)
        with open(tmp_out, "wb") as out:
            write_zip(out, members, level=level, cache=session.deflated)
            out.flush()
            os.fsync(out.fileno())
    return new_facts


# What the input members kept for reuse (inflated, and as compressed) may add
# up to in one repair; past it, further members are deflated whole.
MAX_REUSE_BYTES = 768 << 20


def _input_blocks(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> reflate.Blocks | None:
    """A deflated member's stream and where its blocks start, once its size
    and CRC are what the directory says; None to read it the usual way."""
    if info.compress_type != zipfile.ZIP_DEFLATED or info.file_size > reflate.MAX_SIZE:
        return None
    fd = zf.fp.fileno()
    try:
        start = data_offset(lambda offset, n: os.pread(fd, n, offset), info)
    except MemberProblem:
        return None
    stream = os.pread(fd, info.compress_size, start)
    if len(stream) != info.compress_size:
        return None
    blocks = reflate.inflate_blocks(stream, info.file_size)
    if blocks is None or INFLATE_LIBRARY.crc32(blocks.data) & 0xFFFFFFFF != info.CRC:
        return None
    return blocks


@dataclass(frozen=True)
class Source:
    """A patched member's input: its deflate blocks and its bytes' sha256."""

    blocks: reflate.Blocks
    sha256: bytes


def _source(zf: zipfile.ZipFile, info: zipfile.ZipInfo, recorded: bytes | None) -> Source | None:
    blocks = _input_blocks(zf, info)
    if blocks is None:
        return None
    return Source(blocks, recorded if recorded is not None else hashlib.sha256(blocks.data).digest())


def _recorded_sha256(record: dict, info: zipfile.ZipInfo) -> bytes | None:
    """RECORD's sha256 of a member, where it gives one for the member's size."""
    entry = record.get(info.filename)
    if not entry or entry[1] != str(info.file_size) or not entry[0].startswith("sha256="):
        return None
    digest = digest_from_record(entry[0][len("sha256="):])
    return digest if digest is not None and len(digest) == 32 else None


def read_sources(plan: RepairPlan, verified: bool = False) -> dict[str, Source]:
    """The input deflate blocks of the members ``plan`` patches, by the
    member they become (those that can be had: deflated, within
    MAX_REUSE_BYTES together), for :func:`apply_plan` to keep what the patch
    leaves alone.  Read on two threads (zlib, called through ctypes, runs
    without the GIL); it only reads the input, so it may run while another
    wheel is being repaired.  ``verified``: the wheel was read with every
    member checked against RECORD, so RECORD's sha256 of a member is that
    of its bytes (they match its CRC again here) and is not computed again."""
    if not plan.patches or not reflate.available():
        return {}
    with zipfile.ZipFile(plan.wheel) as zf:
        record = _read_record(zf, f"{_dist_info(zf.namelist())}/RECORD") if verified else {}
        infos, held = [], 0
        for p in plan.patches:
            info = zf.getinfo(p.member)
            held += info.file_size + info.compress_size
            infos.append(info if held <= MAX_REUSE_BYTES else None)
        if sum(1 for i in infos if i is not None) > 1 and (os.cpu_count() or 1) > 1:
            with ThreadPoolExecutor(max_workers=2) as pool:
                found = list(pool.map(lambda i: i and _source(zf, i, _recorded_sha256(record, i)), infos))
        else:
            found = [i and _source(zf, i, _recorded_sha256(record, i)) for i in infos]
    return {p.target: f for p, f in zip(plan.patches, found) if f is not None}


def reusable_sources(plan: RepairPlan, analysis: Analysis, level: int) -> dict[str, Source]:
    """:func:`read_sources` of ``plan`` where its blocks can be kept: at the
    default level (one given outright deflates every new member anew)."""
    if level >= 0:
        return {}
    return read_sources(plan, analysis.contents is not None and analysis.contents.verified)


def _prepare(plan: RepairPlan, zf: zipfile.ZipFile, work: str, stripped: set, patcher_key: tuple,
             session: RepairSession, changed: dict, digests: dict, new_facts: dict,
             sources: dict) -> list:
    """The work files to patch (members read out, libraries copied in), with
    their keys, edits and checks; those the session made already are taken
    into ``changed``/``digests``/``new_facts`` instead.  A member whose input
    blocks are in ``sources`` is written from their bytes."""
    todo = []  # (member, key, work file, edit, checks)
    for i, p in enumerate(plan.patches):
        dest = os.path.join(work, f"m{i}")
        h = hashlib.sha256()
        source = sources.get(p.target)
        if source is not None:
            with open(dest, "wb") as out:
                out.write(source.blocks.data)
        else:
            # (inflated by zipin's fastest inflater, ISA-L where it is: a release's
            # extension modules are most of what each of its wheels must make anew)
            try:
                src = MemberStream(zf.fp.fileno(), zf.getinfo(p.member))
                with open(dest, "wb") as out:
                    while chunk := src.read(1 << 20):
                        h.update(chunk)
                        out.write(chunk)
                problem = src.finish()
            except (MemberProblem, *INFLATE_ERRORS) as exc:  # (the wheel changed since it was read)
                problem = str(exc)
            if problem:
                raise RepairFailed(f"{p.member} cannot be read again: {problem}")
        edit = _patch_edit(plan, p, dest)
        digest = source.sha256 if source is not None else h.digest()
        checks = dict(soname=None, needed_absent=[o for o, _ in p.replace_needed] + list(p.remove_needed),
                      needed_present=[n for _, n in p.replace_needed], rpath=p.rpath, runpath=plan.runpath)
        todo.append((p.target, digest, dest, edit, checks))
    for i, g in enumerate(plan.grafts):
        dest = os.path.join(work, f"g{i}")
        edit = _graft_edit(plan, g, dest)
        checks = dict(soname=g.new_soname, needed_present=[n for _, n in g.replace_needed], rpath=g.rpath,
                      runpath=plan.runpath)
        todo.append((g.member, bytes.fromhex(file_sha256(g.source)), dest, edit, checks, g.source))
    pending = []
    for member, digest, dest, edit, checks, *source in todo:
        key = (digest, dataclasses.replace(edit, path="", what=""), member in stripped, patcher_key)
        made = session.find_patched(key)
        if made is not None:
            changed[member], digests[member], new_facts[member] = made.path, made.sha256, made.facts
            log.info("%s: patched as in an earlier wheel of this call", member)
            continue
        if source:
            shutil.copyfile(source[0], dest)
            os.chmod(dest, 0o644 | stat.S_IWUSR)  # patchelf writes it; its mode in the wheel is member_mode's
        pending.append((member, key, dest, edit, checks))

    return pending


def _dist_info(names) -> str:
    return next(n.split("/", 1)[0] for n in names
                if n.split("/", 1)[0].endswith(".dist-info") and n.endswith("/WHEEL") and n.count("/") == 1)


EXECUTABLE, REGULAR = 0o755, 0o644


def member_mode(name: str, facts: ElfFacts | None, *, marked: int = 0, head: bytes = b"") -> int:
    """The mode bits of an output member: 0o755 for what is run as a program,
    0o644 for everything else, whatever the host's files or umask say.

    A program is an ELF executable (``ET_EXEC``, or any ELF file with a
    program interpreter: PIE programs), a script (``#!``, read from the
    content where wheelvet has it: new members), anything installed as a
    script (``<dist>.data/scripts/``), and a member the input wheel marked
    executable (any x bit).  A grafted library gets no ``marked`` bits: its
    host file's mode (0o644 on Debian, 0o755 on RHEL) is never looked at.
    """
    program = facts is not None and (facts.elf_type == 2 or facts.interpreter is not None)
    parts = name.split("/")
    script = len(parts) == 3 and parts[0].endswith(".data") and parts[1] == "scripts"
    return EXECUTABLE if program or script or head.startswith(b"#!") or marked & 0o111 else REGULAR


def _input_mode(info: zipfile.ZipInfo) -> int:
    """The permission bits an input member carries (none from a non-UNIX zip)."""
    return (info.external_attr >> 16) & 0o777 if info.create_system == 3 else 0


def _members(plan, zf, files, changed, digests, fixed, newest, elf, sbom, sources, patched):
    dist_info = _dist_info(i.filename for i in files)
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
        marked = _input_mode(info)
        if name in moved:
            data = shims[name].encode()
            entries[name] = NewMember(name, data, stamp, mode=member_mode(name, None, head=data))
        elif name == wheel_name and (plan.wheel_tags is not None or plan.root_is_purelib is not None):
            entries[name] = NewMember(name, _rewrite_wheel_file(zf.read(name), plan), stamp,
                                      mode=member_mode(name, None, marked=marked))
        elif name in changed:
            entries[name] = NewMember(name, patched.get(name), fixed or info.date_time,
                                      mode=member_mode(name, elf.get(name), marked=marked), path=changed[name],
                                      sha256=digests[name], reuse=_blocks(sources, name))
        else:
            entries[name] = RawMember(name, zf, info, fixed or info.date_time,
                                      mode=member_mode(name, elf.get(name), marked=marked))
    if sbom is not None:  # replaces an SBOM of that name in the input (as auditwheel does)
        entries[plan.sbom] = NewMember(plan.sbom, sbom, stamp, mode=member_mode(plan.sbom, None))
    for name, path in changed.items():
        if name not in entries:  # grafted libraries and executables moved out of .data/scripts
            moved_from = next((p.member for p in plan.patches if p.new_member == name), None)
            marked = _input_mode(zf.getinfo(moved_from)) if moved_from else 0
            entries[name] = NewMember(name, patched.get(name), stamp,
                                      mode=member_mode(name, elf.get(name), marked=marked),
                                      path=path, sha256=digests[name], reuse=_blocks(sources, name))

    # RECORD: hashes of copied members come from the input RECORD when it
    # lists the same size; anything else is hashed here.
    rows = []
    for name, m in list(entries.items()):
        if isinstance(m, NewMember):
            entries[name] = m = _with_digest(m)
            rows.append((name, *_record_row(m)))
        else:
            old = old_record.get(name)
            if old and old[1] == str(m.info.file_size) and old[0].startswith("sha256="):
                rows.append((name, old[0], old[1]))
            else:
                rows.append((name, record_hash(zf.read(m.info)), str(m.info.file_size)))
    # Sorted, with the .dist-info directory last (RECORD last of all).
    order = sorted(entries, key=lambda n: (n.split("/", 1)[0] == dist_info, n))
    members = [entries[n] for n in order]
    members.append(_with_digest(NewMember(record_name, render_record(rows, dist_info), stamp)))
    return members


def _blocks(sources: dict, name: str) -> reflate.Blocks | None:
    source = sources.get(name)
    return source.blocks if source is not None else None


def _read_record(zf: zipfile.ZipFile, name: str) -> dict[str, tuple[str, str]]:
    """RECORD as member -> (hash, size); read_wheel has already validated it."""
    try:
        return record_map(zf.read(name).decode("utf-8"))
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
    # (providers) every provided library within reach of the files that need it
    unreached = [f"{m} -> {p.path}" for p in audit.provided_libs for m in p.unreached]
    if unreached:
        raise RepairFailed("the repaired wheel's search paths do not lead to the libraries other wheels provide: "
                           + "; ".join(unreached[:5]))
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
        dist_info = _dist_info(sizes)
        record = _read_record(zf, f"{dist_info}/RECORD")
    problems = inconsistencies(record, sizes, dist_info)
    expected = {g.member for g in plan.grafts} | {p.new_member for p in plan.patches if p.new_member}
    problems += [f"{n} is missing" for n in sorted(expected - set(sizes))]
    if problems:
        raise RepairFailed("the repaired wheel is inconsistent: " + "; ".join(problems))


def copy_atomically(path: str, out_dir: str, session: RepairSession | None = None) -> str:
    """Copy the wheel at ``path`` into ``out_dir`` as it is (a pure or an
    already compliant wheel), by the same rules as a repaired one: never
    over an input, nothing written where the same bytes are there."""
    _make_output_dir(out_dir)
    final = os.path.join(out_dir, os.path.basename(path))
    own_session = session is None
    session = session if session is not None else RepairSession(wheels=1)  # (this wheel only: nothing to share)
    tmp = None
    try:
        tmp = scratch.output_temporary(out_dir, os.path.basename(path))
        shutil.copyfile(path, tmp)
        session.place(tmp, final, path)
    except OSError as exc:
        raise _write_failure(exc, out_dir, tmp) from None
    finally:
        if tmp is not None:
            scratch.done(tmp)
        if own_session:
            session.close()
    return final


__all__ = ["RepairSession", "apply_plan", "copy_atomically", "plan_edits", "read_sources", "reusable_sources"]
