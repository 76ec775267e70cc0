"""Reading a wheel archive without unpacking it.

A wheel is opened once; its members are never written to disk.  Every
member (but ``.py`` files) is sniffed for the ELF magic, and the ELF ones are
parsed from their deflate streams (see :func:`wheelvet.elf.read_elf_stream`),
on both cores when there is enough work to share.
"""

from __future__ import annotations

import csv
import io
import os
import re
import struct
import zipfile
import zlib
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from email.parser import HeaderParser
from typing import Mapping

from packaging.tags import Tag
from packaging.utils import InvalidWheelFilename, parse_wheel_filename

from .elf import ElfFacts, is_elf, read_elf_stream
from .errors import InvalidElf, InvalidWheel

_LIBRARY_NAME = re.compile(r"\.so(\.\d+)*$")

# Below this much ELF content a process pool costs more than it saves.
PARALLEL_MIN_BYTES = 24 << 20

# Limits past which an archive is refused as hostile (a decompression bomb,
# an absurd entry count).  The largest real wheels (PyTorch with CUDA) hold
# a few GiB in tens of thousands of entries.
MAX_ENTRIES = 200_000
MAX_MEMBER_SIZE = 8 << 30
MAX_TOTAL_SIZE = 32 << 30
MAX_RATIO = 1000  # uncompressed / compressed, for members over RATIO_FLOOR
RATIO_FLOOR = 64 << 20
_S_IFMT, _S_IFLNK = 0o170000, 0o120000


def check_archive(zf: zipfile.ZipFile, filename: str) -> None:
    """Refuse what no wheel may hold, naming every problem (at most a few)."""
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


def _sniff(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    with zf.open(info) as f:
        return f.read(4)


def _parse_members(path: str, names: list[str]) -> list[ElfFacts]:
    """Parse the named ELF members (runs in a worker process or inline)."""
    wheel = os.path.basename(path)
    out = []
    with zipfile.ZipFile(path) as zf:
        for name in names:
            info = zf.getinfo(name)
            out.append(read_elf_stream(lambda: zf.open(info), info.file_size, f"{wheel}: {name}"))
    return out


def _read_wheel_metadata(zf: zipfile.ZipFile, wheel: WheelName) -> tuple[bool, tuple[str, ...]]:
    dist_infos = {n.split("/", 1)[0] for n in zf.namelist() if n.split("/", 1)[0].endswith(".dist-info")}
    if not dist_infos:
        raise InvalidWheel(wheel.filename, "no .dist-info directory")
    candidates = sorted(d for d in dist_infos if f"{d}/WHEEL" in zf.NameToInfo)
    if not candidates:
        raise InvalidWheel(wheel.filename, "missing WHEEL file", f"{sorted(dist_infos)[0]}/WHEEL")
    member = f"{candidates[0]}/WHEEL"
    try:
        text = zf.read(member).decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidWheel(wheel.filename, "WHEEL file is not UTF-8", member) from None
    msg = HeaderParser().parsestr(text)
    version = (msg.get("Wheel-Version") or "").strip()
    if not version:
        raise InvalidWheel(wheel.filename, "WHEEL file has no Wheel-Version", member)
    if not version.split(".")[0].isdigit() or int(version.split(".")[0]) != 1:
        raise InvalidWheel(wheel.filename, f"unsupported Wheel-Version {version!r}", member)
    purelib_text = (msg.get("Root-Is-Purelib") or "").strip().lower()
    if purelib_text not in ("true", "false"):
        raise InvalidWheel(wheel.filename, f"Root-Is-Purelib must be true or false, not {purelib_text!r}", member)
    _check_metadata(zf, wheel, candidates[0])
    _check_record(zf, wheel, candidates[0])
    return purelib_text == "true", tuple(t.strip() for t in msg.get_all("Tag") or ())


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _check_metadata(zf: zipfile.ZipFile, wheel: WheelName, dist_info: str) -> None:
    member = f"{dist_info}/METADATA"
    if member not in zf.NameToInfo:
        raise InvalidWheel(wheel.filename, "missing METADATA file", member)
    try:
        msg = HeaderParser().parsestr(zf.read(member).decode("utf-8"))
    except UnicodeDecodeError:
        raise InvalidWheel(wheel.filename, "METADATA file is not UTF-8", member) from None
    name, version = (msg.get("Name") or "").strip(), (msg.get("Version") or "").strip()
    if not name or not version:
        raise InvalidWheel(wheel.filename, "METADATA has no Name or no Version", member)
    if _canonical(name) != _canonical(wheel.distribution):
        raise InvalidWheel(wheel.filename, f"METADATA names {name!r}, the file name {wheel.distribution!r}", member)


def _check_record(zf: zipfile.ZipFile, wheel: WheelName, dist_info: str) -> None:
    """RECORD lists every file with its real size (hashes: see docs/limits.md)."""
    member = f"{dist_info}/RECORD"
    if member not in zf.NameToInfo:
        raise InvalidWheel(wheel.filename, "missing RECORD file", member)
    try:
        rows = list(csv.reader(io.StringIO(zf.read(member).decode("utf-8"))))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise InvalidWheel(wheel.filename, f"RECORD is not readable CSV ({exc})", member) from None
    sizes = {i.filename: i.file_size for i in zf.infolist() if not i.is_dir()}
    listed = set()
    for n, row in enumerate(rows, 1):
        if not row:
            continue
        if len(row) != 3:
            raise InvalidWheel(wheel.filename, f"RECORD line {n} has {len(row)} fields, not 3", member)
        path, digest, size = row
        listed.add(path)
        if path not in sizes:
            raise InvalidWheel(wheel.filename, f"RECORD lists {path}, which the archive does not hold", member)
        if path == member or path.endswith((".dist-info/RECORD.jws", ".dist-info/RECORD.p7s")):
            continue
        if not digest or "=" not in digest:
            raise InvalidWheel(wheel.filename, f"RECORD has no hash for {path}", member)
        if size != str(sizes[path]):
            raise InvalidWheel(wheel.filename, f"RECORD says {path} has {size or 'no'} bytes, the archive {sizes[path]}", member)
    unlisted = sorted(set(sizes) - listed - {member, f"{dist_info}/RECORD.jws", f"{dist_info}/RECORD.p7s"})
    if unlisted:
        raise InvalidWheel(wheel.filename, f"RECORD does not list {unlisted[0]}" + (f" and {len(unlisted) - 1} more" if len(unlisted) > 1 else ""), member)


def read_wheel(path: str, *, jobs: int | None = None, filename: str | None = None,
               known: WheelContents | None = None, known_crcs: Mapping[str, tuple[int, int]] | None = None,
               facts_by_name: Mapping[str, ElfFacts] | None = None) -> WheelContents:
    """Open a wheel and parse its ELF members.

    ``filename`` names the wheel when ``path`` is not its real name (a
    temporary file being verified).  ``known`` is an earlier reading of a
    wheel whose members, where ``known_crcs`` gives them the same (CRC, size)
    as here, hold the same bytes (a repair copies them raw): their facts are
    reused instead of parsed again.  ``facts_by_name`` gives the facts of
    members the caller has just written from files it parsed (a repair's
    patched and grafted libraries)."""
    filename = filename or os.path.basename(path)
    name = parse_wheel_name(filename)
    try:
        zf = zipfile.ZipFile(path)
    except FileNotFoundError:
        raise InvalidWheel(filename, "no such file") from None
    except IsADirectoryError:
        raise InvalidWheel(filename, "is a directory") from None
    except _ZIP_ERRORS as exc:
        raise InvalidWheel(filename, f"not a zip archive ({_one_line(exc)})") from None
    try:
        with zf:
            return _read_open_wheel(path, zf, filename, name, jobs, known, known_crcs, facts_by_name)
    except _ZIP_ERRORS as exc:
        # whatever the zip layer trips on inside the archive
        raise InvalidWheel(filename, f"corrupt archive ({_one_line(exc)})") from None


# What the zip and deflate layers raise on a damaged archive.
_ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError, UnicodeDecodeError,
               ValueError, OverflowError, struct.error, OSError)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200] or type(exc).__name__


def _read_open_wheel(path, zf, filename, name, jobs, known, known_crcs, facts_by_name) -> WheelContents:
    check_archive(zf, filename)
    root_is_purelib, wheel_tags = _read_wheel_metadata(zf, name)
    members = []
    elf_members: list[zipfile.ZipInfo] = []
    for info in zf.infolist():
        if info.is_dir():
            continue
        members.append(info.filename)
        if info.filename.endswith(".py"):
            continue
        head = b""
        if info.file_size >= 52:  # smaller than any ELF header: not ELF
            try:
                head = _sniff(zf, info)
            except _ZIP_ERRORS as exc:
                raise InvalidWheel(filename, f"cannot read member ({_one_line(exc)})", info.filename) from None
        if is_elf(head):
            elf_members.append(info)
        elif _LIBRARY_NAME.search(info.filename.rsplit("/", 1)[-1]):
            raise InvalidWheel(filename, "named like a shared library but is not an ELF file", info.filename)
    elf_names = {i.filename for i in elf_members}
    reused: dict[str, ElfFacts] = {n: f for n, f in (facts_by_name or {}).items() if n in elf_names}
    if known is not None and known_crcs is not None:
        for info in elf_members:
            if info.filename in known.elf and known_crcs.get(info.filename) == (info.CRC, info.file_size):
                reused[info.filename] = known.elf[info.filename]
    parsed = _parse_all(path, zf, [i for i in elf_members if i.filename not in reused], jobs)
    facts = {i.filename: reused.get(i.filename) or parsed[i.filename] for i in elf_members}
    return WheelContents(path, name, root_is_purelib, wheel_tags, tuple(members), facts)


def _parse_all(path: str, zf: zipfile.ZipFile, infos: list[zipfile.ZipInfo], jobs: int | None) -> dict[str, ElfFacts]:
    total = sum(i.file_size for i in infos)
    jobs = jobs if jobs is not None else min(2, os.cpu_count() or 1)
    if jobs <= 1 or len(infos) < 2 or total < PARALLEL_MIN_BYTES:
        wheel = os.path.basename(path)
        return {i.filename: read_elf_stream(lambda i=i: zf.open(i), i.file_size, f"{wheel}: {i.filename}") for i in infos}
    # Largest first, in batches of similar weight, so both cores stay busy.
    order = sorted(infos, key=lambda i: i.file_size, reverse=True)
    batches: list[list[str]] = []
    target = max(total // (jobs * 8), 1 << 20)
    current: list[str] = []
    weight = 0
    for info in order:
        current.append(info.filename)
        weight += info.file_size
        if weight >= target:
            batches.append(current)
            current, weight = [], 0
    if current:
        batches.append(current)
    out: dict[str, ElfFacts] = {}
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        for names, result in zip(batches, pool.map(_parse_members, [path] * len(batches), batches)):
            out.update(zip(names, result))
    # Keep archive order for reproducible output.
    return {i.filename: out[i.filename] for i in infos}


__all__ = ["WheelContents", "WheelName", "parse_wheel_name", "read_wheel", "InvalidElf"]
