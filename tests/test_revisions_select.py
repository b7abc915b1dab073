"""Selection of many revisions (range, every, log-spaced, stage, limit) and gaps."""

from __future__ import annotations

import math

import pytest

from olmo_cli.errors import UsageError
from olmo_cli.revisions.gaps import find_gaps, usual_interval
from olmo_cli.revisions.index import bundled_revisions
from olmo_cli.revisions.names import parse_revision
from olmo_cli.revisions.select import Selection, log_spaced, parse_bound


def revisions(repo="allenai/OLMo-7B"):
    return [parse_revision(name) for name in bundled_revisions(repo)]


def names(selected):
    return [r.name for r in selected]


@pytest.mark.parametrize(
    "text, step, tokens",
    [
        ("step100000", 100000, None),
        ("100000", 100000, None),
        ("step452000-tokens2000B", 452000, None),
        ("1.5T", None, 1500 * 10**9),
        ("800B", None, 800 * 10**9),
    ],
)
def test_bounds_accept_steps_and_token_counts(text, step, tokens):
    bound = parse_bound(text)
    assert (bound.step, bound.tokens) == (step, tokens)


def test_a_bound_that_is_neither_is_a_usage_error():
    with pytest.raises(UsageError, match="--to 'soon' is neither"):
        Selection(end="soon")


def test_step_range_is_inclusive_and_in_training_order():
    kept = Selection(start="step100000", end="103000").apply(list(reversed(revisions())))
    assert names(kept) == [
        "step100000-tokens442B",
        "step101000-tokens447B",
        "step102000-tokens451B",
        "step103000-tokens456B",
    ]


def test_token_range_and_every():
    kept = Selection(start="1.5T", end="2T", every=20000).apply(revisions())
    assert [r.step for r in kept] == [340000, 360000, 380000, 400000, 420000, 440000]
    assert all(1500 * 10**9 <= r.tokens <= 2000 * 10**9 for r in kept)


def test_from_after_to_is_a_usage_error():
    with pytest.raises(UsageError, match="--from 2T comes after --to 1T"):
        Selection(start="2T", end="1T")
    with pytest.raises(UsageError, match="comes after"):
        Selection(start="step200", end="100")
    # A token bound and a step bound compare through the revisions: 2T is step452000 in OLMo-7B.
    with pytest.raises(UsageError, match="--from 2T comes after --to step100000"):
        Selection(start="2T", end="step100000").apply(revisions())
    assert [r.step for r in Selection(start="1.99T", end="step452000").apply(revisions())] == [450000, 451000, 452000]


@pytest.mark.parametrize("field", ["every", "log_spaced", "limit"])
@pytest.mark.parametrize("value", [0, -3])
def test_counts_below_one_are_usage_errors(field, value):
    with pytest.raises(UsageError, match="must be at least 1"):
        Selection(**{field: value})


def test_log_spaced_picks_existing_revisions_evenly_in_log_step():
    kept = Selection(log_spaced=8).apply(revisions())
    steps = [r.step for r in kept]
    assert len(steps) == 8 and steps[0] == 1000 and steps[-1] == 557000
    low, high = math.log(1000), math.log(557000)
    targets = [low + (high - low) * i / 7 for i in range(8)]
    # Each pick is the existing step nearest its evenly spaced target (steps exist every 1000).
    all_steps = [r.step for r in revisions() if r.step > 0]
    for step, target in zip(steps, targets, strict=True):
        nearest = min(all_steps, key=lambda s: abs(math.log(s) - target))
        assert step == nearest
    assert set(names(kept)) <= set(bundled_revisions("allenai/OLMo-7B"))


def test_log_spaced_snaps_to_distinct_revisions_even_where_they_are_sparse():
    sparse = [parse_revision(f"step{s}") for s in (10, 11, 12, 13, 100000)]
    # Targets 10, ~46, ~215, 100000: the middle two both snap near 13, so the second takes 12.
    assert [r.step for r in log_spaced(sparse, 4)] == [10, 12, 13, 100000]
    assert len(log_spaced(sparse, 10)) == 5


def test_stage_and_limit_and_main_handling():
    mixed = [
        parse_revision(n)
        for n in ["main", "stage2-ingredient1-step10-tokens1B", "stage1-step5-tokens1B", "stage1-step9-tokens2B", "v1"]
    ]
    assert names(Selection(stage=1).apply(mixed)) == ["stage1-step5-tokens1B", "stage1-step9-tokens2B"]
    assert names(Selection(limit=2).apply(mixed)) == ["stage1-step5-tokens1B", "stage1-step9-tokens2B"]
    assert names(Selection().apply(mixed))[-2:] == ["main", "v1"]  # no selection: everything, main after
    assert "main" not in names(Selection(start="1").apply(mixed))


def test_gaps_in_the_real_lists():
    one_b = find_gaps(revisions("allenai/OLMo-1B"))
    assert [(g.before.name, g.after.name) for g in one_b] == [("step117850-tokens494B", "step330000-tokens1384B")]
    twin = find_gaps(revisions("allenai/OLMo-7B-Twin-2T"))
    assert [(g.before.step, g.after.step, g.steps) for g in twin] == [(89500, 237000, 147500)]
    assert find_gaps(revisions("allenai/OLMo-7B")) == []
    assert usual_interval(revisions("allenai/OLMo-7B")) == 1000
    assert twin[0].as_dict()["times_usual"] == 147.5


def test_gaps_need_two_checkpoints_and_ignore_stage_changes():
    assert find_gaps([parse_revision("step5")]) == []
    runs = [
        parse_revision(n)
        for n in ["stage1-step1-tokens1B", "stage1-step2-tokens1B", "stage1-step3-tokens1B", "stage2-step1000-tokens9B"]
    ]
    assert find_gaps(runs) == []


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_REAL = revisions("allenai/OLMo-1B")


@settings(max_examples=150, deadline=None)
@given(
    low=st.none() | st.integers(0, 800_000),
    span=st.integers(0, 800_000),
    every=st.none() | st.integers(1, 50_000),
    log=st.none() | st.integers(1, 40),
    limit=st.none() | st.integers(1, 50),
)
def test_selection_properties_over_the_real_1b_list(low, span, every, log, limit):
    high = None if low is None else low + span
    kept = Selection(
        start=None if low is None else str(low),
        end=None if high is None else f"step{high}",
        every=every,
        log_spaced=log,
        limit=limit,
    ).apply(_REAL)
    steps = [r.step for r in kept]
    assert steps == sorted(set(steps))  # training order, no duplicates
    assert set(names(kept)) <= set(names(_REAL))
    if low is not None:
        assert all(low <= s <= high for s in steps)
    if every is not None:
        assert all(s % every == 0 for s in steps)
    if limit is not None:
        assert len(kept) <= limit
    if log is not None:
        assert len(kept) <= log
