"""Policy data (manylinux / musllinux) as frozen types, and judgements over it.

The data lives in ``policies/*.json`` (taken from auditwheel 6.8.2's data, the
facts users know) and is validated when it loads: structure, and PEP 600's
rule that a more compatible policy never allows more than a less compatible
one.  Nothing here reads a wheel or prints.

Android (PEP 738) differs: a wheel's tag, ``android_<api>_<abi>``, names the
lowest API level it runs on, and it keeps that tag.  Its policy is the data's
newest one whose level is not above the wheel's, named as the wheel's tag
(:func:`policy_set` given that tag), as auditwheel 6.8.2 does.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import re
from dataclasses import dataclass, field
from importlib import resources
from typing import Iterable, Iterator, Mapping

from .errors import InvalidInput, InvalidPolicy, UsageError
from .resolve import LIBPYTHON_RE, is_musl_builtin

LIBCS = ("glibc", "musl", "android")
_FILES = {"glibc": "manylinux.json", "musl": "musllinux.json", "android": "android.json"}

# The Android ABIs of PEP 738 that auditwheel 6.8.2's data covers, and the
# architecture each is (armeabi_v7a and x86 have no policy).
ANDROID_ABIS = {"arm64_v8a": "aarch64", "x86_64": "x86_64"}
_ANDROID_TAG = re.compile(r"^android_(\d+)_([a-z0-9_]+)$")
ANDROID_MIN_API = 21  # PEP 738

# musl's own loader is whitelisted as "libc.so" in the data; its real SONAME
# depends on the architecture.
MUSL_LIBC_SONAME = {
    "x86_64": "libc.musl-x86_64.so.1",
    "i686": "libc.musl-x86.so.1",
    "aarch64": "libc.musl-aarch64.so.1",
    "s390x": "libc.musl-s390x.so.1",
    "ppc64le": "libc.musl-ppc64le.so.1",
    "armv7l": "libc.musl-armv7.so.1",
    "riscv64": "libc.musl-riscv64.so.1",
    "loongarch64": "libc.musl-loongarch64.so.1",
}

# Version-need entries on the dynamic loader itself are never judged.
def is_loader_soname(soname: str) -> bool:
    return soname.startswith("ld-linux") or soname in ("ld64.so.2", "ld64.so.1")


@dataclass(frozen=True, order=False)
class Policy:
    """One policy for one architecture, e.g. ``manylinux_2_17_x86_64``."""

    name: str
    base: str  # e.g. "manylinux_2_17"
    arch: str
    libc: str
    priority: int  # higher is more compatible; 0 is plain "linux"
    aliases: tuple[str, ...] = field(compare=False)
    symbol_versions: Mapping[str, frozenset[str]] = field(compare=False, hash=False)  # prefix -> versions
    whitelist: frozenset[str] = field(compare=False)
    blacklist: Mapping[str, frozenset[str]] = field(compare=False, hash=False)

    @property
    def is_linux(self) -> bool:
        return self.priority == 0

    @property
    def tags(self) -> tuple[str, ...]:
        """The platform tags this policy grants: its name and its aliases."""
        return (self.name, *self.aliases)

    def allows_library(self, soname: str) -> bool:
        """Whether the wheel may need ``soname`` from the system (on Android,
        libpython is the app's own: extensions there link it)."""
        if self.is_linux:
            return soname in self.whitelist
        return (soname in self.whitelist or (self.libc == "musl" and is_musl_builtin(soname))
                or (self.libc == "android" and LIBPYTHON_RE.match(soname) is not None))

    @functools.cached_property
    def library_rules(self) -> tuple:
        """What decides which libraries it allows and which imports it
        blacklists (:meth:`allows_library`, ``blacklist``): policies with the
        same rules judge a file's libraries alike (17 glibc x86_64 policies
        have 7 sets of rules)."""
        return self.is_linux, self.libc, self.whitelist, tuple(sorted(self.blacklist.items()))

    def allows_version(self, version: str) -> bool:
        """Whether a needed symbol version (``GLIBC_2.29``) is allowed.

        Versions are judged by prefix, as PEP 600 tools do: a prefix the policy
        does not list (``OPENSSL_3.0.0``, ``GREET_1.0``) is not judged.
        """
        prefix, _, number = version.partition("_")
        allowed = self.symbol_versions.get(prefix)
        return allowed is None or number in allowed

    def __lt__(self, other: Policy) -> bool:
        return self.priority < other.priority


class PolicySet:
    """The policies of one (libc, architecture), least compatible first.

    Iterating gives the policies an audit judges; :meth:`get` and
    :meth:`reaches` also know the names it does not judge (for musl, only the
    newest musllinux policy is judged: see :func:`policy_set`), so that one
    set serves every question about a wheel's tags.
    """

    def __init__(self, libc: str, arch: str, policies: Iterable[Policy], known: Iterable[Policy] = ()) -> None:
        self.libc = libc
        self.arch = arch
        self._policies = sorted(policies, key=lambda p: p.priority)
        everything = {p.name: p for p in (*known, *self._policies)}.values()
        self._by_name = {t: p for p in sorted(everything, key=lambda p: p.priority)
                         for t in (p.name, p.base, *p.aliases, *(a[: -len(arch) - 1] for a in p.aliases))}

    def __iter__(self) -> Iterator[Policy]:
        return iter(self._policies)

    def __len__(self) -> int:
        return len(self._policies)

    @property
    def linux(self) -> Policy:
        return self._policies[0]

    @property
    def highest(self) -> Policy:
        return self._policies[-1]

    def get(self, name: str) -> Policy | None:
        """A policy by full name, alias, or base name (``manylinux2014``)."""
        return self._by_name.get(name)

    def reaches(self, reached: Policy, tag: str) -> bool | None:
        """Whether a wheel that meets ``reached`` meets the policy tag ``tag``
        (a name or alias of this set); None when ``tag`` names none of its
        policies.  This is the one comparison of two tags.  musl has no symbol
        versions: which musllinux_1_x a binary needs cannot be read from it,
        so any musllinux tag is taken on trust."""
        wanted = self.get(tag)
        if wanted is None:
            return None
        if self.libc == "musl" and not wanted.is_linux and not reached.is_linux:
            return True
        return reached.priority >= wanted.priority

    @staticmethod
    def least(*policies: Policy) -> Policy:
        """The least compatible of ``policies`` (what a wheel meets when it must meet them all)."""
        return min(policies, key=lambda p: p.priority)

    @staticmethod
    def most(policies: Iterable[Policy], default: Policy) -> Policy:
        """The most compatible of ``policies``, ``default`` when there are none."""
        return max(policies, key=lambda p: p.priority, default=default)

    def best_for_version(self, version: str) -> Policy:
        """The most compatible policy that still allows one symbol version."""
        return next((p for p in reversed(self._policies) if p.allows_version(version)), self.linux)

    def symbol_policy(self, versioned: Mapping[str, Iterable[str]]) -> Policy:
        """The most compatible policy allowing every needed symbol version."""
        needed = {v for libs, versions in versioned.items() if not is_loader_soname(libs) for v in versions}
        for policy in reversed(self._policies):
            if all(policy.allows_version(v) for v in needed):
                return policy
        return self.linux


def _validate(libc: str, raw: object) -> list[dict]:
    """Structure and PEP 600 monotonicity; collects every problem, raises once."""
    problems: list[str] = []
    if not isinstance(raw, list):
        raise InvalidPolicy(f"{_FILES[libc]}: expected a list of policies")
    names = set()
    for i, p in enumerate(raw):
        if not isinstance(p, dict):
            problems.append(f"entry {i} is not an object")
            continue
        for key, typ in (("name", str), ("aliases", list), ("priority", int), ("symbol_versions", dict),
                         ("lib_whitelist", list), ("blacklist", dict)):
            if not isinstance(p.get(key), typ):
                problems.append(f"{p.get('name', i)!s}: '{key}' missing or not a {typ.__name__}")
        if p.get("name") in names:
            problems.append(f"{p.get('name')}: defined twice")
        names.add(p.get("name"))
    if problems:
        raise InvalidPolicy(f"{_FILES[libc]}: " + "; ".join(problems))
    # PEP 600: walking from the most to the least compatible policy, what is
    # allowed may only grow.
    seen_libs: set[str] = set()
    seen_versions: dict[tuple[str, str], set[str]] = {}
    for p in sorted(raw, key=lambda p: p["priority"], reverse=True):
        if p["name"] == "linux":
            continue
        missing = seen_libs - set(p["lib_whitelist"])
        if missing:
            problems.append(f"{p['name']} drops whitelisted libraries {sorted(missing)} that a more compatible policy allows")
        seen_libs |= set(p["lib_whitelist"])
        for arch, prefixes in p["symbol_versions"].items():
            for prefix, versions in prefixes.items():
                before = seen_versions.setdefault((arch, prefix), set())
                if not before <= set(versions):
                    problems.append(f"{p['name']}_{arch} drops {prefix} versions {sorted(before - set(versions))} that a more compatible policy allows")
                before |= set(versions)
    if problems:
        raise InvalidPolicy(f"{_FILES[libc]}: " + "; ".join(problems))
    return raw


@functools.lru_cache(maxsize=None)
def _load_raw(libc: str) -> tuple:
    text = resources.files("wheelvet").joinpath("policies", _FILES[libc]).read_text("utf-8")
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidPolicy(f"{_FILES[libc]}: not valid JSON ({exc})") from None
    return tuple(_validate(libc, raw))


def known_architectures(libc: str) -> frozenset[str]:
    return frozenset(a for p in _load_raw(libc) for a in p["symbol_versions"])


def _policies(libc: str, arch: str) -> list[Policy]:
    if libc not in _FILES:
        raise UsageError(f"unknown libc {libc!r}")
    out = []
    for p in _load_raw(libc):
        if p["name"] != "linux" and arch not in p["symbol_versions"]:
            continue
        whitelist = set(p["lib_whitelist"])
        if libc == "musl" and "libc.so" in whitelist:
            whitelist.discard("libc.so")
            whitelist.add(MUSL_LIBC_SONAME.get(arch, "libc.so"))
        out.append(Policy(
            name=f"{p['name']}_{arch}",
            base=p["name"],
            arch=arch,
            libc=libc,
            priority=p["priority"],
            aliases=tuple(f"{a}_{arch}" for a in p["aliases"]),
            symbol_versions={k: frozenset(v) for k, v in p["symbol_versions"].get(arch, {}).items()},
            whitelist=frozenset(whitelist),
            blacklist={k: frozenset(v) for k, v in p["blacklist"].items()},
        ))
    return out


def parse_android_tag(tag: str) -> tuple[int, str] | None:
    """``android_24_arm64_v8a`` -> (24, "aarch64"); None for other tags or ABIs
    without a policy."""
    m = _ANDROID_TAG.match(tag)
    return (int(m[1]), ANDROID_ABIS[m[2]]) if m and m[2] in ANDROID_ABIS else None


def _android_set(arch: str, tag: str | None) -> PolicySet:
    every = _policies("android", arch)
    linux = [p for p in every if p.is_linux]
    if tag is None:  # nothing to judge against: only plain linux
        return PolicySet("android", arch, linux)
    parsed = parse_android_tag(tag)
    if parsed is None or parsed[1] != arch:
        raise InvalidInput(f"{tag} is not an Android tag for {arch} (android_<API level>_<"
                           f"{' or '.join(a for a, b in ANDROID_ABIS.items() if b == arch) or 'ABI'}>)")
    api = parsed[0]
    levels = sorted(((int(p.base.split("_")[1]), p) for p in every if not p.is_linux), key=lambda lp: lp[0])
    below = [p for level, p in levels if level <= api]
    if not below:
        raise InvalidInput(f"{tag}: no Android policy for API level {api} (the lowest is {levels[0][0]}, PEP 738)")
    # the newest listed level not above the wheel's, named as the wheel's own tag
    policy = dataclasses.replace(below[-1], name=tag, base=f"android_{api}", aliases=())
    return PolicySet("android", arch, linux + [policy])


@functools.lru_cache(maxsize=None)
def policy_set(libc: str, arch: str, tag: str | None = None) -> PolicySet:
    """The policies for ``libc`` ("glibc", "musl" or "android") on ``arch``:
    the one place where the libcs are told apart.

    For musl only the newest musllinux policy is judged: musl has no symbol
    versioning, so nothing in a binary proves it runs on an older musl
    (auditwheel does the same on any host that is not musl); the older names
    are still known to :meth:`PolicySet.get` and :meth:`PolicySet.reaches`.
    For Android, ``tag`` is the wheel's own platform tag (``android_24_x86_64``):
    its policy is the one for its API level, under that name.
    """
    if libc == "android":
        return _android_set(arch, tag)
    every = _policies(libc, arch)
    if libc != "musl":
        return PolicySet(libc, arch, every)
    linux = [p for p in every if p.is_linux]
    newest = max((p for p in every if not p.is_linux), key=lambda p: tuple(int(x) for x in p.base.split("_")[1:]),
                 default=None)
    return PolicySet(libc, arch, linux + ([newest] if newest else []), known=every)


@functools.lru_cache(maxsize=None)
def load_policies(libc: str, arch: str, *, all_musl: bool = False) -> PolicySet:
    """:func:`policy_set`; with ``all_musl``, one that judges every musllinux policy."""
    return PolicySet(libc, arch, _policies(libc, arch)) if all_musl else policy_set(libc, arch)


def resolve(tag: str, arch: str | None = None) -> Policy | None:
    """The policy a platform tag names: ``manylinux_2_17_x86_64``,
    ``manylinux2014_x86_64``, or, given ``arch``, ``manylinux2014`` and
    ``manylinux_2_17``.  None for any other tag (``linux_*``, ``any``, macOS...)."""
    android = parse_android_tag(tag)
    if android is not None:
        try:
            return policy_set("android", android[1], tag).get(tag)
        except InvalidInput:
            return None
    if arch is not None and not tag.endswith("_" + arch):
        tag = f"{tag}_{arch}"
    found = parse_policy_tag(tag)
    return policy_set(*found).get(tag) if found else None


def parse_policy_tag(tag: str) -> tuple[str, str] | None:
    """``manylinux_2_17_x86_64`` -> ("glibc", "x86_64"), ``android_24_arm64_v8a``
    -> ("android", "aarch64"); None for other tags."""
    android = parse_android_tag(tag)
    if android is not None:
        return "android", android[1]
    return _tag_index().get(tag)


@functools.lru_cache(maxsize=None)
def _tag_index() -> dict[str, tuple[str, str]]:
    index = {}
    for libc in ("glibc", "musl"):  # Android tags are parsed (any API level)
        for p in _load_raw(libc):
            if p["name"] == "linux":
                continue
            for arch in p["symbol_versions"] or known_architectures(libc):
                for base in (p["name"], *p["aliases"]):
                    index[f"{base}_{arch}"] = (libc, arch)
    return index
