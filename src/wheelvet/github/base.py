"""The base branch's wheelvet report, for the comparison a pull request gets.

Each leg uploads its JSON report as a small artifact of its own
(``wheelvet-report-<leg>``).  To compare, a leg asks the REST API for the
latest successful runs of the same workflow on the base branch, lists each
run's artifacts, downloads the report artifacts' zips (the API answers with a
redirect to signed storage, which is fetched without the token) and combines
the reports they hold.  No report (a first run, expired artifacts, a token
without ``actions: read``) is a note, never a failure.
"""

from __future__ import annotations

import io
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from dataclasses import dataclass

from ..report.view import BaseInfo, Report, combine
from .rest import Github, RestError, RestRefused, calling

REPORT_ARTIFACT_PREFIX = "wheelvet-report-"
REPORT_FILE = "wheelvet-report.json"
MAX_RUNS = 5  # successful base runs looked at, newest first
MAX_ZIP = 16 << 20
MAX_JSON = 8 << 20


@dataclass(frozen=True)
class Found:
    report: Report | None
    info: BaseInfo


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[override]
        return None


def _read(resp, limit: int) -> bytes:
    data = resp.read(limit + 1)
    if len(data) > limit:
        raise ValueError(f"more than {limit} bytes")
    return data


class BaseReports:
    def __init__(self, client: Github, repository: str, token: str, *, timeout: float = 30) -> None:
        self.client = client
        self.repository = repository
        self.token = token
        self.timeout = timeout

    def find(self, workflow: str, branch: str) -> Found:
        """The newest successful run of ``workflow`` (its file name) on ``branch`` that left wheelvet reports."""
        try:
            with calling("the base branch's runs could not be read"):
                repo = self.client.get_repo(self.repository)
                runs = repo.get_workflow(workflow).get_runs(branch=branch, status="success")
                for n, run in enumerate(runs):
                    if n >= MAX_RUNS:
                        break
                    reports = [r for a in run.get_artifacts()
                               if a.name.startswith(REPORT_ARTIFACT_PREFIX) and not a.expired
                               for r in [self._download(a.archive_download_url)] if r is not None]
                    if reports:
                        merged = combine(reports)
                        return Found(merged, BaseInfo(branch, run_url=run.html_url, sha=run.head_sha or ""))
        except RestRefused as exc:
            if exc.status in (401, 403):
                why = "the token may not read workflow runs (give the job the actions: read permission)"
            elif exc.status == 404:
                why = f"the workflow {workflow} or its runs are not visible to this token"
            else:
                why = exc.reason
            return Found(None, BaseInfo(branch, note=why))
        except RestError as exc:
            return Found(None, BaseInfo(branch, note=str(exc)))
        return Found(None, BaseInfo(branch, note=f"no successful run of {workflow} on {branch} left a wheelvet "
                                                 "report (the first run, or its artifacts expired)"))

    def _download(self, url: str) -> Report | None:
        """An artifact's report: the API's redirect, then the signed URL without the token."""
        try:
            opener = urllib.request.build_opener(_NoRedirect)
            req = urllib.request.Request(url, headers={"Authorization": f"Bearer {self.token}",
                                                       "Accept": "application/vnd.github+json"})
            try:
                with opener.open(req, timeout=self.timeout) as resp:
                    data = _read(resp, MAX_ZIP)  # a server may answer with the zip itself
            except urllib.error.HTTPError as exc:
                if exc.code not in (301, 302, 303, 307, 308) or not exc.headers.get("Location"):
                    return None
                target = urllib.parse.urljoin(url, exc.headers["Location"])
                if urllib.parse.urlsplit(target).scheme not in ("https", "http"):
                    return None
                with urllib.request.urlopen(urllib.request.Request(target), timeout=self.timeout) as resp:
                    data = _read(resp, MAX_ZIP)
            with zipfile.ZipFile(io.BytesIO(data)) as zf:
                info = zf.getinfo(REPORT_FILE)
                if info.file_size > MAX_JSON:
                    return None
                return Report.from_json(zf.read(info).decode("utf-8"))
        except (OSError, ValueError, KeyError, zipfile.BadZipFile, UnicodeDecodeError):
            return None  # one unreadable artifact: the others may still do


__all__ = ["BaseReports", "Found", "REPORT_ARTIFACT_PREFIX", "REPORT_FILE"]
