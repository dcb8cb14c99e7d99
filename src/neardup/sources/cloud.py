"""Azure Blob (``az://``, ``abfs://``) and S3 (``s3://``) sources.

Writes, S3 listing and Azure listing with an identity go through the native SDKs
(azure-storage-blob, boto3), not fsspec: listing must stream page by page (adlfs and s3fs build the whole listing of a ``find`` in memory), and a
plain synchronous client is safe to use from threads in a worker process.  Reads, the hot path,
are plain HTTP GETs (``http.client``, a kept-alive connection per thread) of a URL signed locally
(a read-and-list SAS, a presigned S3 URL), and an Azure listing page is one such GET parsed with
ElementTree: a fraction of the SDKs' CPU per blob; ``benchmarks/cloud.py`` compares every route.

Credentials follow each ecosystem's conventions and are read from the environment in the
process that needs them, so they are never pickled, cached, logged or shown:

- Azure: ``AZURE_STORAGE_CONNECTION_STRING``; or ``AZURE_STORAGE_ACCOUNT_NAME`` (or
  ``AZURE_STORAGE_ACCOUNT``) with ``AZURE_STORAGE_ACCOUNT_KEY`` (or ``AZURE_STORAGE_KEY``) or
  ``AZURE_STORAGE_SAS_TOKEN``; or the account name alone, with ``DefaultAzureCredential``
  (``pip install azure-identity``).  ``abfs://container@account.dfs.core.windows.net/...``
  names the account in the URL.
- S3: whatever boto3 finds (``AWS_ACCESS_KEY_ID``..., ``AWS_PROFILE``, instance roles), and
  ``AWS_ENDPOINT_URL`` (or ``AWS_ENDPOINT_URL_S3``) for other S3-compatible services.

Transient faults (connection refused or reset, timeouts, HTTP 408/429/5xx) are retried with
exponential backoff and jitter; the SDKs' own retries are switched off so that one policy,
with one setting (:func:`configure`), holds for both.
"""

from __future__ import annotations

import importlib.util
import os
import queue
import random
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar
from urllib.parse import quote, unquote, urlencode, urlsplit

from ..errors import SourceError, UsageError
from .base import FileEntry, ReadError, ScanProblem, skipped_name

__all__ = ["BlobURL", "CloudSource", "blob_exists", "configure", "delete_blob", "is_remote", "parse_url", "read_blob",
           "scrub", "write_blob"]

AZURE_SCHEMES = ("az", "abfs", "abfss")
SCHEMES = (*AZURE_SCHEMES, "s3")
T = TypeVar("T")

#: names per listing request; each page is dropped once yielded.  Azure allows 5,000, but the
#: SDK's objects for a page of 5,000 cost ~40 MB more peak than 2,000 (benchmarks/cloud.py)
AZURE_PAGE = 2000
S3_PAGE = 1000
#: the first page is short, so extraction starts while the rest is listed
FIRST_PAGE = 200

_settings = {"retries": 5}
_clients: dict[tuple[object, ...], Any] = {}
_clients_pid = [0]


def configure(*, retries: int) -> None:
    """Retries for transient faults in this process (each read and each listing page)."""
    if retries < 0:
        raise UsageError(f"--retries must be 0 or more, got {retries}")
    _settings["retries"] = retries


def is_remote(path: str) -> bool:
    return path.split("://", 1)[0].lower() in SCHEMES if "://" in path else False


@dataclass(frozen=True, slots=True)
class BlobURL:
    """``scheme://container/key`` split; ``base`` + ``/`` + a blob name is that blob's URL."""

    scheme: str
    account: str | None  # from an abfs host name, else from the environment
    container: str
    key: str
    base: str

    @property
    def is_azure(self) -> bool:
        return self.scheme in AZURE_SCHEMES

    def child(self, name: str) -> str:
        return f"{self.base}/{name}"


_SIGNED = re.compile(r"[?&](sig|sv|se|sp|X-Amz-Signature|X-Amz-Credential|AWSAccessKeyId)=", re.IGNORECASE)


def parse_url(url: str) -> BlobURL:
    """Split by hand, not with urlsplit: a blob name may hold ``?``, ``#`` or ``%``, all literal."""
    raw_scheme, sep, rest = url.partition("://")
    scheme = raw_scheme.lower()
    if not sep or scheme not in SCHEMES:
        raise UsageError(f"unsupported URL scheme in {url!r}: use az://, abfs://, abfss:// or s3://")
    if _SIGNED.search(url):
        raise UsageError(f"{scrub(url)!r}: put credentials in the environment, not in the URL "
                         "(see `neardup scan --help`)")
    netloc, _, key = rest.partition("/")
    base = f"{raw_scheme}://{netloc}"
    container, account = netloc, None
    if "@" in netloc:
        container, host = netloc.split("@", 1)
        account = host.split(".", 1)[0]
    if not container:
        raise UsageError(f"{url!r} names no {'bucket' if scheme == 's3' else 'container'}: "
                         f"write {scheme}://NAME/prefix")
    return BlobURL(scheme, account, container, key, base)


# -- secrets ----------------------------------------------------------------------------
_SECRET_ENV = ("AZURE_STORAGE_ACCOUNT_KEY", "AZURE_STORAGE_KEY", "AZURE_STORAGE_SAS_TOKEN",
               "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AZURE_CLIENT_SECRET")
_SECRET_PATTERNS = re.compile(
    r"(AccountKey|SharedAccessSignature|SharedAccessKey|sig|se|sp|sv|skoid|sktid|X-Amz-Signature|"
    r"X-Amz-Credential|X-Amz-Security-Token|Signature|AWSAccessKeyId)=[^;&\s'\"]*",
    re.IGNORECASE,
)


_minted: list[str] = []  # SAS tokens this process made for itself (see _azure_get)


def _secrets() -> list[str]:
    out = [os.environ[k] for k in _SECRET_ENV if os.environ.get(k)] + _minted
    conn = os.environ.get("AZURE_STORAGE_CONNECTION_STRING", "")
    for part in conn.split(";"):
        k, _, v = part.partition("=")
        if k.strip().lower() in ("accountkey", "sharedaccesssignature") and v:
            out.append(v)
    return [s for s in out if len(s) >= 6]


def scrub(text: str) -> str:
    """``text`` with every credential the environment holds, and anything shaped like a key
    or a signature, replaced by ``***``: what error messages and logs may show."""
    for s in _secrets():
        text = text.replace(s, "***")
        text = text.replace(s.lstrip("?"), "***")
    text = _SECRET_PATTERNS.sub(lambda m: m.group(0).split("=", 1)[0] + "=***", text)
    return re.sub(r"(Authorization:?\s*)\S+(\s+\S+)?", r"\1***", text)


# -- faults -----------------------------------------------------------------------------
def _classify(e: BaseException) -> tuple[str, str]:
    """(kind, message): kind is ``transient``, ``vanished``, ``denied`` or ``unreadable``."""
    name = type(e).__name__
    status = None
    code = ""
    resp = getattr(e, "response", None)
    if isinstance(resp, dict):  # botocore ClientError
        status = resp.get("ResponseMetadata", {}).get("HTTPStatusCode")
        code = resp.get("Error", {}).get("Code", "")
    elif hasattr(e, "status_code"):  # azure HttpResponseError
        status = getattr(e, "status_code", None)
        code = str(getattr(e, "error_code", "") or "")
    if status is not None:
        what = f"HTTP {status}{' ' + code if code else ''}"
        if status in (408, 429, 500, 502, 503, 504) or code in ("SlowDown", "RequestTimeout", "Throttling"):
            return "transient", f"{what} (the service is busy or failing)"
        if status == 404 or code in ("NoSuchKey", "BlobNotFound"):
            return "vanished", f"{what}: not found"
        if status in (401, 403):
            return "denied", f"{what}: access denied; check the credentials and their permissions"
        return "unreadable", what
    mod = type(e).__module__
    if name in ("NoCredentialsError", "PartialCredentialsError"):
        return "denied", "no AWS credentials found: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE"
    if name == "ClientAuthenticationError":
        return "denied", "authentication failed; check the credentials"
    connection_like = (name.endswith(("ConnectionError", "TimeoutError", "Timeout", "ProtocolError"))
                       or name in ("EndpointConnectionError", "ConnectionClosedError", "ReadTimeoutError",
                                   "ConnectTimeoutError", "ProxyConnectionError", "HTTPClientError",
                                   "IncompleteRead", "ServiceRequestError", "ServiceResponseError",
                                   "NewConnectionError", "MaxRetryError", "RemoteDisconnected"))
    import http.client  # a cloud read's error: loaded where one happens, not by every local scan

    if isinstance(e, (OSError, TimeoutError, http.client.HTTPException)) or (connection_like and mod.startswith(
            ("botocore", "urllib3", "requests", "azure.core", "http", "socket", "ssl"))):
        first = scrub(str(e)).splitlines()[0][:200] if str(e) else ""
        return "transient", f"{name}: {first}" if first else name
    return "unreadable", f"{name}: {scrub(str(e))[:200]}"


def _retrying(fn: Callable[[], T], what: str) -> T:
    """``fn()``, retried on transient faults with capped exponential backoff and full jitter.

    Raises ReadError whose reason is the fault's kind (``unreachable`` when the retries ran
    out on a transient fault)."""
    attempts = _settings["retries"] + 1
    for i in range(attempts):
        try:
            return fn()
        except Exception as e:  # noqa: BLE001 - every SDK error is classified here, then re-raised as ReadError
            kind, msg = _classify(e)
            if kind != "transient":
                raise ReadError(kind, f"{what}: {msg}") from None
            if i == attempts - 1:
                raise ReadError("unreachable", f"{what}: {msg}, after {attempts} attempt(s)") from None
            # backoff against a remote service (not synchronisation), "equal jitter": at least
            # 0.25 + 0.5 + 1 + 2 + 4 s over 5 retries, enough for a service restart
            base = min(8.0, 0.5 * 2**i)
            time.sleep(base / 2 + random.uniform(0, base / 2))
    raise AssertionError("unreachable")  # pragma: no cover


# -- clients (one per process: connection pools must not cross a fork) ------------------
_CLIENT_ENV = ("AZURE_STORAGE_CONNECTION_STRING", "AZURE_STORAGE_ACCOUNT_NAME", "AZURE_STORAGE_ACCOUNT",
               "AZURE_STORAGE_ACCOUNT_KEY", "AZURE_STORAGE_KEY", "AZURE_STORAGE_SAS_TOKEN", "AWS_ENDPOINT_URL",
               "AWS_ENDPOINT_URL_S3", "AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
               "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION", "AWS_REGION")


def _env_key() -> int:
    return hash(tuple(os.environ.get(k) for k in _CLIENT_ENV))


def _client(key: tuple[object, ...], make: Callable[[], Any]) -> Any:
    """A client per process and per configuration: one made for other credentials or another
    endpoint (the environment changed) is not reused."""
    key = (*key, _env_key())
    if _clients_pid[0] != os.getpid():
        _clients.clear()
        _clients_pid[0] = os.getpid()
    c = _clients.get(key)
    if c is None:
        c = _clients[key] = make()
    return c


def _need(module: str, extra: str) -> None:

    try:
        found = importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # the parent package is missing too (azure for azure.storage.blob)
        found = False
    if not found:
        raise UsageError(f"reading this URL needs {module}: pip install 'neardup[{extra}]'")


def _azure_container(u: BlobURL) -> Any:
    _need("azure.storage.blob", "azure")

    def make() -> Any:
        from azure.storage.blob import BlobServiceClient

        kw: dict[str, Any] = {"retry_total": 0, "connection_timeout": 10, "read_timeout": 60}
        env = os.environ
        conn = env.get("AZURE_STORAGE_CONNECTION_STRING")
        conn_account = None
        if conn:
            fields = dict(p.split("=", 1) for p in conn.split(";") if "=" in p)
            conn_account = fields.get("AccountName")
        if conn and (u.account is None or u.account == conn_account):
            try:
                svc = BlobServiceClient.from_connection_string(conn, **kw)
            except ValueError:
                raise UsageError("AZURE_STORAGE_CONNECTION_STRING is not a valid connection string") from None
            return svc.get_container_client(u.container)
        account = u.account or env.get("AZURE_STORAGE_ACCOUNT_NAME") or env.get("AZURE_STORAGE_ACCOUNT")
        if not account:
            raise UsageError(
                "no Azure storage account: set AZURE_STORAGE_CONNECTION_STRING, or AZURE_STORAGE_ACCOUNT_NAME "
                "with AZURE_STORAGE_ACCOUNT_KEY or AZURE_STORAGE_SAS_TOKEN (or an identity for "
                "DefaultAzureCredential), or write abfs://CONTAINER@ACCOUNT.dfs.core.windows.net/prefix")
        url = f"https://{account}.blob.core.windows.net"
        key = env.get("AZURE_STORAGE_ACCOUNT_KEY") or env.get("AZURE_STORAGE_KEY")
        sas = env.get("AZURE_STORAGE_SAS_TOKEN")
        cred: Any
        if key:
            cred = {"account_name": account, "account_key": key}
        elif sas:
            cred = sas.lstrip("?")
        else:
            _need("azure.identity", "azure")
            from azure.identity import DefaultAzureCredential

            cred = DefaultAzureCredential()
        return BlobServiceClient(url, credential=cred, **kw).get_container_client(u.container)

    return _client(("az", u.account, u.container), make)


def _s3() -> Any:
    _need("boto3", "s3")

    def make() -> Any:
        import boto3
        from botocore.config import Config

        cfg = Config(retries={"total_max_attempts": 1}, connect_timeout=10, read_timeout=60,
                     max_pool_connections=32)
        return boto3.session.Session().client("s3", config=cfg)

    return _client(("s3",), make)


def _endpoint(u: BlobURL) -> str:
    try:
        url = _azure_container(u).url if u.is_azure else _s3().meta.endpoint_url
    except UsageError:
        raise
    except Exception:  # noqa: BLE001 - an endpoint we cannot even name: show the URL alone
        return u.base
    p = urlsplit(url)
    return f"{p.scheme}://{p.netloc}"


class _HTTPStatus(Exception):
    """A non-success answer to a plain GET, shaped like the SDKs' errors for :func:`_classify`."""

    def __init__(self, status: int, code: str) -> None:
        super().__init__(f"HTTP {status} {code}")
        self.status_code, self.error_code = status, code


#: a minted SAS (read and list only) is renewed after this many seconds (it is valid for twice as long)
SAS_RENEW_S = 3600


#: seconds to connect, and to wait for each read of an answer
CONNECT_TIMEOUT_S, READ_TIMEOUT_S = 10.0, 60.0


class _Kept(dict[tuple[str, str], Any]):
    """One thread's kept-alive connections by (scheme, netloc), closed when the thread ends
    (its thread-local storage is dropped), so no socket is left for the collector."""

    def __init__(self) -> None:
        super().__init__()
        self.pid = os.getpid()

    def __del__(self) -> None:
        if self.pid == os.getpid():
            for conn in self.values():
                conn.close()


_conns = threading.local()  # .pool: this thread's _Kept


def _http_get(url: str, error_code: Callable[[Any, bytes], str]) -> bytes:
    """GET a signed URL on this thread's kept-alive connection to its host; a non-200 answer
    raises :class:`_HTTPStatus` with the service's error code, for :func:`_classify`.

    ``http.client`` on one connection per reading thread, not a pool: a GET of a small blob then
    costs about half the CPU of urllib3's (which re-parses and re-encodes the long signed URL
    each time), and the CPU a blob is what bounds a scan (``benchmarks/cloud.py``).  A kept-alive
    connection the server has closed is reopened once without counting as a fault."""
    scheme, _, rest = url.partition("://")
    netloc, slash, path = rest.partition("/")
    pool: _Kept | None = getattr(_conns, "pool", None)
    if pool is None or pool.pid != os.getpid():  # a forked child must not share its parent's sockets
        for conn in (pool or {}).values():
            conn.close()  # the child's copy of the descriptor only: the parent's stays open
        pool = _conns.pool = _Kept()
    import http.client  # the blob reads' client: loaded by a cloud scan, not by every local one

    key = (scheme, netloc)
    for reused in (True, False):
        conn = pool.pop(key, None)
        if conn is None:
            reused = False
            cls = http.client.HTTPSConnection if scheme == "https" else http.client.HTTPConnection
            conn = cls(netloc, timeout=CONNECT_TIMEOUT_S)
            conn.connect()
            conn.sock.settimeout(READ_TIMEOUT_S)
        try:
            conn.request("GET", slash + path)
            r = conn.getresponse()
            data = r.read()
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            conn.close()
            if reused:  # the server closed an idle kept-alive connection: not a fault
                continue
            raise
        except BaseException:
            conn.close()
            raise
        if r.will_close:
            conn.close()
        else:
            pool[key] = conn
        if r.status != 200:
            raise _HTTPStatus(r.status, error_code(r.headers, data))
        return data
    raise AssertionError("unreachable")  # pragma: no cover


def _azure_sas(u: BlobURL) -> str | None:
    """A read-and-list SAS for the blob's container, or None (then reads stay on the SDK).

    With an account key the process mints its own, short-lived (a local HMAC, no request,
    renewed every :data:`SAS_RENEW_S`); with a SAS token in the environment it uses that; with
    an identity (bearer tokens) there is none.  A plain GET costs a fraction of the SDK's
    per-download CPU: ``benchmarks/cloud.py`` prints both, as blobs/s and CPU ms a blob.
    """
    cred: Any = getattr(_azure_container(u), "credential", None)
    account_key = getattr(cred, "account_key", None)
    state = _client(("az-sas", u.account, u.container), lambda: {"sas": None, "at": 0.0})
    now = time.time()
    if state["sas"] is None or now - state["at"] > SAS_RENEW_S:
        if account_key:

            from azure.storage.blob import ContainerSasPermissions, generate_container_sas

            t = datetime.now(timezone.utc)
            sas = generate_container_sas(cred.account_name, u.container, account_key=account_key,
                                         permission=ContainerSasPermissions(read=True, list=True), start=t - timedelta(minutes=5),
                                         expiry=t + timedelta(seconds=2 * SAS_RENEW_S))
            _minted.append(sas.split("sig=", 1)[-1])
        elif os.environ.get("AZURE_STORAGE_SAS_TOKEN") and not os.environ.get("AZURE_STORAGE_CONNECTION_STRING"):
            sas = os.environ["AZURE_STORAGE_SAS_TOKEN"].lstrip("?")
        else:
            return None
        state.update(sas=sas, at=now)
    return str(state["sas"])


def _azure_code(headers: Any, _body: bytes) -> str:
    return str(headers.get("x-ms-error-code", ""))


_signing: dict[tuple[object, ...], tuple[str, str | None, float]] = {}


def _azure_signing(u: BlobURL) -> tuple[str, str | None]:
    """(container URL, read SAS or None) for a read, looked up once a minute, not per blob:
    the client and SAS lookups behind it cost a blob as much CPU as the GET's headers."""
    k = (u.account, u.container, _env_key())
    now = time.monotonic()
    hit = _signing.get(k)
    if hit is not None and now < hit[2]:
        return hit[0], hit[1]
    base, sas = _azure_container(u).url.split("?", 1)[0], _azure_sas(u)
    _signing[k] = (base, sas, now + 60.0)
    return base, sas


def read_blob(url: str) -> bytes:
    """The whole blob at ``url``; raises ReadError (see :class:`ReadError` for the reasons).

    Reads are plain GETs of a locally signed URL (a read-and-list SAS, a presigned S3 URL); with an
    Azure identity and no key, the SDK's download."""
    u = parse_url(url)
    if u.is_azure:
        base, sas = _azure_signing(u)
        if sas is None:
            cc = _azure_container(u)
            return _retrying(lambda: cc.download_blob(u.key, max_concurrency=1).readall(), "cannot read")
        signed = f"{base}/{quote(u.key, safe='/~')}?{sas}"
        return _retrying(lambda: _http_get(signed, _azure_code), "cannot read")
    client = _s3()

    def s3_code(_h: Any, body: bytes) -> str:
        m = re.search(rb"<Code>([^<]{1,64})</Code>", body or b"")
        return m.group(1).decode("ascii", "replace") if m else ""

    def get() -> bytes:  # presigned per attempt: a retry after a long backoff must not expire
        signed = client.generate_presigned_url("get_object", Params={"Bucket": u.container, "Key": u.key},
                                               ExpiresIn=900)
        return _http_get(signed, s3_code)

    return _retrying(get, "cannot read")


def blob_exists(url: str) -> bool:
    u = parse_url(url)
    try:
        if u.is_azure:
            cc = _azure_container(u)
            _retrying(lambda: cc.get_blob_client(u.key).get_blob_properties(), "cannot stat")
        else:
            client = _s3()
            _retrying(lambda: client.head_object(Bucket=u.container, Key=u.key), "cannot stat")
    except ReadError as e:
        if e.reason == "vanished":
            return False
        raise
    return True


def write_blob(url: str, data: bytes) -> None:
    """Create the blob at ``url``; it must not exist yet (an action never overwrites)."""
    u = parse_url(url)
    if u.is_azure:
        cc = _azure_container(u)
        _retrying(lambda: cc.upload_blob(u.key, data, overwrite=False), "cannot write")
    else:
        client = _s3()
        _retrying(lambda: client.put_object(Bucket=u.container, Key=u.key, Body=data, IfNoneMatch="*"),
                  "cannot write")


def delete_blob(url: str) -> None:
    """Delete the blob; one that is already gone counts as deleted (a retried delete whose
    first attempt succeeded, unseen, finds nothing)."""
    u = parse_url(url)
    try:
        if u.is_azure:
            cc = _azure_container(u)
            _retrying(lambda: cc.delete_blob(u.key), "cannot delete")
        else:
            client = _s3()
            _retrying(lambda: client.delete_object(Bucket=u.container, Key=u.key), "cannot delete")
    except ReadError as e:
        if e.reason != "vanished":
            raise


# -- listing ----------------------------------------------------------------------------
def _ns(t: datetime | None) -> int:
    return int(t.timestamp() * 1_000_000) * 1000 if t is not None else 0


def _azure_list_page(body: bytes) -> tuple[list[tuple[str, int, int, str]], str | None]:
    """(name, size, mtime ns, etag) of each blob in a List Blobs answer, and the next marker.

    The REST answer parsed by ElementTree, not the SDK's model objects: listing through the SDK
    costs ~230 µs of CPU a blob (this parse ~26), a fifth of a small image's whole extraction,
    on the cores that decode (``benchmarks/cloud.py``).  Gives exactly what the SDK gives (a test compares)."""

    import xml.etree.ElementTree as ET  # a listing's parser: loaded by a cloud scan, not by every local one
    from email.utils import parsedate_to_datetime

    root = ET.fromstring(body)
    items = []
    for b in root.iterfind("Blobs/Blob"):
        n = b.find("Name")
        name = (n.text or "") if n is not None else ""
        if n is not None and n.get("Encoded", "").lower() == "true":  # names XML cannot hold
            name = unquote(name)
        p = b.find("Properties")
        size = int(p.findtext("Content-Length") or 0) if p is not None else 0
        modified = p.findtext("Last-Modified") if p is not None else None
        etag = (p.findtext("Etag") or "") if p is not None else ""
        items.append((name, size, _ns(parsedate_to_datetime(modified)) if modified else 0, etag))
    return items, root.findtext("NextMarker") or None


def _ahead(items: Iterator[T], maxsize: int) -> Iterator[T]:
    """``items``, produced by a thread up to ``maxsize`` ahead of the consumer.

    Listing a page costs a round trip plus parsing; without this, the driver stops feeding the
    extraction workers while it lists, and they idle.  Bounded, so memory stays flat; an
    exception in the producer is raised here; closing the generator stops the producer.
    """

    q: queue.Queue[tuple[str, object]] = queue.Queue(maxsize)
    stop = threading.Event()

    def put(rec: tuple[str, object]) -> bool:
        while not stop.is_set():
            try:
                q.put(rec, timeout=0.5)
                return True
            except queue.Full:
                continue
        return False  # the consumer has gone

    def produce() -> None:
        try:
            for it in items:
                if not put(("item", it)):
                    return
            put(("end", None))
        except BaseException as e:  # noqa: BLE001 - handed to the consumer, which re-raises it
            put(("error", e))

    t = threading.Thread(target=produce, name="neardup-list", daemon=True)
    t.start()
    try:
        while True:
            kind, val = q.get()
            if kind == "item":
                yield val  # type: ignore[misc]
            elif kind == "error":
                raise val  # type: ignore[misc]
            else:
                return
    finally:
        stop.set()


@dataclass(frozen=True, slots=True)
class CloudSource:
    """Blobs under a URL prefix, listed a page at a time (:data:`AZURE_PAGE`, :data:`S3_PAGE`)."""

    root: str
    all_files: bool = False

    def entries(self, *, on_skip: Callable[[str], None] | None = None) -> Iterator[FileEntry | ScanProblem]:
        u = parse_url(self.root)
        key = u.key
        folder = key if not key or key.endswith("/") else key + "/"
        n = 0
        try:
            for name, size, mtime, etag in _ahead(self._pages(u, folder), AZURE_PAGE if u.is_azure else S3_PAGE):
                n += 1
                if name.endswith("/"):
                    continue  # a folder marker
                if not self.all_files and skipped_name(name.rsplit('/', 1)[-1]):
                    if on_skip is not None:
                        on_skip(u.child(name))
                    continue
                yield FileEntry(u.child(name), size, mtime, etag)
            if n == 0 and key and not key.endswith("/"):
                one = self._single(u)  # the URL names one blob
                if one is not None:
                    yield one
        except ReadError as e:
            raise SourceError(f"cannot list {scrub(self.root)} at {_endpoint(u)}: {e}; check the endpoint, the "
                              "name and the credentials; a rerun resumes from the cache") from None

    def _pages(self, u: BlobURL, prefix: str) -> Iterator[tuple[str, int, int, str]]:
        token: str | None = None
        what = "listing"
        base, sas = _azure_signing(u) if u.is_azure else ("", None)
        if sas is not None:

            def page() -> tuple[list[tuple[str, int, int, str]], str | None]:
                q = {"restype": "container", "comp": "list",
                     "maxresults": str(AZURE_PAGE if token else min(FIRST_PAGE, AZURE_PAGE))}
                if prefix:
                    q["prefix"] = prefix
                if token:
                    q["marker"] = token
                body = _http_get(f"{base}?{urlencode(q, quote_via=quote)}&{sas}", _azure_code)
                return _azure_list_page(body)
        elif u.is_azure:
            cc = _azure_container(u)

            def page() -> tuple[list[tuple[str, int, int, str]], str | None]:
                size = AZURE_PAGE if token else min(FIRST_PAGE, AZURE_PAGE)
                pager = cc.list_blobs(name_starts_with=prefix or None, results_per_page=size).by_page(
                    continuation_token=token)
                items = [(b.name, b.size, _ns(b.last_modified), str(b.etag)) for b in next(pager)]
                return items, pager.continuation_token
        else:
            client = _s3()

            def page() -> tuple[list[tuple[str, int, int, str]], str | None]:
                kw: dict[str, Any] = {"Bucket": u.container, "Prefix": prefix,
                                      "MaxKeys": S3_PAGE if token else min(FIRST_PAGE, S3_PAGE)}
                if token:
                    kw["ContinuationToken"] = token
                r = client.list_objects_v2(**kw)
                items = [(o["Key"], o["Size"], _ns(o.get("LastModified")), str(o.get("ETag", "")))
                         for o in r.get("Contents", [])]
                return items, r.get("NextContinuationToken") if r.get("IsTruncated") else None

        while True:
            items, token = _retrying(page, what)
            yield from items
            if not token:
                return

    def _single(self, u: BlobURL) -> FileEntry | None:
        try:
            if u.is_azure:
                cc = _azure_container(u)
                p = _retrying(lambda: cc.get_blob_client(u.key).get_blob_properties(), "properties")
                return FileEntry(self.root, p.size, _ns(p.last_modified), str(p.etag))
            client = _s3()
            h = _retrying(lambda: client.head_object(Bucket=u.container, Key=u.key), "properties")
            return FileEntry(self.root, h["ContentLength"], _ns(h.get("LastModified")), str(h.get("ETag", "")))
        except ReadError as e:
            if e.reason == "vanished":
                return None
            raise
