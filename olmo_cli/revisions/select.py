"""Selecting many revisions at once: a step or token range, every N steps, log-spaced, a stage, a limit.

Shared by every command that takes many revisions (list-revisions, download, cache). The bounds
are given as people type them: `step100000`, `100000`, `1.5T`, `800B`, or a full revision name.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from olmo_cli.errors import UsageError
from olmo_cli.revisions.names import Revision, parse_revision, parse_step_number, parse_token_count, training_order


@dataclass(frozen=True)
class Bound:
    """One end of a range: a step or a token count."""

    text: str
    step: int | None = None
    tokens: int | None = None

    def value_of(self, revision: Revision) -> int | None:
        return revision.step if self.step is not None else revision.tokens

    @property
    def value(self) -> int:
        value = self.step if self.step is not None else self.tokens
        if value is None:  # parse_bound always sets one of the two
            raise ValueError("a bound with neither a step nor a token count")
        return value


def parse_bound(text: str, option: str = "--from") -> Bound:
    """`step100000`, `100000`, a revision name -> a step bound; `1.5T`, `800B` -> a token bound."""
    cleaned = text.strip()
    number = parse_step_number(cleaned)
    if number is not None:
        return Bound(text, step=number)
    parsed = parse_revision(cleaned)
    if parsed.step is not None:
        return Bound(text, step=parsed.step)
    tokens = parse_token_count(cleaned)
    if tokens is not None:
        return Bound(text, tokens=tokens)
    raise UsageError(
        f"{option} '{text}' is neither a step nor a token count", hint="use e.g. step100000, 100000, 1.5T or 800B"
    )


@dataclass(frozen=True)
class Selection:
    """Which revisions to keep; every field None means 'all'. Invalid combinations raise UsageError."""

    start: str | None = None
    end: str | None = None
    every: int | None = None
    log_spaced: int | None = None
    stage: int | None = None
    limit: int | None = None

    def __post_init__(self):
        for option, value in (("--every", self.every), ("--log-spaced", self.log_spaced), ("--limit", self.limit)):
            if value is not None and value < 1:
                raise UsageError(f"{option} must be at least 1, got {value}")
        if self.stage is not None and self.stage < 0:
            raise UsageError(f"--stage must be 0 or more, got {self.stage}")
        low, high = self.bounds()
        if low and high and (low.step is None) == (high.step is None) and low.value > high.value:
            raise UsageError(
                f"--from {low.text} comes after --to {high.text}",
                hint="swap them: --from is the earlier end of the range",
            )

    def bounds(self) -> tuple[Bound | None, Bound | None]:
        low = parse_bound(self.start, "--from") if self.start is not None else None
        high = parse_bound(self.end, "--to") if self.end is not None else None
        return low, high

    @property
    def active(self) -> bool:
        return any(
            value is not None for value in (self.start, self.end, self.every, self.log_spaced, self.stage, self.limit)
        )

    def describe(self) -> str:
        parts = [
            f"{flag} {value}"
            for flag, value in (
                ("--from", self.start),
                ("--to", self.end),
                ("--every", self.every),
                ("--log-spaced", self.log_spaced),
                ("--stage", self.stage),
                ("--limit", self.limit),
            )
            if value is not None
        ]
        return " ".join(parts) or "(everything)"

    def apply(self, revisions: Sequence[Revision]) -> list[Revision]:
        """The kept revisions, in training order. Only checkpoints survive an active selection
        (except a lone --limit): `main` and tags have no step to compare."""
        ordered = training_order(revisions)
        if not self.active:
            return ordered
        kept = [r for r in ordered if r.is_checkpoint] if self._filters() else ordered
        if self.stage is not None:
            kept = [r for r in kept if r.stage == self.stage]
        low, high = self.bounds()
        if low and high and (low.step is None) != (high.step is None):
            _check_mixed_order(low, high, kept)
        if low:
            kept = [r for r in kept if (v := low.value_of(r)) is not None and v >= low.value]
        if high:
            kept = [r for r in kept if (v := high.value_of(r)) is not None and v <= high.value]
        if self.every is not None:
            kept = [r for r in kept if r.step % self.every == 0]
        if self.log_spaced is not None:
            kept = log_spaced(kept, self.log_spaced)
        if self.limit is not None:
            kept = kept[: self.limit]
        return kept

    def _filters(self) -> bool:
        return any(value is not None for value in (self.start, self.end, self.every, self.log_spaced, self.stage))


def _check_mixed_order(low: Bound, high: Bound, revisions: Sequence[Revision]) -> None:
    """A step bound and a token bound can only be compared through the revisions themselves."""
    first = next((r for r in revisions if (v := low.value_of(r)) is not None and v >= low.value), None)
    last = next((r for r in reversed(revisions) if (v := high.value_of(r)) is not None and v <= high.value), None)
    if first is not None and last is not None and first.sort_key > last.sort_key:
        raise UsageError(
            f"--from {low.text} comes after --to {high.text} ({first.name} is later than {last.name})",
            hint="swap them: --from is the earlier end of the range",
        )


def log_spaced(revisions: Sequence[Revision], count: int) -> list[Revision]:
    """`count` revisions spread evenly in log(step) between the first and last positive step,
    each target snapped to the nearest existing revision not taken yet (so the answer has
    min(count, len) distinct revisions). Step 0 has no logarithm and is never picked."""
    pool = [r for r in revisions if r.step is not None and r.step > 0]
    if count >= len(pool):
        return training_order(pool)
    positions = [math.log(r.checkpoint_step) for r in pool]
    low, high = min(positions), max(positions)
    targets = [low] if count == 1 else [low + (high - low) * i / (count - 1) for i in range(count)]
    taken: set[int] = set()
    for target in targets:
        best = min((i for i in range(len(pool)) if i not in taken), key=lambda i: (abs(positions[i] - target), i))
        taken.add(best)
    return training_order(pool[i] for i in taken)
