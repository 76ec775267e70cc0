"""The pull-request comment, against a local fake of GitHub's REST API."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from wheelvet.github.comment import PullRequestCommenter, make_client  # noqa: E402
from wheelvet.report.markup import report_marker as marker  # noqa: E402

REPO = "octo/wheels"


def commenter(fake):
    return PullRequestCommenter(make_client(fake.url, fake.token), REPO)


def test_created_then_edited_in_place(fake_github):
    c = commenter(fake_github)
    first = c.upsert(7, "ci/linux", "first body")
    assert first.action == "created" and first.url.endswith(f"#issuecomment-{fake_github.next_id}")
    second = c.upsert(7, "ci/linux", "second body")
    assert second.action == "updated" and second.url == first.url
    comments = fake_github.comments[(REPO, 7)]
    assert len(comments) == 1 and comments[0]["body"] == marker("ci/linux") + "\nsecond body"


def test_other_reports_and_people_are_left_alone(fake_github):
    fake_github.add_comment(REPO, 7, "LGTM")
    fake_github.add_comment(REPO, 7, marker("ci/macos") + "\nother job")
    c = commenter(fake_github)
    assert c.upsert(7, "ci/linux", "mine").action == "created"
    assert c.upsert(7, "ci/linux", "mine again").action == "updated"
    bodies = [x["body"] for x in fake_github.comments[(REPO, 7)]]
    assert bodies[:2] == ["LGTM", marker("ci/macos") + "\nother job"] and len(bodies) == 3


def test_found_on_a_later_page(fake_github):
    for i in range(75):
        fake_github.add_comment(REPO, 9, f"chatter {i}")
    fake_github.add_comment(REPO, 9, marker("r") + "\nold")
    assert commenter(fake_github).upsert(9, "r", "new").action == "updated"
    assert len(fake_github.comments[(REPO, 9)]) == 76


def test_read_only_token_is_skipped_not_failed(fake_github):
    fake_github.read_only = True
    res = commenter(fake_github).upsert(7, "r", "body")
    assert res.action == "skipped" and "403" in res.reason


def test_marker_cannot_close_the_html_comment():
    assert "-->" not in marker("evil --> <script>")[:-3]
