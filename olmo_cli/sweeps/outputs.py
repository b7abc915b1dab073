"""Sweeps whose result is an output per revision: `olmo convert` and `olmo quantize` over a selection.

A unit is (repo, revision, resolved commit, job settings, output path), plain picklable data. Its
result is OUTDIR/<revision> (OUTDIR/<revision>.gguf for GGUF), written atomically by the single
convert or quantize, so an output that exists is complete: it is not scheduled again (unless
--force), and a unit run twice writes the same bytes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from olmo_cli.errors import BadInputError, OlmoError, UsageError
from olmo_cli.reporting import NULL_REPORTER, Reporter
from olmo_cli.revisions.select import Selection
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

JOBS = ("convert", "quantize")
STATE_FILE = ".olmo-slurm-jobs.json"  # beside the outputs: the SLURM jobs in flight (re-attaching)


@dataclass(frozen=True)
class OutputUnit:
    job: str  # one of JOBS
    repo: str
    revision: str
    commit: str | None
    dst: str  # absolute
    options: tuple[tuple[str, Any], ...] = field(default_factory=tuple)  # the job's keyword arguments

    @property
    def label(self) -> str:
        return f"{self.repo}@{self.revision}"


@dataclass(frozen=True)
class Outcome:
    """One revision of the sweep: written now, there already, or failed (with its error)."""

    unit: OutputUnit
    status: str  # written, exists, failed
    summary: dict | None = None
    error: str | None = None

    def as_dict(self) -> dict:
        return {
            "repo": self.unit.repo,
            "revision": self.unit.revision,
            "commit": self.unit.commit,
            "dst": self.unit.dst,
            "status": self.status,
            "error": self.error,
            "result": self.summary,
        }


def output_name(revision: str, to: str | None) -> str:
    return f"{revision}.gguf" if to == "gguf" else revision


def plan_outputs(
    job: str,
    repo: str,
    revisions: Sequence[str],
    selection: Selection,
    outdir: Path,
    options: dict[str, Any],
    *,
    offline: bool = False,
    reporter: Reporter = NULL_REPORTER,
) -> list[OutputUnit]:
    """One unit per selected revision, in training order, each with its own output under `outdir`."""
    from olmo_cli.hub.refs import list_revisions
    from olmo_cli.hub.resolve import select_revisions
    from olmo_cli.sources import is_local_path

    if job not in JOBS:
        raise ValueError(f"unknown output job {job!r}")
    if is_local_path(repo):
        raise UsageError(
            f"a sweep needs a Hub repo, and {repo} is a local directory",
            hint="drop the selection flags to convert that one directory",
        )
    if outdir.exists() and not outdir.is_dir():
        raise BadInputError(f"{outdir} is a file; a sweep writes one output per revision into a directory")
    chosen = select_revisions(repo, list(revisions), selection, offline=offline, reporter=reporter)
    commits = list_revisions(chosen[0].repo, offline=offline, reporter=reporter).commits
    settings = tuple(sorted(options.items()))
    to = options.get("to")
    return [
        OutputUnit(
            job,
            r.repo,
            r.revision,
            commits.get(r.revision),
            str((outdir / output_name(r.revision, to)).absolute()),
            settings,
        )
        for r in chosen
    ]


def output_worker(
    unit: OutputUnit,
    *,
    offline: bool = False,
    force: bool = False,
    environment: dict[str, str] | None = None,
    release: cache_release.SweepRelease | None = None,
    reporter: Reporter = NULL_REPORTER,
) -> dict[str, Any]:
    """What a worker runs for one unit (module-level: it pickles by reference). Returns its summary,
    or its error as plain data (exception classes do not always survive Ray or submitit).
    `release` (--delete-after): remove the source revision from the HF cache once its output is in
    place, when the sweep downloaded it, keeping the blobs other units share."""
    if environment:
        apply_environment(environment)
    deleting = release is not None and unit.commit is not None and release.deletes(unit.repo, unit.commit)
    try:
        with cache_release.using(unit.repo, unit.commit) if deleting and unit.commit else contextlib.nullcontext():
            out: dict[str, Any] = {"summary": _JOBS[unit.job](unit, offline=offline, force=force, reporter=reporter)}
    except OlmoError as error:
        usage = isinstance(error, UsageError)  # a setting every unit would trip on: the sweep stops
        return {"error": error.message, "hint": error.hint, "exit_code": error.exit_code, "usage": usage}
    if deleting and release is not None and unit.commit is not None:
        out.update(cache_release.release_after(unit.repo, unit.revision, unit.commit, release.keep))
    return out


def _convert(unit: OutputUnit, *, offline: bool, force: bool, reporter: Reporter) -> dict:
    from olmo_cli.checkpoints.convert import convert
    from olmo_cli.sources import locate

    located = locate(unit.repo, unit.revision, offline=offline, reporter=reporter)
    result = convert(
        located.path,
        Path(unit.dst),
        force=force,
        reporter=reporter,
        revision=located.revision,
        offline=offline,
        repo=located.repo,
        commit=located.commit,
        **dict(unit.options),
    )
    return {**result.as_dict(), "source": located.describe()}


def _quantize(unit: OutputUnit, *, offline: bool, force: bool, reporter: Reporter) -> dict:
    from olmo_cli.quantize.run import quantize

    report = quantize(
        unit.repo, Path(unit.dst), revision=unit.revision, force=force, offline=offline, reporter=reporter,
        **dict(unit.options),
    )  # fmt: skip
    return report.as_dict()


_JOBS: dict[str, Callable[..., dict]] = {"convert": _convert, "quantize": _quantize}


def run_outputs(
    units: Sequence[OutputUnit],
    executor: Executor,
    *,
    outdir: Path,
    force: bool = False,
    offline: bool = False,
    delete_after: bool = False,
    reporter: Reporter = NULL_REPORTER,
) -> list[Outcome]:
    """Every unit's outcome, in order. Units whose output exists are not scheduled (unless `force`);
    the rest run on `executor`. With a dry-run SLURM executor only the sbatch script is written.
    `delete_after`: each source revision the sweep downloads leaves the HF cache once its output is
    written (cache_release: safe when workers share the cache)."""
    from olmo_cli.hub import env

    outcomes: dict[int, Outcome] = {}
    todo: list[int] = []
    for i, unit in enumerate(units):
        if Path(unit.dst).exists() and not force:
            outcomes[i] = Outcome(unit, "exists")
        else:
            todo.append(i)
    if not todo:
        return [outcomes[i] for i in range(len(units))]
    outdir.mkdir(parents=True, exist_ok=True)
    if executor.remote:
        executor.check_shared({"HF cache": env.hub_cache_dir().absolute(), "output folder": outdir.absolute()})
    work = [units[i] for i in todo]
    if write_dry_run(executor, len(work), reporter):
        return [outcomes[i] for i in sorted(outcomes)]
    release = None
    if delete_after:
        release = cache_release.SweepRelease.plan(((u.repo, u.commit) for u in work if u.commit), offline=offline)
    # A remote worker gets the driver's environment; a local one reports through this reporter.
    where = {"environment": worker_environment()} if executor.remote else {"reporter": reporter}
    fn: Callable[[OutputUnit], dict] = partial(output_worker, offline=offline, force=force, release=release, **where)
    remember = getattr(executor, "remember", None)
    if remember is not None:  # SLURM: a rerun waits on the jobs still in flight instead of submitting them again
        remember(outdir / STATE_FILE, [u.dst for u in work])
    finished = 0
    # Ctrl-C or a usage error: the outstanding tasks are cancelled, finished outputs stay
    with mapped(executor, fn, work) as results:
        for position, result in results:
            unit = work[position]
            if isinstance(result, Failure):
                outcome = Outcome(unit, "failed", error=result.message)
            elif "error" in result:
                if result.get("usage"):
                    raise UsageError(result["error"], hint=result.get("hint"), exit_code=result.get("exit_code"))
                outcome = Outcome(unit, "failed", error=result["error"])
            else:
                outcome = Outcome(unit, "written", summary=result["summary"])
                if result.get("warning"):
                    reporter.warn(result["warning"])
            finished += 1
            if outcome.error:
                reporter.warn(f"[{finished}/{len(work)}] {unit.label}: {outcome.error}")
            else:
                reporter.info(f"[{finished}/{len(work)}] {unit.label} -> {unit.dst}")
            outcomes[todo[position]] = outcome
    report_attached(executor, reporter)
    if release is not None:
        release.finish()  # the files the units shared, now that no worker is left
    return [outcomes[i] for i in range(len(units))]
