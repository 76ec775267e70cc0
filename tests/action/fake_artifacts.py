"""A local fake of the GitHub Actions artifact service (v4) and its blob store.

Two endpoints on one ``ThreadingHTTPServer`` bound to 127.0.0.1:

* the results service: Twirp JSON at
  ``/twirp/github.actions.results.api.v1.ArtifactService/{CreateArtifact,FinalizeArtifact}``;
* the blob store: ``/blob/...`` answering Azure's ``Put Block`` and
  ``Put Block List`` on the signed URL ``CreateArtifact`` hands out (with a
  fake SAS query string whose ``sig`` is secret).

It checks what the real service would: the bearer token, that the request's
backend IDs are the token's (``Actions.Results:<run>:<job>`` in ``scp``),
``version``, Twirp's method, path and content type, field names and types
(stricter than the real service: unknown fields are refused, so a typo in a
field name fails here instead of being silently dropped), unique artifact
names per workflow run, the SAS signature byte for byte, ``x-ms-version``,
block ID rules, that every listed block was uploaded, and that finalize's size
and SHA-256 match the committed blob.  Errors come back as the real services
send them: Twirp's ``{"code", "msg"}`` with the matching HTTP status, Azure's
``<Error><Code>…</Code><Message>…</Message></Error>``.

Tests can make the next requests fail (``fail_next``: a status, a
``Retry-After``, or a dropped connection), delay them (``delay_next``), read
every request (``requests``) and unzip what was stored (``artifact(name)``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import json
import re
import secrets
import threading
import time
import zipfile
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import quote, unquote, urlsplit
from xml.etree import ElementTree

SERVICE = "github.actions.results.api.v1.ArtifactService"
TWIRP_STATUS = {
    "invalid_argument": 400, "malformed": 400, "unauthenticated": 401, "permission_denied": 403,
    "bad_route": 404, "not_found": 404, "already_exists": 409, "failed_precondition": 412,
    "resource_exhausted": 429, "internal": 500, "unavailable": 503,
}
_BAD_NAME_CHARS = '":<>|*?\r\n\\/'


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def make_jwt(scp: str | None, **claims) -> str:
    """An (unsigned) runtime token shaped like the runner's: header.payload.signature."""
    header = {"typ": "JWT", "alg": "RS256", "x5t": "ZmFrZS10aHVtYnByaW50"}
    payload = {"nameid": "dddddddd-dddd-dddd-dddd-dddddddddddd", "iss": "vstoken.actions.githubusercontent.com",
               "aud": "vso:fake", "nbf": 1700000000, "exp": 4100000000, **claims}
    if scp is not None:
        payload["scp"] = scp
    return ".".join([b64url(json.dumps(header).encode()), b64url(json.dumps(payload).encode()),
                     b64url(b"not-a-real-signature")])


def runtime_token(run_backend_id: str, job_backend_id: str) -> str:
    return make_jwt(f"Actions.ExampleScope Actions.Results:{run_backend_id}:{job_backend_id}")


@dataclass
class Recorded:
    method: str
    path: str  # with the query string
    headers: dict  # names in lower case
    body: bytes
    status: int = 0


@dataclass
class Failure:
    status: int  # 0: drop the connection without an answer
    retry_after: str | None
    only: str | None  # "twirp", "blob" or None for any request
    leak: bool = False


@dataclass
class StoredArtifact:
    name: str
    run_backend_id: str
    job_backend_id: str
    version: int
    expires_at: str | None
    blob_path: str
    sas_query: str
    blocks: dict = field(default_factory=dict)  # uncommitted: block id -> bytes
    block_id_length: int | None = None
    committed: bytes | None = None
    content_type: str | None = None
    artifact_id: int | None = None  # set when finalized
    size: int | None = None
    digest: str | None = None
    read_sas: str | None = None  # the query of the read URL GetSignedArtifactURL gave

    @property
    def data(self) -> bytes:
        assert self.committed is not None, f"{self.name}: no blob committed"
        return self.committed

    def files(self) -> dict[str, bytes]:
        with zipfile.ZipFile(io.BytesIO(self.data)) as zf:
            assert zf.testzip() is None
            return {i.filename: zf.read(i) for i in zf.infolist()}


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):  # a client that gave up: not our problem
        pass


class FakeArtifactService:
    def __init__(self, token: str, *, accepted_versions=(4,), camel_case: bool = False,
                 artifact_id_as_number: bool = False, require_hash: bool = True,
                 leaky_errors: bool = False, first_artifact_id: int = 4_000_000_001) -> None:
        self.token = token
        self.tokens = {token}  # every job of the run has a token of its own (accept() adds one)
        self.accepted_versions = tuple(accepted_versions)
        self.camel_case = camel_case  # answer with lowerCamelCase JSON names
        self.artifact_id_as_number = artifact_id_as_number
        self.require_hash = require_hash
        self.leaky_errors = leaky_errors  # echo the auth header and full URL in errors (to test redaction)
        self.requests: list[Recorded] = []
        self.artifacts: dict[tuple[str, str], StoredArtifact] = {}  # (run backend id, name) -> artifact
        self.violations: list[str] = []  # things a real service would not even see (e.g. token sent to the blob store)
        self._failures: list[Failure] = []
        self._delays: list[float] = []
        self._next_id = first_artifact_id
        self._lock = threading.Lock()
        self.server: _Server | None = None

    # --- life cycle ---

    def start(self) -> FakeArtifactService:
        self.server = _Server(("127.0.0.1", 0), _make_handler(self))
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def __enter__(self) -> FakeArtifactService:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """What the runner would put in ACTIONS_RESULTS_URL."""
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}/"

    # --- test controls ---

    def accept(self, token: str) -> str:
        """Accept another job's runtime token (same run, its own job backend id)."""
        with self._lock:
            self.tokens.add(token)
        return token

    def deleted(self) -> list[str]:
        return [r.body.decode() for r in self.twirp_requests("DeleteArtifact") if r.status == 200]

    def fail_next(self, count: int, status: int = 503, *, retry_after: str | int | None = None,
                  only: str | None = None, drop: bool = False, leak: bool = False) -> None:
        with self._lock:
            for _ in range(count):
                self._failures.append(Failure(0 if drop else status,
                                              None if retry_after is None else str(retry_after), only, leak))

    def delay_next(self, count: int, seconds: float) -> None:
        with self._lock:
            self._delays += [seconds] * count

    def artifact(self, name: str) -> StoredArtifact:
        found = [a for (_, n), a in self.artifacts.items() if n == name]
        assert len(found) == 1, f"{name}: {len(found)} artifacts"
        return found[0]

    def finalized(self) -> list[StoredArtifact]:
        return [a for a in self.artifacts.values() if a.artifact_id is not None]

    def twirp_requests(self, method: str | None = None) -> list[Recorded]:
        prefix = f"/twirp/{SERVICE}/{method or ''}"
        return [r for r in self.requests if r.path.startswith(prefix)]

    def blob_requests(self) -> list[Recorded]:
        return [r for r in self.requests if r.path.startswith("/blob/")]

    # --- internals ---

    def _take_failure(self, kind: str) -> Failure | None:
        with self._lock:
            for i, f in enumerate(self._failures):
                if f.only in (None, kind):
                    return self._failures.pop(i)
        return None

    def _take_delay(self) -> float:
        with self._lock:
            return self._delays.pop(0) if self._delays else 0.0

    def _token_ids(self, token: str | None = None) -> tuple[str, str] | None:
        try:
            payload = (token or self.token).split(".")[1]
            claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        except (IndexError, ValueError):
            return None
        for scope in str(claims.get("scp", "")).split():
            parts = scope.split(":")
            if parts[0] == "Actions.Results" and len(parts) == 3:
                return parts[1], parts[2]
        return None


def _make_handler(fake: FakeArtifactService):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # quiet
            pass

        # --- plumbing ---

        def _read_body(self) -> bytes | None:
            length = self.headers.get("Content-Length")
            if length is None:
                return None
            return self.rfile.read(int(length))

        def _send(self, status: int, body: bytes, content_type: str, headers: dict | None = None) -> None:
            self.record.status = status
            try:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)
            except OSError:
                self.close_connection = True

        def _twirp_error(self, code: str, msg: str, headers: dict | None = None) -> None:
            if fake.leaky_errors:
                msg += f" (request {self.path} with {self.headers.get('Authorization', '')})"
            body = json.dumps({"code": code, "msg": msg, "meta": {}}).encode()
            self._send(TWIRP_STATUS[code], body, "application/json", headers)

        def _azure_error(self, status: int, code: str, message: str, headers: dict | None = None) -> None:
            if fake.leaky_errors:
                message += f" URL: {self.path}"
            body = (f'<?xml version="1.0" encoding="utf-8"?><Error><Code>{code}</Code>'
                    f"<Message>{message}\nRequestId:00000000-0000-0000-0000-000000000000\n"
                    f"Time:2026-01-01T00:00:00.0000000Z</Message></Error>").encode()
            self._send(status, body, "application/xml", {"x-ms-error-code": code, **(headers or {})})

        def _handle(self, method: str) -> None:
            body = self._read_body()
            self.record = Recorded(method, self.path, {k.lower(): v for k, v in self.headers.items()}, body or b"")
            with fake._lock:
                fake.requests.append(self.record)
            kind = "twirp" if self.path.startswith("/twirp/") else "blob" if self.path.startswith("/blob/") else ""
            delay = fake._take_delay()
            if delay:
                time.sleep(delay)
            failure = fake._take_failure(kind)
            if failure is not None:
                return self._fail(kind, failure)
            if kind == "twirp":
                return self._twirp(method, body)
            if kind == "blob":
                return self._blob(method, body)
            self._send(404, b"not found", "text/plain")

        def _fail(self, kind: str, failure: Failure) -> None:
            if failure.status == 0:  # the connection drops: no answer at all
                self.record.status = 0
                self.close_connection = True
                return
            headers = {"Retry-After": failure.retry_after} if failure.retry_after is not None else {}
            if kind == "blob":
                code = {403: "AuthenticationFailed", 404: "ResourceNotFound", 429: "ServerBusy",
                        500: "InternalError", 503: "ServerBusy"}.get(failure.status, "InternalError")
                msg = "Injected failure."
                if failure.leak:
                    msg += f" Request URL: {self.path}"
                return self._azure_error(failure.status, code, msg, headers)
            code = {v: k for k, v in TWIRP_STATUS.items()}.get(failure.status, "internal")
            msg = "injected failure"
            if failure.leak:
                msg += f"; token {self.headers.get('Authorization', '')}; url {self.path}"
            self._twirp_error(code, msg, headers)

        def do_POST(self):
            self._handle("POST")

        def do_PUT(self):
            self._handle("PUT")

        def do_GET(self):
            self._handle("GET")

        # --- the results service (Twirp) ---

        def _twirp(self, method: str, body: bytes | None) -> None:
            split = urlsplit(self.path)
            m = re.fullmatch(rf"/twirp/{re.escape(SERVICE)}/(\w+)", split.path)
            if method != "POST":
                return self._twirp_error("bad_route", f"unsupported method {method} (only POST is allowed)")
            if not m or m[1] not in ("CreateArtifact", "FinalizeArtifact", "ListArtifacts", "DeleteArtifact",
                                   "GetSignedArtifactURL"):
                return self._twirp_error("bad_route", f"no handler for path {split.path!r}")
            ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
            if ctype != "application/json":
                return self._twirp_error("bad_route", f"unexpected Content-Type: {ctype!r}")
            if split.query:
                fake.violations.append(f"query string on a Twirp call: {split.query}")
            auth = self.headers.get("Authorization") or ""
            presented = auth[len("Bearer "):] if auth.startswith("Bearer ") else ""
            if presented not in fake.tokens:
                return self._twirp_error("unauthenticated", "invalid or missing bearer token")
            try:
                req = json.loads((body or b"").decode("utf-8"))
                assert isinstance(req, dict)
            except (ValueError, AssertionError):
                return self._twirp_error("malformed", "the request body is not a JSON object")
            ids = fake._token_ids(presented)
            if ids is None:
                return self._twirp_error("unauthenticated", "the token has no Actions.Results scope")
            if (req.get("workflow_run_backend_id"), req.get("workflow_job_run_backend_id")) != ids:
                return self._twirp_error("permission_denied", "the backend IDs are not the token's")
            if m[1] == "CreateArtifact":
                return self._create(req, ids)
            if m[1] == "ListArtifacts":
                return self._list(req, ids)
            if m[1] == "DeleteArtifact":
                return self._delete(req, ids)
            if m[1] == "GetSignedArtifactURL":
                return self._signed_url(req, ids)
            return self._finalize(req, ids)

        def _list(self, req: dict, ids: tuple[str, str]) -> None:
            # Names are scoped to the run: every job of it sees every finalized artifact.
            problem = self._fields(req, {"workflow_run_backend_id": str, "workflow_job_run_backend_id": str,
                                         "name_filter": str, "id_filter": (str, int)})
            if problem:
                return self._twirp_error("invalid_argument", problem)
            with fake._lock:
                found = [a for (run, _n), a in fake.artifacts.items() if run == ids[0] and a.artifact_id is not None
                         and ("name_filter" not in req or a.name == req["name_filter"])]
                rows = [{"workflow_run_backend_id": a.run_backend_id, "workflow_job_run_backend_id": a.job_backend_id,
                         "database_id": str(a.artifact_id), "name": a.name, "size": str(a.size),
                         "created_at": "2026-12-01T10:00:00Z", "digest": a.digest} for a in found]
            self._answer({"artifacts": rows})

        def _named(self, req: dict, ids: tuple[str, str], *, finalized: bool):
            """The run's artifact a {backend ids, name} request names, or None once the error is sent."""
            problem = self._fields(req, {"workflow_run_backend_id": str, "workflow_job_run_backend_id": str,
                                         "name": str})
            if problem:
                return self._twirp_error("invalid_argument", problem)
            art = fake.artifacts.get((ids[0], req.get("name", "")))
            if art is None or (finalized and art.artifact_id is None):
                return self._twirp_error("not_found", "no such artifact on the workflow run")
            return art

        def _signed_url(self, req: dict, ids: tuple[str, str]) -> None:
            with fake._lock:
                art = self._named(req, ids, finalized=True)
                if art is None:
                    return
                se = (datetime.now(timezone.utc) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
                sig = quote(base64.b64encode(b"READ" + secrets.token_bytes(24)).decode(), safe="")
                art.read_sas = f"sv=2023-11-03&spr=https&se={quote(se, safe='')}&sr=b&sp=r&sig={sig}"
            host = self.headers.get("Host") or f"127.0.0.1:{fake.server.server_address[1]}"
            self._answer({"signed_url": f"http://{host}{art.blob_path}?{art.read_sas}"})

        def _delete(self, req: dict, ids: tuple[str, str]) -> None:
            with fake._lock:
                art = self._named(req, ids, finalized=False)
                if art is None:
                    return
                del fake.artifacts[(ids[0], art.name)]
            self._answer({"ok": True, "artifact_id": str(art.artifact_id or 0)})

        def _fields(self, req: dict, allowed: dict) -> str | None:
            for key, value in req.items():
                if key not in allowed:
                    return f"unknown field {key!r}"
                types = allowed[key] if isinstance(allowed[key], tuple) else (allowed[key],)
                if isinstance(value, bool) or not isinstance(value, types):
                    return f"field {key!r} has the wrong JSON type ({type(value).__name__})"
            return None

        def _answer(self, fields: dict) -> None:
            if fake.camel_case:
                fields = {re.sub(r"_(\w)", lambda m: m[1].upper(), k): v for k, v in fields.items()}
            self._send(200, json.dumps(fields).encode(), "application/json")

        def _create(self, req: dict, ids: tuple[str, str]) -> None:
            problem = self._fields(req, {"workflow_run_backend_id": str, "workflow_job_run_backend_id": str,
                                         "name": str, "version": int, "expires_at": str, "mime_type": str})
            if problem:
                return self._twirp_error("invalid_argument", problem)
            name = req.get("name", "")
            if not name or any(c in _BAD_NAME_CHARS for c in name):
                return self._twirp_error("invalid_argument", f"invalid artifact name {name!r}")
            if req.get("version") not in fake.accepted_versions:
                return self._twirp_error("invalid_argument", f"unsupported version {req.get('version')!r}")
            expires = req.get("expires_at")
            if expires is not None:
                # google.protobuf.Timestamp in JSON: RFC 3339 ending in Z, 0/3/6/9 fractional digits.
                if not re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3}|\.\d{6}|\.\d{9})?Z", expires):
                    return self._twirp_error("invalid_argument", f"expires_at is not an RFC 3339 UTC time: {expires!r}")
                when = datetime.strptime(expires[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc)
                if when <= datetime.now(timezone.utc):
                    return self._twirp_error("invalid_argument", "expires_at is in the past")
            with fake._lock:
                if (ids[0], name) in fake.artifacts:
                    return self._twirp_error("already_exists",
                                             "an artifact with this name already exists on the workflow run")
                blob_path = (f"/blob/actions-results/{ids[0]}/workflow-job-run-{ids[1]}/artifacts/"
                             f"{hashlib.sha256(name.encode()).hexdigest()}.zip")
                se = (datetime.now(timezone.utc) + timedelta(hours=6)).strftime("%Y-%m-%dT%H:%M:%SZ")
                sig = quote(base64.b64encode(b"SECRET" + secrets.token_bytes(24)).decode(), safe="")
                sas = f"sv=2023-11-03&spr=https&se={quote(se, safe='')}&sr=b&sp=cw&sig={sig}"
                fake.artifacts[(ids[0], name)] = StoredArtifact(name, ids[0], ids[1], req["version"], expires,
                                                                blob_path, sas)
            host = self.headers.get("Host") or f"127.0.0.1:{fake.server.server_address[1]}"
            self._answer({"ok": True, "signed_upload_url": f"http://{host}{blob_path}?{sas}"})

        def _finalize(self, req: dict, ids: tuple[str, str]) -> None:
            problem = self._fields(req, {"workflow_run_backend_id": str, "workflow_job_run_backend_id": str,
                                         "name": str, "size": (str, int), "hash": str})
            if problem:
                return self._twirp_error("invalid_argument", problem)
            with fake._lock:
                art = fake.artifacts.get((ids[0], req.get("name", "")))
                if art is None or art.artifact_id is not None:
                    return self._twirp_error("not_found", "no artifact to finalize with that name")
                if art.committed is None:
                    return self._twirp_error("failed_precondition", "the artifact's blob has not been committed")
                size = req.get("size")
                if not (isinstance(size, int) or (isinstance(size, str) and size.isdigit())) or \
                        int(size) != len(art.committed):
                    return self._twirp_error("invalid_argument",
                                             f"size {size!r} is not the blob's size ({len(art.committed)})")
                digest = "sha256:" + hashlib.sha256(art.committed).hexdigest()
                if "hash" not in req and fake.require_hash:
                    return self._twirp_error("invalid_argument", "hash is required")
                if "hash" in req and req["hash"] != digest:
                    return self._twirp_error("invalid_argument", "hash does not match the blob's sha256")
                art.artifact_id = fake._next_id
                art.size = len(art.committed)
                art.digest = digest
                fake._next_id += 1
            aid = art.artifact_id if fake.artifact_id_as_number else str(art.artifact_id)
            self._answer({"ok": True, "artifact_id": aid})

        # --- the blob store (Azure) ---

        def _blob(self, method: str, body: bytes | None) -> None:
            split = urlsplit(self.path)
            if "Authorization" in self.headers:
                fake.violations.append("an Authorization header was sent to the blob store")
                return self._azure_error(400, "InvalidAuthenticationInfo",
                                         "Authentication information is not given in the correct format.")
            with fake._lock:
                art = next((a for a in fake.artifacts.values() if a.blob_path == split.path), None)
            if art is None:
                return self._azure_error(404, "ResourceNotFound", "The specified resource does not exist.")
            raw = split.query.split("&") if split.query else []
            sas_params = [p for p in raw if p.split("=")[0] in ("sv", "spr", "se", "sr", "sp", "sig")]
            if method == "GET":  # Get Blob, with the read URL only
                if art.read_sas is None or "&".join(sas_params) != art.read_sas or art.committed is None:
                    return self._azure_error(403, "AuthenticationFailed", "Server failed to authenticate the request.")
                return self._send(200, art.committed, "application/zip")
            if "&".join(sas_params) != art.sas_query:
                return self._azure_error(403, "AuthenticationFailed",
                                         "Server failed to authenticate the request. Make sure the value of "
                                         "Authorization header is formed correctly including the signature.")
            params: dict[str, str] = {}
            for p in raw:
                k, _, v = p.partition("=")
                if k not in ("sv", "spr", "se", "sr", "sp", "sig"):
                    params[k] = unquote(v)
            if method != "PUT":
                return self._azure_error(403, "AuthorizationPermissionMismatch",
                                         "This request is not authorized to perform this operation using this "
                                         "permission.")
            if not self.headers.get("x-ms-version"):
                return self._azure_error(400, "MissingRequiredHeader",
                                         "An HTTP header that's mandatory for this request is not specified.")
            if body is None:
                return self._azure_error(411, "MissingContentLengthHeader", "Content-Length is required.")
            if art.artifact_id is not None:
                return self._azure_error(409, "BlobImmutable", "The artifact is already finalized.")
            if params.get("comp") == "block":
                return self._put_block(art, params.get("blockid", ""), body)
            if params.get("comp") == "blocklist":
                return self._put_block_list(art, body)
            return self._azure_error(400, "InvalidQueryParameterValue",
                                     "The fake blob store only answers Put Block and Put Block List.")

        def _put_block(self, art: StoredArtifact, block_id: str, body: bytes) -> None:
            try:
                decoded = base64.b64decode(block_id, validate=True)
            except (binascii.Error, ValueError):
                decoded = b""
            if not block_id or not decoded or len(decoded) > 64:
                return self._azure_error(400, "InvalidQueryParameterValue",
                                         "Value for one of the query parameters specified in the request URI "
                                         "is invalid. (blockid)")
            if len(body) > 4000 * 1024 * 1024:
                return self._azure_error(413, "RequestBodyTooLarge", "The request body is too large.")
            with fake._lock:
                if art.block_id_length not in (None, len(block_id)):
                    return self._azure_error(400, "InvalidBlobOrBlock",
                                             "The specified blob or block content is invalid.")
                art.block_id_length = len(block_id)
                art.blocks[block_id] = body
            self._send(201, b"", "application/octet-stream",
                       {"x-ms-request-server-encrypted": "true", "x-ms-version": self.headers["x-ms-version"]})

        def _put_block_list(self, art: StoredArtifact, body: bytes) -> None:
            try:
                root = ElementTree.fromstring(body)
            except ElementTree.ParseError:
                return self._azure_error(400, "InvalidXmlDocument", "XML specified is not syntactically valid.")
            if root.tag != "BlockList" or any(c.tag not in ("Latest", "Uncommitted", "Committed") for c in root):
                return self._azure_error(400, "InvalidXmlDocument", "XML specified is not a block list.")
            with fake._lock:
                parts = []
                for child in root:
                    data = art.blocks.get((child.text or "").strip())
                    if data is None:
                        return self._azure_error(400, "InvalidBlockList", "The specified block list is invalid.")
                    parts.append(data)
                art.committed = b"".join(parts)
                art.blocks.clear()
                art.block_id_length = None
                art.content_type = self.headers.get("x-ms-blob-content-type") or "application/octet-stream"
            self._send(201, b"", "application/octet-stream",
                       {"ETag": f'"0x{secrets.token_hex(8).upper()}"', "x-ms-version": self.headers["x-ms-version"],
                        "x-ms-request-server-encrypted": "true"})

    return Handler
