"""A local fake of the parts of GitHub's REST API the action uses.

Issue comments: list (paginated with Link headers, as GitHub does), create,
edit.  It checks the token, answers with GitHub's JSON shapes, can refuse
writes with 403 as GitHub does for a fork's read-only token, and records
every request so tests can check what was sent.
"""

from __future__ import annotations

import json
import re
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
    comments: dict = field(default_factory=dict)  # (repo, number) -> list of comment dicts
    requests: list = field(default_factory=list)
    pulls: dict = field(default_factory=dict)  # repo -> list of pull request dicts
    next_id: int = 1000

    def start(self) -> FakeGitHub:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _send(self, status, payload, headers=None):
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def _handle(self, method):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode() if length else ""
                fake.requests.append(Recorded(method, self.path, dict(self.headers), body))
                auth = self.headers.get("Authorization", "")
                if auth not in (f"token {fake.token}", f"Bearer {fake.token}"):
                    return self._send(401, {"message": "Bad credentials"})
                url = urlsplit(self.path)
                path = url.path
                if not path.startswith(fake.prefix + "/"):
                    return self._send(404, {"message": "Not Found"})
                path = path[len(fake.prefix):]
                base = f"http://{self.headers['Host']}{fake.prefix}"
                m = re.fullmatch(r"/repos/([^/]+/[^/]+)/issues/(\d+)/comments", path)
                if m and method == "GET":
                    items = fake.comments.get((m[1], int(m[2])), [])
                    q = parse_qs(url.query)
                    per_page = int(q.get("per_page", ["30"])[0])
                    page = int(q.get("page", ["1"])[0])
                    chunk = items[(page - 1) * per_page : page * per_page]
                    headers = {}
                    if page * per_page < len(items):
                        headers["Link"] = f'<{base}{path}?per_page={per_page}&page={page + 1}>; rel="next"'
                    return self._send(200, chunk, headers)
                if m and method == "POST":
                    if fake.read_only:
                        return self._send(403, {"message": "Resource not accessible by integration"})
                    text = json.loads(body)["body"]
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
                if m and method == "PATCH":
                    if fake.read_only:
                        return self._send(403, {"message": "Resource not accessible by integration"})
                    for (repo, _n), items in fake.comments.items():
                        for c in items:
                            if repo == m[1] and c["id"] == int(m[2]):
                                c["body"] = json.loads(body)["body"]
                                return self._send(200, c)
                    return self._send(404, {"message": "Not Found"})
                return self._send(404, {"message": "Not Found"})

            def do_GET(self):
                self._handle("GET")

            def do_POST(self):
                self._handle("POST")

            def do_PATCH(self):
                self._handle("PATCH")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
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
