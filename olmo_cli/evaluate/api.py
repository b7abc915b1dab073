"""`olmo_cli.evaluate(models, revisions, data, ...)`: the rows of a sweep. The CLI is a thin layer over it."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from olmo_cli.errors import UsageError
from olmo_cli.evaluate.data import DataSource, jsonl_source, text_source
from olmo_cli.evaluate.scoring import check_lengths
from olmo_cli.evaluate.store import ResultsStore
from olmo_cli.evaluate.tasks import task_specs
from olmo_cli.evaluate.units import CHECKPOINT_DTYPE, Settings
from olmo_cli.reporting import NULL_REPORTER, Reporter
from olmo_cli.revisions.select import Selection
from olmo_cli.sweeps.base import Executor


def evaluate(
    models: str | Sequence[str] | None = None,
    revisions: str | Sequence[str] | None = None,
    data: DataSource | str | Path | Sequence[DataSource | str | Path] = (),
    *,
    selection: Selection | None = None,
    context: int | None = None,
    stride: int | None = None,
    batch_size: int = 1,
    tasks: Sequence[str] = (),
    task_limit: int | None = None,
    include_path: str | Path | None = None,
    dtype: str = CHECKPOINT_DTYPE,
    device: str = "auto",
    offline: bool = False,
    refresh: bool = False,
    results: str | Path | None = None,
    delete_after: bool = False,
    prefetch: bool = True,
    executor: Executor | None = None,
    reporter: Reporter = NULL_REPORTER,
) -> list[dict]:
    """Loss, perplexity and bits per byte (and lm_eval task metrics) of each model at each revision.

    models: Hub repos or local directories (None: the repo the revisions name). revisions: names or
    queries (2T, step452000, main ...); none and no `selection` means main. data: DataSource objects
    (`text_source`, `jsonl_source`, `sample_source`) or paths (.jsonl files are read as JSONL, field
    `text`). Rows already in the results store (`results`, default $OLMO_CACHE_DIR/eval) are
    returned with `cached: True` and cost nothing; a failed revision's rows carry its `error`.
    executor: where the missing units run (`olmo_cli.sweeps`; default here, one after another).
    """
    from olmo_cli.hub import env
    from olmo_cli.loading.devices import DTYPE_NAMES, pick_device

    offline = env.offline(offline)
    model_list = [models] if isinstance(models, str) else list(models or [])
    revision_list = [revisions] if isinstance(revisions, str) else list(revisions or [])
    sources = tuple(_source(item) for item in _items(data))
    # Everything the user could have mistyped fails here, before any download or row is written.
    check_lengths(context, stride)
    if batch_size < 1:
        raise UsageError("--batch-size must be at least 1")
    specs = task_specs(list(tasks), limit=task_limit, include_path=str(include_path) if include_path else None)
    if not sources and not specs:
        raise UsageError("nothing to measure", hint="give data with --text, --jsonl or --sample english, or a --task")
    if dtype != CHECKPOINT_DTYPE and str(dtype).lower() not in DTYPE_NAMES:
        raise UsageError(f"unknown dtype '{dtype}'", hint="use checkpoint, float32, bfloat16 or float16")
    dtype = dtype if dtype == CHECKPOINT_DTYPE else DTYPE_NAMES[str(dtype).lower()]
    if not model_list and not revision_list:
        raise UsageError(
            "no model given", hint="name a Hub repo or a local directory, or a revision such as -r step20000-tokens84B"
        )
    from olmo_cli.sweeps.choose import task_device

    remote_device = task_device(device, executor) if executor is not None else None
    settings = Settings(
        dtype=dtype,
        device=remote_device or str(pick_device(device)),
        context=context,
        stride=stride,
        batch_size=batch_size,
    )
    store = ResultsStore(results)
    from olmo_cli.evaluate.remote import run_remote
    from olmo_cli.evaluate.sweep import plan, run_sweep

    planned = plan(
        model_list,
        revision_list,
        selection,
        settings,
        sources,
        specs,
        store=store,
        offline=offline,
        refresh=refresh,
        reporter=reporter,
    )
    if executor is not None and executor.remote:
        return run_remote(planned, store, executor, offline=offline, delete_after=delete_after, reporter=reporter)
    return run_sweep(planned, store, offline=offline, delete_after=delete_after, prefetch=prefetch, reporter=reporter)


def _items(data) -> list:
    if isinstance(data, (DataSource, str, Path)):
        return [data]
    return list(data)


def _source(item: DataSource | str | Path) -> DataSource:
    if isinstance(item, DataSource):
        return item
    path = Path(item)
    return jsonl_source(path) if path.suffix == ".jsonl" else text_source(path)
