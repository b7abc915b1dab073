"""Fetch revisions into the HF cache: one revision for the loaders, or a sweep of many for `olmo download`.

A sweep first lists every revision (one model_info call each), then downloads the set of distinct
blobs: a tokenizer or config shared by ten revisions is one blob and one transfer. Files go
through `transfer.fetch_blob` (Range resume, retries, hash check, atomic rename); snapshots are
symlinks written once all of a revision's blobs are there. Offline, or for a revision the Hub
cannot list, the plan comes from the cached snapshot instead (nothing to fetch, or a failure).
"""

from __future__ import annotations

import os
import shutil
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from olmo_cli.errors import AuthError, NetworkError, NotFoundError, OlmoError, UsageError
from olmo_cli.hub import env
from olmo_cli.hub.cache import RepoCache, usable_cache_root
from olmo_cli.hub.errors import RepoNotFoundError
from olmo_cli.hub.files import RemoteFile, RevisionFiles, choose_files, list_files
from olmo_cli.hub.repo_id import check_repo_id
from olmo_cli.hub.transfer import CacheWriteError, fetch_blob, new_client
from olmo_cli.reporting import NULL_REPORTER, Progress, Reporter


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
        return {
            "revision": self.revision,
            "commit": self.commit,
            "snapshot": str(self.snapshot) if self.snapshot else None,
            "local_dir": str(self.local_dir) if self.local_dir else None,
            "files": self.files,
            "bytes": self.bytes,
            "downloaded_bytes": self.downloaded,
            "present_bytes": self.present,
            "ok": self.error is None,
            "error": self.error,
        }


@dataclass
class SweepResult:
    repo: str
    outcomes: list[RevisionOutcome] = field(default_factory=list)
    transferred: int = 0  # bytes over the wire, resumed partials included

    @property
    def failed(self) -> list[RevisionOutcome]:
        return [o for o in self.outcomes if o.error]

    def as_dict(self) -> dict:
        return {
            "repo": self.repo,
            "revisions": [o.as_dict() for o in self.outcomes],
            "downloaded": sum(1 for o in self.outcomes if not o.error and o.downloaded),
            "already_present": sum(1 for o in self.outcomes if not o.error and not o.downloaded),
            "failed": len(self.failed),
            "bytes_transferred": self.transferred,
        }


def plan_revision(
    repo: str, revision: str, *, include=None, exclude=None, all_files=False, listing: RevisionFiles | None = None
) -> RevisionPlan:
    listing = listing or list_files(repo, revision)
    wanted = set(choose_files([f.path for f in listing.files], include=include, exclude=exclude, all_files=all_files))
    if not (include or all_files):
        from olmo_cli.hub.dcp_files import fetched_metadata, without_optimizer_only

        wanted = without_optimizer_only(wanted, fetched_metadata(repo, listing), f"{repo}@{revision}")
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
        return {
            "repo": self.repo,
            "to_download_bytes": self.to_download,
            "revisions": [
                {
                    "revision": p.revision,
                    "commit": p.commit,
                    "bytes": p.size,
                    "files": [
                        {"path": f.path, "size": f.size, "sha256": f.sha256, "cached": f.path in p.cached}
                        for f in p.files
                    ],
                }
                for p in self.plans
            ]
            + [{"revision": r, "error": e} for r, e in self.errors.items()],
        }


def dry_run(
    repo: str,
    revisions: list[str],
    *,
    include=None,
    exclude=None,
    all_files=False,
    offline: bool = False,
    reporter: Reporter = NULL_REPORTER,
) -> DryRun:
    """What a download would fetch. Offline, what the cache holds (nothing is asked of the Hub)."""
    plans, errors = [], {}
    listed = _plans(
        repo, revisions, 8, offline=offline, reporter=reporter, include=include, exclude=exclude, all_files=all_files
    )
    for revision, plan in zip(revisions, listed, strict=True):
        if isinstance(plan, OlmoError):
            if _stops_sweep(plan):
                raise plan
            errors[revision] = plan.message
        else:
            plans.append(plan)
    return DryRun(repo, plans, errors)


def download_revisions(
    repo: str,
    revisions: list[str],
    *,
    include=None,
    exclude=None,
    all_files=False,
    local_dir: Path | None = None,
    max_workers: int = 8,
    offline: bool = False,
    repair: bool = False,
    reporter: Reporter = NULL_REPORTER,
) -> SweepResult:
    """Download every revision; a revision that fails is recorded and the sweep goes on.

    Offline (`offline` or HF_HUB_OFFLINE), nothing is fetched: cached revisions count as already
    present (and are exported with `local_dir`), the others fail.
    """
    check_repo_id(repo)
    usable_cache_root()
    if local_dir is not None:
        check_local_dir(local_dir)
    result = SweepResult(repo)
    plans: list[RevisionPlan] = []
    listed = _plans(
        repo,
        revisions,
        max_workers,
        offline=offline,
        reporter=reporter,
        include=include,
        exclude=exclude,
        all_files=all_files,
    )
    for revision, plan in zip(revisions, listed, strict=True):
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
            if len(revisions) > 1:  # a lone revision's error reaches the caller anyway
                reporter.warn(f"{repo}@{revision}: {outcome.error}")
            continue
        outcome.commit, outcome.files, outcome.bytes = plan.commit, len(plan.files), plan.size
        if repair and not env.offline(offline):
            _repair(plan, reporter)
        plans.append(plan)
    _transfer_all(repo, plans, result, max_workers, reporter)
    cache = RepoCache.of(repo)
    for plan in plans:
        outcome = _outcome(result, plan.revision)
        if outcome.error:
            continue
        absent = [f.path for f in plan.files if not cache.blob(f.etag).is_file()]
        if absent:  # never link a snapshot to a blob that is not there
            outcome.fail(
                NetworkError(
                    f"{repo}@{plan.revision}: {len(absent)} file(s) not downloaded ({', '.join(absent[:3])})",
                    hint="run the same command again",
                )
            )
            continue
        try:
            outcome.snapshot = _write_snapshot(plan)
        except OSError as error:
            raise CacheWriteError(
                f"cannot write the snapshot of {repo}@{plan.revision}: {error}",
                hint="check HF_HUB_CACHE and its permissions",
            ) from None
        if local_dir is not None:
            target = local_dir if len(revisions) == 1 else local_dir / plan.revision
            try:
                outcome.local_dir = export(plan, target)
            except OSError as error:
                outcome.fail(OlmoError(f"cannot export {repo}@{plan.revision} to {target}: {error}"))
                reporter.warn(f"{repo}@{plan.revision}: {outcome.error}")
    return result


def _plans(
    repo: str, revisions: list[str], max_workers: int, *, offline: bool, reporter: Reporter, **choice
) -> list[RevisionPlan | OlmoError]:
    """A plan per revision: from the Hub, or from the cache when offline. A revision the Hub could
    not list (unreachable, 5xx) but that is cached is planned from the cache, with a warning."""
    if env.offline(offline):
        return [_cached_plan(repo, revision, **choice) for revision in revisions]
    listed = _plan_all(repo, revisions, max_workers, **choice)
    for i, (revision, plan) in enumerate(zip(revisions, listed, strict=True)):
        if isinstance(plan, NetworkError):
            cached = _cached_plan(repo, revision, **choice)
            if isinstance(cached, RevisionPlan):
                reporter.warn(f"{plan.message}; using the cached {repo}@{revision}")
                listed[i] = cached
    return listed


def _cached_plan(repo: str, revision: str, *, include=None, exclude=None, all_files=False) -> RevisionPlan | OlmoError:
    """A plan from the cached snapshot alone: its complete files, each named by its blob (its hash)."""
    cache = RepoCache.of(repo)
    commit = cache.commit_of(revision)
    if commit is None:
        return _not_cached(repo, revision)
    present = {path: blob for path, blob in cache.snapshot_files(commit).items() if blob.is_file()}
    files = []
    for path in choose_files(list(present), include=include, exclude=exclude, all_files=all_files):
        blob = present[path]
        lfs = len(blob.name) == 64  # sha256 names LFS blobs, a git sha1 (40) small ones
        files.append(RemoteFile(path, blob.stat().st_size, "" if lfs else blob.name, blob.name if lfs else None))
    return RevisionPlan(repo, revision, commit, files, {f.path for f in files})


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
    return isinstance(error, (AuthError, CacheWriteError, RepoNotFoundError))


def _transfer_all(
    repo: str, plans: list[RevisionPlan], result: SweepResult, max_workers: int, reporter: Reporter
) -> None:
    SweepTransfer(repo, plans, result).run(max_workers, reporter)


class SweepTransfer:
    """The transfer of a sweep's missing blobs, each once, several at a time, behind one progress bar.

    Holds what the worker threads share (the outcomes, the bytes and the files each revision still
    waits for) and the lock that guards it."""

    def __init__(self, repo: str, plans: list[RevisionPlan], result: SweepResult) -> None:
        self.repo, self.plans, self.result = repo, plans, result
        self.cache = RepoCache.of(repo)
        self.first_user: dict[str, RevisionPlan] = {}  # etag -> the first revision (in order) that needs it
        self.users: dict[str, list[RevisionPlan]] = {}  # etag -> every revision that needs it
        self.todo: list[RemoteFile] = []
        for plan in plans:
            outcome = _outcome(result, plan.revision)
            for remote in plan.files:
                self.users.setdefault(remote.etag, []).append(plan)
                if remote.etag in self.first_user or self.cache.blob(remote.etag).is_file():
                    outcome.present += remote.size
                    continue
                self.first_user[remote.etag] = plan
                self.todo.append(remote)
        self.lock = threading.Lock()
        self.remaining: dict[str, int] = {}  # revision -> its files not yet done (set by run)
        self.cancelled = threading.Event()  # Ctrl-C: workers stop at their next chunk; partial files stay for resume
        self.endpoint: str = ""
        self.token: str | None = None
        self.bar: Progress | None = None
        self.client = None

    def run(self, max_workers: int, reporter: Reporter) -> None:
        cache, todo = self.cache, self.todo
        total = sum(f.size for f in todo)
        if not todo:
            return
        partial = sum(cache.incomplete(f.etag).stat().st_size for f in todo if cache.incomplete(f.etag).exists())
        self.remaining = {plan.revision: sum(1 for f in todo if self.first_user[f.etag] is plan) for plan in self.plans}
        self.endpoint, self.token = env.endpoint(), env.token()
        with reporter.progress(self.label(), total=total, unit="B") as bar:
            self.bar = bar
            bar.advance(partial)  # resumed bytes count as done
            client = self.client = new_client()
            try:
                pool = ThreadPoolExecutor(max_workers=max(1, max_workers))
                try:
                    futures = [pool.submit(self.one, remote) for remote in todo]
                    errors = [f.exception() for f in futures]
                except BaseException:
                    self.cancelled.set()
                    pool.shutdown(wait=True, cancel_futures=True)
                    raise
                pool.shutdown()
            finally:
                client.close()
            stop = next((e for e in errors if e is not None), None)
            if stop is not None:
                raise stop

    def label(self) -> str:
        """The earliest revision (in training order) still waiting for files."""
        return next((f"{self.repo}@{p.revision}" for p in self.plans if self.remaining[p.revision]), self.repo)

    def on_bytes(self, n: int) -> None:
        if self.cancelled.is_set():
            raise KeyboardInterrupt
        with self.lock:
            self.result.transferred += max(n, 0)
        assert self.bar is not None
        self.bar.advance(n)

    def one(self, remote: RemoteFile) -> None:
        """Fetch one blob (a worker's job), unless every revision that needs it already failed."""
        result, users = self.result, self.users[remote.etag]
        plan = self.first_user[remote.etag]
        try:
            # A blob whose first revision already failed may still be needed by a later one.
            with self.lock:
                live = [_outcome(result, user.revision) for user in users]
                live = [outcome for outcome in live if not outcome.error]
            if live:
                fetch_blob(
                    self.repo,
                    plan.commit,
                    remote,
                    endpoint=self.endpoint,
                    token=self.token,
                    cache=self.cache,
                    on_bytes=self.on_bytes,
                    client=self.client,
                )
                with self.lock:
                    live[0].downloaded += remote.size
        except OlmoError as error:
            with self.lock:
                for user in users:
                    _outcome(result, user.revision).fail(error)
            if _stops_sweep(error):
                raise
        finally:
            with self.lock:
                self.remaining[plan.revision] -= 1
            assert self.bar is not None
            self.bar.describe(self.label())


def _repair(plan: RevisionPlan, reporter: Reporter) -> list[str]:
    """Make every file of `plan` that fails verification (a blob whose bytes do not match the
    Hub's hash, an edited file where the blob link was, a link to a missing blob) fetched again:
    the bad blob and link are removed, so the transfer and the snapshot writer redo exactly those."""
    from olmo_cli.hub.transfer import file_digest

    cache = RepoCache.of(plan.repo)
    snapshot = cache.snapshot(plan.commit)
    repaired = []
    for remote in plan.files:
        link, blob = snapshot / remote.path, cache.blob(remote.etag)
        if not (link.exists() or link.is_symlink() or blob.exists()):
            continue  # never fetched: an ordinary download, not a repair
        good_blob = blob.is_file() and blob.stat().st_size == remote.size
        if good_blob and (remote.is_lfs or remote.blob_id):
            good_blob = file_digest(blob, remote) == (remote.sha256 or remote.blob_id)
        linked = link.is_symlink() and os.path.realpath(link) == os.path.realpath(blob)
        if good_blob and linked:
            continue
        if not good_blob:
            blob.unlink(missing_ok=True)
            plan.cached.discard(remote.path)
        if link.exists() or link.is_symlink():
            link.unlink()  # the snapshot writer links it again to the (re-fetched) blob
        repaired.append(remote.path)
    if repaired:
        reporter.info(
            f"{plan.repo}@{plan.revision}: fetching again {len(repaired)} file(s) that fail verification: "
            + ", ".join(repaired[:5])
        )
    return repaired


def _outcome(result: SweepResult, revision: str) -> RevisionOutcome:
    return next(o for o in result.outcomes if o.revision == revision)


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
            if _same_content(out, blob, remote):
                continue
            out.unlink()
        if remote.is_lfs:
            try:
                os.link(blob, out)
                continue
            except OSError:  # another filesystem: copy
                pass
        partial = out.with_name(f".{out.name}.{os.getpid()}.tmp")  # never a half-copied file under its real name
        try:
            shutil.copyfile(blob, partial)
            os.replace(partial, out)
        finally:
            partial.unlink(missing_ok=True)
    return target


def _same_content(out: Path, blob: Path, remote: RemoteFile) -> bool:
    """An exported file that can stay: the blob itself (a hard link), or for a small file an equal
    copy. Weights of two revisions have the same size, so a size match alone proves nothing."""
    if out.is_symlink() or not out.is_file() or out.stat().st_size != remote.size:
        return False
    if os.path.samefile(out, blob):
        return True
    import filecmp

    return not remote.is_lfs and filecmp.cmp(out, blob, shallow=False)


# ----- one revision, for the loaders -----
def fetch_revision(
    repo: str, revision: str, *, include=None, exclude=None, offline: bool = False, reporter: Reporter = NULL_REPORTER
) -> Path:
    """The snapshot directory (in the HF cache) holding what a model needs at `revision`.

    Offline (or the Hub unreachable), the cached snapshot is used as it is.
    """
    cache = RepoCache.of(repo)
    if env.offline(offline):
        return _cached_snapshot(cache, repo, revision)
    # An unreachable Hub while listing falls back to the cache inside download_revisions.
    result = download_revisions(repo, [revision], include=include, exclude=exclude, max_workers=8, reporter=reporter)
    outcome = result.outcomes[0]
    if outcome.exception is not None:
        commit = cache.commit_of(revision)
        if commit is not None and isinstance(outcome.exception, NetworkError):  # failed mid-transfer
            reporter.warn(f"{outcome.error}; using the cached {repo}@{revision}")
            return cache.snapshot(commit)
        raise outcome.exception
    assert outcome.snapshot is not None
    return outcome.snapshot


def _cached_snapshot(cache: RepoCache, repo: str, revision: str) -> Path:
    commit = cache.commit_of(revision)
    if commit is None:
        raise _not_cached(repo, revision)
    return cache.snapshot(commit)


def _not_cached(repo: str, revision: str) -> NetworkError:
    return NetworkError(
        f"offline mode is on and {repo}@{revision} is not in the local cache",
        hint=f"run 'olmo download {repo} --revision {revision}' while online, or drop --offline",
    )
