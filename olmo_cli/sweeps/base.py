"""The executor protocol, the local executor, and what the cluster executors share."""

from __future__ import annotations

import contextlib
import importlib
import os
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from olmo_cli.errors import BadInputError, UnsupportedError

if TYPE_CHECKING:
    from olmo_cli.reporting import Reporter

EXECUTORS = ("local", "ray", "slurm")


@dataclass(frozen=True)
class Failure:
    """A unit whose worker never returned (it died on every try, or its job failed)."""

    message: str


class Executor(Protocol):
    name: str
    remote: bool  # False: fn runs in this process (it may be a closure); True: fn and items are pickled

    def check_shared(self, paths: dict[str, Path]) -> None:
        """Fail with a one-line error naming a path a worker cannot see or write."""

    def map(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> Iterator[tuple[int, Any]]:
        """(index, fn(items[index])) as each finishes, in any order; a Failure when it never did.
        Closing the iterator early (Ctrl-C) cancels what has not finished."""
        ...


class LocalExecutor:
    """Here, in order: today's behaviour."""

    name = "local"
    remote = False

    def check_shared(self, paths: dict[str, Path]) -> None:
        pass

    def map(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> Iterator[tuple[int, Any]]:
        for index, item in enumerate(items):
            yield index, fn(item)


@contextlib.contextmanager
def mapped(executor: Executor, fn: Callable[[Any], Any], items: Sequence[Any]) -> Iterator[Iterator[tuple[int, Any]]]:
    """`executor.map(fn, items)`, closed on the way out: a caller that stops early (Ctrl-C, a
    usage error) cancels the outstanding tasks; what already finished stays finished."""
    results = executor.map(fn, items)
    try:
        yield results
    finally:
        close = getattr(results, "close", None)
        if close is not None:
            close()


def write_dry_run(executor: Executor, count: int, reporter: Reporter) -> bool:
    """With a dry-run SLURM executor, write the sbatch script for `count` units, say so, and
    return True (the caller submits nothing); otherwise False."""
    if not getattr(executor, "dry_run", False):
        return False
    path = executor.write_script(count)  # type: ignore[attr-defined]
    reporter.info(f"wrote {path} ({count} unit(s)); submitted nothing")
    return True


def report_attached(executor: Executor, reporter: Reporter) -> None:
    """SLURM: say how many jobs an earlier run had submitted that this one waited on."""
    if getattr(executor, "attached", 0):
        reporter.info(f"waited on {executor.attached} SLURM job(s) an earlier run had submitted")  # type: ignore[attr-defined]


def require(module: str, executor: str):
    """Import Ray or submitit, or fail with a hint that names the extra."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise UnsupportedError(
            f"--executor {executor} needs {module}, which is not installed",
            hint="pip install 'olmo-cli[cluster]'",
        ) from None


def check_writable_here(paths: dict[str, Path]) -> None:
    """Each path exists (made if missing) and takes a file: what a worker on this machine needs."""
    for what, path in paths.items():
        probe = path / f".olmo-probe-{uuid.uuid4().hex}"
        try:
            path.mkdir(parents=True, exist_ok=True)
            probe.write_text("ok", encoding="utf-8")
            probe.unlink()
        except OSError as error:
            raise BadInputError(
                f"the {what} {path} is not writable: {error.strerror or error}",
                hint="workers write there too: put it on a filesystem every worker sees",
            ) from None


# What a worker needs to find the same Hub, HF cache and olmo cache as the driver. Tokens are not
# sent along: a worker uses its own HF_TOKEN or `hf auth login`.
def worker_environment() -> dict[str, str]:
    from olmo_cli.hub import env
    from olmo_cli.paths import olmo_cache_dir

    out = {
        "HF_HUB_CACHE": str(env.hub_cache_dir().absolute()),
        "OLMO_CACHE_DIR": str(olmo_cache_dir().absolute()),
    }
    for name in ("HF_ENDPOINT", "HF_HUB_OFFLINE", "HF_HUB_DISABLE_TELEMETRY", "HF_HUB_DISABLE_PROGRESS_BARS"):
        if os.environ.get(name):
            out[name] = os.environ[name]
    return out


def apply_environment(environment: dict[str, str]) -> None:
    os.environ.update(environment)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
