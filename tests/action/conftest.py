import shutil

import pytest

from fake_github import FakeGitHub
from support import HAVE_GCC, build_extension, build_lib_chain, write_wheel


@pytest.fixture
def fake_github():
    fake = FakeGitHub(token="ghs_test_token_0123456789").start()
    yield fake
    fake.stop()


@pytest.fixture(scope="session")
def _workspace_template(tmp_path_factory):
    """Built once: the libraries and the wheel hold no absolute path, so each
    test's copy works where it lies."""
    if not HAVE_GCC:
        pytest.skip("gcc is not installed: these tests build real ELF files")
    top = tmp_path_factory.mktemp("action-template")
    ws = top / "ws"
    libs = build_lib_chain(ws / "build" / "lib")
    ext = build_extension(top / "b", "spam", f"-L{libs}", "-l:libA.so.1", body="int a_value(void);", call="a_value()")
    write_wheel(ws / "dist" / "pkg-1.0-cp311-cp311-linux_x86_64.whl", {f"pkg/{ext.name}": ext.read_bytes(), "pkg/__init__.py": b""})
    return ws


@pytest.fixture
def workspace(tmp_path, _workspace_template):
    """A workspace holding a wheel whose extension needs libA -> libB, built outside system paths."""
    ws = tmp_path / "ws"
    shutil.copytree(_workspace_template, ws, symlinks=True)
    return ws
