import pytest

from fake_github import FakeGitHub
from support import build_extension, build_lib_chain, write_wheel


@pytest.fixture
def fake_github():
    fake = FakeGitHub(token="ghs_test_token_0123456789").start()
    yield fake
    fake.stop()


@pytest.fixture
def workspace(tmp_path, need_gcc):
    """A workspace holding a wheel whose extension needs libA -> libB, built outside system paths."""
    ws = tmp_path / "ws"
    libs = build_lib_chain(ws / "build" / "lib")
    ext = build_extension(tmp_path / "b", "spam", f"-L{libs}", "-l:libA.so.1", body="int a_value(void);", call="a_value()")
    write_wheel(ws / "dist" / "pkg-1.0-cp311-cp311-linux_x86_64.whl", {f"pkg/{ext.name}": ext.read_bytes(), "pkg/__init__.py": b""})
    return ws
