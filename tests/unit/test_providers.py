"""Providers as data: sources, Requires-Dist matching with markers, the pin rule,
and the audit's verdict with a provider (crafted ELF facts in real wheel files)."""

from __future__ import annotations

import pytest
from packaging.requirements import Requirement
from packaging.tags import parse_tag

from support import DictFiles, craft_elf, write_wheel
from wheelvet.audit import AuditOptions, Host, analyze
from wheelvet.elf import parse_elf
from wheelvet.errors import InvalidInput
from wheelvet.policy import policy_set
from wheelvet.providers import (
    ProviderSource,
    Providers,
    applies,
    choose_providers,
    find_providers,
    installed_sources,
    marker_environments,
    pin_problem,
    pin_window,
    site_path,
)
from wheelvet.shortfall import shortfalls
from wheelvet.wheelfile import WheelContents, parse_wheel_name

EXT = "pkg/ext.cpython-311-x86_64-linux-gnu.so"
GLIBC = policy_set("glibc", "x86_64")
CP311 = parse_tag("cp311-cp311-linux_x86_64")


def test_site_path_is_where_a_member_installs():
    assert site_path("nvidia/cuda_runtime/lib/libcudart.so.12") == "nvidia/cuda_runtime/lib/libcudart.so.12"
    assert site_path("prov-1.0.data/platlib/prov/lib/libprov.so.1") == "prov/lib/libprov.so.1"
    assert site_path("prov-1.0.data/purelib/prov/libx.so") == "prov/libx.so"
    assert site_path("prov-1.0.data/scripts/tool") is None and site_path("prov-1.0.data/headers/x.h") is None


def test_marker_environments_follow_the_tags():
    envs = marker_environments(CP311, "x86_64", "glibc")
    assert [(e["python_version"], e["implementation_name"], e["platform_machine"], e["sys_platform"]) for e in envs] == [
        ("3.11", "cpython", "x86_64", "linux")]
    abi3 = {e["python_version"] for e in marker_environments(parse_tag("cp38-abi3-linux_x86_64"), "x86_64", "glibc")}
    assert "3.8" in abi3 and "3.14" in abi3 and "3.7" not in abi3
    assert {e["implementation_name"] for e in marker_environments(parse_tag("pp310-pypy310_pp73-linux_x86_64"),
                                                                  "x86_64", "glibc")} == {"pypy"}


@pytest.mark.parametrize("line, expected", [
    ("prov", (True, None)),
    ("prov; sys_platform == 'linux'", (True, None)),
    ("prov; sys_platform == 'win32'", (False, None)),
    ("prov; platform_machine == 'aarch64'", (False, None)),
    ("prov; python_version >= '3.12'", (False, None)),
    ("prov; python_version < '3.12' and platform_machine == 'x86_64'", (True, None)),
    ("prov; extra == 'cuda'", (True, "cuda")),
    ("prov; extra == 'other'", (False, None)),  # no such extra provided
])
def test_requirement_markers_for_a_linux_cpython_of_the_tags(line, expected):
    envs = marker_environments(CP311, "x86_64", "glibc")
    assert applies(Requirement(line), envs, ("cuda",)) == expected


def source(name="prov", version="1.0", platform="manylinux_2_17_x86_64") -> ProviderSource:
    return ProviderSource(name, version, "wheel", f"/nowhere/{name}-{version}.whl",
                          frozenset(parse_tag(f"py3-none-{platform}")))


def test_choose_providers_by_canonical_name_version_and_platform():
    given = Providers((source("Prov_Lib", "1.0"), source("prov-lib", "1.5"), source("prov-lib", "2.0"),
                       source("prov-lib", "1.9", "manylinux_2_17_aarch64"), source("other", "3.0")))
    chosen = choose_providers(["prov.lib>=1,<2", "unrelated>=1"], (), CP311, "glibc", "x86_64", given)
    (choice,) = chosen.choices
    assert (choice.source.version, str(choice.requirement)) == ("1.5", "prov.lib<2,>=1")  # newest allowed, same arch
    assert [s.name for s in chosen.unrequired] == ["other"]
    musl = choose_providers(["prov-lib"], (), CP311, "musl", "x86_64", given)
    assert not musl.choices  # manylinux providers do not install beside a musllinux wheel


def test_a_provider_whose_version_the_requirement_refuses_is_not_taken():
    chosen = choose_providers(["prov>=2"], (), CP311, "glibc", "x86_64", Providers((source("prov", "1.0"),)))
    assert not chosen.choices
    assert chosen.notes == (("provider-version", "requires prov>=2, and the prov given (1.0) is not a version it "
                                                 "allows: its libraries are not taken as provided"),)
    bad = choose_providers(["prov >= = 1"], (), CP311, "glibc", "x86_64", Providers((source(),)))
    assert bad.notes[0][0] == "invalid-requirement" and not bad.choices


@pytest.mark.parametrize("version, soname, window", [
    ("12.9.79", "libcudart.so.12", ("12", "13")),
    ("2.13.0+cpu", "libtorch_cpu.so", ("2.13", "2.14")),
    ("1.0", "libprov.so.1", ("1", "2")),
    ("0.4", "libfoo.so", ("0.4", "0.5")),
])
def test_pin_window(version, soname, window):
    assert pin_window(version, soname) == window


@pytest.mark.parametrize("spec, loose", [
    ("", True),
    (">=12", True),
    (">=12.0,<14", True),
    (">12.1", True),
    ("!=13.0", True),
    ("<13", True),  # allows 11
    (">=11,<13", True),
    ("==12.*", False),
    (">=12,<13", False),
    ("~=12.9", False),
    ("==12.9.79", False),
    (">=12.9,<12.10", False),
    ("===12.9.79", False),
])
def test_pin_rule_for_a_versioned_soname(spec, loose):
    problem = pin_problem(Requirement(f"nvidia-cuda-runtime-cu12{spec}"), "12.9.79", "libcudart.so.12")
    assert (problem is not None) == loose, problem
    if problem:
        assert problem.window == "12.*" and problem.suggestion == "nvidia-cuda-runtime-cu12==12.*"


@pytest.mark.parametrize("spec, loose", [("==2.*", True), (">=2.13,<3", True), ("~=2.13.0", False),
                                         ("==2.13.*", False), (">=2.13,<2.14", False)])
def test_pin_rule_for_an_unversioned_soname_keeps_the_minor(spec, loose):
    problem = pin_problem(Requirement(f"torch{spec}"), "2.13.0+cpu", "libtorch_cpu.so")
    assert (problem is not None) == loose, problem
    if problem:
        assert problem.suggestion == "torch==2.13.*"


def test_find_providers_refuses_what_is_not_a_provider(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "x.txt").write_text("")
    for args, message in (((["/nonexistent.whl"], []), "not a wheel file or a directory of wheels"),
                          (([str(tmp_path / "empty")], []), "the directory holds no wheel"),
                          (([str(tmp_path / "x.txt")], []), "not a wheel file"),
                          (([], [str(tmp_path / "x.txt")]), "not a Python interpreter or a site-packages directory")):
        with pytest.raises(InvalidInput, match=message):
            find_providers(*args)


def test_installed_distributions_from_site_packages(tmp_path):
    site = tmp_path / "site"
    info = site / "prov-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: prov\nVersion: 1.0\n")
    (info / "RECORD").write_text("prov/lib/libprov.so.1,,\nprov-1.0.dist-info/METADATA,,\n../../../bin/tool,,\n")
    (site / "prov" / "lib").mkdir(parents=True)
    (site / "prov" / "lib" / "libprov.so.1").write_bytes(craft_elf(soname="libprov.so.1"))
    (src,) = installed_sources(str(site))
    assert (src.name, src.version, src.kind) == ("prov", "1.0", "installed")
    assert "tool" not in src.names() and "libprov.so.1" in src.names()  # outside site-packages: not counted
    assert list(src.load().files) == ["prov/lib/libprov.so.1"]


# ------------------------------------------------------------------ the audit with providers


def contents(members: dict[str, bytes], requires=(), extras=()) -> WheelContents:
    facts = {m: parse_elf(data) for m, data in members.items()}
    name = parse_wheel_name("pkg-1.0-cp311-cp311-linux_x86_64.whl")
    return WheelContents(f"/nowhere/{name.filename}", name, False, (), tuple(facts), facts, True, 0,
                         tuple(requires), tuple(extras))


def host(files=None) -> Host:
    return Host(DictFiles({p: parse_elf(b) for p, b in (files or {}).items()}),
                {libc: ("/usr/lib",) for libc in (None, "glibc", "musl")})


def provider_wheel(tmp_path, name="prov", version="1.0", files=None, requires=()):
    files = files if files is not None else {
        f"{name}/lib/libprov.so.1": craft_elf(soname="libprov.so.1", needed=("libc.so.6",),
                                              imports=(("clock_gettime", "GLIBC_2.17", "libc.so.6"),))}
    return write_wheel(tmp_path / f"{name}-{version}-py3-none-manylinux_2_17_x86_64.whl", files,
                       tag="py3-none-manylinux_2_17_x86_64", purelib=True, requires=requires)


def judge(members, providers, requires=("prov>=1,<2",), files=None, extras=(), **options):
    options.setdefault("environ", {})
    return analyze(contents(members, requires, extras), AuditOptions(providers=providers, **options), host(files))


def ext(**kw) -> bytes:
    return craft_elf(exports=("PyInit_ext",), **kw)


def test_a_provided_library_is_not_external_and_its_symbol_versions_count(tmp_path):
    prov = find_providers([str(provider_wheel(tmp_path))])
    host_copy = {"/usr/lib/libprov.so.1": craft_elf(soname="libprov.so.1")}  # the build machine's, not taken
    a = judge({EXT: ext(needed=("libprov.so.1", "libc.so.6"))}, prov, files=host_copy)
    assert a.audit.external_libs == ()
    (p,) = a.audit.provided_libs
    assert (p.soname, p.distribution, p.version, p.path, p.requirement, p.needed_by, p.unreached) == (
        "libprov.so.1", "prov", "1.0", "prov/lib/libprov.so.1", "prov<2,>=1", (EXT,), (EXT,))
    # the provider's GLIBC_2.17 rules out manylinux1, evidence named by its place and provider
    assert a.audit.overall == GLIBC.get("manylinux_2_17_x86_64")
    (s,) = shortfalls(a.audit, "manylinux_2_5_x86_64")
    assert (s.subject, [(e.file, e.provider) for e in s.evidence]) == (
        "GLIBC_2.17", [("prov/lib/libprov.so.1", "prov 1.0")])
    codes = [f.code for f in a.audit.findings]
    assert codes == ["provided-not-reached"]  # pinned to 1.*: no pin warning


def test_a_search_path_that_leads_to_the_provider_reaches_it(tmp_path):
    prov = find_providers([str(provider_wheel(tmp_path))])
    a = judge({EXT: ext(needed=("libprov.so.1",), rpath="$ORIGIN/../prov/lib")}, prov)
    (p,) = a.audit.provided_libs
    assert p.unreached == () and not a.audit.findings


def test_without_the_provider_the_library_is_external_and_a_requirement_alone_is_not_enough(tmp_path):
    files = {"/usr/lib/libprov.so.1": craft_elf(soname="libprov.so.1")}
    a = judge({EXT: ext(needed=("libprov.so.1",))}, Providers(), files=files)
    assert dict(a.audit.external_libs) == {"libprov.so.1": "/usr/lib/libprov.so.1"} and not a.audit.provided_libs


def test_a_provider_the_wheel_does_not_require_is_named_not_taken(tmp_path):
    prov = find_providers([str(provider_wheel(tmp_path))])
    a = judge({EXT: ext(needed=("libprov.so.1",))}, prov, requires=())
    assert dict(a.audit.external_libs) == {"libprov.so.1": None} and not a.audit.provided_libs
    (f,) = [f for f in a.audit.findings if f.code == "provider-not-required"]
    assert f.message.startswith("needs libprov.so.1, which prov 1.0 (") and "does not require prov" in f.message


def test_loose_pins_and_extras_are_warnings_naming_the_requirement(tmp_path):
    prov = find_providers([str(provider_wheel(tmp_path))])
    a = judge({EXT: ext(needed=("libprov.so.1",), rpath="$ORIGIN/../prov/lib")}, prov,
              requires=("prov>=1; extra == 'fast'",), extras=("fast",))
    pin, optional = [f for f in a.audit.findings if f.code in ("provider-pin", "provider-optional")]
    assert pin.message.startswith("Requires-Dist prov>=1; extra == \"fast\" allows prov 2, outside prov 1.*")
    assert pin.message.endswith("pin it: prov==1.*")
    assert "only with the extra 'fast'" in optional.message
    assert a.audit.provided_libs  # still provided


def test_what_a_provided_library_needs_is_its_provider_s_business(tmp_path):
    lib = craft_elf(soname="libprov.so.1", needed=("libhelper.so.3",))
    prov = find_providers([str(provider_wheel(tmp_path, files={"prov/lib/libprov.so.1": lib}))])
    files = {"/usr/lib/libhelper.so.3": craft_elf(soname="libhelper.so.3")}
    a = judge({EXT: ext(needed=("libprov.so.1",))}, prov, files=files)
    assert a.audit.external_libs == ()  # libhelper is not grafted into the consumer


def test_names_a_policy_s_system_provides_are_not_taken_from_providers(tmp_path):
    files = {"prov/lib/libprov.so.1": craft_elf(soname="libprov.so.1"), "prov/lib/libm.so.6": craft_elf(soname="libm.so.6")}
    prov = find_providers([str(provider_wheel(tmp_path, files=files))])
    a = judge({EXT: ext(needed=("libprov.so.1", "libm.so.6"))}, prov)
    assert [p.soname for p in a.audit.provided_libs] == ["libprov.so.1"]


def test_a_file_the_wheel_ships_where_the_provider_installs_is_the_wheel_s(tmp_path):
    prov = find_providers([str(provider_wheel(tmp_path))])
    own = craft_elf(soname="libprov.so.1")
    a = judge({EXT: ext(needed=("libprov.so.1",), rpath="$ORIGIN/../prov/lib"), "prov/lib/libprov.so.1": own}, prov)
    assert not a.audit.provided_libs and a.audit.external_libs == ()  # its own, internal


def test_dlopen_hints_leave_out_what_the_wheel_ships_and_the_system_provides():
    from dataclasses import replace

    member = replace(parse_elf(ext(needed=("libc.so.6",))),
                     dlopen_hints=("libGL.so.1", "libplug.so.1", "libshipped.so.2"))
    c = contents({"pkg/libshipped.so.2": craft_elf(soname="libshipped.so.2")})
    c = replace(c, elf={**c.elf, EXT: member}, members=(*c.members, EXT))
    a = analyze(c, AuditOptions(environ={}), host())
    (f,) = [f for f in a.audit.files if f.path == EXT]
    assert f.dlopen_hints == ("libplug.so.1",)  # libGL is the system's, libshipped the wheel's


# ------------------------------------------------------------------ the repair plan


def plan_of(analysis):
    from wheelvet.repair import plan_repair

    return plan_repair(analysis, hash8=lambda path: "abcd1234")


def test_the_plan_points_a_file_at_the_provider_and_grafts_nothing(tmp_path):
    prov = find_providers([str(provider_wheel(tmp_path))])
    a = judge({EXT: ext(needed=("libprov.so.1",), runpath="/build/lib:$ORIGIN/../pkg/data")}, prov)
    plan = plan_of(a)
    assert plan.grafts == () and plan.sbom is None
    (patch,) = plan.patches
    assert (patch.member, patch.rpath, patch.replace_needed) == (EXT, "$ORIGIN/../pkg/data:$ORIGIN/../prov/lib", ())
    assert plan.provided == ("libprov.so.1 from prov 1.0 (prov/lib/libprov.so.1)",)
    assert "  provided libprov.so.1 from prov 1.0 (prov/lib/libprov.so.1): not grafted" in plan.describe()
    reached = judge({EXT: ext(needed=("libprov.so.1",), rpath="$ORIGIN/../prov/lib")}, prov)
    assert plan_of(reached).patches == ()  # nothing to change


def test_a_file_deeper_in_the_wheel_gets_its_own_relative_entry(tmp_path):
    files = {"nvidia/cuda_runtime/lib/libcudart.so.12": craft_elf(soname="libcudart.so.12")}
    prov = find_providers([str(provider_wheel(tmp_path, "nvidia_cuda_runtime_cu12", "12.9.79", files))])
    deep = "pkg/sub/ext.cpython-311-x86_64-linux-gnu.so"
    a = judge({deep: ext(needed=("libcudart.so.12",))}, prov, requires=("nvidia-cuda-runtime-cu12==12.*",))
    (patch,) = plan_of(a).patches
    assert patch.rpath == "$ORIGIN/../../nvidia/cuda_runtime/lib"


def test_an_included_library_keeps_its_name_and_its_dependencies_are_grafted(tmp_path):
    from dataclasses import replace

    files = {"/usr/lib/libplug.so.1": craft_elf(soname="libplug.so.1", needed=("libdep.so.2", "libc.so.6")),
             "/usr/lib/libdep.so.2": craft_elf(soname="libdep.so.2")}
    user = replace(parse_elf(ext(needed=("libc.so.6",))), dlopen_hints=("libplug.so.1",))
    other = "pkg/other.cpython-311-x86_64-linux-gnu.so"
    c = contents({other: craft_elf(exports=("PyInit_other",), needed=("libc.so.6",))})
    c = replace(c, elf={**c.elf, EXT: user}, members=(*c.members, EXT))
    a = analyze(c, AuditOptions(environ={}, include=("libplug.so.1",)), host(files))
    assert dict(a.audit.external_libs) == {"libplug.so.1": "/usr/lib/libplug.so.1", "libdep.so.2": "/usr/lib/libdep.so.2"}
    plan = plan_of(a)
    grafts = {g.soname: g for g in plan.grafts}
    assert (grafts["libplug.so.1"].member, grafts["libplug.so.1"].new_soname, grafts["libplug.so.1"].included) == (
        "pkg.libs/libplug.so.1", "libplug.so.1", True)
    assert grafts["libdep.so.2"].member == "pkg.libs/libdep-abcd1234.so.2"
    assert grafts["libplug.so.1"].replace_needed == (("libdep.so.2", "libdep-abcd1234.so.2"),)
    # only the file that names it gets the entry
    assert [(p.member, p.rpath) for p in plan.patches] == [(EXT, "$ORIGIN/../pkg.libs")]
    assert "(--include: keeps its name, for dlopen)" in plan.describe()


def test_an_included_library_that_is_not_found_refuses_the_repair():
    from wheelvet.errors import RepairRefused

    a = analyze(contents({EXT: ext(needed=("libc.so.6",))}), AuditOptions(environ={}, include=("libnone.so.1",)), host())
    assert dict(a.audit.external_libs) == {"libnone.so.1": None}
    with pytest.raises(RepairRefused, match="libnone.so.1 was not found"):
        plan_of(a)
