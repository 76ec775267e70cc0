import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from support import HAVE_GCC  # noqa: E402


@pytest.fixture
def need_gcc():
    if not HAVE_GCC:
        pytest.skip("gcc is not installed: these tests build real ELF files")
