"""The output directory rules shared with `olmo convert`, plus the early refusal of an existing DST."""

from __future__ import annotations

from pathlib import Path

from olmo_cli.checkpoints.atomic import atomic_output_dir, check_writable
from olmo_cli.errors import ExistsError

__all__ = ["atomic_output_dir", "check_destination"]


def check_destination(dst: Path, force: bool) -> None:
    """Refuse before any slow work: an existing `dst` without --force, or a parent we cannot write."""
    if dst.exists() and not force:
        raise ExistsError(f"{dst} already exists", hint="pass --force to replace it, or choose another output")
    check_writable(dst.parent)
