"""The SBOM's owner lookups and document, below the repair.

dpkg is tested for real (tests/integration/test_sbom.py). This machine has no
rpm or apk database, so those two are tested through OwnerLookup's ``run``
seam with answers in the tools' documented output formats (``rpm -qf
--queryformat`` prints the fields asked for; ``apk info --who-owns`` prints
``<path> is owned by <name>-<version>``; both exit 1 for a file no package
owns): the commands asked and the parsing are what is tested here, not the
tools."""

from __future__ import annotations

import json

import pytest

from wheelvet.repair.sbom import GraftedFile, Owner, OwnerLookup, lookup_names, merged_usr_twin, render_sbom


class Recorded:
    """Answers recorded per command line; records what was asked."""

    def __init__(self, answers: dict[tuple[str, ...], tuple[int, str]]) -> None:
        self.answers = answers
        self.asked: list[tuple[str, ...]] = []

    def __call__(self, argv):
        self.asked.append(tuple(argv))
        return self.answers.get(tuple(argv), (1, ""))


RPM_Q = ("rpm", "-qf", "--queryformat", "%{NAME} %{VERSION} %{RELEASE} %{ARCH}\\n")


def lookup(tools: set[str], answers, distro="almalinux") -> tuple[OwnerLookup, Recorded]:
    rec = Recorded(answers)
    return OwnerLookup(run=rec, which=lambda t: f"/usr/bin/{t}" if t in tools else None, distro=distro), rec


def test_rpm_owner_version_is_version_release():
    found, rec = lookup({"rpm"}, {
        (*RPM_Q, "/usr/lib64/libffi.so.8.1.0"): (0, "libffi 3.4.2 8.el9 x86_64\n"),
        (*RPM_Q, "/opt/x/libfoo.so.1"): (1, "file /opt/x/libfoo.so.1 is not owned by any package\n"),
    })
    owners = found.owners(["/usr/lib64/libffi.so.8.1.0", "/opt/x/libfoo.so.1"])
    assert owners == {"/usr/lib64/libffi.so.8.1.0": Owner("rpm", "almalinux", "libffi", "3.4.2-8.el9"),
                      "/opt/x/libfoo.so.1": None}
    assert owners["/usr/lib64/libffi.so.8.1.0"].purl == "pkg:rpm/almalinux/libffi@3.4.2-8.el9"
    # asked once per file, and never again in this process
    assert found.owners(["/usr/lib64/libffi.so.8.1.0"])["/usr/lib64/libffi.so.8.1.0"].name == "libffi"
    assert len(rec.asked) == 2


def test_apk_owner_splits_name_and_version_at_the_version():
    found, _ = lookup({"apk"}, {
        ("apk", "info", "--who-owns", "/usr/lib/libffi.so.8.1.4"): (0, "/usr/lib/libffi.so.8.1.4 is owned by libffi-3.4.6-r0\n"),
        ("apk", "info", "--who-owns", "/usr/lib/libgcc_s.so.1"): (0, "/usr/lib/libgcc_s.so.1 is owned by libgcc-14.2.0-r4\n"),
        ("apk", "info", "--who-owns", "/usr/lib/libxml2-16.so.2"): (0, "/usr/lib/libxml2-16.so.2 is owned by libxml2-16-2.13.4-r0\n"),
        ("apk", "info", "--who-owns", "/tmp/libfoo.so"): (1, "ERROR: /tmp/libfoo.so: Could not find owner package\n"),
    }, distro="alpine")
    owners = found.owners(["/usr/lib/libffi.so.8.1.4", "/usr/lib/libgcc_s.so.1", "/usr/lib/libxml2-16.so.2", "/tmp/libfoo.so"])
    assert owners["/usr/lib/libffi.so.8.1.4"] == Owner("apk", "alpine", "libffi", "3.4.6-r0")
    assert owners["/usr/lib/libgcc_s.so.1"].purl == "pkg:apk/alpine/libgcc@14.2.0-r4"
    assert owners["/usr/lib/libxml2-16.so.2"] == Owner("apk", "alpine", "libxml2-16", "2.13.4-r0")
    assert owners["/tmp/libfoo.so"] is None


def test_dpkg_batches_paths_and_drops_the_architecture():
    found, rec = lookup({"dpkg"}, {
        ("dpkg", "-S", "/lib/x86_64-linux-gnu/libz.so.1.2.13", "/usr/lib/x86_64-linux-gnu/libz.so.1.2.13"):
            (1, "zlib1g:amd64: /lib/x86_64-linux-gnu/libz.so.1.2.13\n"),
        ("dpkg-query", "-W", "-f", "${binary:Package}\\t${Version}\\n", "zlib1g:amd64"): (0, "zlib1g:amd64\t1:1.2.13.dfsg-1\n"),
    }, distro="debian")
    owners = found.owners(["/lib/x86_64-linux-gnu/libz.so.1.2.13", "/usr/lib/x86_64-linux-gnu/libz.so.1.2.13"])
    assert owners["/lib/x86_64-linux-gnu/libz.so.1.2.13"].purl == "pkg:deb/debian/zlib1g@1%3A1.2.13.dfsg-1"
    assert owners["/usr/lib/x86_64-linux-gnu/libz.so.1.2.13"] is None
    assert len(rec.asked) == 2


def test_no_package_manager_or_no_distro_finds_nothing():
    found, rec = lookup(set(), {})
    assert found.owners(["/usr/lib/libx.so"]) == {"/usr/lib/libx.so": None} and rec.asked == []
    found, rec = lookup({"dpkg", "rpm"}, {}, distro=None)
    assert found.owners(["/usr/lib/libx.so"]) == {"/usr/lib/libx.so": None} and rec.asked == []


@pytest.mark.parametrize("path,twin", [
    ("/lib/x86_64-linux-gnu/libz.so.1", "/usr/lib/x86_64-linux-gnu/libz.so.1"),
    ("/usr/lib/x86_64-linux-gnu/libz.so.1", "/lib/x86_64-linux-gnu/libz.so.1"),
    ("/lib64/libc.so.6", "/usr/lib64/libc.so.6"),
    ("/usr/local/lib/libfoo.so", None),
    ("/opt/lib/libfoo.so", None),
])
def test_merged_usr_twins(path, twin):
    assert merged_usr_twin(path) == twin


def test_lookup_names_as_found_then_real_then_twins(tmp_path):
    assert lookup_names(None, "/usr/lib/x86_64-linux-gnu/libffi.so.8.1.2") == (
        "/usr/lib/x86_64-linux-gnu/libffi.so.8.1.2", "/lib/x86_64-linux-gnu/libffi.so.8.1.2")
    (tmp_path / "libq.so.1.0").write_bytes(b"")
    (tmp_path / "libq.so.1").symlink_to("libq.so.1.0")
    assert lookup_names(str(tmp_path / "libq.so.1"), str(tmp_path / "libq.so.1.0")) == (str(tmp_path / "libq.so.1.0"),)


def test_document_order_and_unowned_files():
    ffi = Owner("rpm", "almalinux", "libffi", "3.4.2-8.el9")
    files = [GraftedFile("/tmp/b/libfoo.so.1", (), "ab" * 32), GraftedFile("/usr/lib64/libffi.so.8", (), "cd" * 32, ffi),
             GraftedFile("/tmp/a/libfoo.so.1", (), "ab" * 32)]  # the same unowned file twice: one component
    doc = json.loads(render_sbom("p-1.0-cp311-cp311-manylinux_2_17_x86_64.whl", files))
    assert [c["name"] for c in doc["components"]] == ["p", "libffi", "libfoo.so.1"]
    assert doc["components"][2] == {"type": "file", "bom-ref": "file:libfoo.so.1#" + "ab" * 32, "name": "libfoo.so.1",
                                    "hashes": [{"alg": "SHA-256", "content": "ab" * 32}]}
    assert doc["components"][0]["purl"] == "pkg:pypi/p@1.0?file_name=p-1.0-cp311-cp311-manylinux_2_17_x86_64.whl"
