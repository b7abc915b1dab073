"""A repo's revisions: one `list_repo_refs` call, cached for a few minutes, with an offline fallback.

Sources, in order: a fresh on-disk copy of the last answer (5 minutes, per endpoint and repo;
`refresh=True` skips it), the Hub, and, when offline or when the Hub cannot be reached, the
bundled index plus what the local HF cache holds. `Listing.source` says which one answered.
huggingface_hub is imported only when the Hub is really asked (it costs ~0.3 s of startup).
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Mapping
from pathlib import Path

from olmo_cli.errors import NetworkError, NotFoundError
from olmo_cli.hub import env
from olmo_cli.hub.errors import hub_errors, is_transport_error
from olmo_cli.hub.local import cached_revisions
from olmo_cli.hub.repo_id import check_repo_id
from olmo_cli.paths import olmo_cache_dir
from olmo_cli.reporting import NULL_REPORTER, Reporter
from olmo_cli.revisions.index import bundled_revisions
from olmo_cli.revisions.listing import SOURCE_HUB, SOURCE_LOCAL, SOURCE_OFFLINE, Listing
from olmo_cli.revisions.names import parse_revision, training_order

CACHE_SECONDS = 300


def list_revisions(
    repo: str, *, offline: bool = False, refresh: bool = False, reporter: Reporter = NULL_REPORTER
) -> Listing:
    check_repo_id(repo)
    if env.offline(offline):
        return offline_listing(repo, reason="offline")
    if not refresh:
        cached = _read_cache(repo)
        if cached is not None:
            return cached
    try:
        commits = _ask_hub(repo)
    except _Unreachable as unreachable:
        if bundled_revisions(repo) is None and not cached_revisions(repo):
            raise unreachable.error from None
        listing = offline_listing(repo, reason="unreachable")
        listing.warning = f"{unreachable.error.message}; answering from the {listing.source}"
        reporter.warn(listing.warning)
        return listing
    _write_cache(repo, commits)
    return _listing(commits, SOURCE_HUB)


def offline_listing(repo: str, *, reason: str = "offline") -> Listing:
    """The bundled index (plus `main`) and the local cache's refs, without any network."""
    bundled = bundled_revisions(repo)
    local = cached_revisions(repo)
    if bundled is None and not local:
        if reason == "unreachable":
            raise NetworkError(f"cannot reach {env.endpoint()} and {repo} is neither in the bundled index nor cached")
        raise NotFoundError(
            f"{repo} is not in the bundled index and nothing of it is in the local cache",
            hint="run without --offline (and without HF_HUB_OFFLINE) to ask the Hub",
        )
    names = dict.fromkeys([*(bundled or []), *(["main"] if bundled is not None else []), *local])
    commits = {name: local.get(name) for name in names}
    listing = _listing(commits, SOURCE_OFFLINE if bundled is not None else SOURCE_LOCAL)
    return listing


def _listing(commits: Mapping[str, str | None], source: str) -> Listing:
    ordered = [r.name for r in training_order(parse_revision(name) for name in commits)]
    return Listing(names=ordered, commits={n: sha for n in ordered if (sha := commits[n])}, source=source)


class _Unreachable(Exception):
    def __init__(self, error: NetworkError):
        self.error = error


def _ask_hub(repo: str) -> dict[str, str]:
    env.endpoint()  # checked before huggingface_hub, which reads HF_ENDPOINT when imported
    from huggingface_hub import HfApi  # here, not at the top: only online paths pay for it

    from olmo_cli.hub.retry import call_hub

    api = HfApi(endpoint=env.endpoint(), token=env.token())
    try:
        with hub_errors(repo):
            refs = call_hub(lambda: api.list_repo_refs(repo))
    except NetworkError as error:
        if error.__context__ is not None and is_transport_error(error.__context__):
            raise _Unreachable(error) from None
        raise
    from olmo_cli.hub.files import is_safe_repo_path
    from olmo_cli.revisions.names import is_commit_sha

    commits: dict[str, str] = {}
    for ref in [*refs.branches, *refs.tags]:  # untrusted: a name must be usable as a path under refs/
        if is_safe_repo_path(ref.name) and is_commit_sha(str(ref.target_commit)):
            commits.setdefault(ref.name, ref.target_commit)
    return commits


# ----- the on-disk copy of the last answer -----


def _cache_path(repo: str) -> Path:
    key = hashlib.sha256(f"{env.endpoint()}\n{repo}".encode()).hexdigest()[:16]
    return olmo_cache_dir() / "refs" / f"{repo.replace('/', '--')}-{key}.json"


def _read_cache(repo: str) -> Listing | None:
    try:
        data = json.loads(_cache_path(repo).read_text(encoding="utf-8"))
        age = time.time() - float(data["fetched_at"])
        commits = dict(data["commits"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not (0 <= age < CACHE_SECONDS) or data.get("endpoint") != env.endpoint() or data.get("repo") != repo:
        return None
    listing = _listing(commits, f"hub (cached {_ago(age)})")
    listing.from_cache = True
    return listing


def _write_cache(repo: str, commits: dict[str, str]) -> None:
    path = _cache_path(repo)
    payload = {"endpoint": env.endpoint(), "repo": repo, "fetched_at": time.time(), "commits": commits}
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:  # write then rename: a reader never sees half a file
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary.write_text(json.dumps(payload), encoding="utf-8")
        os.replace(temporary, path)
    except OSError:
        pass  # a cache we cannot write (read-only, OLMO_CACHE_DIR a file) only costs a request next time
    finally:
        try:
            temporary.unlink(missing_ok=True)
        except OSError:
            pass


def _ago(seconds: float) -> str:
    return f"{int(seconds)} s ago" if seconds < 60 else f"{int(seconds // 60)} min ago"
