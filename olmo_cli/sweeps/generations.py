"""`olmo generate` over several revisions as units: (repo, revision, resolved commit, generation settings).

A unit's result is that revision's answers (the GenerationResult and its JSON form); nothing is
stored, so every unit runs. The driver prints them side by side in training order, as the local
loop does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from olmo_cli.errors import OlmoError
from olmo_cli.reporting import NULL_REPORTER, Reporter
from olmo_cli.sweeps.base import (
    Executor,
    Failure,
    apply_environment,
    mapped,
    worker_environment,
    write_dry_run,
)


@dataclass(frozen=True)
class GenerateUnit:
    repo: str
    revision: str
    commit: str | None
    prompts: tuple[str, ...]
    params: Any  # generate.SamplingParams (a frozen dataclass)
    load: tuple[tuple[str, Any], ...]  # load_model's keyword arguments, less the reporter


def plan_generations(chosen: Sequence[Any], prompts: Sequence[str], params: Any, options: dict) -> list[GenerateUnit]:
    """One unit per resolved revision (revisions.resolve.Resolved), with its commit from the
    revision list just fetched; `options` are load_model's, the reporter left out (it stays here)."""
    from olmo_cli.hub.refs import list_revisions

    commits = list_revisions(chosen[0].repo, offline=options.get("offline", False)).commits if chosen else {}
    load = tuple((k, v) for k, v in options.items() if k != "reporter")
    return [GenerateUnit(r.repo, r.revision, commits.get(r.revision), tuple(prompts), params, load) for r in chosen]


def generate_worker(
    unit: GenerateUnit,
    *,
    describe: Callable[[Any, Any], dict],
    environment: dict[str, str] | None = None,
    reporter: Reporter = NULL_REPORTER,
) -> dict[str, Any]:
    """Load, generate, release; `describe(loaded, result)` is the revision's --json object. Module
    attributes are looked up at call time, so tests can stand in for load_model and generate."""
    if environment:
        apply_environment(environment)
    from olmo_cli import generate as generation

    try:
        loaded = generation.load(unit.repo, unit.revision, **dict(unit.load), reporter=reporter)
        try:
            result = generation.generate(loaded, list(unit.prompts), unit.params)
        finally:
            loaded.release()
    except OlmoError as error:
        return {"error": error.message, "hint": error.hint, "exit_code": error.exit_code}
    return {"json": describe(loaded, result), "result": result}


def run_generations(
    units: Sequence[GenerateUnit],
    executor: Executor,
    *,
    describe: Callable[[Any, Any], dict],
    reporter: Reporter = NULL_REPORTER,
    on_result: Callable[[GenerateUnit, Any], None] = lambda unit, result: None,
) -> list[dict[str, Any]]:
    """Each unit's {"json", "result"}, in the units' order. The first failure stops the sweep with
    its own error, as the local loop always has. A dry-run SLURM executor writes its sbatch script
    (its path is the executor's `script`) and returns no answers."""
    from olmo_cli.hub import env

    if write_dry_run(executor, len(units), reporter):
        return []
    if executor.remote:
        executor.check_shared({"HF cache": env.hub_cache_dir().absolute()})
        fn: Callable[[GenerateUnit], dict] = partial(
            generate_worker, describe=describe, environment=worker_environment()
        )
    else:

        def fn(unit: GenerateUnit) -> dict:
            reporter.info(f"[{units.index(unit) + 1}/{len(units)}] {unit.revision}")
            return generate_worker(unit, describe=describe, reporter=reporter)

    out: dict[int, dict] = {}
    with mapped(executor, fn, list(units)) as results:
        for position, answer in results:
            if isinstance(answer, Failure):
                raise OlmoError(f"{units[position].repo}@{units[position].revision}: {answer.message}")
            if "error" in answer:
                raise OlmoError(answer["error"], hint=answer.get("hint"), exit_code=answer.get("exit_code"))
            out[position] = answer
            on_result(units[position], answer["result"])
    return [out[i] for i in range(len(units))]
