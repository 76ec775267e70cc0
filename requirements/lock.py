"""Write requirements/action.txt: the pins of action.in, each with the hashes of its wheels.

The image installs its Python packages with ``pip install --require-hashes --only-binary=:all:``.
A pin's hashes must cover the wheel that pip, in each of the images the Dockerfile builds
(every base policy on amd64 and arm64, CPython 3.12), chooses for it. This script asks pip for
exactly that wheel: ``pip download`` with the interpreter, ABI and platform tags of each image,
in the order pip in that image prefers them, and records the sha256 of what it fetched.

    python requirements/lock.py            # rewrite requirements/action.txt from action.in
    python requirements/lock.py --check    # and resolve every image's install from the result

``--check`` runs, for each image, ``pip install --dry-run --require-hashes`` on action.txt with
that image's tags: it fails when a dependency is not pinned or a hash is missing.

The images (policy, architecture) come from the Dockerfile's stage names
(``AS <policy>-<amd64|arm64>``), so a base added there is locked here too. The hashes are those
of the default index, the one the image installs from: the machine's pip configuration (a
local wheel directory, a mirror with wheels of its own) is ignored.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
DOCKERFILE = HERE.parent / "Dockerfile"
SOURCE = HERE / "action.in"
LOCKED = HERE / "action.txt"
PYTHON_VERSION = "3.12"  # the image's interpreter: /opt/python/cp312-cp312 (Dockerfile)
ARCHES = {"amd64": "x86_64", "arm64": "aarch64"}  # Docker's name -> the wheel tags' name
LEGACY = {(2, 17): "manylinux2014", (2, 12): "manylinux2010", (2, 5): "manylinux1"}  # PEP 600 aliases
OLDEST_GLIBC = {"x86_64": 5, "aarch64": 17}  # the first manylinux for each architecture


def read_images(dockerfile: Path = DOCKERFILE) -> list[tuple[str, str]]:
    """(policy, Docker architecture) of every base stage, in the Dockerfile's order."""
    found = re.findall(r"^FROM\s+\S+\s+AS\s+([a-z0-9_]+)-(amd64|arm64)\s*$", dockerfile.read_text(), re.M | re.I)
    if not found:
        raise SystemExit(f"{dockerfile}: no `FROM ... AS <policy>-<amd64|arm64>` stage")
    return found


def platform_tags(policy: str, arch: str) -> list[str]:
    """The platform tags pip accepts in an image of ``policy``, most preferred first."""
    if m := re.fullmatch(r"manylinux_(\d+)_(\d+)", policy):
        glibc = (int(m[1]), int(m[2]))
    elif m := re.fullmatch(r"manylinux(2014|2010|1)", policy):
        glibc = next(v for v, alias in LEGACY.items() if alias == policy)
    elif m := re.fullmatch(r"musllinux_(\d+)_(\d+)", policy):
        major, minor = int(m[1]), int(m[2])
        return [f"musllinux_{major}_{n}_{arch}" for n in range(minor, -1, -1)] + [f"linux_{arch}"]
    else:
        raise SystemExit(f"unknown policy {policy!r} in the Dockerfile's stage names")
    tags = []
    for minor in range(glibc[1], OLDEST_GLIBC[arch] - 1, -1):
        tags.append(f"manylinux_2_{minor}_{arch}")
        if (2, minor) in LEGACY:
            tags.append(f"{LEGACY[2, minor]}_{arch}")
    return tags + [f"linux_{arch}"]


def read_pins(path: Path) -> list[tuple[str, str]]:
    """(requirement, comment) for each ``name==version`` line; hash options are dropped."""
    text = path.read_text().replace("\\\n", " ")
    pins = []
    for line in text.splitlines():
        req, _, comment = line.partition("#")
        req = re.sub(r"\s--hash=\S+", "", req).strip()
        if req:
            if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*==[^\s=;]+", req):
                raise SystemExit(f"{path}: not a plain `name==version` pin: {req!r}")
            pins.append((req, comment.strip()))
    return pins


def _pip(*args: str) -> None:
    # The default index only: no configuration file, no index or wheel directory from the environment.
    env = {k: v for k, v in os.environ.items() if k not in ("PIP_FIND_LINKS", "PIP_EXTRA_INDEX_URL", "PIP_INDEX_URL")}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1")
    done = subprocess.run([sys.executable, "-m", "pip", *args], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"pip {' '.join(args[:1])} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")


def _target(policy: str, arch: str) -> list[str]:
    nodot = PYTHON_VERSION.replace(".", "")
    args = ["--only-binary=:all:", "--python-version", PYTHON_VERSION, "--implementation", "cp", "--abi", f"cp{nodot}"]
    for tag in platform_tags(policy, ARCHES[arch]):
        args += ["--platform", tag]
    return args


def lock(pins: list[tuple[str, str]], images: list[tuple[str, str]]) -> str:
    hashes: dict[str, set[str]] = {req: set() for req, _ in pins}
    with tempfile.TemporaryDirectory(prefix="wheelvet-lock-") as tmp:
        for policy, arch in images:
            dest = Path(tmp) / f"{policy}-{arch}"
            print(f"{policy} {arch}: downloading {len(pins)} wheels", file=sys.stderr)
            _pip("download", "--no-deps", "--dest", str(dest), *_target(policy, arch), *(req for req, _ in pins))
            for wheel in dest.glob("*.whl"):
                name, version = wheel.name.split("-")[:2]
                req = _match(pins, name, version)
                hashes[req].add(hashlib.sha256(wheel.read_bytes()).hexdigest())
    missing = [req for req, found in hashes.items() if not found]
    if missing:
        raise SystemExit(f"no wheel found for {', '.join(missing)}")
    policies = ", ".join(dict.fromkeys(p for p, _ in images))
    arches = " and ".join(dict.fromkeys(ARCHES[a] for _, a in images))
    out = [
        "# Generated by requirements/lock.py from requirements/action.in: edit that file, then run",
        "# `python requirements/lock.py`. Each pin lists the sha256 of the wheel pip chooses for",
        f"# CPython {PYTHON_VERSION} in each image: {policies}; each on {arches}.",
    ]
    for req, comment in pins:
        if comment:  # on a line of its own: pip does not join a commented line to the next
            out.append(f"# {req.partition('==')[0]}: {comment}")
        out.append(req + " \\")
        out += [f"    --hash=sha256:{h} \\" for h in sorted(hashes[req])]
        out[-1] = out[-1].removesuffix(" \\")
    return "\n".join(out) + "\n"


def _match(pins: list[tuple[str, str]], name: str, version: str) -> str:
    def norm(s: str) -> str:
        return re.sub(r"[-_.]+", "-", s).lower()

    for req, _ in pins:
        pname, _, pversion = req.partition("==")
        if norm(pname) == norm(name) and pversion == version:
            return req
    raise SystemExit(f"pip fetched {name} {version}, which action.in does not pin (a dependency to add?)")


def check(images: list[tuple[str, str]]) -> None:
    for policy, arch in images:
        print(f"{policy} {arch}: resolving action.txt with --require-hashes", file=sys.stderr)
        with tempfile.TemporaryDirectory(prefix="wheelvet-check-") as tmp:
            _pip("install", "--dry-run", "--ignore-installed", "--require-hashes", "--target", tmp,
                 *_target(policy, arch), "-r", str(LOCKED))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--check", action="store_true", help="then resolve each image's install from action.txt")
    args = parser.parse_args(argv)
    images = read_images()
    text = lock(read_pins(SOURCE), images)
    tmp = LOCKED.with_name(LOCKED.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(LOCKED)
    print(f"wrote {LOCKED.relative_to(HERE.parent)}", file=sys.stderr)
    if args.check:
        check(images)
    return 0


if __name__ == "__main__":
    sys.exit(main())
