"""Rendering for the CLI: results on stdout (table, JSON or names), messages on stderr."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from olmo_cli.reporting import NullProgress, Reporter
from olmo_cli.reporting import format_size as format_size  # lives in the core, which formats sizes too


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, default=str) + "\n")


def print_lines(lines: Iterable[str]) -> None:
    sys.stdout.write("".join(f"{line}\n" for line in lines))


def print_table(columns: Sequence[str], rows: Iterable[Sequence[Any]], title: str | None = None) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(*columns, title=title, box=None, header_style="bold", pad_edge=False)
    for row in rows:
        # Text, not markup: cells hold model output and file names, where "[/x]" is just text.
        table.add_row(*(Text("" if cell is None else str(cell)) for cell in row))
    console = Console(soft_wrap=True)
    if not console.is_terminal:  # piped or captured: never wrap or cut cells
        console = Console(soft_wrap=True, width=10_000)
    console.on_broken_pipe = _broken_pipe  # type: ignore[method-assign]  # the CLI's exit code, not rich's 1
    console.print(table)


def _broken_pipe() -> None:
    raise BrokenPipeError


def one_line(text: str) -> str:
    """`text` with every run of whitespace (newlines included) folded to one space: error lines,
    table cells and headers built from library messages or model output stay one line."""
    return " ".join(str(text).split())


def say(message: str) -> None:
    """A message for the person at the terminal, on stderr."""
    sys.stderr.write(message + "\n")


class ConsoleReporter(Reporter):
    """Messages and rich progress bars on stderr; silent when `quiet`."""

    def __init__(self, quiet: bool = False):
        self.quiet = quiet

    def info(self, message: str) -> None:
        if not self.quiet:
            say(message)

    def warn(self, message: str) -> None:
        say(f"warning: {message}")

    @contextmanager
    def progress(self, description: str, total: float | None = None, unit: str = "") -> Iterator[Any]:
        if self.quiet:
            yield NullProgress()
            return
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        console = Console(stderr=True)
        if not console.is_terminal:  # a log file or a pipe: a bar would only leave blank lines
            yield NullProgress()
            return

        columns = [TextColumn("{task.description}"), BarColumn()]
        columns += (
            [DownloadColumn(), TransferSpeedColumn()]
            if unit == "B"
            else [TextColumn("{task.completed:.0f}/{task.total:.0f}")]
        )
        columns.append(TimeRemainingColumn())
        with Progress(*columns, console=console, transient=True) as bar:
            task = bar.add_task(description, total=total)
            yield _RichTask(bar, task)


class _RichTask:
    def __init__(self, bar, task):
        self.bar, self.task = bar, task

    def advance(self, amount: float = 1) -> None:
        self.bar.advance(self.task, amount)

    def describe(self, description: str) -> None:
        self.bar.update(self.task, description=description)
