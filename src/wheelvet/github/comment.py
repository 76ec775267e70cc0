"""One pull-request comment per report id, found again by its hidden marker
(:func:`wheelvet.report.markup.report_marker`, the one the report is rendered with).

All calls go through PyGithub, given the API base URL (``api-url``), so a
GitHub Enterprise server works too.  The class is handed its client, so tests
point it at a local fake of the REST API.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import MissingExtra, ServiceError

try:  # PyGithub comes with wheelvet[action]; the command line installs without it
    from github import Auth, Github, GithubException
except ImportError:
    raise MissingExtra("wheelvet action", "action", "PyGithub") from None
from ..report.markup import report_marker


class CommentError(ServiceError):
    """The pull-request comment could not be read or written."""


@dataclass(frozen=True)
class CommentResult:
    action: str  # "created", "updated", "skipped"
    url: str | None = None
    reason: str | None = None


def make_client(api_url: str, token: str, *, timeout: int = 20, retries: int = 3) -> Github:
    return Github(base_url=api_url, auth=Auth.Token(token), timeout=timeout, retry=retries, lazy=True,
                  seconds_between_requests=0, seconds_between_writes=0)


class PullRequestCommenter:
    def __init__(self, client: Github, repository: str) -> None:
        self.client = client
        self.repository = repository

    def find_pull_request(self, head_repo: str, head_branch: str, head_sha: str) -> int | None:
        """The open pull request whose head is ``head_repo:head_branch`` at
        ``head_sha`` (the head must match: a branch can move on)."""
        owner = head_repo.split("/", 1)[0]
        try:
            for pr in self.client.get_repo(self.repository).get_pulls(state="open", head=f"{owner}:{head_branch}"):
                if pr.head.sha == head_sha:
                    return pr.number
        except GithubException as exc:
            if exc.status in (401, 403, 404):
                return None
            raise CommentError(f"could not look up the pull request: GitHub answered {exc.status}") from None
        return None

    def upsert(self, number: int, report_id: str, body: str, *, create: bool = True) -> CommentResult:
        """Edit the report's comment in place, or create it (unless not
        ``create``); never a second copy."""
        tag = report_marker(report_id)
        if not body.startswith(tag):
            body = f"{tag}\n{body}"
        try:
            issue = self.client.get_repo(self.repository).get_issue(number)
            mine = None
            for c in issue.get_comments():
                if (c.body or "").startswith(tag):
                    mine = c
                    break
            if mine is not None:
                mine.edit(body)
                return CommentResult("updated", mine.html_url)
            if not create:
                return CommentResult("skipped")
            created = issue.create_comment(body)
            return CommentResult("created", created.html_url)
        except GithubException as exc:
            if exc.status in (401, 403, 404):
                # e.g. a pull request from a fork: the token cannot write here
                message = (exc.data or {}).get("message") if isinstance(exc.data, dict) else None
                return CommentResult("skipped", None, f"GitHub answered {exc.status}{': ' + message if message else ''}")
            raise CommentError(f"could not post the pull-request comment: GitHub answered {exc.status}") from None
