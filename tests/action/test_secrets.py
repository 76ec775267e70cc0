"""Tokens as users paste them into secrets: surrounding whitespace is
stripped, anything a token cannot hold is refused, and no message ever
prints one (not even the internal-error line)."""

from __future__ import annotations

import pytest

from test_action import REPO_NAME, parse_outputs, run_action, runner_env

# What a pasted secret may look like: the token with a trailing newline (as an
# editor saves it), surrounding blanks, or characters no token holds.
STRIPPED = ["{t}\n", "{t}\r\n", "  {t}\t", "\n{t}\n\n"]
REFUSED = ["{t}é", "{t} tail", "ö{t}", "{t}\u202e", "{t}\x1b[31m", "{t}\u00a0x", "{t}\x7f", "{t}\u4e2d"]


def leaks(p, secret: str, runner) -> list[str]:
    places = {"stdout": p.stdout.replace(f"::add-mask::{secret}", ""), "stderr": p.stderr,
              "output": (runner / "output").read_text(), "summary": (runner / "summary").read_text()}
    return [where for where, text in places.items() if secret in text or secret.strip() in text]


@pytest.mark.parametrize("shape", STRIPPED)
@pytest.mark.parametrize("via", ["INPUT_GITHUB-TOKEN", "GITHUB_TOKEN"])
def test_surrounding_whitespace_is_stripped(workspace, fake_github, shape, via):
    env = runner_env(workspace, fake_github)
    env.pop("INPUT_GITHUB-TOKEN")
    env[via] = shape.format(t=fake_github.token)
    p = run_action(env, workspace)
    assert p.returncode == 0, p.stdout + p.stderr
    assert len(fake_github.comments[(REPO_NAME, 12)]) == 1  # the stripped token worked
    assert leaks(p, fake_github.token, workspace.parent / "runner") == []


@pytest.mark.parametrize("shape", REFUSED)
@pytest.mark.parametrize("via", ["INPUT_GITHUB-TOKEN", "GITHUB_TOKEN", "ACTIONS_RUNTIME_TOKEN"])
def test_a_token_no_service_would_take_is_refused_unprinted(workspace, fake_github, shape, via):
    env = runner_env(workspace, fake_github, upload="true")
    env.pop("INPUT_GITHUB-TOKEN")
    env["GITHUB_TOKEN"] = fake_github.token
    env["ACTIONS_RESULTS_URL"] = fake_github.url + "/"
    env["ACTIONS_RUNTIME_TOKEN"] = "eyJhbGciOiJub25lIn0.e30.c2ln"
    bad = shape.format(t=fake_github.token if via != "ACTIONS_RUNTIME_TOKEN" else env["ACTIONS_RUNTIME_TOKEN"])
    try:
        bad.encode("utf-8")
    except UnicodeEncodeError:
        pytest.skip("the environment cannot carry a lone surrogate")
    env[via] = bad
    p = run_action(env, workspace)
    assert p.returncode == 2, p.stdout + p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "token" in lines[0].lower(), p.stderr
    assert "internal error" not in p.stderr
    for secret in (bad, bad.strip(), fake_github.token):
        assert secret not in p.stderr
        assert secret not in p.stdout.replace(f"::add-mask::{secret}", "")
    assert fake_github.requests == []  # refused before anything was sent
    assert not (workspace / "wheelhouse").exists()  # nor written
    assert parse_outputs(workspace.parent / "runner" / "output") == {}


@pytest.mark.parametrize("bad", ["tok\x00en", "tok\nen", "tok\udcffen", "t\u0131ken"])
def test_settings_refuse_what_no_environment_can_pass(bad):
    from wheelvet.errors import UsageError
    from wheelvet.github.settings import Settings

    with pytest.raises(UsageError) as err:
        Settings.from_environment({"INPUT_GITHUB-TOKEN": bad})
    assert bad not in str(err.value) and "token" in str(err.value)


def test_redact_hides_every_form_of_every_secret():
    from wheelvet.github.settings import redact

    env = {"GITHUB_TOKEN": "ghs_abcdef\n", "ACTIONS_RUNTIME_TOKEN": "eyJ.x.y", "INPUT_GITHUB-TOKEN": "  ghp_zzzz "}
    text = "Invalid header value b'Bearer ghs_abcdef\\n' / ghs_abcdef / eyJ.x.y / ghp_zzzz"
    out = redact(text, env)
    assert all(s not in out for s in ("ghs_abcdef", "eyJ.x.y", "ghp_zzzz")) and out.count("***") == 4
