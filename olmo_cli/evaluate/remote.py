"""An eval sweep on a cluster executor (ray, slurm): one task per unit whose rows are missing.

Each worker computes its unit with `run.run_unit`, which writes every row into the shared results
store atomically (a rename of a complete file), and returns the rows; the driver merges them in plan
order with the rows that were stored already. A worker that dies mid-unit leaves at most a temporary
file; its retry computes the same keys, so a row is never stored twice. With --delete-after, a
worker removes its revision from the shared HF cache after its unit, under the rules of
sweeps.cache_release (files other units share stay until the driver removes them at the end).
Prefetching is the local executor's: a worker has one unit.
"""

from __future__ import annotations

import contextlib
import hashlib
import shutil
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from olmo_cli.errors import OlmoError, UsageError
from olmo_cli.evaluate.run import missing, run_unit, stored_row
from olmo_cli.evaluate.store import ResultsStore
from olmo_cli.evaluate.sweep import converted_copy
from olmo_cli.evaluate.units import Unit, empty_row
from olmo_cli.reporting import NULL_REPORTER, Reporter
from olmo_cli.sweeps import cache_release
from olmo_cli.sweeps.base import (
    Executor,
    Failure,
    apply_environment,
    mapped,
    report_attached,
    worker_environment,
    write_dry_run,
)

STATE_FILE = ".olmo-slurm-jobs.json"  # in the results store: the SLURM jobs in flight, by unit


def eval_worker(
    unit: Unit,
    *,
    results: str,
    offline: bool,
    environment: dict[str, str],
    release: cache_release.SweepRelease | None = None,
) -> dict[str, Any]:
    """What a worker runs for one unit (module-level, so it pickles by reference). Returns its rows,
    or the usage error every unit would hit (as plain data: exception classes do not always survive
    a trip through Ray or submitit). `release` (--delete-after): remove the revision from the HF
    cache afterwards when the sweep downloaded it, keeping the blobs other units share."""
    apply_environment(environment)
    deleting = release is not None and not unit.is_local and release.deletes(unit.model, unit.commit)
    converted = converted_copy(unit) if deleting else None
    converted_before = converted is not None and converted.exists()
    try:
        with cache_release.using(unit.model, unit.commit) if deleting else contextlib.nullcontext():
            out: dict[str, Any] = {"rows": run_unit(unit, ResultsStore(results), offline=offline)}
    except OlmoError as error:
        return {"error": error.message, "hint": error.hint, "exit_code": error.exit_code}
    if deleting and release is not None:  # the rows are stored: removal is best effort, the driver retries
        out.update(cache_release.release_after(unit.model, unit.revision or unit.commit, unit.commit, release.keep))
        if converted is not None and not converted_before:
            shutil.rmtree(converted, ignore_errors=True)  # olmo's transformers copy of a legacy checkpoint
    return out


def job_name(keys: frozenset[str]) -> str:
    """A unit's name in the SLURM state file: its missing rows' keys, the same on every run."""
    return hashlib.sha256("\n".join(sorted(keys)).encode()).hexdigest()[:32]


def run_remote(
    planned: Sequence[Any],
    store: ResultsStore,
    executor: Executor,
    *,
    offline: bool = False,
    delete_after: bool = False,
    reporter: Reporter = NULL_REPORTER,
    worker: Callable[..., dict[str, Any]] = eval_worker,
) -> list[dict]:
    """Every planned unit's rows, in plan order; the missing ones computed by `executor`'s workers.
    With a dry-run SLURM executor, only the sbatch script is written and the stored rows returned."""
    from olmo_cli.evaluate.sweep import Unresolved
    from olmo_cli.hub import env

    units = [p for p in planned if isinstance(p, Unit)]
    # One task per set of missing rows: main and the step branch it points at are scored once.
    todo, seen, names = [], set(), []
    for i, item in enumerate(planned):
        keys = frozenset(item.key(m) for m in missing(item, store)) if isinstance(item, Unit) else frozenset()
        if keys and keys not in seen:
            todo.append(i)
            seen.add(keys)
            names.append(job_name(keys))
    rows: dict[int, list[dict]] = {}
    for i, item in enumerate(planned):
        if isinstance(item, Unresolved):
            reporter.warn(f"{item.unit.label}: {item.error}")
            rows[i] = item.rows()
        elif i not in todo and not missing(item, store):
            rows[i] = run_unit(item, store, offline=offline)  # all stored: reads the store, loads nothing
    if not todo:
        return [row for i in sorted(rows) for row in rows[i]]
    if any(not u.is_local for u in units):
        shared = {"HF cache": env.hub_cache_dir().absolute(), "results store": store.root.absolute()}
    else:
        shared = {"results store": store.root.absolute()}
    executor.check_shared(shared)
    if write_dry_run(executor, len(todo), reporter):
        return [row for i in sorted(rows) for row in rows[i]]
    work = [planned[i] for i in todo]
    fn = partial(worker, results=str(store.root.absolute()), offline=offline, environment=worker_environment())
    release = None
    if delete_after:
        release = cache_release.SweepRelease.plan(
            ((u.model, u.commit) for u in work if not u.is_local), offline=offline
        )
        fn = partial(fn, release=release)
    remember = getattr(executor, "remember", None)
    if remember is not None:  # SLURM: a rerun waits on the jobs still in flight instead of submitting them again
        remember(store.root / STATE_FILE, names)
    with reporter.progress(f"eval ({executor.name})", total=len(planned)) as bar:
        bar.advance(len(planned) - len(todo))
        bar.describe(f"{len(todo)} unit(s) on {executor.name}")
        with mapped(executor, fn, work) as results:  # Ctrl-C or a usage error cancels the outstanding tasks
            for position, result in results:
                unit = work[position]
                if isinstance(result, Failure):
                    reporter.warn(f"{unit.label}: {result.message}")
                    rows[todo[position]] = [empty_row(unit, m, error=result.message) for m in unit.measurements()]
                elif "error" in result:
                    raise UsageError(result["error"], hint=result.get("hint"), exit_code=result.get("exit_code"))
                else:
                    rows[todo[position]] = result["rows"]
                    if result.get("warning"):
                        reporter.warn(result["warning"])
                bar.describe(f"{unit.label} done")
                bar.advance()
        report_attached(executor, reporter)
    if release is not None:
        release.finish()  # the files the units shared, now that no worker is left
    for i, item in enumerate(planned):
        if i not in rows:  # the twin of a unit just run: its rows are in the store now, or it failed too
            rows[i] = _twin_rows(item, store, rows)
    return [row for i in sorted(rows) for row in rows[i]]


def _twin_rows(unit: Unit, store: ResultsStore, rows: dict[int, list[dict]]) -> list[dict]:
    errors = [r["error"] for done in rows.values() for r in done if r["commit"] == unit.commit and r["error"]]
    return [
        stored_row(unit, m, store) or empty_row(unit, m, error=errors[0] if errors else "not computed")
        for m in unit.measurements()
    ]
