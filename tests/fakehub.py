"""A loopback Hugging Face Hub for tests: speaks the HTTP API the real huggingface_hub client uses.

Nothing here touches the network: the server listens on 127.0.0.1 on a free port. Point the
client at it with `HF_ENDPOINT=hub.url` (the `fake_hub` fixture in conftest.py does that and
subprocesses inherit it).

Data model
----------
    hub = FakeHub()                       # lfs_threshold=1024, lfs_redirect=True
    hub.add_repo("allenai/OLMo-1B-hf",
                 branches={"main": {"config.json": b"{}", "model.safetensors": b"..."},
                           "step1000-tokens4B": {...}},
                 tags={"v1": "main"},      # tag -> branch (same commit)
                 gated=False,              # gated: 401s say GatedRepo instead of RepoNotFound
                 lfs=["*.bin"])            # patterns stored as LFS whatever their size
    hub.start(); ...; hub.stop()           # or `with FakeHub() as hub:`

A file is LFS when it is larger than `lfs_threshold` bytes or matches a pattern in `lfs`, like on
the real Hub: its ETag is the sha256 of its bytes, its tree entry carries `lfs: {oid, size,
pointerSize}` and its `oid`/blobId is the git sha1 of the LFS pointer. A small file's ETag and
oid are the git blob sha1 of its bytes. Identical bytes in several branches are one blob.
Commit shas are deterministic 40-hex (sha1 of repo, branch and the file list).

Test data: `safetensors_bytes({name: bytes})` (a valid safetensors file, no dependency) and
`checkpoint_repo(hub, repo_id, steps, weight_bytes=...)` (OLMo-like step branches sharing config and
tokenizer, with distinct weights).

Helpers: `hub.commit(repo, rev)`, `hub.etag(repo, rev, path)`, `hub.file_bytes(repo, rev, path)`,
`hub.sha256(repo, rev, path)`, `hub.is_lfs(repo, rev, path)`.

Routes (model repos; `{rev}` is a branch, a tag or a commit sha, URL-quoted)
-----------------------------------------------------------------------------
    GET  /api/models/{repo}/refs                    branches, tags, converts (targetCommit)
    GET  /api/models/{repo}[/revision/{rev}]        model info: sha, siblings; ?blobs=true adds
                                                    size, blobId, lfs {sha256, size, pointerSize}
    GET  /api/models/{repo}/tree/{rev}[/{path}]     ?recursive=true, ?expand=true (lastCommit)
    POST /api/models/{repo}/paths-info/{rev}        form or JSON body: paths=[...], expand
    HEAD/GET /{repo}/resolve/{rev}/{path}           small file: 200, ETag = git sha1.
                                                    LFS file: 302 to the "CDN" (a second loopback
                                                    server, so another origin: the client drops
                                                    the Authorization header, like with a real CDN)
                                                    with X-Linked-Etag = sha256 and X-Linked-Size.
                                                    Both carry X-Repo-Commit. No Xet headers ever.
    HEAD/GET {hub.cdn_url}/cdn-lfs/{repo}/{sha256}/{path}   the LFS bytes; no token needed.
GET honours `Range: bytes=a-b` / `bytes=a-` (206 + Content-Range; 416 when out of range).
Errors carry the Hub's X-Error-Code (RepoNotFound, RevisionNotFound, EntryNotFound, GatedRepo),
so the client raises its usual exceptions.

Auth and faults
---------------
    hub.set_token("hf_x")       every Hub request (not the CDN) without `Authorization: Bearer
                                hf_x` gets 401 (GatedRepo for gated repos, else RepoNotFound)
    hub.fail("model.safetensors", status=500, times=1, retry_after=None, method=None, body=None)
                                the next `times` matching requests answer `status` (429 with
                                `Retry-After: retry_after` when given: a number of seconds, or any
                                string, sent as it is); `body` (bytes, or any JSON value) replaces
                                the JSON error body: an answer of the wrong shape or not JSON;
                                `headers` are added (a Location for a redirect loop, an encoding)
    hub.drop_connection("model.safetensors", after_bytes=N, times=1, method="GET")
                                announce the full body, send N bytes of it, then close the socket
    hub.latency = 0.05          every answer waits this long first (a far-away Hub; benchmarks)
    hub.throttle("model.safetensors", bytes_per_second=1_000_000)
                                send matching GET bodies slowly (in small chunks), so a test can
                                kill a client mid-file; `hub.throttle(substr, None)` lifts it
A request matches when `path_substring` occurs in its path (query included) and, when `method`
is given, its method is that one. Faults are consumed in the order they were added.

Request log
-----------
    hub.requests                list of Request(method, path, headers, status, sent, server)
                                (`sent` = body bytes written; `server` = "hub" or "cdn")
    hub.bytes_sent(path_substring=None)   body bytes sent by GETs whose path contains it
    hub.clear_log()

Standalone (for manual runs): `python tests/fakehub.py` serves a small demo repo
(`allenai/OLMo-fake`) until interrupted and prints `HF_ENDPOINT=...` on its first line.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, quote, unquote, urlsplit

__all__ = ["FakeHub", "Request", "checkpoint_repo", "demo_hub", "safetensors_bytes"]

_LFS_POINTER = "version https://git-lfs.github.com/spec/v1\noid sha256:{sha}\nsize {size}\n"
_DATE = "2024-01-01T00:00:00.000Z"


def _seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass(frozen=True)
class _Blob:
    data: bytes
    lfs: bool
    sha256: str
    git_sha1: str  # of the bytes (small files) or of the LFS pointer (LFS files)
    pointer_size: int

    @property
    def etag(self) -> str:
        return self.sha256 if self.lfs else self.git_sha1


@dataclass
class _Repo:
    repo_id: str
    branches: dict[str, str]  # branch -> commit sha
    tags: dict[str, str]  # tag -> commit sha
    commits: dict[str, dict[str, _Blob]]  # commit sha -> path -> blob
    gated: bool = False


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    status: int = 0
    sent: int = 0
    server: str = "hub"


@dataclass
class _Fault:
    substring: str
    method: str | None
    times: int
    status: int | None = None
    retry_after: float | str | None = None
    drop_after: int | None = None
    body: object = None
    headers: dict | None = None

    def matches(self, method: str, path: str) -> bool:
        return self.times > 0 and self.substring in path and (self.method is None or self.method == method)


class _Hangup(Exception):
    """Raised inside the handler to close the connection mid-body."""


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address) -> None:
        import sys

        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):  # a client hung up: normal here
            super().handle_error(request, client_address)


class FakeHub:
    def __init__(self, *, lfs_threshold: int = 1024, lfs_redirect: bool = True):
        self.lfs_threshold = lfs_threshold
        self.lfs_redirect = lfs_redirect
        self.repos: dict[str, _Repo] = {}
        self.requests: list[Request] = []
        self.token: str | None = None
        self.latency = 0.0  # seconds added before every answer (a far-away Hub), for benchmarks
        self._faults: list[_Fault] = []
        self._throttles: dict[str, float] = {}
        self._lock = threading.Lock()
        self._servers: list[ThreadingHTTPServer] = []
        self._threads: list[threading.Thread] = []
        self.url = ""
        self.cdn_url = ""

    # ----- data -----
    def add_repo(
        self,
        repo_id: str,
        branches: dict[str, dict[str, bytes]],
        tags: dict[str, str] | None = None,
        gated: bool = False,
        lfs: list[str] | None = None,
    ) -> _Repo:
        blobs: dict[bytes, _Blob] = {}
        repo = _Repo(repo_id, {}, {}, {}, gated)
        for branch, files in branches.items():
            tree: dict[str, _Blob] = {}
            for path, data in sorted(files.items()):
                is_lfs = len(data) > self.lfs_threshold or any(fnmatch.fnmatch(path, p) for p in (lfs or ()))
                key = bytes([is_lfs]) + data
                if key not in blobs:
                    sha256 = hashlib.sha256(data).hexdigest()
                    pointer = _LFS_POINTER.format(sha=sha256, size=len(data)).encode()
                    blobs[key] = _Blob(data, is_lfs, sha256, git_blob_sha1(pointer if is_lfs else data), len(pointer))
                tree[path] = blobs[key]
            listing = "\n".join(f"{p} {b.git_sha1}" for p, b in tree.items())
            commit = hashlib.sha1(f"{repo_id}\n{branch}\n{listing}".encode()).hexdigest()
            repo.branches[branch] = commit
            repo.commits[commit] = tree
        for tag, branch in (tags or {}).items():
            repo.tags[tag] = repo.branches[branch]
        self.repos[repo_id] = repo
        return repo

    def set_token(self, token: str | None) -> None:
        self.token = token

    def commit(self, repo_id: str, revision: str = "main") -> str:
        sha = self._resolve(self.repos[repo_id], revision)
        if sha is None:
            raise KeyError(revision)
        return sha

    def _blob(self, repo_id: str, revision: str, path: str) -> _Blob:
        return self.repos[repo_id].commits[self.commit(repo_id, revision)][path]

    def etag(self, repo_id: str, revision: str, path: str) -> str:
        return self._blob(repo_id, revision, path).etag

    def sha256(self, repo_id: str, revision: str, path: str) -> str:
        return self._blob(repo_id, revision, path).sha256

    def file_bytes(self, repo_id: str, revision: str, path: str) -> bytes:
        return self._blob(repo_id, revision, path).data

    def is_lfs(self, repo_id: str, revision: str, path: str) -> bool:
        return self._blob(repo_id, revision, path).lfs

    @staticmethod
    def _resolve(repo: _Repo, revision: str) -> str | None:
        if revision in repo.branches:
            return repo.branches[revision]
        if revision in repo.tags:
            return repo.tags[revision]
        return revision if revision in repo.commits else None

    # ----- faults and log -----
    def fail(
        self,
        path_substring: str,
        status: int = 500,
        times: int = 1,
        retry_after: float | str | None = None,
        method: str | None = None,
        body: object = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        with self._lock:
            self._faults.append(
                _Fault(path_substring, method, times, status, retry_after=retry_after, body=body, headers=headers)
            )

    def drop_connection(
        self, path_substring: str, after_bytes: int = 0, times: int = 1, method: str | None = "GET"
    ) -> None:
        with self._lock:
            self._faults.append(_Fault(path_substring, method, times, drop_after=after_bytes))

    def throttle(self, path_substring: str, bytes_per_second: float | None) -> None:
        with self._lock:
            if bytes_per_second is None:
                self._throttles.pop(path_substring, None)
            else:
                self._throttles[path_substring] = float(bytes_per_second)

    def _rate(self, path: str) -> float | None:
        with self._lock:
            rates = [rate for sub, rate in self._throttles.items() if sub in path]
        return min(rates) if rates else None

    def _take_fault(self, method: str, path: str, *, body: bool) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if (fault.drop_after is not None) != body:
                    continue
                if fault.matches(method, path):
                    fault.times -= 1
                    return fault
        return None

    def bytes_sent(self, path_substring: str | None = None) -> int:
        with self._lock:
            return sum(
                r.sent
                for r in self.requests
                if r.method == "GET" and (path_substring is None or path_substring in r.path)
            )

    def clear_log(self) -> None:
        with self._lock:
            self.requests.clear()

    def _log(self, request: Request) -> None:
        with self._lock:
            self.requests.append(request)

    # ----- lifecycle -----
    def start(self) -> FakeHub:
        for name in ("hub", "cdn"):
            server = _QuietServer(("127.0.0.1", 0), _make_handler(self, name))
            server.daemon_threads = True
            thread = threading.Thread(
                target=server.serve_forever, kwargs={"poll_interval": 0.05}, name=f"fakehub-{name}", daemon=True
            )
            thread.start()
            self._servers.append(server)
            self._threads.append(thread)
        self.url = f"http://127.0.0.1:{self._servers[0].server_address[1]}"
        self.cdn_url = f"http://127.0.0.1:{self._servers[1].server_address[1]}"
        return self

    def stop(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
        self._servers.clear()
        self._threads.clear()

    def __enter__(self) -> FakeHub:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _tree_entry(path: str, blob: _Blob, commit: str, expand: bool) -> dict:
    entry: dict = {"type": "file", "oid": blob.git_sha1, "size": len(blob.data), "path": path}
    if blob.lfs:
        entry["lfs"] = {"oid": blob.sha256, "size": len(blob.data), "pointerSize": blob.pointer_size}
    if expand:
        entry["lastCommit"] = {"id": commit, "title": "Upload", "date": _DATE}
    return entry


def _folder_entry(path: str, files: dict[str, _Blob], commit: str, expand: bool) -> dict:
    inside = "\n".join(f"{p} {b.git_sha1}" for p, b in files.items() if p.startswith(path + "/"))
    entry: dict = {"type": "directory", "oid": hashlib.sha1(inside.encode()).hexdigest(), "size": 0, "path": path}
    if expand:
        entry["lastCommit"] = {"id": commit, "title": "Upload", "date": _DATE}
    return entry


def _list_tree(files: dict[str, _Blob], commit: str, base: str, recursive: bool, expand: bool) -> list[dict] | None:
    prefix = base.strip("/") + "/" if base.strip("/") else ""
    entries: list[dict] = []
    folders: set[str] = set()
    for path, blob in files.items():
        if not path.startswith(prefix):
            continue
        rest = path[len(prefix) :]
        parts = rest.split("/")
        for depth in range(1, len(parts)):
            folder = prefix + "/".join(parts[:depth])
            if (recursive or depth == 1) and folder not in folders:
                folders.add(folder)
                entries.append(_folder_entry(folder, files, commit, expand))
        if recursive or len(parts) == 1:
            entries.append(_tree_entry(path, blob, commit, expand))
    if prefix and not entries:
        return None
    return entries


def _make_handler(hub: FakeHub, server_name: str):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go out at once: no 40 ms delayed-ACK stalls

        def log_message(self, *args) -> None:  # keep test output clean
            pass

        def do_GET(self) -> None:
            self._handle("GET")

        def do_HEAD(self) -> None:
            self._handle("HEAD")

        def do_POST(self) -> None:
            self._handle("POST")

        # ----- plumbing -----
        def _handle(self, method: str) -> None:
            self._record = Request(
                method, self.path, {k.lower(): v for k, v in self.headers.items()}, server=server_name
            )
            hub._log(self._record)
            length = int(self.headers.get("Content-Length") or 0)
            self._body = self.rfile.read(length) if length else b""
            if hub.latency:
                time.sleep(hub.latency)
            try:
                fault = hub._take_fault(method, self.path, body=False)
                if fault is not None:
                    after = fault.retry_after
                    extra = (
                        {"Retry-After": after if isinstance(after, str) else _seconds(after)}
                        if after is not None
                        else {}
                    )
                    extra.update(fault.headers or {})
                    if isinstance(fault.body, bytes):
                        return self._send(fault.status, fault.body, extra, content_type="application/json")
                    if fault.body is not None:
                        return self._send_json(fault.status, fault.body, headers=extra)
                    return self._send_json(fault.status, {"error": f"injected {fault.status}"}, headers=extra)
                self._route(method)
            except _Hangup:
                self.close_connection = True
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True

        def _send(
            self,
            status: int,
            body: bytes = b"",
            headers: dict[str, str] | None = None,
            content_type: str = "application/octet-stream",
        ) -> None:
            self._record.status = status
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            if self.command == "HEAD" or not body:
                return
            # Only file bodies are dropped, never an error answer (an injected 429 would eat the fault).
            drop = hub._take_fault(self.command, self.path, body=True) if status in (200, 206) else None
            if drop is not None:
                part = body[: drop.drop_after]
                self.wfile.write(part)
                self.wfile.flush()
                self._record.sent += len(part)
                self.connection.shutdown(2)  # SHUT_RDWR: the client sees a truncated body
                raise _Hangup()
            self._write_body(body)

        def _write_body(self, body: bytes) -> None:
            # In chunks, counting as we go: a client killed mid-body leaves an accurate `sent`.
            rate = hub._rate(self.path)
            chunk = 64 * 1024 if rate is None else max(1024, min(64 * 1024, int(rate / 20)))
            for start in range(0, len(body), chunk):
                part = body[start : start + chunk]
                self.wfile.write(part)
                self.wfile.flush()
                self._record.sent += len(part)
                if rate is not None:
                    time.sleep(len(part) / rate)

        def _send_json(self, status: int, payload, headers: dict[str, str] | None = None) -> None:
            self._send(status, json.dumps(payload).encode(), headers, content_type="application/json")

        def _error(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
            self._send_json(
                status,
                {"error": message},
                headers={"X-Error-Code": code, "X-Error-Message": message, **(headers or {})},
            )

        # ----- routing -----
        def _route(self, method: str) -> None:
            url = urlsplit(self.path)
            query = {k: v[-1] for k, v in parse_qs(url.query).items()}
            segments = [unquote(s) for s in url.path.strip("/").split("/")] if url.path.strip("/") else []
            if len(segments) >= 5 and segments[0] == "cdn-lfs":
                return self._cdn(segments[1] + "/" + segments[2], segments[3], "/".join(segments[4:]))
            if server_name == "cdn":
                return self._error(404, "EntryNotFound", "not a CDN path")
            if len(segments) >= 4 and segments[:2] == ["api", "models"]:
                repo = self._repo(segments[2] + "/" + segments[3])
                if repo is None:
                    return
                rest = segments[4:]
                if rest == [] and method == "GET":
                    return self._model_info(repo, "main", query)
                if rest == ["refs"] and method == "GET":
                    return self._refs(repo)
                if len(rest) == 2 and rest[0] == "revision" and method == "GET":
                    return self._model_info(repo, rest[1], query)
                if len(rest) >= 2 and rest[0] == "tree" and method == "GET":
                    return self._tree(repo, rest[1], "/".join(rest[2:]), query)
                if len(rest) == 2 and rest[0] == "paths-info" and method == "POST":
                    return self._paths_info(repo, rest[1])
                return self._error(404, "EntryNotFound", f"no route {method} {url.path}")
            if len(segments) >= 5 and segments[2] == "resolve" and method in ("GET", "HEAD"):
                repo = self._repo(segments[0] + "/" + segments[1])
                if repo is None:
                    return
                return self._resolve_file(repo, segments[3], "/".join(segments[4:]))
            self._error(404, "RepoNotFound", f"no route {method} {url.path}")

        def _repo(self, repo_id: str) -> _Repo | None:
            repo = hub.repos.get(repo_id)
            if hub.token is not None and self.headers.get("Authorization") != f"Bearer {hub.token}":
                gated = repo is not None and repo.gated
                self._error(
                    401,
                    "GatedRepo" if gated else "RepoNotFound",
                    "Access to this model is restricted" if gated else "Invalid username or password.",
                )
                return None
            if repo is None:
                self._error(404, "RepoNotFound", "Repository not found")
                return None
            return repo

        def _commit(self, repo: _Repo, revision: str) -> str | None:
            sha = FakeHub._resolve(repo, revision)
            if sha is None:
                self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
            return sha

        def _refs(self, repo: _Repo) -> None:
            def ref(kind: str, name: str, sha: str) -> dict:
                return {"name": name, "ref": f"refs/{kind}/{name}", "targetCommit": sha}

            self._send_json(
                200,
                {
                    "branches": [ref("heads", n, s) for n, s in repo.branches.items()],
                    "tags": [ref("tags", n, s) for n, s in repo.tags.items()],
                    "converts": [],
                    "pullRequests": [],
                },
            )

        def _model_info(self, repo: _Repo, revision: str, query: dict) -> None:
            sha = self._commit(repo, revision)
            if sha is None:
                return
            blobs = query.get("blobs", "").lower() in ("1", "true")
            siblings = []
            for path, blob in repo.commits[sha].items():
                sibling: dict = {"rfilename": path}
                if blobs:
                    sibling.update(size=len(blob.data), blobId=blob.git_sha1)
                    if blob.lfs:
                        sibling["lfs"] = {
                            "sha256": blob.sha256,
                            "size": len(blob.data),
                            "pointerSize": blob.pointer_size,
                        }
                siblings.append(sibling)
            self._send_json(
                200,
                {
                    "_id": hashlib.sha1(repo.repo_id.encode()).hexdigest()[:24],
                    "id": repo.repo_id,
                    "modelId": repo.repo_id,
                    "author": repo.repo_id.split("/")[0],
                    "sha": sha,
                    "lastModified": _DATE,
                    "createdAt": _DATE,
                    "private": False,
                    "gated": "manual" if repo.gated else False,
                    "disabled": False,
                    "downloads": 0,
                    "likes": 0,
                    "tags": [],
                    "library_name": "transformers",
                    "siblings": siblings,
                },
            )

        def _tree(self, repo: _Repo, revision: str, base: str, query: dict) -> None:
            sha = self._commit(repo, revision)
            if sha is None:
                return
            recursive = query.get("recursive", "").lower() in ("1", "true")
            expand = query.get("expand", "").lower() in ("1", "true")
            entries = _list_tree(repo.commits[sha], sha, base, recursive, expand)
            if entries is None:
                return self._error(404, "EntryNotFound", f"{base} does not exist at {revision}")
            self._send_json(200, entries)

        def _paths_info(self, repo: _Repo, revision: str) -> None:
            sha = self._commit(repo, revision)
            if sha is None:
                return
            if "json" in (self.headers.get("Content-Type") or ""):
                payload = json.loads(self._body or b"{}")
                paths, expand = payload.get("paths", []), bool(payload.get("expand"))
            else:
                form = parse_qs(self._body.decode())
                paths, expand = form.get("paths", []), form.get("expand", ["False"])[-1].lower() == "true"
            files = repo.commits[sha]
            out = []
            for path in paths:
                path = path.strip("/")
                if path in files:
                    out.append(_tree_entry(path, files[path], sha, expand))
                elif any(p.startswith(path + "/") for p in files):
                    out.append(_folder_entry(path, files, sha, expand))
            self._send_json(200, out)

        def _resolve_file(self, repo: _Repo, revision: str, path: str) -> None:
            sha = self._commit(repo, revision)
            if sha is None:
                return
            blob = repo.commits[sha].get(path)
            if blob is None:
                return self._error(404, "EntryNotFound", f"{path} does not exist", headers={"X-Repo-Commit": sha})
            headers = {"X-Repo-Commit": sha, "Accept-Ranges": "bytes"}
            if blob.lfs:
                headers.update(
                    {
                        "X-Linked-Etag": f'"{blob.sha256}"',
                        "X-Linked-Size": str(len(blob.data)),
                        "ETag": f'"{blob.sha256}"',
                    }
                )
                if hub.lfs_redirect:
                    location = f"{hub.cdn_url}/cdn-lfs/{repo.repo_id}/{blob.sha256}/{quote(path)}"
                    return self._send(302, b"", {**headers, "Location": location})
            else:
                headers["ETag"] = f'"{blob.git_sha1}"'
            self._send_ranged(blob.data, headers)

        def _cdn(self, repo_id: str, sha256: str, path: str) -> None:
            repo = hub.repos.get(repo_id)
            blob = None
            if repo is not None:
                blob = next((b for files in repo.commits.values() for b in files.values() if b.sha256 == sha256), None)
            if blob is None:
                return self._send(404, b"NoSuchKey")
            self._send_ranged(blob.data, {"ETag": f'"{blob.sha256}"', "Accept-Ranges": "bytes"})

        def _send_ranged(self, data: bytes, headers: dict[str, str]) -> None:
            spec = self.headers.get("Range")
            if not spec or not spec.startswith("bytes="):
                return self._send(200, data, headers)
            first, _, last = spec[len("bytes=") :].split(",")[0].strip().partition("-")
            size = len(data)
            if first == "":  # suffix range: the last N bytes
                start, end = max(size - int(last), 0), size - 1
            else:
                start, end = int(first), min(int(last), size - 1) if last else size - 1
            if start >= size or start > end:
                return self._send(416, b"", {**headers, "Content-Range": f"bytes */{size}"})
            self._send(206, data[start : end + 1], {**headers, "Content-Range": f"bytes {start}-{end}/{size}"})

    return Handler


def safetensors_bytes(tensors: dict[str, bytes]) -> bytes:
    """A valid safetensors file of 1-D uint8 tensors (no dependency: the format is a JSON header)."""
    header, offset, body = {}, 0, b""
    for name, data in tensors.items():
        header[name] = {"dtype": "U8", "shape": [len(data)], "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        body += data
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    return len(raw).to_bytes(8, "little") + raw + body


def checkpoint_repo(
    hub: FakeHub,
    repo_id: str,
    steps: list[int],
    *,
    weight_bytes: int = 64 * 1024,
    tokenizer_bytes: int = 4096,
    extra_files: dict[str, bytes] | None = None,
    main: bool = True,
) -> dict[str, dict[str, bytes]]:
    """An OLMo-like repo: one branch per step (`step{N}-tokens{4N/1000}B`, plus `main` = the last),
    each with a config and tokenizer shared by all revisions and distinct safetensors weights,
    plus a README and a remote-code shim that downloads leave out. Returns the branches."""
    tokenizer = json.dumps({"model": {"vocab": {f"t{i}": i for i in range(tokenizer_bytes // 12)}}}).encode()
    config = json.dumps({"model_type": "olmo", "hidden_size": 16, "num_hidden_layers": 1}).encode()
    branches: dict[str, dict[str, bytes]] = {}
    for step in steps:
        seed = hashlib.sha256(f"{repo_id}:{step}".encode()).digest()
        weights = (seed * (weight_bytes // 32 + 1))[:weight_bytes]
        files = {
            "config.json": config,
            "tokenizer.json": tokenizer,
            "tokenizer_config.json": b'{"eos_token": "<|endoftext|>"}',
            "model.safetensors": safetensors_bytes({"model.embed_tokens.weight": weights}),
            "README.md": b"# fake\n",
            "modeling_olmo.py": b"raise SystemExit('never run remote code')\n",
            **(extra_files or {}),
        }
        branches[f"step{step}-tokens{step * 4 // 1000}B"] = files
    if main and steps:
        branches["main"] = dict(branches[f"step{steps[-1]}-tokens{steps[-1] * 4 // 1000}B"])
    hub.add_repo(repo_id, branches)
    return branches


def demo_hub() -> FakeHub:
    """A small repo with three revisions sharing their tokenizer: for manual runs and benchmarks."""
    hub = FakeHub()
    tokenizer = json.dumps({"model": {"vocab": {f"t{i}": i for i in range(200)}}}).encode()
    branches = {}
    for step in (0, 1000, 2000):
        name = "main" if step == 2000 else f"step{step}-tokens{step * 4 // 1000}B"
        branches[name] = {
            "config.json": json.dumps({"model_type": "olmo", "hidden_size": 64}).encode(),
            "tokenizer.json": tokenizer,
            "model.safetensors": hashlib.sha256(str(step).encode()).digest() * 2048,
        }
    hub.add_repo("allenai/OLMo-fake", branches)
    return hub


if __name__ == "__main__":
    with demo_hub() as _hub:
        print(f"HF_ENDPOINT={_hub.url}", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
