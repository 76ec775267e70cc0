"""wheelvet vs auditwheel 6.8.2 on a pinned set of real wheels from PyPI.

For every wheel in wheels.json, ``python -m wheelvet show --json WHEEL`` must agree with
``python -m auditwheel show --json WHEEL`` (both run as subprocesses of this interpreter,
in the same environment, without LD_LIBRARY_PATH / AUDITWHEEL_LD_LIBRARY_PATH) on
``overall_tag``, ``sym_tag``, ``versioned_symbols`` (as sets), the keys of
``external_libs``, ``pure``, ``pyfpe``, ``ucs2`` and ``unsupported_isa``; and its report
must carry the required fields of auditwheel's ``show --json`` schema.

Wheels and oracle verdicts are cached (see wheelcache.py); without network and cache a
wheel's tests are skipped, saying so.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import schema_check  # noqa: E402
import wheelcache  # noqa: E402

#: filename -> why auditwheel's answer is wrong for that wheel. A mismatch (or an oracle
#: failure) on a listed wheel becomes an xfail with this reason; a listed wheel on which
#: the two tools agree fails, so that stale entries get removed.
KNOWN_DIFFERENCES: dict[str, str] = {
    "pydantic_core-2.50.5-cp311-cp311-musllinux_1_1_aarch64.whl": (
        "auditwheel 6.8.2 crashes (ELFError): the extension needs plain 'libc.so', which musl's "
        "loader answers itself, and auditwheel opens the host's libc.so linker script as ELF; "
        "see docs/differences.md and test_musl_loader_names_where_auditwheel_crashes"
    ),
}

WHEELS = wheelcache.load_wheels()
FILENAMES = [w.filename for w in WHEELS]

#: Fields compared as plain values.
SCALAR_FIELDS = ("pure", "overall_tag", "sym_tag", "pyfpe", "ucs2", "unsupported_isa")

_MISSING = object()


def _versioned_symbols(report: dict[str, Any]) -> Any:
    value = report.get("versioned_symbols", _MISSING)
    if not isinstance(value, dict):
        return value
    return {lib: sorted(set(vers)) if isinstance(vers, list) else vers for lib, vers in value.items()}


def _external_lib_names(report: dict[str, Any]) -> Any:
    value = report.get("external_libs", _MISSING)
    return sorted(value) if isinstance(value, dict) else value


def _show(value: Any) -> str:
    return "<missing>" if value is _MISSING else repr(value)


def compare_reports(expected: dict[str, Any], actual: dict[str, Any]) -> list[str]:
    """Differences between auditwheel's report (expected) and wheelvet's (actual)."""
    problems = []
    for key in SCALAR_FIELDS:
        exp, act = expected.get(key, _MISSING), actual.get(key, _MISSING)
        if exp is _MISSING:
            continue  # auditwheel did not say; nothing to hold wheelvet to
        if act is _MISSING or type(act) is not type(exp) or act != exp:
            problems.append(f"{key}: auditwheel {_show(exp)}, wheelvet {_show(act)}")

    exp_vs, act_vs = _versioned_symbols(expected), _versioned_symbols(actual)
    if exp_vs is not _MISSING and exp_vs != act_vs:
        if isinstance(exp_vs, dict) and isinstance(act_vs, dict):
            for lib in sorted(set(exp_vs) | set(act_vs)):
                e, a = set(exp_vs.get(lib, [])), set(act_vs.get(lib, []))
                if lib not in act_vs:
                    problems.append(f"versioned_symbols[{lib!r}]: only auditwheel has it: {sorted(e)}")
                elif lib not in exp_vs:
                    problems.append(f"versioned_symbols[{lib!r}]: only wheelvet has it: {sorted(a)}")
                elif e != a:
                    problems.append(
                        f"versioned_symbols[{lib!r}]: only auditwheel {sorted(e - a)}, only wheelvet {sorted(a - e)}"
                    )
        else:
            problems.append(f"versioned_symbols: auditwheel {_show(exp_vs)}, wheelvet {_show(act_vs)}")

    exp_ext, act_ext = _external_lib_names(expected), _external_lib_names(actual)
    if exp_ext is not _MISSING and exp_ext != act_ext:
        if isinstance(exp_ext, list) and isinstance(act_ext, list):
            problems.append(
                "external_libs keys: only auditwheel "
                f"{sorted(set(exp_ext) - set(act_ext))}, only wheelvet {sorted(set(act_ext) - set(exp_ext))}"
            )
        else:
            problems.append(f"external_libs: auditwheel {_show(exp_ext)}, wheelvet {_show(act_ext)}")
    return problems


def _wheelvet_report(conformance, filename: str) -> dict[str, Any]:
    run = conformance.wheelvet(filename)
    if run.returncode != 0:
        pytest.fail(f"wheelvet exited with {run.returncode} on a readable wheel\n{run.describe()}", pytrace=False)
    if not isinstance(run.data, dict):
        pytest.fail(f"wheelvet did not print one JSON object\n{run.describe()}", pytrace=False)
    return run.data


@pytest.mark.conformance
@pytest.mark.parametrize("wheel_filename", FILENAMES, ids=FILENAMES)
def test_show_matches_auditwheel(conformance, wheel_filename: str) -> None:
    known = KNOWN_DIFFERENCES.get(wheel_filename)
    oracle = conformance.oracle(wheel_filename)
    if oracle["returncode"] != 0 or not isinstance(oracle.get("data"), dict):
        msg = (
            f"auditwheel itself failed on this pinned wheel (exit code {oracle['returncode']}):\n"
            f"{oracle.get('stderr', '')[-3000:]}"
        )
        if known:
            pytest.xfail(f"{known} [{msg.splitlines()[0]}]")
        pytest.fail(msg, pytrace=False)
    expected = oracle["data"]
    actual = _wheelvet_report(conformance, wheel_filename)

    problems = compare_reports(expected, actual)
    if problems:
        if known:
            pytest.xfail(known)
        run = conformance.wheelvet(wheel_filename)
        pytest.fail(
            f"wheelvet disagrees with auditwheel {oracle.get('auditwheel')} on {wheel_filename}:\n  "
            + "\n  ".join(problems)
            + f"\n(reproduce: {' '.join(run.cmd)})",
            pytrace=False,
        )
    if known:
        pytest.fail(
            f"{wheel_filename} is listed in KNOWN_DIFFERENCES ({known!r}) but the tools now agree; "
            "remove the entry",
            pytrace=False,
        )


@pytest.fixture(scope="module")
def show_schema() -> dict[str, Any]:
    path = schema_check.find_schema()
    if path is None:
        pytest.skip("show-schema.json not found (set WHEELVET_SHOW_SCHEMA or put shared/ beside the checkout)")
    return schema_check.load_schema(path)


@pytest.mark.conformance
@pytest.mark.parametrize("wheel_filename", FILENAMES, ids=FILENAMES)
def test_show_json_matches_schema(conformance, show_schema, wheel_filename: str) -> None:
    report = _wheelvet_report(conformance, wheel_filename)
    problems = schema_check.check_platform_report(report, show_schema)
    if report.get("wheel") != wheel_filename:
        problems.append(f"$.wheel: expected {wheel_filename!r}, got {report.get('wheel')!r}")
    assert not problems, "wheelvet's report does not fit auditwheel's show schema:\n  " + "\n  ".join(problems)


@pytest.mark.conformance
@pytest.mark.parametrize("wheel_filename", FILENAMES, ids=FILENAMES)
def test_auditwheel_report_matches_schema(conformance, show_schema, wheel_filename: str) -> None:
    """Sanity check of the oracle and of the checker: auditwheel's own report must pass."""
    oracle = conformance.oracle(wheel_filename)
    if oracle["returncode"] != 0 or not isinstance(oracle.get("data"), dict):
        pytest.skip(f"auditwheel failed on this wheel (exit code {oracle['returncode']})")
    assert schema_check.check(oracle["data"], show_schema) == []
    assert schema_check.check_platform_report(oracle["data"], show_schema) == []
    assert oracle["data"]["wheel"] == wheel_filename


# ---------------------------------------------------------------- checker self-tests (offline)

_GOOD = {
    "version": 1,
    "wheel": "x-1.0-cp311-cp311-manylinux_2_17_x86_64.whl",
    "pure": False,
    "overall_tag": "manylinux_2_17_x86_64",
    "sym_tag": "manylinux_2_17_x86_64",
    "pyfpe": False,
    "ucs2": False,
    "unsupported_isa": False,
    "versioned_symbols": {"libc.so.6": ["GLIBC_2.2.5"]},
    "external_libs": {"libfoo.so.1": None, "libbar.so.2": "/usr/lib/libbar.so.2"},
    "policy_upgrades": {"manylinux_2_5_x86_64": {"libs_to_eliminate": ["libfoo.so.1"]}},
}


def _offline_schema() -> dict[str, Any]:
    path = schema_check.find_schema()
    if path is None:
        pytest.skip("show-schema.json not found")
    return schema_check.load_schema(path)


def test_checker_accepts_good_report_with_extra_keys() -> None:
    schema = _offline_schema()
    report = dict(_GOOD, wheelvet_extra={"anything": 1})
    report["policy_upgrades"] = {"manylinux_2_5_x86_64": {"libs_to_eliminate": ["a"], "extra": [1, 2]}}
    assert schema_check.check_platform_report(report, schema) == []
    assert schema_check.check(_GOOD, schema) == []


@pytest.mark.parametrize(
    "mutate",
    [
        pytest.param(lambda r: r.pop("sym_tag"), id="missing-sym_tag"),
        pytest.param(lambda r: r.pop("policy_upgrades"), id="missing-policy_upgrades"),
        pytest.param(lambda r: r.__setitem__("version", True), id="version-bool-not-1"),
        pytest.param(lambda r: r.__setitem__("version", 2), id="version-2"),
        pytest.param(lambda r: r.__setitem__("pure", True), id="pure-true-on-platform"),
        pytest.param(lambda r: r.__setitem__("ucs2", 0), id="ucs2-int"),
        pytest.param(lambda r: r.__setitem__("versioned_symbols", {"libc.so.6": "GLIBC_2.2.5"}), id="vs-not-list"),
        pytest.param(lambda r: r.__setitem__("versioned_symbols", {"libc.so.6": [5]}), id="vs-item-int"),
        pytest.param(lambda r: r.__setitem__("external_libs", {"libfoo.so.1": 3}), id="ext-int"),
        pytest.param(lambda r: r.__setitem__("external_libs", ["libfoo.so.1"]), id="ext-list"),
        pytest.param(
            lambda r: r.__setitem__("policy_upgrades", {"p": {"libs_to_eliminate": "libfoo.so.1"}}),
            id="upgrade-libs-not-list",
        ),
        pytest.param(
            lambda r: r.__setitem__("policy_upgrades", {"p": {"blacklisted_symbols": {"libz.so.1": "x"}}}),
            id="upgrade-blacklist-not-list",
        ),
    ],
)
def test_checker_rejects_bad_report(mutate) -> None:
    schema = _offline_schema()
    report = {k: (dict(v) if isinstance(v, dict) else v) for k, v in _GOOD.items()}
    mutate(report)
    assert schema_check.check_platform_report(report, schema) != []


def test_compare_reports_flags_differences() -> None:
    other = dict(_GOOD)
    assert compare_reports(_GOOD, dict(other, versioned_symbols={"libc.so.6": ["GLIBC_2.2.5", "GLIBC_2.2.5"]})) == []
    assert compare_reports(_GOOD, dict(other, external_libs={"libfoo.so.1": "/x", "libbar.so.2": None})) == []
    assert compare_reports(_GOOD, dict(other, sym_tag="manylinux_2_5_x86_64"))
    assert compare_reports(_GOOD, dict(other, pyfpe=0))
    assert compare_reports(_GOOD, dict(other, external_libs={"libfoo.so.1": None}))
    assert compare_reports(_GOOD, dict(other, versioned_symbols={"libc.so.6": ["GLIBC_2.3"]}))
    assert compare_reports(_GOOD, {k: v for k, v in _GOOD.items() if k != "overall_tag"})


@pytest.mark.conformance
def test_musl_loader_names_where_auditwheel_crashes(conformance) -> None:
    """Where the oracle fails, wheelvet's own answer is checked against the facts."""
    name = "pydantic_core-2.50.5-cp311-cp311-musllinux_1_1_aarch64.whl"
    report = _wheelvet_report(conformance, name)
    assert report["libc"] == "musl" and report["arch"] == "aarch64"
    needed = {n for f in report["files"] for n in f["needed"]}
    assert "libc.so" in needed  # the musl loader's own name, never a file to graft
    assert report["external_libs"] == {}
    assert report["overall_tag"] == report["sym_tag"] == "musllinux_1_2_aarch64"
