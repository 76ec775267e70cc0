"""A zip writer for tests that need to say exactly where every byte goes.

``zipfile`` writes only sound archives; the zip-confusion tests need local
entries the central directory does not list, prefixes, gaps, headers that
disagree with the directory, data descriptors and zip64 records.  Each
archive is written from a list of :class:`Entry` and a few placement knobs;
with no knob set, the result is an ordinary archive ``zipfile`` reads.
"""

from __future__ import annotations

import base64
import hashlib
import struct
import zlib
from dataclasses import dataclass, field

LOCAL = struct.Struct("<4s5H3I2H")
CENTRAL = struct.Struct("<4s6H3I5H2I")
EOCD = struct.Struct("<4s4H2IH")


@dataclass
class Entry:
    name: str
    data: bytes
    method: int = 8  # 0 stored, 8 deflate
    descriptor: bool = False  # flag bit 3: CRC and sizes follow the data
    descriptor_sig: bool = True  # the optional PK\x07\x08 before a descriptor
    zip64: bool = False  # a zip64 extra field in the local header (sizes 0xFFFFFFFF there)
    local: dict = field(default_factory=dict)  # local header fields to overwrite: flags, method, crc, csize, usize
    central: dict = field(default_factory=dict)  # the same in the central directory entry
    descriptor_values: dict = field(default_factory=dict)  # crc, csize, usize to write in the descriptor
    after_data: bytes = b""  # bytes inside the compressed size, after the deflate stream

    def compressed(self) -> bytes:
        if self.method == 8:
            c = zlib.compressobj(6, zlib.DEFLATED, -15)
            return c.compress(self.data) + c.flush() + self.after_data
        return self.data + self.after_data


def local_entry(entry: Entry) -> tuple[bytes, dict]:
    """The local header, data and descriptor of ``entry``, and the values the
    central directory should hold for it."""
    comp = entry.compressed()
    name = entry.name.encode()
    values = dict(flags=0x800 | (0x8 if entry.descriptor else 0), method=entry.method, crc=zlib.crc32(entry.data),
                  csize=len(comp), usize=len(entry.data))
    head = dict(values)
    if entry.descriptor:
        head.update(crc=0, csize=0, usize=0)
    extra = b""
    if entry.zip64:
        extra = struct.pack("<HHQQ", 1, 16, head["usize"], head["csize"])
        head.update(csize=0xFFFFFFFF, usize=0xFFFFFFFF)
    head.update(entry.local)
    out = LOCAL.pack(b"PK\x03\x04", 45 if entry.zip64 else 20, head["flags"], head["method"], 0, 0x21,
                     head["crc"], head["csize"], head["usize"], len(name), len(extra)) + name + extra + comp
    if entry.descriptor:
        d = {k: values[k] for k in ("crc", "csize", "usize")}
        d.update(entry.descriptor_values)
        fmt = "<IQQ" if entry.zip64 else "<III"
        out += (b"PK\x07\x08" if entry.descriptor_sig else b"") + struct.pack(fmt, d["crc"], d["csize"], d["usize"])
    values.update(entry.central)
    return out, values


def build(entries: list[Entry], *, hidden: dict[int, bytes] | None = None, prefix: bytes = b"",
          prefix_counted: bool = False, between_cd_and_end: bytes = b"", after: bytes = b"", comment: bytes = b"",
          central_order: list[int] | None = None, count: int | None = None, zip64_end: bool = False,
          locator_offset: int | None = None) -> bytes:
    """An archive of ``entries``.

    ``hidden[i]``: bytes before local entry ``i`` (``len(entries)``: before the
    central directory) that the directory does not list.  ``prefix``: bytes
    before everything; the directory's offsets count from after them unless
    ``prefix_counted``.  ``central_order``: the directory's order of the
    entries.  ``count``: the entry count the end record claims.
    """
    hidden = hidden or {}
    body = bytearray()
    offsets, values = [], []
    base = len(prefix) if prefix_counted else 0
    for i, entry in enumerate(entries):
        body += hidden.get(i, b"")
        offsets.append(base + len(body))
        data, v = local_entry(entry)
        values.append(v)
        body += data
    body += hidden.get(len(entries), b"")
    cd = bytearray()
    for i in central_order if central_order is not None else range(len(entries)):
        v, name = values[i], entries[i].name.encode()
        cd += CENTRAL.pack(b"PK\x01\x02", 20, 20, v["flags"], v["method"], 0, 0x21, v["crc"], v["csize"], v["usize"],
                           len(name), 0, 0, 0, 0, 0o644 << 16, offsets[i]) + name
    cd_offset = base + len(body)
    n = len(entries) if count is None else count
    tail = bytes(between_cd_and_end)
    if zip64_end:
        record_at = cd_offset + len(cd) + len(tail)
        tail += struct.pack("<4sQ2H2I4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, n, n, len(cd), cd_offset)
        tail += struct.pack("<4sIQI", b"PK\x06\x07", 0, record_at if locator_offset is None else locator_offset, 1)
    end = EOCD.pack(b"PK\x05\x06", 0, 0, n, n, len(cd), cd_offset, len(comment)) + comment
    return prefix + bytes(body) + bytes(cd) + tail + end + after


def record_row(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def wheel_entries(files: dict[str, bytes], *, project: str = "pkg", version: str = "1.0",
                  tag: str = "cp311-cp311-linux_x86_64", **entry_options) -> list[Entry]:
    """Entries of a sound wheel holding ``files`` (a dist-info and a RECORD
    that lists them rightly); ``entry_options`` apply to every entry."""
    info = f"{project}-{version}.dist-info"
    members = dict(files)
    members[f"{info}/WHEEL"] = f"Wheel-Version: 1.0\nRoot-Is-Purelib: false\nTag: {tag}\n".encode()
    members[f"{info}/METADATA"] = f"Metadata-Version: 2.1\nName: {project}\nVersion: {version}\n".encode()
    members[f"{info}/RECORD"] = ("\n".join([record_row(n, d) for n, d in members.items()] + [f"{info}/RECORD,,"])
                                 + "\n").encode()
    return [Entry(name, data, **entry_options) for name, data in members.items()]
