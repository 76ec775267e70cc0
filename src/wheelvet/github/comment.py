"""The pull request's one wheelvet comment, shared by every leg of a matrix.

The comment starts with the report's hidden marker
(:func:`wheelvet.report.markup.report_marker`, the one it is rendered with)
and ends with a hidden data block holding every leg's part of the report.  A
leg reads the comment, merges its own part in by leg key (a re-run replaces
its earlier attempt's), renders the whole report again and writes it; then it
reads it back after a short wait, a few times, and merges again if a leg that
finished at the same moment wrote over it.  Two legs that both found no
comment and both created one are reconciled the same way: the oldest comment
is kept, the others merged into it and deleted.  GitHub offers no conditional
update for comments, so this is optimistic: a part is lost only if another
leg's read-modify-write spans the whole settle window (``SETTLE``).

All calls go through PyGithub, given the API base URL (``api-url``), so a
GitHub Enterprise server works too.  The class is handed its client, so tests
point it at a local fake of the REST API.
"""

from __future__ import annotations

import base64
import binascii
import json
import random
import re
import time
import zlib
from dataclasses import asdict, dataclass
from typing import Callable, Sequence

from ..errors import ServiceError
from ..report.markup import report_marker
from ..report.view import Leg, merge_legs
from .rest import Github, GithubException, RestRefused, calling, make_client

DATA_PREFIX = "<!-- wheelvet-data v2 "
_DATA_RE = re.compile(r"<!-- wheelvet-data v2 ([A-Za-z0-9+/=]*) -->")
SETTLE = (1.0, 2.0, 4.0)  # seconds between the write and each read-back
ROUNDS = 8  # merges before giving up
MAX_DATA = 256 << 10  # a data block decodes to at most this many bytes


class CommentError(ServiceError):
    """The pull-request comment could not be read or written."""


@dataclass(frozen=True)
class CommentResult:
    action: str  # "created", "updated", "skipped"
    url: str | None = None
    reason: str | None = None


def encode_legs(legs: Sequence[Leg]) -> str:
    """The hidden block that carries the legs' parts (compressed JSON)."""
    raw = json.dumps([asdict(g) for g in legs], separators=(",", ":")).encode()
    return DATA_PREFIX + base64.b64encode(zlib.compress(raw, 9)).decode() + " -->"


def decode_legs(body: str | None) -> list[Leg]:
    """The legs a comment carries; none from a block that is damaged or not ours."""
    m = _DATA_RE.search(body or "")
    if not m:
        return []
    try:
        inflater = zlib.decompressobj()
        raw = inflater.decompress(base64.b64decode(m.group(1), validate=True), MAX_DATA)
        if inflater.unconsumed_tail:
            return []
        return [Leg.from_dict(g) for g in json.loads(raw)]
    except (binascii.Error, zlib.error, ValueError, TypeError, RecursionError):
        return []


class PullRequestCommenter:
    def __init__(self, client: Github, repository: str, *, settle: Sequence[float] = SETTLE,
                 sleep: Callable[[float], None] = time.sleep, api_url: str = "") -> None:
        self.client = client
        self.api_url = api_url
        self.repository = repository
        self.settle = tuple(settle)
        self.sleep = sleep

    def find_pull_request(self, head_repo: str, head_branch: str, head_sha: str) -> int | None:
        """The open pull request whose head is ``head_repo:head_branch`` at
        ``head_sha`` (the head must match: a branch can move on)."""
        owner = head_repo.split("/", 1)[0]
        try:
            with calling("could not look up the pull request", self.api_url):
                for pr in self.client.get_repo(self.repository).get_pulls(state="open", head=f"{owner}:{head_branch}"):
                    if pr.head.sha == head_sha:
                        return pr.number
        except RestRefused as exc:
            if exc.not_allowed:
                return None
            raise
        return None

    def upsert(self, number: int, report_id: str, body: str, *, create: bool = True) -> CommentResult:
        """Write ``body`` as the report's comment: the oldest one with its
        marker is edited, duplicates deleted, one created unless not ``create``."""
        return self.merge_legs(number, report_id, (), lambda _legs: body, create=create, settle=False)

    def merge_legs(self, number: int, report_id: str, legs: Sequence[Leg], render: Callable[[tuple[Leg, ...]], str], *,
                   create: bool = True, settle: bool = True) -> CommentResult:
        """Merge ``legs`` into the comment's, render them all with ``render``
        (whose body must carry them: :func:`encode_legs`), write, and (with
        ``settle``) make sure the parts survive legs that write at the same time."""
        tag = report_marker(report_id)
        ours = list(legs)
        try:
            with calling("could not post the pull-request comment", self.api_url):
                return self._merge(number, tag, ours, render, create, settle)
        except RestRefused as exc:
            if exc.not_allowed:  # e.g. a pull request from a fork: the token cannot write here
                return CommentResult("skipped", None, exc.reason)
            raise

    def _merge(self, number: int, tag: str, ours: list, render, create: bool, settle: bool) -> CommentResult:
        issue = self.client.get_repo(self.repository).get_issue(number)
        action = "updated"
        for _round in range(ROUNDS):
            mine = self._mine(issue, tag)
            merged = merge_legs([*(g for c in mine for g in decode_legs(c.body)), *ours])
            body = render(merged)
            if not body.startswith(tag):
                body = f"{tag}\n{body}"
            if not mine:
                if not create:
                    return CommentResult("skipped")
                primary = issue.create_comment(body)
                action = "created"
            else:
                primary = mine[0]
                if primary.body != body:
                    primary.edit(body)
                for duplicate in mine[1:]:
                    self._delete(duplicate)
            if not settle or self._settled(issue, tag, primary.id, ours):
                return CommentResult(action, primary.html_url)
        raise CommentError(f"the pull-request comment kept changing under {ROUNDS} merges: too many legs "
                           "writing at once")

    @staticmethod
    def _mine(issue, tag: str) -> list:
        return sorted((c for c in issue.get_comments() if (c.body or "").startswith(tag)), key=lambda c: c.id)

    def _settled(self, issue, tag: str, primary_id: int, legs: Sequence[Leg]) -> bool:
        """Read the comment back after each settle delay: one comment, still
        holding each of ``legs`` (or a newer part of the same leg)."""
        for delay in self.settle:
            self.sleep(delay * random.uniform(0.75, 1.25))
            mine = self._mine(issue, tag)
            if len(mine) != 1 or mine[0].id != primary_id:
                return False
            have = {g.key: g for g in decode_legs(mine[0].body)}
            if any(g.key not in have or (have[g.key].run_id, have[g.key].run_attempt, have[g.key].updated)
                   < (g.run_id, g.run_attempt, g.updated) for g in legs):
                return False
        return True

    @staticmethod
    def _delete(comment) -> None:
        try:
            comment.delete()
        except GithubException as exc:
            if exc.status != 404:  # another leg deleted it first
                raise


__all__ = ["CommentError", "CommentResult", "PullRequestCommenter", "decode_legs", "encode_legs", "make_client"]
