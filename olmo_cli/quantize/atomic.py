"""Write an output directory all at once: into a temporary sibling, renamed into place at the end.

Uses the conversion's `olmo_cli.checkpoints.atomic.atomic_output_dir` when it is there, so both
commands share one set of rules; the small fallback below follows the same contract.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from olmo_cli.errors import ExistsError


def check_destination(dst: Path, force: bool) -> None:
    """ExistsError for an existing `dst` without --force (checked before any slow work)."""
    if dst.exists() and not force:
        raise ExistsError(f"{dst} already exists", hint="choose another directory, or pass --force to replace it")


@contextmanager
def atomic_output_dir(dst: Path, force: bool) -> Iterator[Path]:
    try:
        from olmo_cli.checkpoints.atomic import atomic_output_dir as shared
    except ImportError:
        shared = _atomic_output_dir
    with shared(Path(dst), force) as tmp:
        yield Path(tmp)


@contextmanager
def _atomic_output_dir(dst: Path, force: bool) -> Iterator[Path]:
    check_destination(dst, force)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dst.name}.tmp-", dir=dst.parent))
    try:
        yield tmp
        if dst.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{dst.name}.old-", dir=dst.parent))
            os.replace(dst, old / dst.name)
            os.replace(tmp, dst)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, dst)
    except BaseException:  # KeyboardInterrupt too: never leave a half-written directory behind
        shutil.rmtree(tmp, ignore_errors=True)
        raise
