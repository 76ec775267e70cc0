import pytest

from fake_github import FakeGitHub


@pytest.fixture
def fake_github():
    fake = FakeGitHub(token="ghs_test_token_0123456789").start()
    yield fake
    fake.stop()
