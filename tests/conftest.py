import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from support import HAVE_GCC, build_lib_chain  # noqa: E402


@pytest.fixture
def need_gcc():
    if not HAVE_GCC:
        pytest.skip("gcc is not installed: these tests build real ELF files")


@pytest.fixture
def libs(tmp_path, need_gcc):
    """libA needs libB (a_value() == 43); both outside any system path."""
    return build_lib_chain(tmp_path / "libs")
