"""Upload a workflow artifact through the GitHub Actions artifact service (v4).

The protocol is the one ``actions/upload-artifact@v4`` speaks through
``@actions/artifact`` (v2 and later), written here with the standard library
only, so a container action can upload without Node:

1. The backend IDs come from the runtime token itself: ``ACTIONS_RUNTIME_TOKEN``
   is a JWT whose ``scp`` claim holds the scope
   ``Actions.Results:<workflowRunBackendId>:<workflowJobRunBackendId>``.
2. ``CreateArtifact`` -- a Twirp call (JSON over ``POST``) to
   ``<origin of ACTIONS_RESULTS_URL>/twirp/github.actions.results.api.v1.ArtifactService/CreateArtifact``
   with the bearer token -- answers with a signed (SAS) Azure blob URL.
3. The files are zipped into a temporary file, hashed (SHA-256) as it is written.
4. The zip goes to the signed URL as an Azure block blob: one ``Put Block`` per
   8 MiB, then one ``Put Block List``.  The bearer token is never sent there.
5. ``FinalizeArtifact`` reports the size and ``sha256:<hex>`` digest and
   answers with the artifact's ID.

Every request has a timeout; 408, 429, 5xx answers and connection errors are
retried with exponential backoff (honouring ``Retry-After``) a bounded number
of times.  Errors are :class:`ArtifactError` with a one-line message from
which the token and the signed URL's query string are removed.
"""

from __future__ import annotations

import base64
import email.utils
import hashlib
import http.client
import json
import os
import random
import re
import ssl
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
import zipfile
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import IO, Iterable

from .. import __version__
from ..errors import ServiceError

SERVICE = "github.actions.results.api.v1.ArtifactService"
ARTIFACT_VERSION = 4  # what upload-artifact@v4 / @actions/artifact 2.x send
BLOCK_SIZE = 8 * 1024 * 1024  # @actions/artifact's upload chunk size
MAX_BLOCKS = 50_000  # Azure: committed blocks per blob
MAX_BLOCK_SIZE = 4000 * 1024 * 1024  # Azure: one Put Block (service version >= 2019-12-12)
# The x-ms-version @azure/storage-blob 12.15 (the version @actions/artifact
# depends on) sends; the SAS in the URL carries its own signing version (sv=).
AZURE_STORAGE_VERSION = "2023-01-03"
USER_AGENT = f"wheelvet/{__version__} (artifact upload)"

# Not allowed in an artifact name (nor, except / and \, in a path inside it):
# the server refuses them, as @actions/artifact's validation explains.
_BAD_PATH_CHARS = '":<>|*?\r\n'
_BAD_NAME_CHARS = _BAD_PATH_CHARS + "\\/"

_JWT_LIKE = re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")
_SIG_PARAM = re.compile(r"(?i)\b(sig=)[^&\s\"'<>]+")


class ArtifactError(ServiceError):
    """An artifact upload that failed.  The message is one line and holds no
    secret (neither the runtime token nor the signed URL's query string)."""


@dataclass(frozen=True)
class UploadResult:
    artifact_id: int
    size: int  # bytes of the zip
    sha256: str  # hex digest of the zip


@dataclass(frozen=True)
class BackendIds:
    workflow_run_backend_id: str
    workflow_job_run_backend_id: str


def artifact_url(server_url: str, repository: str, run_id: str | int, artifact_id: str | int) -> str:
    """The artifact's page, as upload-artifact@v4 gives it (``artifact-url``)."""
    return f"{server_url.rstrip('/')}/{repository.strip('/')}/actions/runs/{run_id}/artifacts/{artifact_id}"


def backend_ids(runtime_token: str) -> BackendIds:
    """Read the workflow run and job backend IDs from the runtime token's
    ``scp`` claim (the signature is not checked: the service does that)."""
    parts = (runtime_token or "").split(".")
    if len(parts) < 2 or not parts[1]:
        raise ArtifactError("ACTIONS_RUNTIME_TOKEN is not a JWT; cannot find the workflow run's backend IDs")
    try:
        payload = parts[1] + "=" * (-len(parts[1]) % 4)
        claims = json.loads(base64.urlsafe_b64decode(payload.encode("ascii")))
    except (ValueError, UnicodeError):
        raise ArtifactError("ACTIONS_RUNTIME_TOKEN is not a JWT (its payload does not decode); "
                            "cannot find the workflow run's backend IDs") from None
    scp = claims.get("scp") if isinstance(claims, dict) else None
    if not isinstance(scp, str) or not scp.strip():
        raise ArtifactError("ACTIONS_RUNTIME_TOKEN has no 'scp' claim; cannot find the workflow run's backend IDs")
    for scope in scp.split():
        fields = scope.split(":")
        if fields[0] != "Actions.Results":
            continue
        if len(fields) != 3 or not fields[1] or not fields[2]:
            raise ArtifactError("ACTIONS_RUNTIME_TOKEN's Actions.Results scope is malformed "
                                "(expected Actions.Results:<run backend id>:<job backend id>)")
        return BackendIds(fields[1], fields[2])
    raise ArtifactError("ACTIONS_RUNTIME_TOKEN has no Actions.Results scope: the runner did not grant this step "
                        "access to the artifact service")


def upload_artifact(
    name: str,
    files: list[tuple[str, str]],
    *,
    runtime_token: str,
    results_url: str,
    retention_days: int | None = None,
    timeout: float = 60,
    retries: int = 5,
    compression_level: int = 6,
    max_retention_days: int | None = None,
    block_size: int = BLOCK_SIZE,
    backoff_base: float = 3.0,
    max_retry_wait: float = 60.0,
) -> UploadResult:
    """Upload ``files`` -- ``(name in the archive, local path)`` pairs -- as
    the workflow artifact ``name`` (downloaded as ``<name>.zip``).

    ``retention_days`` sets the expiry (capped at ``max_retention_days``, e.g.
    ``GITHUB_RETENTION_DAYS``, when given).  ``timeout`` bounds each request;
    a failed request is retried at most ``retries`` times, waiting
    ``backoff_base * 1.5**n`` seconds (with jitter) or what ``Retry-After``
    asks, never more than ``max_retry_wait`` seconds at a time: a server that
    asks for longer fails the upload at once.
    """
    _check_name(name)
    entries = _check_files(files)
    if not 0 <= compression_level <= 9:
        raise ArtifactError(f"compression level must be 0..9, not {compression_level}")
    if not 0 < block_size <= MAX_BLOCK_SIZE:
        raise ArtifactError(f"block size must be 1..{MAX_BLOCK_SIZE} bytes")
    if retries < 0:
        raise ArtifactError("retries must not be negative")
    ids = backend_ids(runtime_token)
    client = _Client(runtime_token, _results_origin(results_url), timeout=timeout, retries=retries,
                     backoff_base=backoff_base, max_retry_wait=max_retry_wait)

    create: dict = {
        "workflow_run_backend_id": ids.workflow_run_backend_id,
        "workflow_job_run_backend_id": ids.workflow_job_run_backend_id,
        "name": name,
        "version": ARTIFACT_VERSION,
    }
    expires_at = _expiration(retention_days, max_retention_days)
    if expires_at:
        create["expires_at"] = expires_at
    answer = client.twirp("CreateArtifact", create)
    if answer.get("ok") is not True:
        raise ArtifactError("CreateArtifact: the artifact service answered without ok")
    signed_url = answer.get("signed_upload_url", answer.get("signedUploadUrl"))
    if not isinstance(signed_url, str) or not signed_url:
        raise ArtifactError("CreateArtifact: the artifact service gave no signed upload URL")
    client.add_signed_url(signed_url)
    split = urllib.parse.urlsplit(signed_url)
    if split.scheme not in ("https", "http") or not split.netloc:
        raise ArtifactError(f"CreateArtifact: the signed upload URL is not an HTTP(S) URL ({split.scheme or '?'}:)")

    with tempfile.TemporaryFile(prefix="wheelvet-artifact-", suffix=".zip") as tmp:
        size, digest = _write_zip(tmp, entries, compression_level)
        tmp.seek(0)
        _upload_blocks(client, signed_url, tmp, size, block_size)

    finalize = {
        "workflow_run_backend_id": ids.workflow_run_backend_id,
        "workflow_job_run_backend_id": ids.workflow_job_run_backend_id,
        "name": name,
        "size": str(size),  # int64: a string in proto3 JSON
        "hash": f"sha256:{digest}",  # google.protobuf.StringValue: the bare string in JSON
    }
    answer = client.twirp("FinalizeArtifact", finalize)
    if answer.get("ok") is not True:
        raise ArtifactError("FinalizeArtifact: the artifact service answered without ok")
    raw_id = answer.get("artifact_id", answer.get("artifactId"))
    try:
        artifact_id = int(raw_id)  # int64: usually a string, a number is accepted too
    except (TypeError, ValueError):
        artifact_id = 0
    if isinstance(raw_id, bool) or artifact_id <= 0:
        raise ArtifactError("FinalizeArtifact: the artifact service gave no artifact ID")
    return UploadResult(artifact_id=artifact_id, size=size, sha256=digest)


# --- inputs --------------------------------------------------------------------------------------


def _check_name(name: str) -> None:
    if not name or not name.strip():
        raise ArtifactError("the artifact name is empty")
    bad = sorted({c for c in name if c in _BAD_NAME_CHARS})
    if bad:
        raise ArtifactError(f"the artifact name {name!r} contains {', '.join(repr(c) for c in bad)}, "
                            f"which artifact names may not contain")


def _check_files(files: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    entries: dict[str, str] = {}
    for arcname, path in files:
        norm = arcname.replace("\\", "/")
        parts = norm.split("/")
        if not norm or norm.startswith("/") or any(p in ("", ".", "..") for p in parts):
            raise ArtifactError(f"{arcname!r} is not a relative path to put in the artifact")
        bad = sorted({c for c in norm if c in _BAD_PATH_CHARS})
        if bad:
            raise ArtifactError(f"{arcname!r} contains {', '.join(repr(c) for c in bad)}, "
                                f"which paths in an artifact may not contain")
        if norm in entries:
            raise ArtifactError(f"{norm!r} is given twice for the artifact")
        if not os.path.isfile(path):
            raise ArtifactError(f"{path}: no such file to upload")
        entries[norm] = path
    if not entries:
        raise ArtifactError("no files to upload")
    return sorted(entries.items())


def _results_origin(results_url: str) -> str:
    # @actions/artifact keeps only the origin of ACTIONS_RESULTS_URL: the
    # Twirp path is absolute.
    split = urllib.parse.urlsplit(results_url or "")
    if split.scheme not in ("https", "http") or not split.netloc:
        raise ArtifactError("ACTIONS_RESULTS_URL is not an HTTP(S) URL")
    return f"{split.scheme}://{split.netloc}"


def _expiration(retention_days: int | None, max_retention_days: int | None) -> str | None:
    if retention_days is None:
        return None
    if isinstance(retention_days, bool) or not isinstance(retention_days, int) or retention_days < 1:
        raise ArtifactError(f"retention days must be a positive whole number, not {retention_days!r}")
    if max_retention_days and max_retention_days > 0:
        retention_days = min(retention_days, max_retention_days)
    when = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(days=retention_days)
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")  # google.protobuf.Timestamp in JSON: RFC 3339, UTC


# --- the zip -------------------------------------------------------------------------------------


class _HashingWriter:
    """A write-only, unseekable file: ``zipfile`` then streams (data
    descriptors after each member) and every byte passes through the hash."""

    def __init__(self, out: IO[bytes]) -> None:
        self._out = out
        self.hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self._out.write(data)
        self.hash.update(data)
        self.size += len(data)
        return len(data)

    def flush(self) -> None:
        self._out.flush()


def _write_zip(out: IO[bytes], entries: list[tuple[str, str]], level: int) -> tuple[int, str]:
    writer = _HashingWriter(out)
    try:
        sink: IO[bytes] = writer  # type: ignore[assignment]
        with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=level) as zf:
            for arcname, path in entries:
                info = zipfile.ZipInfo.from_file(path, arcname, strict_timestamps=False)
                info.compress_type = zipfile.ZIP_DEFLATED
                if hasattr(info, "compress_level"):  # Python >= 3.13
                    info.compress_level = level
                else:
                    info._compresslevel = level  # type: ignore[attr-defined]
                with open(path, "rb") as src, zf.open(info, "w") as dst:
                    while True:
                        chunk = src.read(1024 * 1024)
                        if not chunk:
                            break
                        dst.write(chunk)
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        raise ArtifactError(f"cannot build the artifact's zip: {where}{exc.strerror or exc}") from None
    writer.flush()
    return writer.size, writer.hash.hexdigest()


# --- the blob ------------------------------------------------------------------------------------


def _with_query(url: str, **params: str) -> str:
    # Appended, never re-encoded: the SAS must reach the store byte for byte.
    split = urllib.parse.urlsplit(url)
    extra = urllib.parse.urlencode(params, quote_via=urllib.parse.quote)
    query = f"{split.query}&{extra}" if split.query else extra
    return urllib.parse.urlunsplit((split.scheme, split.netloc, split.path, query, ""))


def _upload_blocks(client: _Client, signed_url: str, data: IO[bytes], size: int, block_size: int) -> None:
    count = max(1, -(-size // block_size))
    if count > MAX_BLOCKS:
        raise ArtifactError(f"the artifact's zip ({size} bytes) needs more than {MAX_BLOCKS} blocks")
    prefix = uuid.uuid4().hex  # every block ID of a blob must have the same length
    ids = []
    for index in range(count):
        chunk = data.read(block_size)
        block_id = base64.b64encode(f"{prefix}-{index:06d}".encode("ascii")).decode("ascii")
        client.request(
            "PUT", _with_query(signed_url, comp="block", blockid=block_id), chunk,
            {"x-ms-version": AZURE_STORAGE_VERSION, "Content-Type": "application/octet-stream"},
            f"upload of block {index + 1} of {count}")
        ids.append(block_id)
    body = ('<?xml version="1.0" encoding="utf-8"?>\n<BlockList>'
            + "".join(f"<Latest>{i}</Latest>" for i in ids) + "</BlockList>").encode("utf-8")
    client.request(
        "PUT", _with_query(signed_url, comp="blocklist"), body,
        {"x-ms-version": AZURE_STORAGE_VERSION, "Content-Type": "application/xml; charset=utf-8",
         "x-ms-blob-content-type": "application/zip"},
        "commit of the block list")


# --- HTTP ----------------------------------------------------------------------------------------


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # A redirect would carry the Authorization header elsewhere: refuse it.
    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[override]
        return None


_RETRYABLE = (408, 429)


class _Client:
    def __init__(self, token: str, origin: str, *, timeout: float, retries: int, backoff_base: float,
                 max_retry_wait: float) -> None:
        self._token = token
        self._origin = origin
        self._timeout = timeout
        self._retries = retries
        self._backoff_base = max(0.0, backoff_base)
        self._max_retry_wait = max(0.0, max_retry_wait)
        self._secrets = [token, urllib.parse.quote(token, safe="")] if token else []
        self._opener = urllib.request.build_opener(_NoRedirect)

    def add_signed_url(self, url: str) -> None:
        query = urllib.parse.urlsplit(url).query
        if query:
            self._secrets.append(query)
            for key, value in urllib.parse.parse_qsl(query, keep_blank_values=True):
                if key.lower() == "sig" and value:
                    self._secrets += [value, urllib.parse.quote(value, safe="")]
            for part in query.split("&"):
                if part.lower().startswith("sig=") and len(part) > 4:
                    self._secrets.append(part[4:])

    def redact(self, text: str) -> str:
        for secret in sorted(set(self._secrets), key=len, reverse=True):
            if secret:
                text = text.replace(secret, "***")
        text = _SIG_PARAM.sub(r"\1***", text)
        text = _JWT_LIKE.sub("***", text)
        text = " ".join(text.split())
        return text if len(text) <= 400 else text[:397] + "..."

    def twirp(self, method: str, payload: dict) -> dict:
        url = f"{self._origin}/twirp/{SERVICE}/{method}"
        body = json.dumps(payload, separators=(",", ":")).encode("utf-8")
        headers = {"Authorization": f"Bearer {self._token}", "Content-Type": "application/json",
                   "Accept": "application/json"}
        data = self.request("POST", url, body, headers, method)
        try:
            answer = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            answer = None
        if not isinstance(answer, dict):
            raise ArtifactError(f"{method}: the artifact service's answer is not a JSON object")
        return answer

    def request(self, method: str, url: str, body: bytes, headers: dict, what: str) -> bytes:
        headers = {"User-Agent": USER_AGENT, **headers}
        attempt = 0
        while True:
            retry_after: float | None = None
            try:
                req = urllib.request.Request(url, data=body, method=method, headers=headers)
                with self._opener.open(req, timeout=self._timeout) as resp:
                    return resp.read()
            except urllib.error.HTTPError as exc:
                status = exc.code
                problem = f"HTTP {status}{_detail(exc)}"
                retryable = status in _RETRYABLE or status >= 500
                retry_after = _retry_after(exc.headers.get("Retry-After") if exc.headers else None)
            except urllib.error.URLError as exc:
                reason = exc.reason
                problem = _describe_reason(reason)
                retryable = not isinstance(reason, ssl.SSLCertVerificationError)
            except (http.client.HTTPException, OSError) as exc:  # timeouts, resets mid-answer
                problem = _describe_reason(exc)
                retryable = True
            attempts = f" after {attempt + 1} attempts" if attempt else ""
            if not retryable or attempt >= self._retries:
                raise ArtifactError(self.redact(f"{what} failed{attempts}: {problem}"))
            wait = self._backoff(attempt)
            if retry_after is not None:
                if retry_after > self._max_retry_wait:
                    raise ArtifactError(self.redact(
                        f"{what} failed{attempts}: {problem}; the server asks to retry after "
                        f"{retry_after:g} s, more than the {self._max_retry_wait:g} s this upload waits"))
                wait = max(wait, retry_after)
            time.sleep(min(wait, self._max_retry_wait))
            attempt += 1

    def _backoff(self, attempt: int) -> float:
        # As @actions/artifact: base, then between base*1.5**n and base*1.5**(n+1).
        low = self._backoff_base * 1.5 ** attempt
        return low if attempt == 0 else random.uniform(low, low * 1.5)


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


def _detail(exc: urllib.error.HTTPError) -> str:
    """Twirp's ``{"code", "msg"}`` or Azure's ``<Error><Code>…<Message>…``."""
    try:
        raw = exc.read(64 * 1024)
    except (OSError, http.client.HTTPException):
        raw = b""
    text = raw.decode("utf-8", "replace")
    try:
        obj = json.loads(text)
    except ValueError:
        obj = None
    if isinstance(obj, dict) and (obj.get("code") or obj.get("msg")):
        return f" ({obj.get('code') or 'error'}: {obj.get('msg') or ''})".replace(": )", ")")
    code = re.search(r"<Code>(.*?)</Code>", text, re.S)
    message = re.search(r"<Message>(.*?)</Message>", text, re.S)
    if code or message:
        first_line = message.group(1).strip().splitlines()[0] if message and message.group(1).strip() else ""
        return f" ({code.group(1).strip() if code else 'error'}{': ' + first_line if first_line else ''})"
    reason = getattr(exc, "reason", "")
    return f" ({reason})" if reason else ""


def _describe_reason(reason: object) -> str:
    if isinstance(reason, TimeoutError) or "timed out" in str(reason):
        return "timed out"
    if isinstance(reason, OSError) and reason.strerror:
        return f"connection error: {reason.strerror}"
    text = str(reason) or type(reason).__name__
    return f"connection error: {text}"
