"""Download one file into the cache as a blob: resumable across runs, retried, checked, atomic.

The bytes go to `blobs/<etag>.incomplete` and stay there if anything goes wrong, so the next
attempt (in this run or a later one) continues with a Range request instead of starting over.
Only a complete file whose hash matches is renamed to `blobs/<etag>`.
"""

from __future__ import annotations

import errno
import hashlib
import importlib
import math
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from olmo_cli.errors import AuthError, BadInputError, MismatchError, NetworkError, NotFoundError
from olmo_cli.hub.cache import RepoCache
from olmo_cli.hub.files import RemoteFile

CHUNK = 1024 * 1024


class CacheWriteError(BadInputError):
    """The HF cache cannot be written (permissions, a read-only disk): the whole sweep stops,
    since every later file would fail the same way."""


class DiskFullError(CacheWriteError):
    """No space left on the device."""


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 6  # attempts without progress; a connection that delivered bytes resets the count
    base_delay: float = 0.25
    max_delay: float = 8.0
    max_retry_after: float = 30.0  # a server's Retry-After is honoured up to this

    def delay(self, attempt: int, retry_after: str | None) -> float:
        asked = parse_retry_after(retry_after)
        if asked is not None:
            return min(asked, self.max_retry_after)
        return min(self.base_delay * 2**attempt, self.max_delay) * (0.5 + random.random() / 2)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP-date (RFC 9110); None
    for a missing or unreadable value. Never negative, never NaN; a date in the past is 0."""
    if value is None:
        return None
    text = str(value).strip()
    try:
        seconds = float(text)
    except ValueError:
        from email.utils import parsedate_to_datetime

        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        if when.tzinfo is None:
            return None
        seconds = when.timestamp() - time.time()
    if math.isnan(seconds):
        return None
    return max(seconds, 0.0)


DEFAULT_POLICY = RetryPolicy()


def _http():
    try:
        return importlib.import_module("httpx2")  # what huggingface_hub 2.x uses
    except ImportError:  # pragma: no cover - huggingface_hub 1.x environments
        return importlib.import_module("httpx")


def new_client():
    """One client for a whole sweep: building one (its TLS context) costs tens of milliseconds,
    and it keeps connections to the Hub and the CDN open between files. Thread-safe."""
    http = _http()
    return http.Client(
        follow_redirects=True,
        timeout=http.Timeout(30.0, connect=10.0),
        limits=http.Limits(max_connections=64, max_keepalive_connections=32),
    )


def file_url(endpoint: str, repo: str, commit: str, path: str) -> str:
    return f"{endpoint}/{repo}/resolve/{commit}/{quote(path)}"


def _open_append(path: Path):
    """Separate so tests can simulate a full disk."""
    return open(path, "ab")


class _Retry(Exception):
    def __init__(self, reason: str, retry_after: str | None = None):
        super().__init__(reason)
        self.retry_after = retry_after


def fetch_blob(
    repo: str,
    commit: str,
    remote: RemoteFile,
    *,
    endpoint: str,
    token: str | None,
    cache: RepoCache,
    on_bytes: Callable[[int], None] = lambda n: None,
    policy: RetryPolicy | None = None,
    client=None,
) -> int:
    """Make `blobs/<etag>` exist with the right bytes; returns the bytes transferred.

    `on_bytes(n)` is called as bytes arrive (negative when a bad partial file is thrown away).
    """
    try:
        return _fetch_locked(
            repo,
            commit,
            remote,
            endpoint=endpoint,
            token=token,
            cache=cache,
            on_bytes=on_bytes,
            policy=policy,
            client=client,
        )
    except OSError as error:  # ENOSPC while writing is DiskFullError, raised further down
        raise CacheWriteError(
            f"cannot write {remote.path} into the HF cache: {error.strerror or error}"
            f"{f' ({error.filename})' if error.filename else ''}",
            hint="check HF_HUB_CACHE and its permissions",
        ) from None


def _fetch_locked(repo, commit, remote, *, endpoint, token, cache, on_bytes, policy, client) -> int:
    from filelock import FileLock

    blob = cache.blob(remote.etag)
    if blob.is_file():
        return 0
    blob.parent.mkdir(parents=True, exist_ok=True)
    cache.lock(remote.etag).parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(cache.lock(remote.etag))):  # the same lock file huggingface_hub uses
        if blob.is_file():  # another process finished it while we waited
            return 0
        http = _http()
        policy = policy or DEFAULT_POLICY
        own_client = client is None
        client = client or new_client()
        try:
            return _transfer(
                http, client, file_url(endpoint, repo, commit, remote.path), token, remote, cache, on_bytes, policy
            )
        finally:
            if own_client:
                client.close()


def _transfer(http, client, url, token, remote, cache, report, policy) -> int:
    partial = cache.incomplete(remote.etag)
    transferred = 0

    def on_bytes(n: int) -> None:
        nonlocal transferred
        transferred += max(n, 0)
        report(n)

    attempt = 0
    restarted = False
    if remote.size == 0:
        partial.touch()  # nothing to fetch; still checked and renamed like any other file
    while True:
        have = partial.stat().st_size if partial.exists() else 0
        if have > remote.size:  # not a prefix of this file: start over
            partial.unlink()
            on_bytes(-have)
            have = 0
        if have == remote.size:
            if _matches(partial, remote):
                os.replace(partial, cache.blob(remote.etag))
                return transferred
            partial.unlink()
            on_bytes(-have)
            if restarted:
                raise MismatchError(f"{remote.path}: downloaded bytes do not match the Hub's hash twice in a row")
            restarted = True
            continue
        failure: _Retry | None = None
        try:
            _get(http, client, url, token, remote, partial, have, on_bytes)
        except _Retry as retry:
            failure = retry
        now = partial.stat().st_size if partial.exists() else 0
        if now > have:  # progress, even on a dropped connection: the count of failures starts again
            attempt = 0
        elif failure is None and now < remote.size:
            failure = _Retry("the Hub ended the file early and sent nothing new")
        if failure is not None:
            if attempt + 1 >= policy.attempts:
                raise NetworkError(
                    f"{remote.path}: giving up after {policy.attempts} attempts ({failure})",
                    hint="run the same command again: it continues where it stopped",
                ) from None
            time.sleep(policy.delay(attempt, failure.retry_after))
            attempt += 1


def _get(http, client, url, token, remote, partial: Path, have: int, on_bytes) -> int:
    """One GET from offset `have`; appends to `partial`. Returns bytes written. Raises _Retry on transient failures."""
    headers = {"Accept-Encoding": "identity"}  # byte offsets must be offsets in the file, not in a gzip stream
    if token:
        headers["Authorization"] = f"Bearer {token}"  # httpx drops it on the redirect to another host (the CDN)
    if have:
        headers["Range"] = f"bytes={have}-"
    written = 0
    try:
        with client.stream("GET", url, headers=headers) as response:
            status = response.status_code
            if status == 416:  # our partial file is not a prefix we can extend
                partial.unlink(missing_ok=True)
                on_bytes(-have)
                raise _Retry("416 range not satisfiable; restarting the file")
            if status in (401, 403):
                raise AuthError(
                    f"{remote.path}: not authorized ({status}); the token is missing, expired or lacks access",
                    hint="set HF_TOKEN to a valid token (and accept the terms of a gated repo)",
                )
            if status == 404:
                raise NotFoundError(f"{remote.path}: not found on the Hub (404)")
            if status == 429 or status >= 500:
                raise _Retry(f"the Hub answered {status}", response.headers.get("Retry-After"))
            if status not in (200, 206):
                raise NetworkError(f"{remote.path}: the Hub answered {status}")
            mode_append = status == 206 and _range_start(response) == have
            if not mode_append and have:  # the server ignored our Range (or answered another): start over
                partial.unlink(missing_ok=True)
                on_bytes(-have)
            try:
                with _open_append(partial) as out:
                    for chunk in response.iter_bytes():  # as they arrive: a drop loses nothing already received
                        out.write(chunk)
                        written += len(chunk)
                        on_bytes(len(chunk))
            except OSError as error:
                if error.errno in (errno.ENOSPC, errno.EDQUOT):
                    from olmo_cli.oserrors import no_space

                    full = no_space(partial, remote.size - have)
                    raise DiskFullError(
                        f"{full.message} while writing {remote.path} ({_mib(partial)} kept for resuming)",
                        hint="free some space and run the same command again",
                    ) from None
                raise
    except http.TooManyRedirects:
        raise NetworkError(f"{remote.path}: the Hub redirected too many times (a redirect loop?)") from None
    except (http.TransportError, http.DecodingError) as error:  # a drop, or a body that does not decode
        raise _Retry(f"{type(error).__name__}: {error}") from None
    return written


def _range_start(response) -> int | None:
    """The first byte offset of a 206 answer (`Content-Range: bytes 1000-65535/65536`)."""
    value = response.headers.get("Content-Range", "")
    try:
        return int(value.split()[1].split("-")[0])
    except (IndexError, ValueError):
        return None


def _mib(path: Path) -> str:
    size = path.stat().st_size if path.exists() else 0
    return f"{size / 2**20:.1f} MiB"


def _matches(path: Path, remote: RemoteFile) -> bool:
    if not remote.is_lfs and not remote.blob_id:  # nothing to check against but the size
        return path.stat().st_size == remote.size
    return file_digest(path, remote) == (remote.sha256 or remote.blob_id)


def file_digest(path: Path, remote: RemoteFile) -> str:
    """sha256 for LFS files; the git blob sha1 for small ones (what the Hub reports for each)."""
    size = path.stat().st_size
    digest = hashlib.sha256() if remote.is_lfs else hashlib.sha1(b"blob %d\0" % size)
    with open(path, "rb") as handle:
        while block := handle.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()
