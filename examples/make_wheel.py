"""Pack an already-built extension module into a wheel, with nothing but zipfile.

Usage (run it with the *same* Python the extension was built for, because
the wheel tags are taken from the running interpreter):

    python make_wheel.py --name greeter --version 0.1.0 \
        --module build/greeter.cpython-311-x86_64-linux-gnu.so --outdir dist

A wheel is just a zip archive with a fixed layout (PEP 427 / the "binary
distribution format" spec).  For a single extension module it holds:

    greeter.cpython-311-x86_64-linux-gnu.so    the module, at the root
    greeter-0.1.0.dist-info/METADATA           name, version, summary
    greeter-0.1.0.dist-info/WHEEL              format version and tags
    greeter-0.1.0.dist-info/RECORD             sha256 + size of every file

No setuptools, no pip: this keeps the example's output small and fully
under our control, so every byte that `wheelvet show` reads is explained here.
"""

from __future__ import annotations

import argparse
import base64
import csv
import hashlib
import io
import os
import sys
import sysconfig
import time
import zipfile
from pathlib import Path

GENERATOR = "wheelvet-examples make_wheel.py"


def wheel_tags() -> tuple[str, str, str]:
    """(python tag, abi tag, platform tag) of the running CPython, e.g.
    ("cp311", "cp311", "linux_x86_64")."""
    if sys.implementation.name != "cpython":
        sys.exit("make_wheel.py: this example only knows CPython tags")
    py = f"cp{sys.version_info.major}{sys.version_info.minor}"
    # Free-threaded builds (3.13t and later) use a distinct ABI tag.
    abi = py + ("t" if sysconfig.get_config_var("Py_GIL_DISABLED") else "")
    # "linux-x86_64" -> "linux_x86_64": the plain, non-portable Linux tag.
    # Turning it into manylinux_2_17_x86_64 etc. is the repair tool's job.
    plat = sysconfig.get_platform().replace("-", "_").replace(".", "_")
    return py, abi, plat


def record_hash(data: bytes) -> str:
    """RECORD hash format: urlsafe base64 of the sha256 digest, no padding."""
    digest = hashlib.sha256(data).digest()
    return "sha256=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def zip_timestamp() -> tuple[int, int, int, int, int, int]:
    """Fixed timestamp so that two builds give byte-identical wheels.
    Honours SOURCE_DATE_EPOCH like most reproducible-build tools."""
    epoch = int(os.environ.get("SOURCE_DATE_EPOCH", "315532800"))  # 1980-01-01
    return time.gmtime(max(epoch, 315532800))[:6]  # zip cannot go before 1980


def build_wheel(name: str, version: str, module: Path, outdir: Path) -> Path:
    py, abi, plat = wheel_tags()
    tag = f"{py}-{abi}-{plat}"
    dist_info = f"{name}-{version}.dist-info"

    # Archive path -> content.  Order matters a little: by convention the
    # dist-info directory comes last, and RECORD is the very last file.
    files: dict[str, bytes] = {
        module.name: module.read_bytes(),
        f"{dist_info}/METADATA": (
            "Metadata-Version: 2.1\n"
            f"Name: {name}\n"
            f"Version: {version}\n"
            "Summary: wheelvet example: a C extension linked against libgreet.so.1\n"
        ).encode(),
        f"{dist_info}/WHEEL": (
            "Wheel-Version: 1.0\n"
            f"Generator: {GENERATOR}\n"
            "Root-Is-Purelib: false\n"  # platform-specific: contains a .so
            f"Tag: {tag}\n"
        ).encode(),
    }

    # RECORD: one CSV row "path,hash,size" per file; RECORD lists itself
    # with empty hash and size (it cannot contain its own hash).
    record_path = f"{dist_info}/RECORD"
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    for path, data in files.items():
        writer.writerow([path, record_hash(data), len(data)])
    writer.writerow([record_path, "", ""])
    files[record_path] = buf.getvalue().encode()

    outdir.mkdir(parents=True, exist_ok=True)
    wheel_path = outdir / f"{name}-{version}-{tag}.whl"
    with zipfile.ZipFile(wheel_path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for path, data in files.items():
            info = zipfile.ZipInfo(path, date_time=zip_timestamp())
            info.compress_type = zipfile.ZIP_DEFLATED
            # Unix permissions live in the high 16 bits of external_attr;
            # 0o100000 marks a regular file.
            mode = 0o755 if path == module.name else 0o644
            info.external_attr = (0o100000 | mode) << 16
            zf.writestr(info, data)
    return wheel_path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", required=True, help="distribution name, e.g. greeter")
    parser.add_argument("--version", required=True, help="e.g. 0.1.0")
    parser.add_argument("--module", required=True, type=Path, help="built extension file")
    parser.add_argument("--outdir", required=True, type=Path, help="where to write the .whl")
    args = parser.parse_args()
    print(build_wheel(args.name, args.version, args.module, args.outdir))


if __name__ == "__main__":
    main()
