"""Revision names as values: `step452000-tokens2000B` -> step 452000, 2_000_000_000_000 tokens.

Families (docs/REFERENCE.md section 2): `step{N}-tokens{T}B`, `stage{S}-step{N}-tokens{T}B`,
`stage{S}-ingredient{K}-step{N}-tokens{T}B`, `step{N}`, `step_{N}`, OLMo 3's token-less
`stage{S}-step{N}`; souped ingredients `stage2-ingredient1+2-step23842` (`ingredients` (1, 2));
ablation branches with a trailing `variant`
(`stage2-step47684-mix-math-code-reasoning-web-from-2T-ckpt`). `main`, tags, commit shas and
anything else are kept as opaque names: parsing never fails.

Numbers are read only in canonical decimal (no leading zeros), so that for every checkpoint name
`format_checkpoint_name(**fields) == name`; `step007` is an opaque name, not step 7.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from olmo_cli.errors import UsageError

BILLION = 1_000_000_000

CHECKPOINT = "checkpoint"
MAIN = "main"
COMMIT = "commit"
OTHER = "other"

# At most 18 digits (steps and token counts far beyond any run): a longer number is an opaque
# name, never a 5,000-digit int() that Python refuses.
MAX_DIGITS = 18
_NUM = rf"(0|[1-9][0-9]{{0,{MAX_DIGITS - 1}}})"
# A variant is a dash-separated suffix of words; its first word starts with a letter and is not
# a (malformed) token count, so `step5-tokens007B` stays opaque.
_VARIANT = r"(?!tokens[0-9])[A-Za-z][A-Za-z0-9]*(?:-[A-Za-z0-9]+)*"
_INT = rf"(?:0|[1-9][0-9]{{0,{MAX_DIGITS - 1}}})"
_CHECKPOINT_RE = re.compile(
    rf"(?:stage{_NUM}-)?(?:ingredient({_INT}(?:\+{_INT})*)-)?step(_)?{_NUM}(?:-tokens{_NUM}B)?(?:-({_VARIANT}))?"
)
_SHA_RE = re.compile(r"[0-9a-f]{40}")

# Training order groups: checkpoints first, then the final model, then everything else.
_GROUP = {CHECKPOINT: 0, MAIN: 1, OTHER: 2, COMMIT: 3}


@dataclass(frozen=True)
class Revision:
    """A parsed revision name. `name` is always the exact string that was parsed."""

    name: str
    step: int | None = None
    tokens: int | None = None  # a count of tokens: tokens84B -> 84_000_000_000
    stage: int | None = None
    ingredient: int | None = None
    kind: str = OTHER
    underscore: bool = False  # `step_{N}` (instruct checkpoints) rather than `step{N}`
    ingredients: tuple[int, ...] | None = None  # a soup of several ingredients: ingredient1+2 -> (1, 2)
    variant: str | None = None  # an ablation branch's suffix, e.g. "mix-math-code-reasoning-web-from-2T-ckpt"

    def __str__(self) -> str:
        return self.name

    @property
    def is_checkpoint(self) -> bool:
        return self.kind == CHECKPOINT

    @property
    def checkpoint_step(self) -> int:
        """The step of a checkpoint, which every checkpoint has; ValueError for other names."""
        if self.step is None:
            raise ValueError(f"'{self.name}' is not a step checkpoint")
        return self.step

    @property
    def sort_key(self) -> tuple:
        """Training order: (stage, ingredient, step), numerically; names only break ties.

        A name without a stage is stage 1 (some OLMo 2 repos name early stage-1 steps both ways);
        a soup sorts after the ingredients it mixes; a variant right after its plain step.
        """
        ingredient = float(self.ingredient) if self.ingredient is not None else 0.0
        if self.ingredients:
            ingredient = max(self.ingredients) + 0.5
        return (
            _GROUP[self.kind],
            self.stage if self.stage is not None else 1,
            ingredient,
            self.step if self.step is not None else 0,
            self.variant is not None,
            self.name,
        )

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "step": self.step,
            "tokens": self.tokens,
            "stage": self.stage,
            "ingredient": self.ingredient,
            "ingredients": list(self.ingredients) if self.ingredients else None,
            "variant": self.variant,
        }


def parse_revision(name: str) -> Revision:
    """Parse any revision name; unknown shapes come back as opaque (kind 'other')."""
    match = _CHECKPOINT_RE.fullmatch(name)
    if match:
        stage, ingredient, underscore, step, tokens, variant = match.groups()
        # step_{N} (instruct checkpoints) never carries stage or tokens in the wild; keep it strict.
        if not underscore or (stage is None and ingredient is None and tokens is None and variant is None):
            soup = tuple(int(k) for k in ingredient.split("+")) if ingredient and "+" in ingredient else None
            return Revision(
                name=name,
                step=int(step),
                tokens=int(tokens) * BILLION if tokens is not None else None,
                stage=int(stage) if stage is not None else None,
                ingredient=int(ingredient) if ingredient is not None and soup is None else None,
                kind=CHECKPOINT,
                underscore=bool(underscore),
                ingredients=soup,
                variant=variant,
            )
    if name == "main":
        return Revision(name=name, kind=MAIN)
    if _SHA_RE.fullmatch(name):
        return Revision(name=name, kind=COMMIT)
    return Revision(name=name, kind=OTHER)


def format_checkpoint_name(
    step: int,
    tokens: int | None = None,
    stage: int | None = None,
    ingredient: int | None = None,
    underscore: bool = False,
    ingredients: tuple[int, ...] | None = None,
    variant: str | None = None,
) -> str:
    """The name for these fields; the inverse of `parse_revision` on checkpoint names."""
    if tokens is not None and tokens % BILLION:
        raise ValueError(f"token counts in names are whole billions, got {tokens}")
    parts = []
    if stage is not None:
        parts.append(f"stage{stage}")
    if ingredients:
        parts.append("ingredient" + "+".join(str(k) for k in ingredients))
    elif ingredient is not None:
        parts.append(f"ingredient{ingredient}")
    parts.append(f"step_{step}" if underscore else f"step{step}")
    if tokens is not None:
        parts.append(f"tokens{tokens // BILLION}B")
    if variant:
        parts.append(variant)
    return "-".join(parts)


def format_revision(revision: Revision) -> str:
    """The name a parsed revision stands for, rebuilt from its fields (opaque names as they are)."""
    if revision.kind != CHECKPOINT:
        return revision.name
    return format_checkpoint_name(
        revision.checkpoint_step,
        revision.tokens,
        revision.stage,
        revision.ingredient,
        revision.underscore,
        revision.ingredients,
        revision.variant,
    )


def parse_step_number(text: str) -> int | None:
    """A bare step number (`452000`) -> its value; None for anything else. ASCII digits only
    (`str.isdigit` also accepts '²', which int() refuses); UsageError for more than MAX_DIGITS."""
    if not (text.isascii() and text.isdigit()):
        return None
    if len(text) > MAX_DIGITS:
        raise UsageError(f"step {text[:12]}... ({len(text)} digits) is too large", hint="a step has at most 18 digits")
    return int(text)


def is_commit_sha(text: str) -> bool:
    return bool(_SHA_RE.fullmatch(text))


def training_order(revisions):
    """Revisions sorted by training progress (a new list)."""
    return sorted(revisions, key=lambda revision: revision.sort_key)


def format_tokens(tokens: int | None) -> str:
    """A token count for people: 84_000_000_000 -> '84B', 2_460_000_000_000 -> '2.46T'."""
    if tokens is None:
        return ""
    if tokens == 0:
        return "0B"
    for unit, size in (("T", 1000 * BILLION), ("B", BILLION), ("M", 1_000_000)):
        if tokens >= size:
            return f"{tokens / size:.3f}".rstrip("0").rstrip(".") + unit
    return str(tokens)


_UNITS = {"k": 1_000, "m": 1_000_000, "b": BILLION, "t": 1000 * BILLION}
_TOKEN_COUNT_RE = re.compile(
    rf"(?:tokens\s*=\s*|tokens)?([0-9]{{1,{MAX_DIGITS}}}(?:\.[0-9]{{1,{MAX_DIGITS}}})?)\s*([kmbt])", re.IGNORECASE
)


def parse_token_count(text: str) -> int | None:
    """'2T', '2000B', '1.5T', '800b', 'tokens=2000B', 'tokens2000B' -> a count; else None."""
    match = _TOKEN_COUNT_RE.fullmatch(text.strip())
    if not match:
        return None
    number, unit = match.groups()
    # Decimal arithmetic without float error: '1.1T' must be exactly 1_100_000_000_000.
    whole, _, fraction = number.partition(".")
    scale = _UNITS[unit.lower()]
    value = int(whole) * scale + (int(fraction) * scale // 10 ** len(fraction) if fraction else 0)
    return value
