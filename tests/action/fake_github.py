"""A local fake of the parts of GitHub's REST API the action uses, as strict as
the documentation.

- Issue comments: list (paginated with Link headers), create, edit, delete;
  a fork's read-only token gets 403 on writes.
- Pull requests: list, filtered by ``head=owner:branch`` and state.
- Actions: a workflow by file name, its runs (filtered by ``branch`` and
  ``status``, newest first, paginated), a run's artifacts, an artifact's zip
  (``302`` to signed storage, which refuses an ``Authorization`` header, as
  Azure's pre-signed URLs do), a run's jobs.  A token without ``actions:
  read`` gets 403 there.

It checks the token, answers with GitHub's JSON shapes, serves many clients
at once (every change under one lock) and records every request.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict
    body: str


@dataclass
class FakeGitHub:
    token: str
    prefix: str = "/api/v3"  # GitHub Enterprise style base path
    read_only: bool = False
    actions_read: bool = True  # the token may read workflow runs and artifacts
    comments: dict = field(default_factory=dict)  # (repo, number) -> list of comment dicts
    requests: list = field(default_factory=list)
    pulls: dict = field(default_factory=dict)  # repo -> list of pull request dicts
    workflows: dict = field(default_factory=dict)  # (repo, file) -> workflow dict
    runs: dict = field(default_factory=dict)  # repo -> list of run dicts (with "_artifacts", "_jobs")
    blobs: dict = field(default_factory=dict)  # download path -> (signature, bytes)
    next_id: int = 1000
    deletes: int = 0
    fail_all: tuple | None = None  # (status, body): every API request answered so (an outage, a proxy's page)

    def start(self) -> FakeGitHub:
        fake = self
        lock = threading.Lock()
        self.lock = lock

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _send(self, status, payload, headers=None, raw: bytes | None = None):
                data = raw if raw is not None else (json.dumps(payload).encode() if payload is not None else b"")
                self.send_response(status)
                if raw is None and payload is not None:
                    self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def _page(self, items, base, path, query, key=None):
                q = parse_qs(query)
                per_page = min(int(q.get("per_page", ["30"])[0]), 100)
                page = int(q.get("page", ["1"])[0])
                chunk = items[(page - 1) * per_page : page * per_page]
                headers = {}
                if page * per_page < len(items):
                    rest = "&".join(f"{k}={v[0]}" for k, v in q.items() if k not in ("page", "per_page"))
                    headers["Link"] = f'<{base}{path}?{rest + "&" if rest else ""}per_page={per_page}&page={page + 1}>; rel="next"'
                payload = chunk if key is None else {"total_count": len(items), key: chunk}
                return self._send(200, payload, headers)

            def _handle(self, method):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode() if length else ""
                with lock:
                    fake.requests.append(Recorded(method, self.path, dict(self.headers), body))
                url = urlsplit(self.path)
                if fake.fail_all is not None:
                    return self._send(fake.fail_all[0], None, {"Content-Type": "text/html"}, raw=fake.fail_all[1])
                if url.path.startswith("/blob-download/"):
                    return self._blob(url)
                auth = self.headers.get("Authorization", "")
                if auth not in (f"token {fake.token}", f"Bearer {fake.token}"):
                    return self._send(401, {"message": "Bad credentials"})
                path = url.path
                if not path.startswith(fake.prefix + "/"):
                    return self._send(404, {"message": "Not Found"})
                path = path[len(fake.prefix):]
                base = f"http://{self.headers['Host']}{fake.prefix}"
                forbidden = {"message": "Resource not accessible by integration"}
                m = re.fullmatch(r"/repos/([^/]+)/([^/]+)", path)
                if m and method == "GET":
                    return self._send(200, {"id": 4242, "name": m[2], "full_name": f"{m[1]}/{m[2]}",
                                            "owner": {"login": m[1]}, "private": False,
                                            "url": f"{base}/repos/{m[1]}/{m[2]}",
                                            "html_url": f"https://github.example/{m[1]}/{m[2]}"})
                m = re.fullmatch(r"/repos/([^/]+/[^/]+)/issues/(\d+)/comments", path)
                if m and method == "GET":
                    with lock:
                        items = [dict(c) for c in fake.comments.get((m[1], int(m[2])), [])]
                    return self._page(items, base, path, url.query)
                if m and method == "POST":
                    if fake.read_only:
                        return self._send(403, forbidden)
                    text = json.loads(body)["body"]
                    with lock:
                        comment = fake._new_comment(base, m[1], int(m[2]), text)
                    return self._send(201, comment)
                m = re.fullmatch(r"/repos/([^/]+/[^/]+)/pulls", path)
                if m and method == "GET":
                    q = parse_qs(url.query)
                    head = q.get("head", [""])[0]
                    state = q.get("state", ["open"])[0]
                    found = [p for p in fake.pulls.get(m[1], [])
                             if (not head or f"{p['head']['repo']['owner']['login']}:{p['head']['ref']}" == head)
                             and (state == "all" or p["state"] == state)]
                    return self._send(200, found)
                m = re.fullmatch(r"/repos/([^/]+/[^/]+)/issues/comments/(\d+)", path)
                if m and method in ("PATCH", "DELETE"):
                    if fake.read_only:
                        return self._send(403, forbidden)
                    with lock:
                        for (repo, _n), items in fake.comments.items():
                            for c in items:
                                if repo == m[1] and c["id"] == int(m[2]):
                                    if method == "DELETE":
                                        items.remove(c)
                                        fake.deletes += 1
                                        return self._send(204, None)
                                    c["body"] = json.loads(body)["body"]
                                    c["updated_at"] = "2026-12-01T10:00:01Z"
                                    return self._send(200, dict(c))
                    return self._send(404, {"message": "Not Found"})
                if path.startswith("/repos/") and "/actions/" in path and method == "GET":
                    if not fake.actions_read:
                        return self._send(403, forbidden)
                    return self._actions(path, url.query, base)
                return self._send(404, {"message": "Not Found"})

            def _actions(self, path, query, base):
                m = re.fullmatch(r"/repos/([^/]+/[^/]+)/actions/workflows/([^/]+)(/runs)?", path)
                # a workflow by its file name or its id
                wf = next((w for (repo, name), w in fake.workflows.items()
                           if m and repo == m[1] and m[2] in (name, str(w["id"]))), None)
                if m and wf is None:
                    return self._send(404, {"message": "Not Found"})
                if m and not m[3]:
                    return self._send(200, wf)
                if m:
                    q = parse_qs(query)
                    runs = [r for r in fake.runs.get(m[1], []) if r["path"] == wf["path"]
                            and ("branch" not in q or r["head_branch"] == q["branch"][0])
                            and ("status" not in q or q["status"][0] in (r["status"], r["conclusion"]))]
                    runs = sorted(runs, key=lambda r: -r["id"])
                    return self._page([_public(r) for r in runs], base, path, query, key="workflow_runs")
                m = re.fullmatch(r"/repos/([^/]+/[^/]+)/actions/runs/(\d+)(/artifacts|/jobs)?", path)
                if m:
                    run = next((r for r in fake.runs.get(m[1], []) if r["id"] == int(m[2])), None)
                    if run is None:
                        return self._send(404, {"message": "Not Found"})
                    if m[3] == "/artifacts":
                        return self._page(run["_artifacts"], base, path, query, key="artifacts")
                    if m[3] == "/jobs":
                        return self._page(run["_jobs"], base, path, query, key="jobs")
                    return self._send(200, _public(run))
                m = re.fullmatch(r"/repos/([^/]+/[^/]+)/actions/artifacts/(\d+)/zip", path)
                if m:
                    for run in fake.runs.get(m[1], []):
                        for a in run["_artifacts"]:
                            if a["id"] == int(m[2]):
                                if a["expired"]:
                                    return self._send(410, {"message": "Artifact has expired"})
                                sig = fake.blobs[f"/blob-download/{a['id']}"][0]
                                host = self.headers["Host"]
                                return self._send(302, None, {"Location": f"http://{host}/blob-download/{a['id']}?sig={sig}"})
                    return self._send(404, {"message": "Not Found"})
                return self._send(404, {"message": "Not Found"})

            def _blob(self, url):
                if "Authorization" in self.headers:  # a pre-signed URL refuses a second authentication
                    return self._send(400, {"message": "Authorization header conflicts with the signature"})
                sig, data = fake.blobs.get(url.path, (None, None))
                if data is None or parse_qs(url.query).get("sig", [""])[0] != sig:
                    return self._send(403, {"message": "signature mismatch"})
                return self._send(200, None, {"Content-Type": "application/zip"}, raw=data)

            def do_GET(self):
                self._handle("GET")

            def do_POST(self):
                self._handle("POST")

            def do_PATCH(self):
                self._handle("PATCH")

            def do_DELETE(self):
                self._handle("DELETE")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{self.prefix}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _new_comment(self, base: str, repo: str, number: int, body: str) -> dict:
        self.next_id += 1
        c = {
            "id": self.next_id,
            "node_id": f"IC_{self.next_id}",
            "url": f"{base}/repos/{repo}/issues/comments/{self.next_id}",
            "html_url": f"https://github.example/{repo}/pull/{number}#issuecomment-{self.next_id}",
            "body": body,
            "user": {"login": "github-actions[bot]", "id": 41898282, "type": "Bot"},
            "created_at": "2026-11-25T10:00:00Z",
            "updated_at": "2026-11-25T10:00:00Z",
        }
        self.comments.setdefault((repo, number), []).append(c)
        return c

    def add_comment(self, repo: str, number: int, body: str) -> dict:
        return self._new_comment(self.url, repo, number, body)

    def add_pull(self, repo: str, number: int, head_repo: str, branch: str, sha: str, state: str = "open") -> dict:
        owner = head_repo.split("/")[0]
        pr = {"number": number, "state": state, "id": 5000 + number, "url": f"{self.url}/repos/{repo}/pulls/{number}",
              "head": {"ref": branch, "sha": sha, "repo": {"full_name": head_repo, "owner": {"login": owner}}},
              "base": {"ref": "main", "repo": {"full_name": repo}}}
        self.pulls.setdefault(repo, []).append(pr)
        return pr

    def add_run(self, repo: str, workflow: str, branch: str, sha: str, *, conclusion: str = "success",
                artifacts: dict[str, bytes] | None = None, expired: bool = False, jobs=()) -> dict:
        """A completed workflow run of ``.github/workflows/<workflow>`` with artifacts (name -> zip bytes)."""
        wid = 7000 + len(self.workflows)
        self.workflows.setdefault((repo, workflow), {
            "id": wid, "node_id": f"W_{wid}", "name": workflow, "path": f".github/workflows/{workflow}",
            "state": "active", "url": f"{self.url}/repos/{repo}/actions/workflows/{wid}",
            "html_url": f"https://github.example/{repo}/actions/workflows/{workflow}"})
        self.next_id += 1
        rid = 900_000 + self.next_id
        run = {"id": rid, "name": workflow, "path": f".github/workflows/{workflow}", "head_branch": branch,
               "head_sha": sha, "status": "completed", "conclusion": conclusion, "run_number": rid, "run_attempt": 1,
               "event": "push", "url": f"{self.url}/repos/{repo}/actions/runs/{rid}",
               "jobs_url": f"{self.url}/repos/{repo}/actions/runs/{rid}/jobs",
               "artifacts_url": f"{self.url}/repos/{repo}/actions/runs/{rid}/artifacts",
               "html_url": f"https://github.example/{repo}/actions/runs/{rid}", "_artifacts": [], "_jobs": []}
        for name, data in (artifacts or {}).items():
            self.next_id += 1
            aid = self.next_id
            self.blobs[f"/blob-download/{aid}"] = (secrets.token_hex(8), data)
            run["_artifacts"].append({
                "id": aid, "node_id": f"A_{aid}", "name": name, "size_in_bytes": len(data), "expired": expired,
                "url": f"{self.url}/repos/{repo}/actions/artifacts/{aid}",
                "archive_download_url": f"{self.url}/repos/{repo}/actions/artifacts/{aid}/zip",
                "created_at": "2026-11-30T10:00:00Z", "expires_at": "2027-02-28T10:00:00Z",
                "workflow_run": {"id": rid, "head_branch": branch, "head_sha": sha}})
        for n, (name, job_conclusion) in enumerate(jobs):
            run["_jobs"].append({"id": rid * 10 + n, "run_id": rid, "name": name, "status": "completed",
                                 "conclusion": job_conclusion, "url": f"{self.url}/repos/{repo}/actions/jobs/{rid * 10 + n}",
                                 "html_url": f"https://github.example/{repo}/actions/runs/{rid}/job/{rid * 10 + n}"})
        self.runs.setdefault(repo, []).append(run)
        return run


def _public(run: dict) -> dict:
    return {k: v for k, v in run.items() if not k.startswith("_")}
