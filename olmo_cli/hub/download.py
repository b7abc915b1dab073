"""Fetch revisions into the HF cache: one revision for the loaders, or a sweep of many for `olmo download`.

A sweep first lists every revision (one model_info call each), then downloads the set of distinct
blobs: a tokenizer or config shared by ten revisions is one blob and one transfer. Files go
through `transfer.fetch_blob` (Range resume, retries, hash check, atomic rename); snapshots are
symlinks written once all of a revision's blobs are there.
"""

from __future__ import annotations

import os
import shutil
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from olmo_cli.errors import NetworkError, NotFoundError, OlmoError, UsageError
from olmo_cli.hub import env
from olmo_cli.hub.cache import RepoCache
from olmo_cli.hub.files import RemoteFile, RevisionFiles, choose_files, list_files
from olmo_cli.reporting import NULL_REPORTER, Reporter


@dataclass
class RevisionPlan:
    repo: str
    revision: str
    commit: str
    files: list[RemoteFile]
    cached: set[str]  # paths whose blob is already complete in the cache

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)


@dataclass
class RevisionOutcome:
    revision: str
    commit: str | None = None
    snapshot: Path | None = None
    local_dir: Path | None = None
    files: int = 0
    bytes: int = 0
    downloaded: int = 0  # bytes transferred for blobs first needed by this revision
    present: int = 0  # bytes already in the cache
    error: str | None = None
    exception: OlmoError | None = field(default=None, repr=False)

    def fail(self, error: OlmoError) -> None:
        if self.exception is None:
            self.error, self.exception = error.message, error

    def as_dict(self) -> dict:
        return {"revision": self.revision, "commit": self.commit,
                "snapshot": str(self.snapshot) if self.snapshot else None,
                "local_dir": str(self.local_dir) if self.local_dir else None,
                "files": self.files, "bytes": self.bytes, "downloaded_bytes": self.downloaded,
                "present_bytes": self.present, "ok": self.error is None, "error": self.error}


@dataclass
class SweepResult:
    repo: str
    outcomes: list[RevisionOutcome] = field(default_factory=list)
    transferred: int = 0  # bytes over the wire, resumed partials included

    @property
    def failed(self) -> list[RevisionOutcome]:
        return [o for o in self.outcomes if o.error]

    def as_dict(self) -> dict:
        return {"repo": self.repo, "revisions": [o.as_dict() for o in self.outcomes],
                "downloaded": sum(1 for o in self.outcomes if not o.error and o.downloaded),
                "already_present": sum(1 for o in self.outcomes if not o.error and not o.downloaded),
                "failed": len(self.failed), "bytes_transferred": self.transferred}


def plan_revision(repo: str, revision: str, *, include=None, exclude=None, all_files=False,
                  listing: RevisionFiles | None = None) -> RevisionPlan:
    listing = listing or list_files(repo, revision)
    wanted = set(choose_files([f.path for f in listing.files], include=include, exclude=exclude, all_files=all_files))
    files = [f for f in listing.files if f.path in wanted]
    cache = RepoCache.of(repo)
    cached = {f.path for f in files if cache.blob(f.etag).is_file()}
    return RevisionPlan(repo, revision, listing.commit, files, cached)


@dataclass
class DryRun:
    repo: str
    plans: list[RevisionPlan]
    errors: dict[str, str]  # revision -> why it could not be listed

    @property
    def to_download(self) -> int:
        """Bytes of the distinct blobs not in the cache yet (a shared file counts once)."""
        missing = {f.etag: f.size for p in self.plans for f in p.files if f.path not in p.cached}
        return sum(missing.values())

    def as_dict(self) -> dict:
        return {"repo": self.repo, "to_download_bytes": self.to_download,
                "revisions": [{"revision": p.revision, "commit": p.commit, "bytes": p.size,
                               "files": [{"path": f.path, "size": f.size, "sha256": f.sha256,
                                          "cached": f.path in p.cached} for f in p.files]} for p in self.plans]
                + [{"revision": r, "error": e} for r, e in self.errors.items()]}


def dry_run(repo: str, revisions: list[str], *, include=None, exclude=None, all_files=False) -> DryRun:
    plans, errors = [], {}
    for revision, plan in zip(revisions, _plan_all(repo, revisions, 8, include=include, exclude=exclude,
                                                   all_files=all_files)):
        if isinstance(plan, OlmoError):
            if _stops_sweep(plan):
                raise plan
            errors[revision] = plan.message
        else:
            plans.append(plan)
    return DryRun(repo, plans, errors)


def download_revisions(repo: str, revisions: list[str], *, include=None, exclude=None, all_files=False,
                       local_dir: Path | None = None, max_workers: int = 8,
                       reporter: Reporter = NULL_REPORTER) -> SweepResult:
    """Download every revision; a revision that fails is recorded and the sweep goes on."""
    if local_dir is not None:
        check_local_dir(local_dir)
    result = SweepResult(repo)
    plans: list[RevisionPlan] = []
    listed = _plan_all(repo, revisions, max_workers, include=include, exclude=exclude, all_files=all_files)
    for revision, plan in zip(revisions, listed):
        outcome = RevisionOutcome(revision)
        result.outcomes.append(outcome)
        if isinstance(plan, OlmoError):
            if _stops_sweep(plan):
                raise plan
            outcome.fail(plan)
            if len(revisions) > 1:  # a lone revision's error reaches the caller anyway
                reporter.warn(f"{repo}@{revision}: {plan.message}")
            continue
        if not plan.files:
            outcome.fail(NotFoundError(f"no files of {repo}@{revision} match", hint="check --include/--exclude"))
            reporter.warn(f"{repo}@{revision}: {outcome.error}")
            continue
        outcome.commit, outcome.files, outcome.bytes = plan.commit, len(plan.files), plan.size
        plans.append(plan)
    _transfer_all(repo, plans, result, max_workers, reporter)
    for plan in plans:
        outcome = next(o for o in result.outcomes if o.revision == plan.revision)
        if outcome.error:
            continue
        outcome.snapshot = _write_snapshot(plan)
        if local_dir is not None:
            target = local_dir if len(revisions) == 1 else local_dir / plan.revision
            outcome.local_dir = export(plan, target)
    return result


def _plan_all(repo: str, revisions: list[str], max_workers: int, **choice) -> list[RevisionPlan | OlmoError]:
    """List every revision (one request each), several at a time: the Hub's latency, not its
    bandwidth, is what a long sweep's listing costs."""
    def one(revision: str) -> RevisionPlan | OlmoError:
        try:
            return plan_revision(repo, revision, **choice)
        except OlmoError as error:
            return error

    if len(revisions) == 1:
        return [one(revisions[0])]
    with ThreadPoolExecutor(max_workers=max(1, min(max_workers, 8))) as pool:
        return list(pool.map(one, revisions))


def _stops_sweep(error: OlmoError) -> bool:
    """Failures that every other revision would hit too: stop instead of failing them one by one."""
    from olmo_cli.errors import AuthError
    from olmo_cli.hub.transfer import DiskFullError

    return isinstance(error, (AuthError, DiskFullError)) or (
        isinstance(error, NotFoundError) and error.message.startswith("repo "))


def _transfer_all(repo: str, plans: list[RevisionPlan], result: SweepResult, max_workers: int,
                  reporter: Reporter) -> None:
    from olmo_cli.hub.transfer import fetch_blob, new_client

    cache = RepoCache.of(repo)
    first_user: dict[str, RevisionPlan] = {}  # etag -> the first revision (in order) that needs it
    todo: list[RemoteFile] = []
    for plan in plans:
        outcome = _outcome(result, plan.revision)
        for remote in plan.files:
            if remote.etag in first_user or cache.blob(remote.etag).is_file():
                outcome.present += remote.size
                continue
            first_user[remote.etag] = plan
            todo.append(remote)
    total = sum(f.size for f in todo)
    if not todo:
        return
    partial = sum(cache.incomplete(f.etag).stat().st_size for f in todo if cache.incomplete(f.etag).exists())
    lock = threading.Lock()
    remaining = {plan.revision: sum(1 for f in todo if first_user[f.etag] is plan) for plan in plans}
    endpoint, token = env.endpoint(), env.token()
    cancelled = threading.Event()  # Ctrl-C: workers stop at their next chunk; partial files stay for resume

    def label() -> str:
        """The earliest revision (in training order) still waiting for files."""
        return next((f"{repo}@{p.revision}" for p in plans if remaining[p.revision]), repo)

    with reporter.progress(label(), total=total, unit="B") as bar:
        bar.advance(partial)  # resumed bytes count as done

        def one(remote: RemoteFile) -> None:
            plan = first_user[remote.etag]
            outcome = _outcome(result, plan.revision)

            def on_bytes(n: int) -> None:
                if cancelled.is_set():
                    raise KeyboardInterrupt
                with lock:
                    result.transferred += max(n, 0)
                bar.advance(n)

            try:
                if not outcome.error:
                    fetch_blob(repo, plan.commit, remote, endpoint=endpoint, token=token, cache=cache,
                               on_bytes=on_bytes, client=client)
                    with lock:
                        outcome.downloaded += remote.size
            except OlmoError as error:
                with lock:
                    _fail_users(result, plans, remote, error)
                if _stops_sweep(error):
                    raise
            finally:
                with lock:
                    remaining[plan.revision] -= 1
                bar.describe(label())

        client = new_client()
        try:
            pool = ThreadPoolExecutor(max_workers=max(1, max_workers))
            try:
                futures = [pool.submit(one, remote) for remote in todo]
                errors = [f.exception() for f in futures]
            except BaseException:
                cancelled.set()
                pool.shutdown(wait=True, cancel_futures=True)
                raise
            pool.shutdown()
        finally:
            client.close()
        stop = next((e for e in errors if e is not None), None)
        if stop is not None:
            raise stop


def _outcome(result: SweepResult, revision: str) -> RevisionOutcome:
    return next(o for o in result.outcomes if o.revision == revision)


def _fail_users(result: SweepResult, plans: list[RevisionPlan], remote: RemoteFile, error: OlmoError) -> None:
    for plan in plans:
        if any(f.etag == remote.etag for f in plan.files):
            _outcome(result, plan.revision).fail(error)


def _write_snapshot(plan: RevisionPlan) -> Path:
    cache = RepoCache.of(plan.repo)
    for remote in plan.files:
        cache.link(plan.commit, remote.path, remote.etag)
    cache.write_ref(plan.revision, plan.commit)
    return cache.snapshot(plan.commit)


def check_local_dir(path: Path) -> None:
    if path.exists() and not path.is_dir():
        raise UsageError(f"--local-dir {path} is a file", hint="give a directory (it is created if missing)")


def export(plan: RevisionPlan, target: Path) -> Path:
    """A plain directory: weights hard-linked to their blobs (no extra space), small files copied
    (so editing a config there cannot change the cache)."""
    check_local_dir(target)
    cache = RepoCache.of(plan.repo)
    for remote in plan.files:
        out = target / remote.path
        out.parent.mkdir(parents=True, exist_ok=True)
        blob = cache.blob(remote.etag)
        if out.exists() or out.is_symlink():
            if out.is_file() and out.stat().st_size == remote.size and (not remote.is_lfs or os.path.samefile(out, blob)):
                continue
            out.unlink()
        if remote.is_lfs:
            try:
                os.link(blob, out)
                continue
            except OSError:  # another filesystem: copy
                pass
        shutil.copyfile(blob, out)
    return target


# ----- one revision, for the loaders -----
def fetch_revision(repo: str, revision: str, *, include=None, exclude=None, offline: bool = False,
                   reporter: Reporter = NULL_REPORTER) -> Path:
    """The snapshot directory (in the HF cache) holding what a model needs at `revision`.

    Offline (or the Hub unreachable), the cached snapshot is used as it is.
    """
    cache = RepoCache.of(repo)
    if env.offline(offline):
        return _cached_snapshot(cache, repo, revision)
    try:
        result = download_revisions(repo, [revision], include=include, exclude=exclude, max_workers=8,
                                    reporter=reporter)
    except NetworkError:
        commit = cache.commit_of(revision)
        if commit is None:
            raise
        reporter.warn(f"the Hub is unreachable; using the cached {repo}@{revision}")
        return cache.snapshot(commit)
    outcome = result.outcomes[0]
    if outcome.exception is not None:
        commit = cache.commit_of(revision)
        if commit is not None and isinstance(outcome.exception, NetworkError):
            reporter.warn(f"{outcome.error}; using the cached {repo}@{revision}")
            return cache.snapshot(commit)
        raise outcome.exception
    assert outcome.snapshot is not None
    return outcome.snapshot


def _cached_snapshot(cache: RepoCache, repo: str, revision: str) -> Path:
    commit = cache.commit_of(revision)
    if commit is None:
        raise NetworkError(f"offline mode is on and {repo}@{revision} is not in the local cache",
                           hint=f"run 'olmo download {repo} --revision {revision}' while online, or drop --offline")
    return cache.snapshot(commit)
