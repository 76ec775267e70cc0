"""Reading a wheel archive without unpacking it.

A wheel is opened once; its members are never written to disk.  Every
member (but ``.py`` files) is sniffed for the ELF magic, and the ELF ones are
parsed from their deflate streams (see :func:`wheelvet.elf.read_elf_stream`),
on both cores when there is enough work to share.
"""

from __future__ import annotations

import os
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

# Below this much ELF content a process pool costs more than it saves.
PARALLEL_MIN_BYTES = 24 << 20


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
    if msg.get("Wheel-Version") is None:
        raise InvalidWheel(wheel.filename, "WHEEL file has no Wheel-Version", member)
    purelib = (msg.get("Root-Is-Purelib") or "false").strip().lower() == "true"
    return purelib, tuple(t.strip() for t in msg.get_all("Tag") or ())


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
    except (zipfile.BadZipFile, OSError) as exc:
        raise InvalidWheel(filename, f"not a zip archive ({exc})") from None
    with zf:
        root_is_purelib, wheel_tags = _read_wheel_metadata(zf, name)
        members = []
        elf_members: list[zipfile.ZipInfo] = []
        for info in zf.infolist():
            if info.is_dir():
                continue
            members.append(info.filename)
            if info.filename.endswith(".py") or info.file_size < 52:  # smaller than any ELF header
                continue
            try:
                head = _sniff(zf, info)
            except (zipfile.BadZipFile, zlib.error, NotImplementedError, RuntimeError, OSError, EOFError) as exc:
                raise InvalidWheel(filename, f"cannot read member ({exc})", info.filename) from None
            if is_elf(head):
                elf_members.append(info)
        elf_names = {i.filename for i in elf_members}
        reused: dict[str, ElfFacts] = {n: f for n, f in (facts_by_name or {}).items() if n in elf_names}
        if known is not None and known_crcs is not None:
            for info in elf_members:
                if info.filename in known.elf and known_crcs.get(info.filename) == (info.CRC, info.file_size):
                    reused[info.filename] = known.elf[info.filename]
        try:
            parsed = _parse_all(path, zf, [i for i in elf_members if i.filename not in reused], jobs)
            facts = {i.filename: reused.get(i.filename) or parsed[i.filename] for i in elf_members}
        except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
            raise InvalidWheel(filename, f"corrupt archive ({exc})") from None
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
