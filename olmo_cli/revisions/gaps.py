"""Gaps: consecutive checkpoints much further apart than the repo's usual interval.

The usual interval is the median step difference between consecutive checkpoints (of the same
stage and ingredient); a gap is a difference more than `factor` times that. The real lists have
them: OLMo-1B step117850 -> step330000, OLMo-7B-Twin-2T step89500 -> step237000.
"""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from olmo_cli.revisions.names import Revision, training_order

# OLMo-1B's sparse stretches (10x-20x its 1000-step interval) are a release pattern, not lost
# checkpoints; the lost ranges are 100x and more.
DEFAULT_FACTOR = 25


@dataclass(frozen=True)
class Gap:
    before: Revision  # the last checkpoint before the gap
    after: Revision  # the first checkpoint after it
    usual: int  # the repo's usual step interval

    @property
    def steps(self) -> int:
        return self.after.checkpoint_step - self.before.checkpoint_step

    def as_dict(self) -> dict:
        return {
            "from": self.before.name,
            "to": self.after.name,
            "steps": self.steps,
            "usual_interval": self.usual,
            "times_usual": round(self.steps / self.usual, 1),
        }


def usual_interval(revisions: Sequence[Revision]) -> int | None:
    """The median step difference between consecutive checkpoints, or None with fewer than two."""
    differences = [b.checkpoint_step - a.checkpoint_step for a, b in _consecutive(revisions)]
    return int(statistics.median(differences)) if differences else None


def find_gaps(revisions: Sequence[Revision], factor: float = DEFAULT_FACTOR) -> list[Gap]:
    usual = usual_interval(revisions)
    if not usual:
        return []
    return [
        Gap(a, b, usual) for a, b in _consecutive(revisions) if b.checkpoint_step - a.checkpoint_step > factor * usual
    ]


def _consecutive(revisions: Sequence[Revision]):
    """Neighbouring checkpoints of the same (stage, ingredient) run, in training order."""
    checkpoints = training_order(r for r in revisions if r.is_checkpoint)
    for a, b in itertools.pairwise(checkpoints):
        if (a.stage, a.ingredient) == (b.stage, b.ingredient) and b.checkpoint_step > a.checkpoint_step:
            yield a, b
