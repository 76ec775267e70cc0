"""wheelvet.github.artifacts against a local fake of the artifact service (v4)
and its Azure blob store (tests/action/fake_artifacts.py)."""

from __future__ import annotations

import base64
import hashlib
import json
import random
import socket
import time
import urllib.error
import urllib.request
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from fake_artifacts import SERVICE, FakeArtifactService, make_jwt, runtime_token
from wheelvet.github.artifacts import (
    ArtifactError,
    UploadResult,
    artifact_url,
    backend_ids,
    upload_artifact,
)

RUN_ID = "ce7f54c7-61c7-4aae-887f-30da475f5f1a"
JOB_ID = "ca395085-040a-526b-2ce8-bdc85f692774"
TOKEN = runtime_token(RUN_ID, JOB_ID)
FAST = {"backoff_base": 0.01, "timeout": 5}  # production waits 3 s, 4.5 s, ... between attempts


@pytest.fixture
def fake():
    with FakeArtifactService(TOKEN) as service:
        yield service


@pytest.fixture
def files(tmp_path):
    wheel = tmp_path / "demo-1.0-cp311-cp311-manylinux_2_17_x86_64.whl"
    wheel.write_bytes(random.Random(1).randbytes(50_000) + b"PK" * 1000)
    report = tmp_path / "wheelvet-report.json"
    report.write_text(json.dumps({"wheels": [{"name": wheel.name, "status": "repaired"}]}, indent=2))
    return [(wheel.name, str(wheel)), (report.name, str(report))]


def upload(fake, files, name="wheelvet-build", **kw):
    return upload_artifact(name, files, runtime_token=kw.pop("runtime_token", TOKEN),
                           results_url=kw.pop("results_url", fake.url), **{**FAST, **kw})


def twirp_json(record):
    return json.loads(record.body.decode())


def assert_no_secret(text: str, fake: FakeArtifactService) -> None:
    assert TOKEN not in text
    for art in fake.artifacts.values():
        assert art.sas_query not in text
        sig = art.sas_query.split("sig=")[1]
        assert sig not in text and unquote(sig) not in text
        assert "sig=" not in text or "sig=***" in text
    assert "\n" not in text


# --- the happy path ---


def test_upload_stores_the_files_byte_for_byte(fake, files):
    result = upload(fake, files)
    assert isinstance(result, UploadResult)
    art = fake.artifact("wheelvet-build")
    assert result.artifact_id == art.artifact_id > 2**31  # int64 from a JSON string
    assert result.size == len(art.data)
    assert result.sha256 == hashlib.sha256(art.data).hexdigest()
    assert art.digest == f"sha256:{result.sha256}"
    stored = art.files()
    assert sorted(stored) == sorted(n for n, _ in files)  # sorted order in the zip too
    for arcname, path in files:
        with open(path, "rb") as f:
            assert stored[arcname] == f.read()
    assert art.content_type == "application/zip"
    assert art.version == 4 and art.expires_at is None
    assert fake.violations == []


def test_the_requests_are_what_the_services_expect(fake, files):
    upload(fake, files)
    create, finalize = fake.twirp_requests("CreateArtifact"), fake.twirp_requests("FinalizeArtifact")
    assert len(create) == len(finalize) == 1
    for r in create + finalize:
        assert r.method == "POST"
        assert r.headers["authorization"] == f"Bearer {TOKEN}"
        assert r.headers["content-type"] == "application/json"
    assert twirp_json(create[0]) == {"workflow_run_backend_id": RUN_ID, "workflow_job_run_backend_id": JOB_ID,
                                     "name": "wheelvet-build", "version": 4}
    body = twirp_json(finalize[0])
    art = fake.artifact("wheelvet-build")
    assert body == {"workflow_run_backend_id": RUN_ID, "workflow_job_run_backend_id": JOB_ID,
                    "name": "wheelvet-build", "size": str(len(art.data)), "hash": art.digest}
    blocks = [r for r in fake.blob_requests() if "comp=block&" in r.path]
    commit = [r for r in fake.blob_requests() if r.path.endswith("comp=blocklist")]
    assert len(blocks) == 1 and len(commit) == 1
    for r in blocks + commit:
        assert r.method == "PUT" and r.headers["x-ms-version"]
        assert "authorization" not in r.headers
        assert r.path.startswith(urlsplit(art.blob_path).path + "?" + art.sas_query + "&")  # SAS untouched
    assert commit[0].headers["x-ms-blob-content-type"] == "application/zip"
    assert b"<BlockList><Latest>" in commit[0].body
    assert int(blocks[0].headers["content-length"]) == len(art.data)
    for r in fake.requests:
        assert TOKEN not in r.path


def test_a_large_file_goes_up_in_several_blocks(fake, tmp_path):
    big = tmp_path / "big.whl"
    big.write_bytes(random.Random(7).randbytes(20 * 1024 * 1024))  # incompressible: > 2 blocks of 8 MiB
    result = upload(fake, [("big.whl", str(big))], compression_level=1)
    blocks = [r for r in fake.blob_requests() if "comp=block&" in r.path]
    assert len(blocks) == 3
    ids = [parse_qs(urlsplit(r.path).query)["blockid"][0] for r in blocks]
    assert len(set(ids)) == 3 and len({len(i) for i in ids}) == 1
    assert all(len(base64.b64decode(i)) <= 64 for i in ids)
    assert [int(r.headers["content-length"]) for r in blocks][:2] == [8 * 1024 * 1024] * 2
    art = fake.artifact("wheelvet-build")
    assert result.size == len(art.data) > 20 * 1024 * 1024
    assert art.files()["big.whl"] == big.read_bytes()


def test_retention_sets_expires_at(fake, files):
    upload(fake, files, retention_days=5)
    expires = twirp_json(fake.twirp_requests("CreateArtifact")[0])["expires_at"]
    when = datetime.strptime(expires, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    assert abs(when - (datetime.now(timezone.utc) + timedelta(days=5))) < timedelta(minutes=1)


def test_retention_is_capped_at_the_repository_maximum(fake, files):
    upload(fake, files, retention_days=90, max_retention_days=3)
    expires = twirp_json(fake.twirp_requests("CreateArtifact")[0])["expires_at"]
    when = datetime.strptime(expires, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    assert when - datetime.now(timezone.utc) < timedelta(days=3, minutes=1)


def test_camel_case_answers_and_numeric_ids_are_understood(files):
    with FakeArtifactService(TOKEN, camel_case=True, artifact_id_as_number=True) as fake:
        result = upload(fake, files)
        assert result.artifact_id == fake.artifact("wheelvet-build").artifact_id


def test_only_the_origin_of_the_results_url_is_used(fake, files):
    upload(fake, files, results_url=fake.url + "some/path/")
    assert fake.twirp_requests("CreateArtifact")[0].path == f"/twirp/{SERVICE}/CreateArtifact"


def test_artifact_url():
    assert artifact_url("https://github.com/", "octo/demo", 123, 456) == \
        "https://github.com/octo/demo/actions/runs/123/artifacts/456"
    assert artifact_url("https://ghe.example", "o/r", "7", 8) == "https://ghe.example/o/r/actions/runs/7/artifacts/8"


# --- the token ---


def test_backend_ids_come_from_the_token_scope():
    ids = backend_ids(TOKEN)
    assert (ids.workflow_run_backend_id, ids.workflow_job_run_backend_id) == (RUN_ID, JOB_ID)


@pytest.mark.parametrize("token, words", [
    (make_jwt("Actions.ExampleScope Actions.UploadArtifacts:x:y"), "no Actions.Results scope"),
    (make_jwt(None), "no 'scp' claim"),
    (make_jwt("Actions.Results:onlyone"), "malformed"),
    ("not-a-jwt", "not a JWT"),
    ("aaa.!!!.ccc", "not a JWT"),
])
def test_a_token_without_the_results_scope_fails_before_any_request(fake, files, token, words):
    with pytest.raises(ArtifactError, match=words) as info:
        upload(fake, files, runtime_token=token)
    assert fake.requests == []
    assert token not in str(info.value)


def test_a_wrong_token_is_refused_and_not_retried(fake, files):
    other = runtime_token(RUN_ID, JOB_ID).replace(".bm90", ".eHh4")  # same scope, different bytes
    with pytest.raises(ArtifactError, match=r"CreateArtifact failed: HTTP 401 \(unauthenticated") as info:
        upload(fake, files, runtime_token=other)
    assert len(fake.requests) == 1
    assert other not in str(info.value)


def test_another_runs_token_is_refused(fake, files):
    with pytest.raises(ArtifactError, match="HTTP 401"):
        upload(fake, files, runtime_token=runtime_token("other-run", JOB_ID))


# --- retries ---


def test_429_and_503_are_retried(fake, files):
    fake.fail_next(2, 429, retry_after=0, only="twirp")
    fake.fail_next(1, 503, only="blob")
    result = upload(fake, files)
    assert result.artifact_id == fake.artifact("wheelvet-build").artifact_id
    assert [r.status for r in fake.twirp_requests("CreateArtifact")] == [429, 429, 200]
    assert [r.status for r in fake.blob_requests()] == [503, 201, 201]


def test_retry_after_is_honoured(fake, files):
    fake.fail_next(1, 429, retry_after=1, only="twirp")
    start = time.monotonic()
    upload(fake, files)
    assert time.monotonic() - start >= 0.95


def test_retry_after_longer_than_the_wait_limit_fails_at_once(fake, files):
    fake.fail_next(1, 503, retry_after=3600, only="twirp")
    start = time.monotonic()
    with pytest.raises(ArtifactError, match="retry after 3600 s"):
        upload(fake, files)
    assert time.monotonic() - start < 2
    assert len(fake.requests) == 1


def test_a_permanent_500_fails_after_the_retry_budget(fake, files):
    fake.fail_next(1000, 500)
    start = time.monotonic()
    with pytest.raises(ArtifactError, match=r"CreateArtifact failed after 4 attempts: HTTP 500 \(internal"):
        upload(fake, files, retries=3)
    assert time.monotonic() - start < 5
    assert len(fake.requests) == 4


def test_default_retry_count_is_bounded(fake, files):
    fake.fail_next(1000, 502, only="blob")
    with pytest.raises(ArtifactError, match=r"upload of block 1 of 1 failed after 6 attempts: HTTP 502"):
        upload(fake, files)
    assert len(fake.blob_requests()) == 6
    assert fake.finalized() == []


@pytest.mark.parametrize("status", [400, 403, 404])
@pytest.mark.parametrize("only", ["twirp", "blob"])
def test_other_4xx_fail_at_once(fake, files, status, only):
    fake.fail_next(1, status, only=only)
    with pytest.raises(ArtifactError, match=f"failed: HTTP {status}"):
        upload(fake, files)
    failed = fake.twirp_requests() if only == "twirp" else fake.blob_requests()
    assert [r.status for r in failed] == [status]
    assert fake.finalized() == []


def test_a_dropped_connection_is_retried(fake, files):
    fake.fail_next(1, drop=True, only="twirp")
    fake.fail_next(1, drop=True, only="blob")
    upload(fake, files)
    assert [r.status for r in fake.twirp_requests("CreateArtifact")] == [0, 200]
    assert fake.artifact("wheelvet-build").artifact_id


def test_a_request_that_times_out_is_retried(fake, files):
    fake.delay_next(1, 1.5)
    start = time.monotonic()
    upload(fake, files, timeout=0.3)
    assert len(fake.twirp_requests("CreateArtifact")) == 2
    assert time.monotonic() - start < 5


def test_an_unreachable_service_fails_after_the_retries(files):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens there once closed
    with pytest.raises(ArtifactError, match="CreateArtifact failed after 3 attempts: connection error"):
        upload_artifact("x", files, runtime_token=TOKEN, results_url=f"http://127.0.0.1:{port}/",
                        retries=2, backoff_base=0.01)


# --- errors hold no secret ---


def test_errors_from_the_blob_store_do_not_show_the_signature(fake, files):
    fake.fail_next(1, 403, only="blob", leak=True)  # Azure-style error echoing the request URL
    with pytest.raises(ArtifactError, match="upload of block 1 of 1 failed: HTTP 403 \\(AuthenticationFailed") as info:
        upload(fake, files)
    assert_no_secret(str(info.value), fake)


def test_errors_from_the_service_do_not_show_the_token(files):
    with FakeArtifactService(TOKEN, leaky_errors=True) as fake:
        fake.fail_next(1000, 500, only="twirp", leak=True)
        with pytest.raises(ArtifactError) as info:
            upload(fake, files, retries=1)
        assert "Bearer ***" in str(info.value)
        assert_no_secret(str(info.value), fake)


def test_errors_after_the_retries_on_blocks_do_not_show_the_signature(files):
    with FakeArtifactService(TOKEN, leaky_errors=True) as fake:
        fake.fail_next(1000, 503, only="blob", leak=True)
        with pytest.raises(ArtifactError) as info:
            upload(fake, files, retries=1)
        assert "failed after 2 attempts" in str(info.value)
        assert_no_secret(str(info.value), fake)


def test_the_error_is_not_chained_to_an_exception_holding_the_url(fake, files):
    fake.fail_next(1, 403, only="blob")
    with pytest.raises(ArtifactError) as info:
        upload(fake, files)
    exc = info.value
    assert exc.__cause__ is None and (exc.__context__ is None or exc.__suppress_context__)


# --- what the service refuses ---


def test_a_second_artifact_with_the_same_name_is_refused_without_overwrite(fake, files):
    upload(fake, files)
    with pytest.raises(ArtifactError, match=r"HTTP 409 \(already_exists: an artifact with this name already exists"):
        upload(fake, files, overwrite=False)
    assert len(fake.finalized()) == 1


def test_a_rerun_replaces_what_its_earlier_attempt_left(fake, files, tmp_path):
    """Attempt 2 of a job (a new job backend id, the same run) uploads the same
    name: list, delete, create, as upload-artifact's overwrite does."""
    first = upload(fake, files)
    second_attempt = fake.accept(runtime_token(RUN_ID, "job-backend-attempt-2"))
    (tmp_path / "new.txt").write_text("attempt 2")
    again = upload(fake, [("new.txt", str(tmp_path / "new.txt"))], runtime_token=second_attempt)
    assert again.replaced and not first.replaced and again.artifact_id != first.artifact_id
    (stored,) = fake.finalized()
    assert stored.files() == {"new.txt": b"attempt 2"} and stored.job_backend_id == "job-backend-attempt-2"
    assert [json.loads(b)["name"] for b in fake.deleted()] == ["wheelvet-build"]
    methods = [r.path.rsplit("/", 1)[1] for r in fake.twirp_requests()]
    assert methods[-5:] == ["CreateArtifact", "ListArtifacts", "DeleteArtifact", "CreateArtifact", "FinalizeArtifact"]


def test_the_same_name_in_another_run_is_fine(fake, files):
    upload(fake, files)
    other = fake.accept(runtime_token("another-run", JOB_ID))
    result = upload(fake, files, runtime_token=other)
    assert len(fake.finalized()) == 2 and not result.replaced and not fake.deleted()


def test_other_legs_reports_are_read_from_the_run(fake, tmp_path):
    from wheelvet.github.artifacts import read_artifacts

    for leg in ("a", "b"):
        token = fake.accept(runtime_token(RUN_ID, f"job-{leg}"))
        report = tmp_path / leg / "wheelvet-report.json"
        report.parent.mkdir()
        report.write_text(f'{{"leg": "{leg}"}}')
        upload(fake, [("wheelvet-report.json", str(report))], name=f"wheelvet-report-{leg}", runtime_token=token)
    upload(fake, [("x.txt", str(report))], name="something-else")
    found = read_artifacts("wheelvet-report-", "wheelvet-report.json", runtime_token=TOKEN, results_url=fake.url,
                           skip=["wheelvet-report-b"])
    assert found == {"wheelvet-report-a": b'{"leg": "a"}'}
    assert not fake.violations  # the read URL went to the blob store without the token


@pytest.mark.parametrize("name", ["", "a/b", "a\\b", 'say "hi"', "a:b", "a?"])
def test_invalid_artifact_names(fake, files, name):
    with pytest.raises(ArtifactError, match="artifact name"):
        upload(fake, files, name=name)
    assert fake.requests == []


def test_invalid_file_lists(fake, tmp_path, files):
    with pytest.raises(ArtifactError, match="no files"):
        upload(fake, [])
    with pytest.raises(ArtifactError, match="no such file"):
        upload(fake, [("a.whl", str(tmp_path / "missing.whl"))])
    with pytest.raises(ArtifactError, match="given twice"):
        upload(fake, [files[0], (files[0][0], files[1][1])])
    for bad in ("../x.whl", "/abs.whl", "a//b", "x|y"):
        with pytest.raises(ArtifactError):
            upload(fake, [(bad, files[0][1])])
    assert fake.requests == []


def test_files_in_subdirectories_keep_their_paths(fake, files):
    upload(fake, [("wheelvet-out/" + files[0][0], files[0][1]), files[1]])
    assert set(fake.artifact("wheelvet-build").files()) == {"wheelvet-out/" + files[0][0], files[1][0]}


# --- the fake checks what the real service checks ---


def _call(fake, method, payload, token=TOKEN, content_type="application/json"):
    req = urllib.request.Request(f"{fake.url}twirp/{SERVICE}/{method}", data=json.dumps(payload).encode(),
                                 method="POST", headers={"Authorization": f"Bearer {token}",
                                                         "Content-Type": content_type})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _put(url, body, **headers):
    req = urllib.request.Request(url, data=body, method="PUT", headers={"x-ms-version": "2023-01-03", **headers})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


IDS = {"workflow_run_backend_id": RUN_ID, "workflow_job_run_backend_id": JOB_ID}


def test_fake_refuses_what_the_service_refuses(fake):
    assert _call(fake, "CreateArtifact", {**IDS, "name": "a", "version": 3})[0] == 400
    assert _call(fake, "CreateArtifact", {**IDS, "name": "a", "version": 4, "expiresAt": "x"})[0] == 400
    assert _call(fake, "CreateArtifact", {**IDS, "name": "a", "version": 4}, content_type="text/plain")[0] == 404
    assert _call(fake, "CreateArtifact", {**IDS, "workflow_run_backend_id": "x", "name": "a", "version": 4})[0] == 403
    assert _call(fake, "UploadArtifact", {**IDS})[0] == 404
    assert _call(fake, "ListArtifacts", {**IDS}) == (200, {"artifacts": []})
    assert _call(fake, "DeleteArtifact", {**IDS, "name": "none"})[0] == 404
    assert _call(fake, "GetSignedArtifactURL", {**IDS, "name": "none"})[0] == 404
    status, answer = _call(fake, "CreateArtifact", {**IDS, "name": "a", "version": 4})
    assert status == 200 and answer["ok"] is True
    url = answer["signed_upload_url"]
    assert "sig=" in url and "SECRET" in unquote(base64.b64decode(unquote(url.split("sig=")[1])).decode("latin-1"))
    # finalize before anything was committed
    assert _call(fake, "FinalizeArtifact", {**IDS, "name": "a", "size": "0", "hash": "sha256:0"})[0] == 412
    bid = base64.b64encode(b"block-000001").decode()
    assert _put(url.replace("sig=", "sig=X"), b"data", **{} ) == 403  # a tampered signature
    assert _put(url + f"&comp=block&blockid={bid}", b"data", Authorization=f"Bearer {TOKEN}") == 400
    assert fake.violations == ["an Authorization header was sent to the blob store"]
    assert _put(url + f"&comp=block&blockid={bid}", b"data") == 201
    assert _put(url + "&comp=block&blockid=" + base64.b64encode(b"short").decode(), b"x") == 400  # other length
    other = base64.b64encode(b"block-000002").decode()
    listed = f"<BlockList><Latest>{bid}</Latest><Latest>{other}</Latest></BlockList>".encode()
    assert _put(url + "&comp=blocklist", listed) == 400  # block 2 was never uploaded
    assert _put(url + "&comp=blocklist", f"<BlockList><Latest>{bid}</Latest></BlockList>".encode()) == 201
    digest = "sha256:" + hashlib.sha256(b"data").hexdigest()
    assert _call(fake, "FinalizeArtifact", {**IDS, "name": "a", "size": "5", "hash": digest})[0] == 400
    assert _call(fake, "FinalizeArtifact", {**IDS, "name": "a", "size": "4", "hash": "sha256:00"})[0] == 400
    status, answer = _call(fake, "FinalizeArtifact", {**IDS, "name": "a", "size": "4", "hash": digest})
    assert status == 200 and answer == {"ok": True, "artifact_id": str(fake.artifact("a").artifact_id)}
    assert fake.artifact("a").data == b"data"
