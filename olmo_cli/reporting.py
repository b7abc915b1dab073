"""How core code tells the user what it is doing without printing.

Core modules take a `Reporter` (default: `NULL_REPORTER`, which says nothing). The CLI
passes one that writes to stderr and draws progress bars (`olmo_cli.cli.output`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol


class Progress(Protocol):
    def advance(self, amount: float = 1) -> None: ...

    def describe(self, description: str) -> None: ...


class Reporter:
    """Says nothing. Subclass and override what you want to show."""

    def info(self, message: str) -> None:
        pass

    def warn(self, message: str) -> None:
        pass

    @contextmanager
    def progress(self, description: str, total: float | None = None, unit: str = "") -> Iterator[Progress]:
        yield NullProgress()


class NullProgress:
    def advance(self, amount: float = 1) -> None:
        pass

    def describe(self, description: str) -> None:
        pass


NULL_REPORTER = Reporter()


def format_size(size: int) -> str:
    """Bytes for people, in powers of 1024: 13.4 MiB, 1.2 GiB."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(value) < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"
