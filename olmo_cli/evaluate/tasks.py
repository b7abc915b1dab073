"""lm-evaluation-harness tasks on an already-loaded model (lm_eval's Python API, the `[eval]` extra).

The model is handed to `HFLM(pretrained=<model object>)`, so lm_eval never loads a second copy and
never sees a revision name it could ignore. Task names are checked before any model is loaded.
"""

from __future__ import annotations

import difflib
import hashlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from olmo_cli.errors import NetworkError, NotFoundError, OlmoError, UnsupportedError, UsageError, first_line

INSTALL_HINT = "pip install 'olmo-cli[eval]' (lm_eval, matplotlib, plotext)"


@dataclass(frozen=True)
class TaskSpec:
    name: str
    limit: int | None = None
    include_path: str | None = None
    fingerprint: str = ""  # lm_eval's version and the bytes of the include path's files

    @property
    def key(self) -> dict:
        return {"name": self.name, "limit": self.limit, "fingerprint": self.fingerprint}


def require_lm_eval():
    try:
        import lm_eval
    except ImportError:
        raise UnsupportedError(
            "--task needs lm-evaluation-harness, which is not installed", hint=INSTALL_HINT
        ) from None
    return lm_eval


def task_specs(names: list[str], *, limit: int | None = None, include_path: str | None = None) -> tuple[TaskSpec, ...]:
    """Checked specs: lm_eval installed, the include path a directory, every name a known task."""
    if not names:
        if include_path is not None:
            raise UsageError("--include-path needs --task")
        return ()
    if limit is not None and limit < 1:
        raise UsageError("--task-limit must be at least 1")
    lm_eval = require_lm_eval()
    if include_path is not None:
        folder = Path(include_path)
        if not folder.is_dir():
            raise NotFoundError(f"--include-path {include_path} is not a directory")
        include_path = str(folder.resolve())
    known = task_manager(include_path).all_tasks
    for name in names:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=3)
            hint = f"did you mean {', '.join(close)}?" if close else "run 'lm_eval ls tasks' to see the tasks"
            raise NotFoundError(f"unknown task '{name}'", hint=hint)
    stamp = hashlib.sha256(f"lm_eval {getattr(lm_eval, '__version__', '?')}".encode())
    if include_path is not None:
        for file in sorted(p for p in Path(include_path).rglob("*") if p.is_file()):
            stamp.update(f"\0{file.relative_to(include_path)}\0".encode())
            stamp.update(file.read_bytes())
    return tuple(TaskSpec(name, limit, include_path, stamp.hexdigest()) for name in dict.fromkeys(names))


@lru_cache(maxsize=4)
def task_manager(include_path: str | None):
    """lm_eval indexes every task it ships (seconds): once per include path and process."""
    import logging

    from lm_eval.tasks import TaskManager

    logging.getLogger("lm_eval").setLevel(logging.ERROR)
    return TaskManager(include_path=include_path)


def run_task(model, tokenizer, spec: TaskSpec, *, batch_size: int = 1) -> dict[str, float]:
    """The task's metrics ({"acc": 0.5, ...}) for the loaded model."""
    require_lm_eval()
    import lm_eval
    from lm_eval.models.huggingface import HFLM

    lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size)
    try:
        results = lm_eval.simple_evaluate(
            model=lm,
            tasks=[spec.name],
            limit=spec.limit,
            task_manager=task_manager(spec.include_path),
            bootstrap_iters=0,
            log_samples=False,
        )
    except OlmoError:
        raise
    except Exception as error:  # lm_eval and datasets raise many kinds; each is one line here
        if _is_network(error):
            raise NetworkError(
                f"task {spec.name} needs data from the network: {first_line(error)}",
                hint="run it online once so the datasets cache holds its data, or use a local task (--include-path)",
            ) from None
        raise OlmoError(f"task {spec.name} failed: {type(error).__name__}: {first_line(error)}") from None
    if not results or spec.name not in results.get("results", {}):
        raise OlmoError(f"task {spec.name} gave no results")
    return metrics_of(results["results"][spec.name])


def metrics_of(entry: dict) -> dict[str, float]:
    """lm_eval's `acc,none` -> `acc` (the filter name kept when it is not `none`); numbers only."""
    metrics = {}
    for name, value in entry.items():
        if name in ("alias", "sample_len") or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        metric, _, filter_name = name.partition(",")
        metrics[metric if filter_name in ("", "none") else f"{metric}[{filter_name}]"] = float(value)
    return metrics


def _is_network(error: BaseException) -> bool:
    text = f"{type(error).__name__} {error}".lower()
    needles = ("connection", "offline", "couldn't reach", "could not reach", "network", "resolve host", "timed out")
    return isinstance(error, (ConnectionError, TimeoutError)) or any(n in text for n in needles)
