"""Planning a sweep (models x revisions -> units) and running it here, one model in memory at a time.

While unit k is scored, the weights of the next unit that needs any are fetched in a background
thread through the shared download core, so a sweep costs about max(download, score) per revision.
With `delete_after`, a revision is removed from the HF cache once scored (unless it was cached
before the sweep began), after the next one's download has finished, so that files the two share
stay; the disk then holds at most two revisions.
"""

from __future__ import annotations

import contextlib
import shutil
import threading
from collections.abc import Sequence
from dataclasses import dataclass

from olmo_cli.errors import NetworkError, UsageError
from olmo_cli.evaluate.data import DataSource
from olmo_cli.evaluate.run import missing, run_unit
from olmo_cli.evaluate.store import ResultsStore, model_folder
from olmo_cli.evaluate.tasks import TaskSpec
from olmo_cli.evaluate.units import Settings, Unit, empty_row
from olmo_cli.reporting import NULL_REPORTER, Reporter
from olmo_cli.revisions.select import Selection
from olmo_cli.sweeps.base import LocalExecutor


@dataclass(frozen=True)
class Unresolved:
    """A revision whose commit could not be found (offline and not cached): its rows are errors."""

    unit: Unit
    error: str

    def rows(self) -> list[dict]:
        return [empty_row(self.unit, m, error=self.error) for m in self.unit.measurements()]


Planned = Unit | Unresolved


def plan(
    models: Sequence[str],
    revisions: Sequence[str],
    selection: Selection | None,
    settings: Settings,
    data: tuple[DataSource, ...],
    tasks: tuple[TaskSpec, ...],
    *,
    store: ResultsStore,
    offline: bool = False,
    refresh: bool = False,
    reporter: Reporter = NULL_REPORTER,
) -> list[Planned]:
    """The units of a sweep, per model in training order. No model: the revisions name the repo."""
    from olmo_cli.sources import is_local_path

    selecting = selection is not None and selection.active
    local = [m for m in models if is_local_path(m)]
    if local and len(local) == len(models) and (revisions or selecting):
        raise UsageError(
            "revisions select Hub branches, and every MODEL given is a local directory",
            hint="drop --revision and the selection flags, or name a Hub repo",
        )
    planned: list[Planned] = []
    named: list[str | None] = list(models) or [None]
    for model in named:
        if model is not None and is_local_path(model):
            planned.append(_local_unit(model, settings, data, tasks))
        else:
            planned += _hub_units(model, revisions, selection, settings, data, tasks, store, offline, refresh, reporter)
    return planned


def _local_unit(model: str, settings, data, tasks) -> Unit:
    from olmo_cli.loading.converted import cache_key
    from olmo_cli.sources import locate

    located = locate(model)  # checks that it exists and is a directory
    fingerprint = "local:" + cache_key(located).split("--")[-1]  # sizes and mtimes of its files
    return Unit(str(located.path), None, fingerprint, None, None, settings, data, tasks)


def _hub_units(model, revisions, selection, settings, data, tasks, store, offline, refresh, reporter) -> list[Planned]:
    from olmo_cli.hub.refs import list_revisions
    from olmo_cli.hub.resolve import select_revisions
    from olmo_cli.revisions.names import is_commit_sha

    selecting = selection is not None and selection.active
    queries = list(revisions) or ([] if selecting else ["main"])
    chosen = select_revisions(
        model, queries, selection if selecting else None, offline=offline, refresh=refresh, reporter=reporter
    )
    repo = chosen[0].repo
    commits = list_revisions(repo, offline=offline, reporter=reporter).commits  # the answer just fetched
    folder = model_folder(repo, local=False)
    out: list[Planned] = []
    for resolved in chosen:
        name = resolved.revision
        commit = commits.get(name) or (name if is_commit_sha(name) else None) or store.commit_of(folder, name)
        step, tokens = resolved.parsed.step, resolved.parsed.tokens
        unit = Unit(repo, name, commit or "", step, tokens, settings, data, tasks)
        if commit is None:
            error = NetworkError(f"cannot tell which commit {repo}@{name} is: offline, and it is not cached")
            out.append(Unresolved(unit, error.message))
        else:
            out.append(unit)
    return out


def run_sweep(
    planned: Sequence[Planned],
    store: ResultsStore,
    *,
    offline: bool = False,
    delete_after: bool = False,
    prefetch: bool = True,
    reporter: Reporter = NULL_REPORTER,
) -> list[dict]:
    """Every planned unit's rows, in order. Rows are stored as each unit finishes, so an
    interrupted sweep keeps what it completed and a rerun starts where it stopped."""
    from olmo_cli.hub.cache import RepoCache

    units = [p for p in planned if isinstance(p, Unit)]
    cached_before = {
        (u.model, u.commit) for u in units if not u.is_local and RepoCache.of(u.model).snapshot(u.commit).is_dir()
    }
    quiet = _NoBars(reporter)
    fetcher = _Prefetcher(offline=offline, enabled=prefetch)
    # Only a sweep that loads weights pays for importing transformers (a rerun from the store does not).
    bars = _no_transformers_bars() if any(missing(u, store) for u in units) else contextlib.nullcontext()
    with reporter.progress("eval", total=len(planned)) as bar, bars:

        def one(position: int) -> list[dict]:
            item = planned[position]
            if isinstance(item, Unresolved):
                reporter.warn(f"{item.unit.label}: {item.error}")
                return item.rows()
            unit = item
            label = f"[{position + 1}/{len(planned)}] {unit.label}"
            bar.describe(f"{label}: results store")
            needs_weights = bool(missing(unit, store))
            following = None
            if needs_weights:
                bar.describe(f"{label}: download")
                fetcher.wait(unit)
                following = _next_needing_weights(planned, position, unit, store)
                fetcher.start(following)
            converted = converted_copy(unit)
            converted_before = converted is not None and converted.exists()
            rows = run_unit(unit, store, offline=offline, reporter=quiet, phase=_phase(bar, label))
            if needs_weights and delete_after and not unit.is_local and (unit.model, unit.commit) not in cached_before:
                bar.describe(f"{label}: delete")
                fetcher.wait(following)  # its snapshot must exist, so the files both use are kept
                _remove(unit, units, store, reporter)
                if converted is not None and not converted_before:
                    shutil.rmtree(converted, ignore_errors=True)  # olmo's transformers copy of a legacy checkpoint
            return rows

        rows: list[dict] = []
        for _, unit_rows in LocalExecutor().map(one, range(len(planned))):  # in order, in this process
            rows += unit_rows
            bar.advance()
    return rows


def _phase(bar, label: str):
    def describe(name: str) -> None:
        bar.describe(f"{label}: {name}")

    return describe


def _next_needing_weights(planned, position, current: Unit, store) -> Unit | None:
    for item in planned[position + 1 :]:
        if isinstance(item, Unit) and not item.is_local and item.commit != current.commit and missing(item, store):
            return item
    return None


def converted_copy(unit: Unit):
    """Where the loading core keeps its transformers copy of a legacy (hf_olmo, native) Hub revision."""
    if unit.is_local:
        return None
    from pathlib import Path

    from olmo_cli.loading.converted import cache_key, converted_cache_dir
    from olmo_cli.sources import Located

    return converted_cache_dir() / cache_key(Located(Path(), unit.model, unit.revision, unit.commit))


def _remove(unit: Unit, units: list[Unit], store, reporter: Reporter) -> None:
    """Drop the scored revision from the HF cache, unless a unit still to come needs the same commit."""
    from olmo_cli.hub.cleanup import apply_removal, plan_removal

    later = [u for u in units if u is not unit and u.model == unit.model and u.commit == unit.commit]
    if any(missing(u, store) for u in later):
        return
    try:
        apply_removal(plan_removal(unit.model, [unit.revision or unit.commit]))
    except OSError as error:
        reporter.warn(f"cannot remove {unit.label} from the HF cache: {error}")


class _Prefetcher:
    """One background download at a time (a daemon thread: Ctrl-C never waits for it; a partial
    file is resumed by the next run). Its errors are dropped: the foreground fetch meets them again
    and reports them with the revision."""

    def __init__(self, *, offline: bool, enabled: bool):
        self.offline, self.enabled = offline, enabled
        self.threads: dict[tuple[str, str], threading.Thread] = {}

    def start(self, unit: Unit | None) -> None:
        if unit is None or not self.enabled or self.offline or unit.is_local:
            return
        key = (unit.model, unit.commit)
        if key in self.threads:
            return
        thread = threading.Thread(target=self._fetch, args=(unit,), name=f"prefetch {unit.label}", daemon=True)
        self.threads[key] = thread
        thread.start()

    def wait(self, unit: Unit | None) -> None:
        thread = self.threads.get((unit.model, unit.commit)) if unit is not None else None
        if thread is not None:
            thread.join()

    def _fetch(self, unit: Unit) -> None:
        from olmo_cli.hub.download import fetch_revision

        try:
            fetch_revision(unit.model, unit.revision or unit.commit, offline=self.offline)
        except Exception:  # best effort: the foreground fetch raises the same error, with the revision
            pass


class _NoBars(Reporter):
    """Messages go through; progress bars don't (the sweep's own bar is live on stderr)."""

    def __init__(self, parent: Reporter):
        self.parent = parent

    def info(self, message: str) -> None:
        self.parent.info(message)

    def warn(self, message: str) -> None:
        self.parent.warn(message)


class _no_transformers_bars:
    """transformers' own loading bars would fight the sweep's bar for the terminal."""

    def __enter__(self):
        from transformers.utils import logging as hf_logging

        self.was = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()
        return self

    def __exit__(self, *exc) -> None:
        from transformers.utils import logging as hf_logging

        if self.was:
            hf_logging.enable_progress_bar()
