"""Reading a wheel archive without unpacking it.

A wheel is opened once; its members are never written to disk.  The archive
is checked as a whole (:func:`check_archive`), then WHEEL, METADATA and
RECORD; then every member is inflated once (:mod:`wheelvet.zipin`), checked
against its CRC-32 and RECORD hash, and parsed from the same stream when it
starts with the ELF magic (``.py`` files never count as ELF), on both cores
when there is enough work to share.
"""

from __future__ import annotations

import os
import re
import struct
import zipfile
import zlib
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from email.parser import HeaderParser
from typing import Mapping

from packaging.tags import Tag
from packaging.utils import InvalidWheelFilename, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from .elf import ElfFacts, NotRegularFile, is_elf, open_regular, read_elf_stream
from .errors import InvalidElf, InvalidWheel
from .records import RecordProblem, check_record, parse_record
from .zipin import INFLATE_ERRORS, MemberProblem, MemberStream, check_layout

_LIBRARY_NAME = re.compile(r"\.so(\.\d+)*$")
_TAG_PART = re.compile(r"[A-Za-z0-9_]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")  # (one search per name: a loop over its characters cost torch 60 ms)

# Below this much ELF content a process pool costs more than it saves.
PARALLEL_MIN_BYTES = 24 << 20
# What reading one member costs beyond its bytes, in bytes of inflating and
# hashing (~20 us here: its stream, hash object, local reads, result).
MEMBER_COST = 16 << 10
BATCHES_PER_JOB = 16

# Limits past which an archive is refused as hostile (a decompression bomb,
# an absurd entry count).  The largest real wheels (PyTorch with CUDA) hold
# a few GiB in tens of thousands of entries.
MAX_ENTRIES = 200_000
MAX_MEMBER_SIZE = 8 << 30
MAX_TOTAL_SIZE = 32 << 30
MAX_RATIO = 1000  # uncompressed / compressed, for members over RATIO_FLOOR
RATIO_FLOOR = 64 << 20
# What all the ELF files of one wheel may hold together, so that the facts
# held in memory stay bounded whatever the number of files (torch, the
# largest real wheel here: 956 DT_NEEDED entries and 35,024 imported symbols
# in 136 ELF files; a wheel of 800 modules needing 25 libraries each would
# hold 20,000 DT_NEEDED entries).  The resolver's work has its own bound
# (resolve.RESOLVE_BASE_STEPS).
MAX_WHEEL_NEEDED = 1 << 18
MAX_WHEEL_IMPORTS = 1 << 18
MAX_WHEEL_IMPORT_NAME_BYTES = 32 << 20
# Each ELF member costs its parse, its tree and its share of the verdict
# (~100 us here, whatever its size): past this many, a wheel of tiny ELF
# files would take many times what a normal wheel of its size does.
MAX_ELF_MEMBERS = 1 << 12
# WHEEL, METADATA and RECORD are read whole: sizes past these are refused.
# (RECORD: 200,000 entries of ~300 bytes; METADATA: a long README.)
MAX_TEXT_SIZE = {"WHEEL": 1 << 20, "METADATA": 32 << 20, "RECORD": 64 << 20}
_S_IFMT, _S_IFLNK = 0o170000, 0o120000


def check_archive(zf: zipfile.ZipFile, filename: str, starts: dict[str, int] | None = None) -> None:
    """Refuse what no wheel may hold, naming every problem (at most a few).
    ``starts`` receives where each member's data begins (:func:`check_layout`)."""
    infos = zf.infolist()
    if len(infos) > MAX_ENTRIES:
        raise InvalidWheel(filename, f"{len(infos)} entries, more than the {MAX_ENTRIES} allowed")
    problems: list[tuple[str, str]] = []
    seen: set[str] = set()
    total = 0
    for info in infos:
        name = info.filename
        parts = name.split("/")
        if not name:
            problems.append(("", "a member with an empty name"))
            continue
        if name in seen:
            problems.append((name, "appears twice in the archive"))
        seen.add(name)
        if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
            problems.append((name, "absolute path"))
        elif ".." in parts:
            problems.append((name, "path leaves the wheel ('..')"))
        if "\\" in name:
            problems.append((name, "backslash in the path"))
        if "\0" in name:
            problems.append((name, "NUL in the path"))
        elif _CONTROL.search(name):
            problems.append((name, "control character in the path"))
        if (info.external_attr >> 16) & _S_IFMT == _S_IFLNK:
            problems.append((name, "symbolic link"))
        if info.flag_bits & 0x1:
            problems.append((name, "encrypted member"))
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            problems.append((name, f"compression method {info.compress_type} (wheels use stored or deflate)"))
        if info.file_size > MAX_MEMBER_SIZE:
            problems.append((name, f"declares {info.file_size} bytes, more than the {MAX_MEMBER_SIZE} allowed"))
        elif info.file_size > RATIO_FLOOR and info.file_size > MAX_RATIO * max(info.compress_size, 1):
            problems.append((name, f"compression ratio over {MAX_RATIO}:1 ({info.file_size} bytes from {info.compress_size}): a decompression bomb"))
        total += info.file_size
    if total > MAX_TOTAL_SIZE:
        problems.append(("", f"declares {total} bytes in all, more than the {MAX_TOTAL_SIZE} allowed"))
    if not problems:  # where each entry lies, once the entries themselves are sound
        problems += check_layout(zf.fp.fileno(), infos, starts)
    if problems:
        member, problem = problems[0]
        more = f" (and {len(problems) - 1} more problem{'s' if len(problems) > 2 else ''})" if len(problems) > 1 else ""
        raise InvalidWheel(filename, problem + more, member or None)


@dataclass(frozen=True)
class WheelName:
    filename: str
    distribution: str
    version: str
    build: tuple
    tags: frozenset[Tag]

    @property
    def platforms(self) -> tuple[str, ...]:
        return tuple(sorted({t.platform for t in self.tags}))


def parse_wheel_name(filename: str) -> WheelName:
    try:
        name, version, build, tags = parse_wheel_filename(filename)
    except InvalidWheelFilename as exc:
        raise InvalidWheel(filename, f"not a valid wheel file name ({exc})") from None
    for tag in tags:
        for part in (tag.interpreter, tag.abi, tag.platform):
            if not _TAG_PART.fullmatch(part):
                raise InvalidWheel(filename, f"not a valid wheel file name (the tag {str(tag)!r} holds characters "
                                             "other than letters, digits and '_')")
    return WheelName(filename, str(name), str(version), tuple(build), frozenset(tags))


@dataclass(frozen=True)
class WheelContents:
    """What an audit needs from the archive."""

    path: str
    name: WheelName
    root_is_purelib: bool
    wheel_tags: tuple[str, ...]  # Tag: lines of the WHEEL file
    members: tuple[str, ...]  # every file member, in archive order
    elf: Mapping[str, ElfFacts]  # ELF members -> facts
    verified: bool = False  # every member checked against its CRC and RECORD hash
    elf_bytes: int = 0  # the ELF members' size together (what bounds the work on them)
    requires_dist: tuple[str, ...] = ()  # METADATA's Requires-Dist lines, as written
    provides_extra: tuple[str, ...] = ()  # METADATA's Provides-Extra


def _read_wheel_metadata(zf: zipfile.ZipFile, wheel: WheelName) -> tuple[bool, tuple[str, ...], dict[str, tuple[str, str]], tuple]:
    dist_info = _check_dist_info_names(zf, wheel)
    member = f"{dist_info}/WHEEL"
    if member not in zf.NameToInfo:
        raise InvalidWheel(wheel.filename, "missing WHEEL file", member)
    msg = HeaderParser().parsestr(_read_text(zf, wheel, member, "WHEEL"))
    version = (msg.get("Wheel-Version") or "").strip()
    if not version:
        raise InvalidWheel(wheel.filename, "WHEEL file has no Wheel-Version", member)
    if not version.split(".")[0].isdigit() or int(version.split(".")[0]) != 1:
        raise InvalidWheel(wheel.filename, f"unsupported Wheel-Version {version!r}", member)
    purelib_text = (msg.get("Root-Is-Purelib") or "").strip().lower()
    if purelib_text not in ("true", "false"):
        raise InvalidWheel(wheel.filename, f"Root-Is-Purelib must be true or false, not {purelib_text!r}", member)
    requires = _check_metadata(zf, wheel, dist_info)
    digests = _check_record(zf, wheel, dist_info)
    return purelib_text == "true", tuple(t.strip() for t in msg.get_all("Tag") or ()), digests, requires


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _same_version(a: str, b: str) -> bool:
    try:
        return Version(a) == Version(b)
    except InvalidVersion:
        return a == b


def _check_dist_info_names(zf: zipfile.ZipFile, wheel: WheelName) -> str:
    """The wheel's one ``.dist-info`` directory, which must be named for the
    project and version of the file name; any ``.data`` directory must be
    named like it.  Installers that pick another directory (pip takes any
    ``*.data`` as data, installer only its own) would install other files,
    and a repair would rewrite the wrong RECORD."""
    tops = sorted({n.split("/", 1)[0] for n in zf.namelist() if "/" in n})
    dist_infos = [t for t in tops if t.endswith(".dist-info")]
    if not dist_infos:
        raise InvalidWheel(wheel.filename, "no .dist-info directory")
    if len(dist_infos) > 1:
        raise InvalidWheel(wheel.filename, f"{len(dist_infos)} .dist-info directories ({', '.join(dist_infos[:3])}"
                                           f"{', ...' if len(dist_infos) > 3 else ''}): a wheel has exactly one")
    dist_info = dist_infos[0]
    project, dash, version = dist_info[: -len(".dist-info")].rpartition("-")
    if not dash or not project:
        raise InvalidWheel(wheel.filename, "not named <project>-<version>.dist-info", dist_info)
    if _canonical(project) != _canonical(wheel.distribution):
        raise InvalidWheel(wheel.filename, f"is for the project {project!r}, the file name for {wheel.distribution!r}", dist_info)
    if not _same_version(version, wheel.version):
        raise InvalidWheel(wheel.filename, f"is for version {version!r}, the file name for {wheel.version!r}", dist_info)
    data_dir = dist_info[: -len(".dist-info")] + ".data"
    for top in tops:
        if top.endswith(".data") and top != data_dir:
            raise InvalidWheel(wheel.filename, f"a .data directory not named like {dist_info}", top)
    return dist_info


def _check_metadata(zf: zipfile.ZipFile, wheel: WheelName, dist_info: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Name and Version must be the file name's; returns (Requires-Dist, Provides-Extra)."""
    member = f"{dist_info}/METADATA"
    if member not in zf.NameToInfo:
        raise InvalidWheel(wheel.filename, "missing METADATA file", member)
    msg = HeaderParser().parsestr(_read_text(zf, wheel, member, "METADATA"))
    name, version = (msg.get("Name") or "").strip(), (msg.get("Version") or "").strip()
    if not name or not version:
        raise InvalidWheel(wheel.filename, "METADATA has no Name or no Version", member)
    if _canonical(name) != _canonical(wheel.distribution):
        raise InvalidWheel(wheel.filename, f"METADATA names {name!r}, the file name {wheel.distribution!r}", member)
    if not _same_version(version, wheel.version):
        raise InvalidWheel(wheel.filename, f"METADATA says version {version!r}, the file name {wheel.version!r}", member)
    return (tuple(" ".join(r.split()) for r in msg.get_all("Requires-Dist") or ()),
            tuple(e.strip() for e in msg.get_all("Provides-Extra") or ()))


def _read_text(zf: zipfile.ZipFile, wheel: WheelName, member: str, kind: str) -> str:
    """A metadata file, whole, within its size limit and as UTF-8."""
    size, limit = zf.getinfo(member).file_size, MAX_TEXT_SIZE[kind]
    if size > limit:
        raise InvalidWheel(wheel.filename, f"{kind} file of {size} bytes, more than the {limit} allowed", member)
    try:
        return zf.read(member).decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidWheel(wheel.filename, f"{kind} file is not UTF-8", member) from None


def _check_record(zf: zipfile.ZipFile, wheel: WheelName, dist_info: str) -> dict[str, tuple[str, str]]:
    """RECORD lists every file with its real size and a strong hash; returns
    member -> (algorithm, digest) for the content checks (:mod:`wheelvet.records`)."""
    member = f"{dist_info}/RECORD"
    if member not in zf.NameToInfo:
        raise InvalidWheel(wheel.filename, "missing RECORD file", member)
    sizes = {i.filename: i.file_size for i in zf.infolist() if not i.is_dir()}
    try:
        return check_record(parse_record(_read_text(zf, wheel, member, "RECORD")), sizes, dist_info)
    except RecordProblem as exc:
        raise InvalidWheel(wheel.filename, str(exc), member) from None


def read_wheel(path: str, *, jobs: int | None = None, filename: str | None = None, verify: bool = True,
               known: WheelContents | None = None, known_crcs: Mapping[str, tuple[int, int]] | None = None,
               facts_by_name: Mapping[str, ElfFacts] | None = None) -> WheelContents:
    """Open a wheel, check it, and parse its ELF members.

    Every member is inflated once, on both cores when there is enough work:
    with ``verify`` (the default) each is checked against its CRC-32, its
    declared size and its RECORD hash while the ELF ones are parsed from the
    same stream.  ``verify=False`` reads only what the ELF facts need (for a
    wheel this process has just written and hashed itself).

    ``filename`` names the wheel when ``path`` is not its real name (a
    temporary file being verified).  ``known`` is an earlier reading of a
    wheel whose members, where ``known_crcs`` gives them the same (CRC, size)
    as here, hold the same bytes (a repair copies them raw): their facts are
    reused instead of parsed again.  ``facts_by_name`` gives the facts of
    members the caller has just written from files it parsed (a repair's
    patched and grafted libraries)."""
    filename = filename or os.path.basename(path)
    name = parse_wheel_name(filename)
    fh = _open_wheel(path, filename)
    try:
        zf = zipfile.ZipFile(fh)
    except _ZIP_ERRORS as exc:
        fh.close()
        raise InvalidWheel(filename, f"not a zip archive ({_one_line(exc)})") from None
    try:
        with fh, zf:
            return _read_open_wheel(path, zf, filename, name, jobs, verify, known, known_crcs, facts_by_name)
    except _ZIP_ERRORS as exc:
        # whatever the zip layer trips on inside the archive
        raise InvalidWheel(filename, f"corrupt archive ({_one_line(exc)})") from None


def _open_wheel(path: str, filename: str):
    """The wheel's file, which must be a regular file (links followed): a
    fifo would hang the reader, a device (``/dev/zero``) would never end."""
    try:
        return open_regular(path)
    except FileNotFoundError:
        raise InvalidWheel(filename, "no such file") from None
    except NotRegularFile as exc:
        raise InvalidWheel(filename, "is a directory" if exc.kind == "a directory"
                           else f"not a regular file ({exc.kind})") from None
    except OSError as exc:
        raise InvalidWheel(filename, f"cannot be opened ({exc.strerror or exc})") from None


# What the zip and deflate layers raise on a damaged archive.
_ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError, UnicodeDecodeError,
               ValueError, OverflowError, struct.error, OSError)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200] or type(exc).__name__


def _read_open_wheel(path, zf, filename, name, jobs, verify, known, known_crcs, facts_by_name) -> WheelContents:
    starts: dict[str, int] = {}
    check_archive(zf, filename, starts)
    root_is_purelib, wheel_tags, digests, (requires, extras) = _read_wheel_metadata(zf, name)
    infos = [i for i in zf.infolist() if not i.is_dir()]
    reused: dict[str, ElfFacts] = dict(facts_by_name or {})
    if known is not None and known_crcs is not None:
        for info in infos:
            if info.filename in known.elf and known_crcs.get(info.filename) == (info.CRC, info.file_size):
                reused[info.filename] = known.elf[info.filename]
    # One task per member to inflate: every hashed member when verifying,
    # and every member that may be ELF (``.py`` files never are) unless its
    # facts are known.
    tasks = []
    for info in infos:
        digest = digests.get(info.filename) if verify else None
        sniff = info.filename not in reused and not info.filename.endswith(".py") and info.file_size >= 52
        if digest or sniff:
            tasks.append(_Task(info, digest, sniff, starts.get(info.filename)))
    results = _read_members_all(path, zf.fp.fileno(), tasks, jobs)
    if WHEEL_PROBLEM in results:
        raise InvalidWheel(filename, results[WHEEL_PROBLEM].problem)
    facts: dict[str, ElfFacts] = {}
    for info in infos:
        result = results.get(info.filename)
        if isinstance(result, _Failure):
            raise (InvalidElf(result.problem, f"{filename}: {info.filename}") if result.elf
                   else InvalidWheel(filename, result.problem, info.filename))
        if result is not None:
            facts[info.filename] = result
        elif info.filename in reused:
            facts[info.filename] = reused[info.filename]
        elif _LIBRARY_NAME.search(info.filename.rsplit("/", 1)[-1]):
            raise InvalidWheel(filename, "named like a shared library but is not an ELF file", info.filename)
    elf_bytes = sum(i.file_size for i in infos if i.filename in facts)
    return WheelContents(path, name, root_is_purelib, wheel_tags, tuple(i.filename for i in infos), facts, verify,
                         elf_bytes, requires, extras)


@dataclass(frozen=True)
class _Task:
    info: zipfile.ZipInfo  # where the member lies (the central directory's entry)
    digest: tuple[str, str] | None  # RECORD's (algorithm, value) to check
    sniff: bool  # parse it if it is ELF
    data_start: int | None = None  # where its data begins (its local header already checked), if known


class _Entry:
    """What a worker process needs of a member's central directory entry
    (the attributes of :class:`zipfile.ZipInfo` that :class:`MemberStream`
    and the local header check read)."""

    __slots__ = ("filename", "orig_filename", "flag_bits", "header_offset", "compress_size", "file_size", "CRC",
                 "compress_type")

    def __init__(self, *values) -> None:
        for name, value in zip(self.__slots__, values):
            setattr(self, name, value)


def _row(task: _Task) -> tuple:
    """A task as plain values, for a worker process: pickling 12,000 ZipInfo
    objects (torch) cost 0.07 s each way, a tuple of plain values 0.004 s."""
    i = task.info
    return (i.filename, i.orig_filename, i.flag_bits, i.header_offset, i.compress_size, i.file_size, i.CRC,
            i.compress_type, task.digest, task.sniff, task.data_start)


def _task(row: tuple) -> _Task:
    return _Task(_Entry(*row[:8]), *row[8:])  # type: ignore[arg-type]


@dataclass(frozen=True)
class _Failure:
    problem: str
    elf: bool  # an ELF structure problem (else the member's bytes)
    wheel: bool = False  # a problem of the whole wheel (a limit on all its files together)


class _Totals:
    """What the ELF files read so far hold together, against the wheel's limits."""

    def __init__(self) -> None:
        self.files = self.needed = self.imports = self.name_bytes = 0

    def add(self, facts: ElfFacts) -> str | None:
        self.files += 1
        if self.files > MAX_ELF_MEMBERS:
            return f"it holds more than the {MAX_ELF_MEMBERS} ELF files allowed"
        self.needed += len(facts.needed)
        self.imports += len(facts.imports)
        self.name_bytes += sum(len(s.name) for s in facts.imports)
        if self.needed > MAX_WHEEL_NEEDED:
            return f"its ELF files hold more than the {MAX_WHEEL_NEEDED} DT_NEEDED entries allowed in all"
        if self.imports > MAX_WHEEL_IMPORTS:
            return f"its ELF files import more than the {MAX_WHEEL_IMPORTS} symbols allowed in all"
        if self.name_bytes > MAX_WHEEL_IMPORT_NAME_BYTES:
            return (f"the names of the symbols its ELF files import add up to more than the "
                    f"{MAX_WHEEL_IMPORT_NAME_BYTES} bytes allowed")
        return None


def _identity(st: os.stat_result) -> tuple[int, int, int, int]:
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


def _read_members_again(path: str, identity: tuple[int, int, int, int], rows: list[tuple]) -> list[ElfFacts | _Failure | None]:
    """:func:`_read_members` in a worker process, which opens the wheel again
    (it must still be the same file), of the tasks ``rows`` (:func:`_row`)."""
    tasks = [_task(row) for row in rows]
    try:
        fh = open_regular(path)
    except OSError as exc:
        return [_Failure(f"could not be opened again ({exc.strerror or exc})", elf=False)] * len(tasks)
    with fh:
        if _identity(os.fstat(fh.fileno())) != identity:
            return [_Failure("the wheel changed while it was being read", elf=False)] * len(tasks)
        return _read_members(fh.fileno(), tasks)


def _read_members(fd: int, tasks: list[_Task]) -> list[ElfFacts | _Failure | None]:
    """Inflate each task's member once: check its size, CRC and hash, and
    parse it when it is ELF (runs in a worker process or inline)."""
    out: list[ElfFacts | _Failure | None] = []
    totals = _Totals()
    for task in tasks:
        info = task.info
        opened: list[MemberStream] = []

        def reopen() -> MemberStream:  # (a second pass over the member, for tables past what was kept)
            opened.append(MemberStream(fd, info, data_start=task.data_start))
            return opened[-1]

        try:
            stream = MemberStream(fd, info, task.digest, data_start=task.data_start)
            opened.append(stream)
            facts = None
            if task.sniff and is_elf(stream.peek(4)):
                first = [stream]
                facts = read_elf_stream(lambda: first.pop() if first else reopen(), info.file_size)
            problem = stream.finish() if task.digest else None
        except InvalidElf as exc:
            out.append(_Failure(exc.problem, elf=True))
            continue
        except MemberProblem as exc:
            problem = str(exc)
        except INFLATE_ERRORS as exc:
            problem = f"bad deflate data ({exc})"
        finally:
            for opened_stream in opened:  # (a finished one has nothing left to drop)
                opened_stream.close()
        out.append(_Failure(problem, elf=False) if problem else facts)
        if isinstance(facts, ElfFacts) and (too_much := totals.add(facts)):
            out.append(_Failure(too_much, elf=False, wheel=True))  # (the caller stops at it)
            break
    return out


def _read_members_all(path: str, fd: int, tasks: list[_Task], jobs: int | None) -> dict[str, ElfFacts | _Failure | None]:
    total = sum(t.info.file_size for t in tasks)
    jobs = jobs if jobs is not None else min(2, os.cpu_count() or 1)
    if jobs <= 1 or len(tasks) < 2 or total < PARALLEL_MIN_BYTES:
        return _results(tasks, _read_members(fd, tasks))
    # Largest first, in batches of similar cost, so both cores stay busy to
    # the end.  A member costs its bytes plus a fixed overhead (its stream,
    # its hash, its result): torch's last 11,000 members are small .py
    # files, 6% of its bytes but a fifth of its time, and weighed by bytes
    # alone they made one last batch that left a core idle for 0.3 s.
    def cost(task: _Task) -> int:
        return task.info.file_size + MEMBER_COST

    order = sorted(tasks, key=cost, reverse=True)
    batches: list[list[_Task]] = []
    target = max(sum(map(cost, tasks)) // (jobs * BATCHES_PER_JOB), 1 << 20)
    current: list[_Task] = []
    weight = 0
    for task in order:
        current.append(task)
        weight += cost(task)
        if weight >= target:
            batches.append(current)
            current, weight = [], 0
    if current:
        batches.append(current)
    out: dict[str, ElfFacts | _Failure | None] = {}
    identity = _identity(os.fstat(fd))
    totals = _Totals()
    try:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            rows = [[_row(t) for t in batch] for batch in batches]
            for batch, result in zip(batches, pool.map(_read_members_again, [path] * len(batches),
                                                       [identity] * len(batches), rows)):
                part = _results(batch, result)
                too_much = next((r for r in part.values() if isinstance(r, _Failure) and r.wheel), None)
                for facts in part.values():
                    if too_much is None and isinstance(facts, ElfFacts) and (problem := totals.add(facts)):
                        too_much = _Failure(problem, elf=False, wheel=True)
                if too_much is not None:
                    pool.shutdown(wait=False, cancel_futures=True)
                    return {WHEEL_PROBLEM: too_much}
                out.update(part)
    except BrokenProcessPool:
        # (not the wheel's fault: killed, or out of memory; a RuntimeError,
        # which would otherwise read as a corrupt archive)
        raise WorkerDied("a worker process reading the wheel died") from None
    return out


WHEEL_PROBLEM = "\0wheel"  # the key of a problem of the whole wheel (no member has this name)


def _results(tasks: list[_Task], out: list[ElfFacts | _Failure | None]) -> dict[str, ElfFacts | _Failure | None]:
    """Member name -> result; a problem of the whole wheel, if any, alone."""
    if out and isinstance(out[-1], _Failure) and out[-1].wheel:
        return {WHEEL_PROBLEM: out[-1]}
    return dict(zip((t.info.filename for t in tasks), out))


class WorkerDied(Exception):
    """A worker process ended before returning its members (an internal error)."""


__all__ = ["WheelContents", "WheelName", "parse_wheel_name", "read_wheel", "InvalidElf"]
