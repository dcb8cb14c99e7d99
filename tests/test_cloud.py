"""Cloud sources against real emulators on loopback: Azurite (Azure Blob) and moto (S3).

A scan of blobs must give exactly the groups of a local scan of the same files; the cache
keys blobs by URL + ETag + size; a fault mid-scan is retried through or fails cleanly, and the
rerun completes without downloading finished blobs again.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

import neardup
from neardup.errors import SourceError, UsageError
from neardup.sources import cloud, open_source

from .conftest import encode, files_of, make_corpus, shape_of
from .services import AZURITE_KEY, Azurite, MotoServer, free_port

PREFIX = "shoot/2024"


def _timeless(root: Path) -> Path:
    """Every file at one instant: the keeper reads the age of local files but not of blobs (a
    blob's time is its upload's), so the local reference is given no ages either."""
    for p in root.rglob("*"):
        if p.is_file():
            os.utime(p, ns=(1_600_000_000 * 10**9,) * 2)
    return root


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, neardup.ScanResult]:
    root = _timeless(make_corpus(tmp_path_factory.mktemp("corpus")))
    return root, neardup.scan([str(root)], cache=None, workers=2)


# -- Azure --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def azurite(tmp_path_factory):
    server = Azurite(tmp_path_factory.mktemp("azurite"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def az_env(azurite, monkeypatch):
    for k in ("AZURE_STORAGE_ACCOUNT_NAME", "AZURE_STORAGE_ACCOUNT_KEY", "AZURE_STORAGE_SAS_TOKEN"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite.connection_string)
    return azurite


def _container(conn: str, name: str, files: dict[str, bytes]):
    from azure.storage.blob import BlobServiceClient

    cc = BlobServiceClient.from_connection_string(conn).get_container_client(name)
    cc.create_container()
    for rel, data in files.items():
        cc.upload_blob(f"{PREFIX}/{rel}", data)
    cc.upload_blob("elsewhere/not-scanned.jpg", next(iter(files.values())))
    return cc


def test_azure_scan_matches_local_scan(corpus, az_env, tmp_path):
    root, local = corpus
    _container(az_env.connection_string, "photos", files_of(root))
    url = f"az://photos/{PREFIX}"
    result = neardup.scan([url], cache=tmp_path / "cache", workers=2)
    assert shape_of(result, url) == shape_of(local, str(root))
    assert result.groups and all(m.startswith(url + "/") for g in result.groups for m in g.members)
    assert {f.reason for f in result.failures} == {"truncated", "empty-file"}
    # abfs:// names the same blobs
    again = neardup.scan([f"abfs://photos/{PREFIX}/"], cache=tmp_path / "cache", workers=1)
    assert shape_of(again, f"abfs://photos/{PREFIX}") == shape_of(local, str(root))


def test_azure_cache_keys_blobs_by_url_etag_and_size(corpus, az_env, tmp_path):
    root, _ = corpus
    files = files_of(root)
    cc = _container(az_env.connection_string, "etags", files)
    url = f"az://etags/{PREFIX}"
    first = neardup.scan([url], cache=tmp_path, workers=1)
    assert first.stats["read"] == first.stats["images"]
    again = neardup.scan([url], cache=tmp_path, workers=1)
    assert again.stats["read"] == 0, "an unchanged blob was downloaded again"
    assert shape_of(again, url) == shape_of(first, url)
    # overwrite one blob with other content: that one, and only that one, is read again
    name = next(k for k in files if k.startswith("orig/"))
    cc.upload_blob(f"{PREFIX}/{name}", encode(Image.new("RGB", (64, 48), (200, 30, 30))), overwrite=True)
    changed = neardup.scan([url], cache=tmp_path, workers=1)
    assert changed.stats["read"] == 1
    assert not any(f"{url}/{name}" in g.members for g in changed.groups)


def test_azure_listing_streams_in_pages(az_env, monkeypatch):
    from azure.storage.blob import BlobServiceClient

    cc = BlobServiceClient.from_connection_string(az_env.connection_string).get_container_client("pages")
    cc.create_container()
    names = [f"p/{i:03d}.jpg" for i in range(7)] + ["p/sub/", "p/x.txt", "q/outside.jpg"]
    for n in names:
        cc.upload_blob(n, b"x")
    monkeypatch.setattr(cloud, "AZURE_PAGE", 2)
    listed = list(open_source("az://pages/p").entries())
    assert [e.path for e in listed] == [f"az://pages/{n}" for n in names[:7]]
    assert all(e.etag and e.size == 1 for e in listed)
    # a URL that names one blob lists just it
    assert [e.path for e in open_source("az://pages/p/003.jpg").entries()] == ["az://pages/p/003.jpg"]


def test_azure_rest_listing_gives_what_the_sdk_gives(az_env, monkeypatch):
    """The listing parses the REST answer itself (for speed): names, sizes, times and ETags must
    be the SDK's to the byte, or cached blobs would look changed."""
    from azure.storage.blob import BlobServiceClient

    cc = BlobServiceClient.from_connection_string(az_env.connection_string).get_container_client("rest")
    cc.create_container()
    names = ["d/a b.jpg", "d/\u00fcn\u00ef\u00a9\u00f8d\u00e9 \u65e5\u672c.jpg", "d/q?x#y%20z+w.jpg",
             "d/&amp;<lt>'\".jpg", "d/sub/deep/x.png", "d/~tilde;semi,comma=eq.webp"]
    for i, n in enumerate(names):
        cc.upload_blob(n, b"x" * (i + 1))
    monkeypatch.setattr(cloud, "AZURE_PAGE", 4)
    assert cloud._azure_signing(cloud.parse_url("az://rest/d"))[1]  # a SAS: the REST route, not the SDK's
    want = sorted(("az://rest/" + b.name, b.size, cloud._ns(b.last_modified), str(b.etag))
                  for b in cc.list_blobs(name_starts_with="d/"))
    got = sorted((e.path, e.size, e.mtime_ns, e.etag) for e in open_source("az://rest/d").entries())
    assert got == want and len(got) == len(names)
    # and each listed name reads back (the key is quoted for the GET)
    assert [len(cloud.read_blob(p)) for p, *_ in got] == [w[1] for w in want]


@pytest.mark.parametrize("fault", ["restart", "outage"])
def test_azure_fault_mid_scan_then_rerun_resumes(az_env, tmp_path, fault):
    """The service goes away mid-scan.  "restart": it comes straight back, and the scan retries
    through it; "outage": it stays away (no retries), the scan stops with a clear error.  Either
    way the rerun gives the local result and downloads only what had not finished."""
    root = _timeless(make_corpus(tmp_path / "files", n_extra=12))
    files = files_of(root)
    _container(az_env.connection_string, f"faults-{fault}", files)
    local = neardup.scan([str(root)], cache=None, workers=2)
    url = f"az://faults-{fault}/{PREFIX}"
    cache = tmp_path / "cache"
    seen = [0]
    stopped = []

    def progress(stage: str, advance: int, total: int | None) -> None:
        seen[0] += advance if stage == "extract" else 0
        if stage == "extract" and seen[0] >= 8 and not stopped:
            stopped.append(True)
            az_env.stop()
            if fault == "restart":
                az_env.start()  # same port, same data

    first: neardup.ScanResult | None = None
    try:
        first = neardup.scan([url], cache=cache, workers=2, batch=8, progress=progress,
                             retries=5 if fault == "restart" else 0)
    except SourceError as e:
        assert "unreachable" in str(e) and "run the same scan again" in str(e)
        assert AZURITE_KEY not in str(e)
    finally:
        if fault == "outage":
            az_env.start()
    assert stopped
    if fault == "outage":
        assert first is None, "a scan against a dead service must stop, not report most files as failures"
    elif first is not None:  # retried through; a blob whose retries ran out is a failure, not cached
        groups, failures = shape_of(first, url)
        assert [f for f in failures if f[1] != "unreachable"] == shape_of(local, str(root))[1]
        if len(failures) == len(shape_of(local, str(root))[1]):
            assert groups == shape_of(local, str(root))[0]
    with sqlite3.connect(cache / "features.sqlite") as db:
        finished = db.execute("SELECT COUNT(*) FROM files WHERE path LIKE ?", (url + "/%",)).fetchone()[0]
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert finished >= 8
    if fault == "outage":
        assert finished < len(files) - 1
    rerun = neardup.scan([url], cache=cache, workers=2)
    assert shape_of(rerun, url) == shape_of(local, str(root))
    assert rerun.stats["read"] == rerun.stats["images"] - finished, "finished blobs were downloaded again"


def test_azure_unreachable_endpoint_is_a_clear_error(monkeypatch, tmp_path):
    port = free_port()  # nothing listens there
    conn = (f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={AZURITE_KEY};"
            f"BlobEndpoint=http://127.0.0.1:{port}/devstoreaccount1;")
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", conn)
    with pytest.raises(SourceError) as err:
        neardup.scan(["az://photos/x"], cache=None, retries=1)
    assert "az://photos/x" in str(err.value) and f"127.0.0.1:{port}" in str(err.value)
    out = tmp_path / "r.json"
    cli = subprocess.run([sys.executable, "-m", "neardup", "scan", "az://photos/x", "-o", str(out), "--no-cache",
                          "--retries", "0"], capture_output=True, text=True)
    assert cli.returncode == 2
    assert "Traceback" not in cli.stderr and "az://photos/x" in cli.stderr
    assert AZURITE_KEY not in cli.stderr + cli.stdout


def test_azure_secrets_never_shown_or_stored(corpus, az_env, monkeypatch, tmp_path):
    root, _ = corpus
    _container(az_env.connection_string, "secrets", files_of(root))
    out = tmp_path / "r.json"
    cli = subprocess.run([sys.executable, "-m", "neardup", "scan", "az://secrets/" + PREFIX, "-o", str(out),
                          "--cache", str(tmp_path / "c")], capture_output=True, text=True)
    assert cli.returncode in (0, 3), cli.stderr
    stored = out.read_bytes() + (tmp_path / "c" / "features.sqlite").read_bytes()
    assert AZURITE_KEY.encode() not in stored and b"AccountKey" not in stored
    assert AZURITE_KEY not in cli.stdout + cli.stderr
    # a wrong key: access denied, said without showing either key
    wrong = "A" * 86 + "=="
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", az_env.connection_string.replace(AZURITE_KEY, wrong))
    with pytest.raises(SourceError) as err:
        neardup.scan(["az://secrets/" + PREFIX], cache=None, retries=0)
    assert "403" in str(err.value) and wrong not in str(err.value) and AZURITE_KEY not in str(err.value)


def test_azure_without_credentials_says_what_to_set(monkeypatch):
    for k in ("AZURE_STORAGE_CONNECTION_STRING", "AZURE_STORAGE_ACCOUNT_NAME", "AZURE_STORAGE_ACCOUNT"):
        monkeypatch.delenv(k, raising=False)
    with pytest.raises(UsageError, match="AZURE_STORAGE_CONNECTION_STRING"):
        neardup.scan(["az://photos/x"], cache=None)
    with pytest.raises(UsageError, match="credentials in the environment"):
        neardup.scan(["az://photos/x?sig=abc"], cache=None)


# -- S3 -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def moto():
    server = MotoServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def s3_env(moto, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing-secret-key")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto.endpoint)
    for k in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(k, raising=False)
    import boto3

    return boto3.client("s3", endpoint_url=moto.endpoint)


def test_s3_scan_matches_local_scan(corpus, s3_env, tmp_path, monkeypatch):
    root, local = corpus
    s3_env.create_bucket(Bucket="photos")
    for rel, data in files_of(root).items():
        s3_env.put_object(Bucket="photos", Key=f"{PREFIX}/{rel}", Body=data)
    url = f"s3://photos/{PREFIX}"
    monkeypatch.setattr(cloud, "S3_PAGE", 4)  # several pages even for this small set
    result = neardup.scan([url], cache=tmp_path, workers=2)
    assert shape_of(result, url) == shape_of(local, str(root))
    again = neardup.scan([url], cache=tmp_path, workers=2)
    assert again.stats["read"] == 0 and shape_of(again, url) == shape_of(result, url)
    cfg = json.dumps(again.stats)
    assert "testing-secret-key" not in cfg


def test_s3_missing_bucket_is_a_clear_error(s3_env):
    with pytest.raises(SourceError, match=r"s3://no-such-bucket/x.*404"):
        neardup.scan(["s3://no-such-bucket/x"], cache=None, retries=0)


def test_azure_quarantine_moves_blobs_to_a_prefix_and_undo_restores(corpus, az_env, tmp_path):
    root, _ = corpus
    files = files_of(root)
    cc = _container(az_env.connection_string, "act", files)
    url = f"az://act/{PREFIX}"
    res = tmp_path / "results.json"
    scan = subprocess.run([sys.executable, "-m", "neardup", "scan", url, "-o", str(res), "--no-cache", "-q"],
                          capture_output=True, text=True)
    assert scan.returncode == 3, scan.stderr  # the two broken files
    groups = json.loads(res.read_text())["groups"]
    dups = [m for g in groups for m in g["members"] if m != g["keep"]]
    assert dups

    def names() -> dict[str, bytes]:
        return {b.name: cc.download_blob(b.name).readall() for b in cc.list_blobs()}

    before = names()
    q = "az://act/quarantine"
    run = subprocess.run([sys.executable, "-m", "neardup", "apply", str(res), "--action", "quarantine", "--to", q,
                          "--manifest", str(tmp_path / "m.jsonl"), "--yes"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    after = names()
    for d in dups:
        key = d.split("az://act/", 1)[1]
        assert key not in after and after[f"quarantine/act/{key}"] == before[key]
    assert all(g["keep"].split("az://act/", 1)[1] in after for g in groups)  # every keeper stays
    back = subprocess.run([sys.executable, "-m", "neardup", "undo", str(tmp_path / "m.jsonl")], capture_output=True,
                          text=True)
    assert back.returncode == 0, back.stdout + back.stderr
    assert names() == before
