"""Policy data: complete, validated, and judged as PEP 600 tools judge it."""

from __future__ import annotations

import copy
import json
from importlib import resources

import pytest

from wheelvet import policy as policy_mod
from wheelvet.errors import InvalidPolicy
from wheelvet.policy import known_architectures, load_policies, parse_policy_tag

ALL_ARCHES = {"x86_64", "i686", "aarch64", "armv7l", "ppc64le", "ppc64", "s390x", "riscv64", "loongarch64"}


def _raw(libc):
    return json.loads(resources.files("wheelvet").joinpath("policies", policy_mod._FILES[libc]).read_text())


def test_every_policy_and_architecture_is_there():
    names = {p["name"] for p in _raw("glibc")}
    assert {"manylinux_2_5", "manylinux_2_12", "manylinux_2_17", "manylinux_2_28", "manylinux_2_41"} <= names
    assert known_architectures("glibc") == ALL_ARCHES
    assert {p["name"] for p in _raw("musl")} == {"linux", "musllinux_1_1", "musllinux_1_2"}
    assert load_policies("glibc", "x86_64").get("manylinux2014").name == "manylinux_2_17_x86_64"
    assert load_policies("glibc", "x86_64").get("manylinux1_x86_64").name == "manylinux_2_5_x86_64"
    assert load_policies("glibc", "x86_64").get("manylinux2010").aliases == ("manylinux2010_x86_64",)


def test_architectures_only_get_their_policies():
    assert [p.base for p in load_policies("glibc", "ppc64")] == ["linux", "manylinux_2_17"]
    riscv = [p.base for p in load_policies("glibc", "riscv64")]
    assert riscv[0] == "linux" and "manylinux_2_28" not in riscv and "manylinux_2_31" in riscv


def test_musl_loader_soname_is_per_architecture():
    assert "libc.musl-x86.so.1" in load_policies("musl", "i686").highest.whitelist
    assert "libc.musl-armv7.so.1" in load_policies("musl", "armv7l").highest.whitelist
    assert [p.base for p in load_policies("musl", "x86_64")] == ["linux", "musllinux_1_2"]
    assert [p.base for p in load_policies("musl", "x86_64", all_musl=True)] == ["linux", "musllinux_1_2", "musllinux_1_1"]


def test_pep600_monotonic_data_passes_and_a_violation_is_caught():
    raw = _raw("glibc")
    policy_mod._validate("glibc", raw)
    broken = copy.deepcopy(raw)
    m2014 = next(p for p in broken if p["name"] == "manylinux_2_17")
    m2014["symbol_versions"]["x86_64"]["GLIBC"].append("2.99")
    with pytest.raises(InvalidPolicy, match=r"manylinux_2_24_x86_64 drops GLIBC versions \['2.99'\]"):
        policy_mod._validate("glibc", broken)
    broken = copy.deepcopy(raw)
    next(p for p in broken if p["name"] == "manylinux_2_28")["lib_whitelist"].remove("libz.so.1")
    with pytest.raises(InvalidPolicy, match="manylinux_2_28 drops whitelisted"):
        policy_mod._validate("glibc", broken)


def test_malformed_policy_entries_are_all_reported():
    with pytest.raises(InvalidPolicy) as exc:
        policy_mod._validate("glibc", [{"name": "a"}, 3])
    assert "'priority' missing" in str(exc.value) and "entry 1 is not an object" in str(exc.value)


def test_allows_version_by_prefix():
    p = load_policies("glibc", "x86_64").get("manylinux2014")
    assert p.allows_version("GLIBC_2.17") and not p.allows_version("GLIBC_2.18")
    assert p.allows_version("GLIBCXX_3.4.19") and not p.allows_version("GLIBCXX_3.4.20")
    assert p.allows_version("OPENSSL_3.0.0")  # not a judged prefix
    assert not p.allows_version("GLIBC_PRIVATE")


def test_symbol_policy():
    ps = load_policies("glibc", "x86_64")
    assert ps.symbol_policy({"libc.so.6": {"GLIBC_2.2.5"}}).name == "manylinux_2_5_x86_64"
    assert ps.symbol_policy({"libc.so.6": {"GLIBC_2.2.5", "GLIBC_2.14"}}).name == "manylinux_2_17_x86_64"
    assert ps.symbol_policy({"libm.so.6": {"GLIBC_2.29"}}).name == "manylinux_2_31_x86_64"
    assert ps.symbol_policy({"libc.so.6": {"GLIBC_2.99"}}).name == "linux_x86_64"


def test_parse_policy_tag():
    assert parse_policy_tag("manylinux_2_17_aarch64") == ("glibc", "aarch64")
    assert parse_policy_tag("manylinux2014_x86_64") == ("glibc", "x86_64")
    assert parse_policy_tag("musllinux_1_2_armv7l") == ("musl", "armv7l")
    assert parse_policy_tag("linux_x86_64") is None
    assert parse_policy_tag("macosx_11_0_arm64") is None
