"""Android's policy data (auditwheel 6.8.2's android-policy.json facts),
validated like the others, and the tag-named policy of PEP 738 wheels."""

from __future__ import annotations

import copy
import json
from importlib import resources

import pytest

from wheelvet import policy as policy_mod
from wheelvet.errors import InvalidInput, InvalidPolicy
from wheelvet.policy import parse_android_tag, parse_policy_tag, policy_set, resolve


def _raw():
    return json.loads(resources.files("wheelvet").joinpath("policies", "android.json").read_text())


def test_the_data_is_validated_like_the_others():
    raw = _raw()
    assert [p["name"] for p in raw] == ["linux", "android_21", "android_24", "android_26", "android_27"]
    policy_mod._validate("android", raw)
    broken = copy.deepcopy(raw)
    next(p for p in broken if p["name"] == "android_26")["lib_whitelist"].remove("libvulkan.so")
    with pytest.raises(InvalidPolicy, match=r"android_26 drops whitelisted libraries \['libvulkan.so'\]"):
        policy_mod._validate("android", broken)
    assert policy_mod.known_architectures("android") == {"x86_64", "aarch64"}


@pytest.mark.parametrize("tag,data", [("android_21_x86_64", "android_21"), ("android_23_x86_64", "android_21"),
                                      ("android_24_arm64_v8a", "android_24"), ("android_26_x86_64", "android_26"),
                                      ("android_35_x86_64", "android_27")])
def test_a_wheel_is_judged_by_the_newest_level_not_above_its_tag(tag, data):
    api, arch = parse_android_tag(tag)
    ps = policy_set("android", arch, tag)
    assert [p.name for p in ps] == [f"linux_{arch}", tag]
    expected = next(p for p in _raw() if p["name"] == data)
    assert ps.highest.whitelist == frozenset(expected["lib_whitelist"])
    assert ps.highest.allows_library("libpython3.13.so") and not ps.linux.allows_library("libpython3.13.so")
    assert ps.highest.allows_version("LIBC_N")  # Android's data judges no symbol version
    assert ps.reaches(ps.highest, tag) and not ps.reaches(ps.linux, tag)
    assert resolve(tag) == ps.highest and parse_policy_tag(tag) == ("android", arch)


def test_tags_without_a_policy():
    assert parse_android_tag("android_24_armeabi_v7a") is None and parse_android_tag("android_24_x86") is None
    assert resolve("android_20_x86_64") is None
    with pytest.raises(InvalidInput, match="no Android policy for API level 20"):
        policy_set("android", "x86_64", "android_20_x86_64")
    assert [p.name for p in policy_set("android", "x86_64")] == ["linux_x86_64"]
