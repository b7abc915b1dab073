"""--delete-after on a shared HF cache: what a worker may remove once its unit is done.

Several workers share one cache, so a worker must not remove a file that another is about to link
or is reading. Three rules make that safe:
- The driver lists every unit's files before submitting (one metadata call per revision) and names
  the blobs two or more units of the sweep share (tokenizer, config ...). Workers never remove
  those: they stay until the sweep ends, then the driver removes them (`finish`).
- A worker holds a shared lock on its commit's use-lock file while it downloads and reads it; a
  worker removes a commit only when it can take that lock exclusively (no one else is using it:
  a twin unit, a retry whose first try is not dead after all, another sweep).
- Removal goes through `olmo cache rm`'s planner under one lock per repo, so only blobs no other
  cached snapshot links are removed, and two removals never interleave.
Revisions that were cached before the sweep are never removed. The locks are fcntl locks on files
under <HF_HUB_CACHE>/.locks (huggingface_hub keeps its own there too): the kernel drops them when a
worker dies, so a killed worker never leaves a commit locked.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from olmo_cli.hub.cache import RepoCache, repo_folder_name

USE_PREFIX = "olmo-use-"


def _locks(repo: str) -> Path:
    return RepoCache.of(repo).root / ".locks" / repo_folder_name(repo)


def use_lock(repo: str, commit: str) -> Path:
    return _locks(repo) / f"{USE_PREFIX}{commit}.lock"


@contextlib.contextmanager
def _flock(path: Path, mode: int) -> Iterator[bool]:
    """Yields whether the lock was taken (always, unless LOCK_NB was asked and someone holds it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, mode)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


@contextlib.contextmanager
def using(repo: str, commit: str) -> Iterator[None]:
    """Held by a worker while its unit downloads and reads `commit`."""
    with _flock(use_lock(repo, commit), fcntl.LOCK_SH):
        yield


def shared_blobs(files_by_unit: Iterable[Iterable[str]]) -> frozenset[str]:
    """The blob names (etags) that two or more units need."""
    counts = Counter(etag for etags in files_by_unit for etag in set(etags))
    return frozenset(etag for etag, n in counts.items() if n > 1)


def unit_blobs(repo: str, commit: str) -> list[str]:
    """The etags of the files a model load fetches at `commit` (the same choice as fetch_revision)."""
    from olmo_cli.hub.download import plan_revision

    return [f.etag for f in plan_revision(repo, commit).files]


def release(repo: str, revision: str, commit: str, keep: frozenset[str]) -> int:
    """Remove `revision` from the cache unless someone else is using its commit; blobs named in
    `keep` and blobs another cached snapshot links stay. Returns the bytes freed."""
    from olmo_cli.hub.cleanup import apply_removal, plan_removal

    with (
        _flock(_locks(repo) / "olmo-cleanup.lock", fcntl.LOCK_EX),
        _flock(use_lock(repo, commit), fcntl.LOCK_EX | fcntl.LOCK_NB) as alone,
    ):
        if not alone:
            return 0
        names = [r.name for r in _cached(repo) if r.commit == commit and r.name in (revision, commit)]
        if not names:
            return 0
        plan = plan_removal(repo, names)
        plan.blobs = {blob: size for blob, size in plan.blobs.items() if blob.name not in keep}
        apply_removal(plan)
        return plan.bytes_freed


def release_after(repo: str, revision: str, commit: str, keep: frozenset[str]) -> dict:
    """`release` as a worker calls it once its result is safe: {"freed": bytes}, or {"warning": ...}
    when removal failed (best effort: the driver's `finish` removes what is left)."""
    from olmo_cli.errors import OlmoError

    try:
        return {"freed": release(repo, revision, commit, keep)}
    except (OSError, OlmoError) as error:
        return {"warning": f"cannot remove {repo}@{revision} from the HF cache: {error}"}


@dataclass(frozen=True)
class SweepRelease:
    """The driver's side of --delete-after: per repo, the commits the sweep downloads (those cached
    before it are never removed), and the blobs two or more of its units share."""

    removing: dict[str, frozenset[str]]
    keep: frozenset[str]

    @classmethod
    def plan(cls, pairs: Iterable[tuple[str, str]], *, offline: bool = False) -> SweepRelease:
        """`pairs`: the (repo, commit) of every unit about to run."""
        removing: dict[str, set[str]] = {}
        for repo, commit in pairs:
            if not RepoCache.of(repo).snapshot(commit).is_dir():
                removing.setdefault(repo, set()).add(commit)
        keep = frozenset().union(
            *(shared_blobs(_blobs(repo, c, offline) for c in commits) for repo, commits in removing.items())
        )
        return cls({repo: frozenset(commits) for repo, commits in removing.items()}, keep)

    def deletes(self, repo: str, commit: str | None) -> bool:
        return commit is not None and commit in self.removing.get(repo, ())

    def finish(self) -> None:
        """Once no worker is left: what the units shared, and what a failed removal left."""
        for repo, commits in self.removing.items():
            finish(repo, commits, self.keep)


def _blobs(repo: str, commit: str, offline: bool) -> list[str]:
    """What a unit will fetch (offline: what its cached snapshot links; a unit not cached fails)."""
    if offline:
        return [blob.name for blob in RepoCache.of(repo).snapshot_files(commit).values()]
    return unit_blobs(repo, commit)


def finish(repo: str, commits: Iterable[str], keep: frozenset[str]) -> int:
    """At the end of the sweep (no worker left): remove what is left of `commits` and the shared
    blobs (`keep`) that no remaining snapshot links, and the sweep's use-lock files."""
    from olmo_cli.hub.cleanup import RemovalPlan, apply_removal, plan_removal

    commits = set(commits)
    cache = RepoCache.of(repo)
    with _flock(_locks(repo) / "olmo-cleanup.lock", fcntl.LOCK_EX):
        names = [r.name for r in _cached(repo) if r.commit in commits]
        plan = plan_removal(repo, names) if names else RemovalPlan(repo, [])
        going = {snapshot.name for snapshot in plan.snapshots}
        linked = {blob.name for c in cache.commits() if c not in going for blob in cache.snapshot_files(c).values()}
        for etag in keep - linked:  # shared blobs whose last snapshot a worker already removed
            blob = cache.blob(etag)
            if blob.is_file():
                plan.blobs[blob] = blob.stat().st_size
        if plan.refs or plan.snapshots or plan.blobs:
            apply_removal(plan)
        for commit in commits:
            use_lock(repo, commit).unlink(missing_ok=True)
    (_locks(repo) / "olmo-cleanup.lock").unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        _locks(repo).rmdir()  # only when empty
    return plan.bytes_freed


def _cached(repo: str):
    from olmo_cli.hub.cache import scan_repo

    return scan_repo(repo)
