"""RECORD (PEP 376, PEP 427): every rule about it, in one place.

Reading: :func:`parse_record` turns the text into rows and
:func:`check_record` validates them against the archive's files (every file
listed once, with its real size and a sha256-or-stronger hash), returning the
digests the member checks compare against.  Writing: :func:`record_hash`
hashes content as RECORD writes it and :func:`render_record` writes the file
(sorted, ``.dist-info`` last, RECORD's own row last of all).
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
from typing import Iterable, Mapping

# RECORD hashes PEP 376/427 accept: sha256 or stronger.
RECORD_ALGORITHMS = frozenset({"sha256", "sha384", "sha512", "sha3_256", "sha3_384", "sha3_512", "blake2b", "blake2s"})
WRITE_ALGORITHM = "sha256"
CHUNK = 1 << 20


class RecordProblem(ValueError):
    """RECORD is not what the archive holds."""


def record_digest(data_hash) -> str:
    """RECORD's form of a digest: urlsafe base64 without padding."""
    return record_form(data_hash.digest())


def record_form(digest: bytes) -> str:
    """RECORD's form of digest bytes (:func:`record_digest` of a hash object)."""
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def digest_from_record(value: str) -> bytes | None:
    """The digest bytes of RECORD's urlsafe-base64 form (the inverse of
    :func:`record_form`); characters outside the alphabet are skipped, as
    base64 decoding does, so a caller checks the length; None where what is
    left cannot be decoded."""
    try:
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except ValueError:
        return None


def record_hash(data: bytes) -> str:
    """``sha256=<digest>`` of ``data``."""
    return f"{WRITE_ALGORITHM}=" + record_digest(hashlib.new(WRITE_ALGORITHM, data))


def record_hash_file(path: str) -> tuple[str, int]:
    """``sha256=<digest>`` and the size of a file, read in chunks."""
    h, size = hashlib.new(WRITE_ALGORITHM), 0
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
            size += len(chunk)
    return f"{WRITE_ALGORITHM}=" + record_digest(h), size


def unhashed(dist_info: str) -> frozenset[str]:
    """The files RECORD lists without a hash: itself and its signatures."""
    return frozenset(f"{dist_info}/{n}" for n in ("RECORD", "RECORD.jws", "RECORD.p7s"))


def parse_record(text: str) -> list[list[str]]:
    """RECORD's rows, blank lines dropped; :class:`RecordProblem` when it is not CSV."""
    try:
        return [row for row in csv.reader(io.StringIO(text)) if row]
    except csv.Error as exc:
        raise RecordProblem(f"RECORD is not readable CSV ({exc})") from None


def check_record(rows: list[list[str]], sizes: Mapping[str, int], dist_info: str) -> dict[str, tuple[str, str]]:
    """Validate RECORD's rows against the archive's files (name -> size):
    every file listed once, with its size and a strong hash.  Returns
    member -> (algorithm, digest); raises :class:`RecordProblem`."""
    skip = unhashed(dist_info)
    digests: dict[str, tuple[str, str]] = {}
    listed: dict[str, list[str]] = {}
    for n, row in enumerate(rows, 1):
        if len(row) != 3:
            raise RecordProblem(f"RECORD line {n} has {len(row)} fields, not 3")
        path, digest, size = row
        if listed.setdefault(path, row) != row:
            raise RecordProblem(f"RECORD lists {path} twice, differently")
        if path not in sizes:
            raise RecordProblem(f"RECORD lists {path}, which the archive does not hold")
        if path in skip:
            continue
        algo, _, value = digest.partition("=")
        if not value:
            raise RecordProblem(f"RECORD has no hash for {path}")
        if algo not in RECORD_ALGORITHMS:
            raise RecordProblem(f"RECORD hashes {path} with {algo!r} (sha256 or stronger required)")
        if size != str(sizes[path]):
            raise RecordProblem(f"RECORD says {path} has {size or 'no'} bytes, the archive {sizes[path]}")
        digests[path] = (algo, value)
    unlisted = sorted(set(sizes) - set(listed) - skip)
    if unlisted:
        raise RecordProblem(f"RECORD does not list {unlisted[0]}" + (f" and {len(unlisted) - 1} more" if len(unlisted) > 1 else ""))
    return digests


def record_map(text: str) -> dict[str, tuple[str, str]]:
    """RECORD as member -> (hash, size), for a RECORD already checked."""
    return {row[0]: (row[1], row[2]) for row in parse_record(text) if len(row) >= 3}


def render_record(rows: Iterable[tuple[str, str, str]], dist_info: str) -> bytes:
    """RECORD's bytes: rows sorted with the ``.dist-info`` directory last, and
    RECORD's own row (no hash, no size) last of all."""
    def last_dist_info(row: tuple[str, str, str]) -> tuple[bool, str]:
        return row[0].split("/", 1)[0] == dist_info, row[0]

    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    for row in sorted(rows, key=last_dist_info):
        writer.writerow(row)
    writer.writerow((f"{dist_info}/RECORD", "", ""))
    return buf.getvalue().encode()


def inconsistencies(record: Mapping[str, tuple[str, str]], sizes: Mapping[str, int], dist_info: str) -> list[str]:
    """How a RECORD this process wrote differs from the archive's files (at most a few)."""
    problems = []
    listed = set(record) | {f"{dist_info}/RECORD"}
    if listed != set(sizes):
        problems.append(f"RECORD and archive differ on {sorted(listed ^ set(sizes))[:5]}")
    problems += [f"RECORD size of {n} is {record[n][1]}, the file has {sizes[n]}"
                 for n in record if n in sizes and n not in unhashed(dist_info) and record[n][1] != str(sizes[n])][:5]
    return problems


__all__ = ["RECORD_ALGORITHMS", "RecordProblem", "check_record", "digest_from_record", "inconsistencies", "parse_record",
           "record_digest", "record_form", "record_hash", "record_hash_file", "record_map", "render_record", "unhashed"]
