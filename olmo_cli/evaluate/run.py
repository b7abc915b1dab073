"""Running one unit: its stored rows as they are, the missing ones computed (one model load) and stored.

`run_unit` takes only plain data (the unit, the store's directory) plus where to report, so any
executor can call it: the local sweep does, and a cluster worker can. A unit that fails to
download or load gives rows with the error and stores nothing; a settings error that every other
unit would hit too (a --context the model cannot take) is raised instead.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from datetime import datetime, timezone

from olmo_cli.errors import OlmoError, UsageError
from olmo_cli.evaluate.data import DataSource
from olmo_cli.evaluate.scoring import check_lengths, score
from olmo_cli.evaluate.store import ResultsStore
from olmo_cli.evaluate.tasks import TaskSpec, run_task
from olmo_cli.evaluate.units import CHECKPOINT_DTYPE, MAX_DEFAULT_CONTEXT, Unit, empty_row
from olmo_cli.reporting import NULL_REPORTER, Reporter

Measurement = DataSource | TaskSpec


def stored_row(unit: Unit, measurement: Measurement, store: ResultsStore) -> dict | None:
    record = store.get(unit.folder, unit.key(measurement))
    if record is None or not isinstance(record.get("row"), dict):
        return None
    # The same commit can be asked for under two names (main and its step branch): name it as asked.
    row = {**empty_row(unit, measurement), **record["row"], **unit.base_row(), "cached": True, "error": None}
    if isinstance(measurement, DataSource):
        row["data"] = measurement.as_json()
    return row


def missing(unit: Unit, store: ResultsStore) -> list[Measurement]:
    return [m for m in unit.measurements() if store.get(unit.folder, unit.key(m)) is None]


def run_unit(
    unit: Unit,
    store: ResultsStore,
    *,
    offline: bool = False,
    reporter: Reporter = NULL_REPORTER,
    phase: Callable[[str], None] = lambda name: None,
) -> list[dict]:
    """One row per measurement of `unit`, in order."""
    rows: dict[int, dict] = {}
    todo = []
    for index, measurement in enumerate(unit.measurements()):
        row = stored_row(unit, measurement, store)
        if row is None:
            todo.append((index, measurement))
        else:
            rows[index] = row
    if todo:
        try:
            rows.update(_compute(unit, todo, store, offline=offline, reporter=reporter, phase=phase))
        except UsageError:
            raise
        except OlmoError as error:
            reporter.warn(f"{unit.label}: {error.message}")
            rows.update({index: empty_row(unit, m, error=error.message) for index, m in todo})
    return [rows[index] for index in sorted(rows)]


def _compute(unit, todo, store, *, offline, reporter, phase) -> dict[int, dict]:
    from olmo_cli.loading import load_model, locate_hf_checkpoint
    from olmo_cli.loading.devices import checkpoint_dtype

    phase("download")
    source, revision = (unit.model, None) if unit.is_local else (unit.model, unit.revision)
    located, path = locate_hf_checkpoint(source, revision, offline=offline, reporter=reporter)
    if not unit.is_local and located.commit and located.commit != unit.commit:
        # The branch moved since it was resolved: the rows are filed under what was really scored.
        reporter.warn(f"{unit.label} moved from {unit.commit[:10]} to {located.commit[:10]} during the sweep")
        unit = dataclasses.replace(unit, commit=located.commit)
    phase("load")
    settings = unit.settings
    dtype = checkpoint_dtype(path) if settings.dtype == CHECKPOINT_DTYPE else settings.dtype
    loaded = load_model(str(path), dtype=dtype, device=settings.device, reporter=reporter)
    try:
        context = _context(settings.context, loaded.context_length)
        check_lengths(context, settings.stride)
        resolved = {
            "dtype": str(loaded.dtype).replace("torch.", ""),
            "device": str(loaded.device),
            "context": context,
            "stride": settings.stride,
            "batch_size": settings.batch_size,
        }
        out = {}
        for index, measurement in todo:
            phase(f"score {measurement.name}")
            try:
                row, extra = _measure(loaded, measurement, context, unit)
            except UsageError:
                raise
            except OlmoError as error:
                reporter.warn(f"{unit.label}: {error.message}")
                out[index] = empty_row(unit, measurement, error=error.message)
                continue
            if extra.get("n_skipped"):
                reporter.warn(
                    f"{unit.label}: {measurement.name}: {extra['n_skipped']} document(s) shorter than 2 tokens skipped"
                )
            record = {
                "row": {k: v for k, v in row.items() if k not in ("cached", "error")},
                "unit": {"model": unit.model, "revision": unit.revision, "commit": unit.commit},
                "settings": settings.key,
                "resolved": resolved,
                **extra,
                "written_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            }
            store.put(unit.folder, unit.key(measurement), record)
            out[index] = row
        return out
    finally:
        loaded.release()


def _context(requested: int | None, model_max: int | None) -> int:
    if requested is None:
        return min(model_max or MAX_DEFAULT_CONTEXT, MAX_DEFAULT_CONTEXT)
    if model_max is not None and requested > model_max:
        raise UsageError(
            f"--context {requested} is longer than the model's maximum context ({model_max})",
            hint=f"use --context {model_max} or less",
        )
    return requested


def _measure(loaded, measurement: Measurement, context: int, unit: Unit) -> tuple[dict, dict]:
    row = empty_row(unit, measurement)
    if isinstance(measurement, TaskSpec):
        start = time.perf_counter()
        row["metrics"] = run_task(loaded.model, loaded.tokenizer, measurement, batch_size=unit.settings.batch_size)
        row["seconds"] = time.perf_counter() - start
        return row, {}
    result = score(
        loaded.model,
        loaded.tokenizer,
        measurement.documents(),
        context=context,
        stride=unit.settings.stride,
        batch_size=unit.settings.batch_size,
    )
    row.update(
        loss=result.loss,
        perplexity=result.perplexity,
        bits_per_byte=result.bits_per_byte,
        n_tokens=result.n_tokens,
        n_bytes=result.n_bytes,
        seconds=result.seconds,
    )
    return row, {"n_documents": result.n_documents, "n_skipped": result.n_skipped, "nll": result.nll}
