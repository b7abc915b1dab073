"""The command-line side of `olmo convert|quantize REPO [selection] OUTDIR/`: plan, run, report."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from olmo_cli.revisions.select import Selection
from olmo_cli.sweeps.choose import ExecutorChoice


def run_output_sweep(
    job: str,
    repo: str,
    selection: Selection,
    outdir: Path,
    options: dict[str, Any],
    executor: ExecutorChoice,
    *,
    revisions: list[str] | None = None,
    device: str = "auto",
    force: bool = False,
    offline: bool = False,
    delete_after: bool = False,
    as_json: bool = False,
    describe: Callable[[dict], str],
) -> None:
    """One output per selected revision under `outdir`; `describe` makes a written output's line."""
    import typer

    from olmo_cli.cli.output import ConsoleReporter, print_json, say
    from olmo_cli.errors import OlmoError
    from olmo_cli.sweeps.outputs import plan_outputs, run_outputs

    runner = executor.build(device)
    reporter = ConsoleReporter(quiet=as_json)
    units = plan_outputs(job, repo, revisions or [], selection, outdir, options, offline=offline, reporter=reporter)
    say(f"{len(units)} revision(s) of {units[0].repo} -> {outdir}/")
    outcomes = run_outputs(
        units, runner, outdir=outdir, force=force, offline=offline, delete_after=delete_after, reporter=reporter
    )
    script = getattr(runner, "script", None)
    if script is not None:  # --slurm-dry-run: the path is the output
        print(script)
        return
    if as_json:
        print_json([o.as_dict() for o in outcomes])
    else:
        for outcome in outcomes:
            if outcome.status == "written" and outcome.summary is not None:
                typer.echo(describe(outcome.summary))
            elif outcome.status == "exists":
                typer.echo(f"{outcome.unit.label} -> {outcome.unit.dst}: exists, not scheduled (--force replaces it)")
            else:
                typer.echo(f"{outcome.unit.label}: failed: {outcome.error}")
    failed = [o for o in outcomes if o.status == "failed"]
    written = sum(1 for o in outcomes if o.status == "written")
    there = sum(1 for o in outcomes if o.status == "exists")
    say(f"{len(outcomes)} revision(s): {written} written, {there} there already, {len(failed)} failed")
    if failed:
        raise OlmoError(
            f"{len(failed)} of {len(outcomes)} revisions failed", hint="run the same command again to retry them"
        )


def sweep_if_selected(
    job: str,
    repo: str,
    selection: Selection,
    outdir: Path,
    options: dict[str, Any],
    executor: ExecutorChoice,
    *,
    revision: str | None,
    force: bool,
    offline: bool,
    delete_after: bool,
    as_json: bool,
    describe: Callable[[dict], str],
) -> bool:
    """`olmo convert|quantize`'s fork: with a selection, run the sweep (`options`: each unit's job
    options) and return True; without one, refuse the sweep-only options and return False,
    leaving the one checkpoint to the caller."""
    if not selection.active:
        refuse_sweep_options(executor, delete_after)
        return False
    run_output_sweep(
        job, repo, selection, outdir, options, executor,
        revisions=[revision] if revision else None, force=force, offline=offline, as_json=as_json,
        delete_after=delete_after, describe=describe,
    )  # fmt: skip
    return True


def refuse_sweep_options(executor: ExecutorChoice, delete_after: bool) -> None:
    """Without a selection there is one checkpoint: the options that only sweeps take are refused."""
    from olmo_cli.errors import UsageError

    hint = "select revisions with --from/--to/--every ..."
    if executor.remote:
        raise UsageError("--executor ray|slurm runs sweeps", hint=hint)
    if delete_after:
        raise UsageError("--delete-after runs with sweeps", hint=hint)
