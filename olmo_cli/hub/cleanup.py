"""Remove cached revisions by name: refs, snapshots no remaining ref uses, blobs no remaining
snapshot uses. Planned first (what goes, how many bytes it frees), applied second."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from olmo_cli.errors import BadInputError, NotFoundError, OlmoError
from olmo_cli.hub.cache import CachedRevision, RepoCache, scan_repo
from olmo_cli.hub.resolve import resolve
from olmo_cli.revisions.names import parse_revision
from olmo_cli.revisions.select import Selection


@dataclass
class RemovalPlan:
    repo: str
    revisions: list[CachedRevision]
    refs: list[Path] = field(default_factory=list)
    snapshots: list[Path] = field(default_factory=list)
    blobs: dict[Path, int] = field(default_factory=dict)

    @property
    def bytes_freed(self) -> int:
        return sum(self.blobs.values())

    def as_dict(self) -> dict:
        return {
            "repo": self.repo,
            "revisions": [r.name for r in self.revisions],
            "snapshots": [p.name for p in self.snapshots],
            "blobs": len(self.blobs),
            "bytes_freed": self.bytes_freed,
        }


def plan_removal(repo: str, names: list[str]) -> RemovalPlan:
    cache = RepoCache.of(repo)
    everything = scan_repo(repo)

    targets = sorted((r for r in everything if r.name in set(names)), key=lambda r: parse_revision(r.name).sort_key)
    plan = RemovalPlan(repo, targets)
    kept_commits = {r.commit for r in everything if r.name not in set(names)}
    for revision in targets:
        if revision.name != revision.commit:
            plan.refs.append(cache.ref(revision.name))
    doomed = sorted({r.commit for r in targets} - kept_commits)
    plan.snapshots = [cache.snapshot(c) for c in doomed]
    still_used = {blob for c in kept_commits for blob in cache.snapshot_files(c).values()}
    # snapshot_files resolves links: compare with the resolved blobs folder (HF_HUB_CACHE may
    # sit behind a symlink), and never touch a file outside it.
    blobs_dir = Path(os.path.realpath(cache.dir / "blobs"))
    for commit in doomed:
        for blob in cache.snapshot_files(commit).values():
            if blob not in still_used and blob.is_file() and blob.parent == blobs_dir:
                plan.blobs[blob] = blob.stat().st_size
    return plan


def apply_removal(plan: RemovalPlan) -> None:
    """Remove the plan's refs, snapshots and blobs; a cache that cannot be written is refused
    before anything is removed (a read-only mount), or stops at the first file that cannot be."""
    from olmo_cli.oserrors import describe_os_error, is_read_only

    root = RepoCache.of(plan.repo).dir
    if is_read_only(root):
        raise BadInputError(
            f"cannot remove from the HF cache {root}: read-only filesystem",
            hint="remount it read-write, or use --dry-run",
        )
    try:
        for ref in plan.refs:
            ref.unlink(missing_ok=True)
        for snapshot in plan.snapshots:
            if snapshot.is_dir():  # another `cache rm` may have taken it meanwhile
                shutil.rmtree(snapshot)
        for blob in plan.blobs:
            blob.unlink(missing_ok=True)
    except OSError as error:
        raise BadInputError(
            f"cannot remove from the HF cache: {describe_os_error(error).message}",
            hint="check HF_HUB_CACHE's permissions (nothing after this file was removed)",
        ) from None
    _prune_empty(root)


def _prune_empty(root: Path) -> None:
    """Empty ref folders (branch names with '/') and an emptied repo folder."""
    if not root.is_dir():
        return
    for dirpath, _, _ in sorted(os.walk(root), key=lambda entry: -len(entry[0])):
        try:
            os.rmdir(dirpath)  # only succeeds when empty
        except OSError:
            pass


def removal_targets(repo: str, queries: list[str], selection: Selection, keep_every: int | None) -> list[str]:
    """The cached revisions `olmo cache rm` takes: those named, plus those the selection keeps
    (all of them when neither names nor a selection is given), less every Nth step with keep_every."""
    cached = {r.name: r for r in scan_repo(repo)}
    if not cached:
        raise NotFoundError(f"nothing of {repo} is in the local cache")
    commits = {r.commit: r.name for r in cached.values()}
    chosen: list[str] = []
    for query in queries:
        chosen.append(_cached_name(repo, query, cached, commits))
    parsed = [parse_revision(name) for name in cached]
    pool = selection.apply(parsed) if selection.active else ([] if queries else parsed)
    if keep_every is not None:
        pool = [r for r in pool if r.step is not None and r.step % keep_every != 0]
    chosen += [r.name for r in pool if r.name not in chosen]
    if not chosen:
        raise NotFoundError(
            f"no cached revision of {repo} matches {selection.describe() if selection.active else ''}".rstrip(),
            hint=f"run 'olmo cache ls {repo}' to see what is cached",
        )
    return chosen


def _cached_name(repo: str, query: str, cached: dict, commits: dict) -> str:
    if query in cached:
        return query
    if query in commits:
        return commits[query]
    try:  # step452000, 2T, latest...: resolved offline against the bundled index and the cache
        name = resolve(query, repo, offline=True).revision
    except OlmoError:
        name = None
    if name is not None and name in cached:
        return name
    raise NotFoundError(
        f"revision '{query}' of {repo} is not in the local cache",
        hint=f"run 'olmo cache ls {repo}' to see what is cached",
    )
