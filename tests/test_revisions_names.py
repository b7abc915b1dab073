"""Revision names: every family parses, formatting gives back the exact string, training order."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from olmo_cli.revisions.index import bundled_revisions, known_repos, parse_index, repos_with_revision
from olmo_cli.revisions.names import (
    BILLION,
    CHECKPOINT,
    COMMIT,
    MAIN,
    OTHER,
    format_checkpoint_name,
    format_revision,
    format_tokens,
    parse_revision,
    parse_token_count,
    training_order,
)

SHARED_REVISIONS = Path(__file__).resolve().parents[2] / "shared" / "data" / "revisions"
REPO_FILES = {
    "allenai/OLMo-1B": "OLMo-1B.txt",
    "allenai/OLMo-7B": "OLMo-7B.txt",
    "allenai/OLMo-7B-Twin-2T": "OLMo-7B-Twin-2T.txt",
}


@pytest.mark.parametrize(
    "name, step, tokens, stage, ingredient",
    [
        ("step452000-tokens2000B", 452000, 2000 * BILLION, None, None),
        ("step0-tokens0B", 0, 0, None, None),
        ("stage1-step928646-tokens3896B", 928646, 3896 * BILLION, 1, None),
        ("stage2-ingredient3-step11931-tokens100B", 11931, 100 * BILLION, 2, 3),
        ("step143000", 143000, None, None, None),
        ("step_1000", 1000, None, None, None),
    ],
)
def test_every_family_parses_into_fields(name, step, tokens, stage, ingredient):
    parsed = parse_revision(name)
    assert (parsed.step, parsed.tokens, parsed.stage, parsed.ingredient) == (step, tokens, stage, ingredient)
    assert parsed.kind == CHECKPOINT
    assert format_revision(parsed) == name


@pytest.mark.parametrize(
    "name, kind",
    [
        ("main", MAIN),
        ("0123456789abcdef0123456789abcdef01234567", COMMIT),
        ("v1.0", OTHER),
        ("step007", OTHER),
        ("step1000-tokens04B", OTHER),
        ("stage1-step_5", OTHER),
        ("", OTHER),
        ("step12-tokens3.5B", OTHER),
        ("refs/pr/1", OTHER),
        ("STEP1000", OTHER),
    ],
)
def test_other_names_are_kept_opaque(name, kind):
    parsed = parse_revision(name)
    assert parsed.kind == kind
    assert parsed.step is None and parsed.tokens is None
    assert format_revision(parsed) == name


@pytest.mark.parametrize("repo", sorted(REPO_FILES))
def test_every_real_name_parses_and_round_trips(repo):
    names = bundled_revisions(repo)
    assert len(names) in (335, 558, 300)
    for name in names:
        parsed = parse_revision(name)
        assert parsed.kind == CHECKPOINT and parsed.tokens is not None, name
        assert format_revision(parsed) == name
    # The bundled lists are already in training order, and training order is not string order.
    assert [r.name for r in training_order(parse_revision(n) for n in reversed(names))] == names
    assert sorted(names) != names


@pytest.mark.skipif(not SHARED_REVISIONS.is_dir(), reason="the shared data directory is only on the dev machine")
@pytest.mark.parametrize("repo", sorted(REPO_FILES))
def test_bundled_index_matches_the_shared_branch_lists_exactly(repo):
    lines = (SHARED_REVISIONS / REPO_FILES[repo]).read_text().splitlines()
    assert bundled_revisions(repo) == [line for line in lines if line.strip()]


def test_index_covers_the_three_repos_and_reads_the_packaged_file():
    assert known_repos() == ["allenai/OLMo-1B", "allenai/OLMo-7B", "allenai/OLMo-7B-Twin-2T"]
    assert bundled_revisions("allenai/OLMo-7B-hf") is None
    assert repos_with_revision("step452000-tokens2000B") == ["allenai/OLMo-7B"]
    assert repos_with_revision("step1000-tokens4B") == ["allenai/OLMo-7B", "allenai/OLMo-7B-Twin-2T"]


def test_index_format_sections_comments_and_errors():
    text = "# comment\n\n[a/b]\nstep1\n  step2  \n[c/d]\nmain\n"
    assert parse_index(text) == {"a/b": ["step1", "step2"], "c/d": ["main"]}
    with pytest.raises(ValueError, match="line 1"):
        parse_index("step1\n[a/b]\n")


def test_training_order_by_stage_ingredient_step_then_main_then_others():
    names = [
        "main",
        "v1",
        "stage2-ingredient2-step100-tokens1B",
        "stage2-ingredient1-step900-tokens9B",
        "stage1-step10000-tokens40B",
        "stage1-step9000-tokens36B",
        "0123456789abcdef0123456789abcdef01234567",
    ]
    assert [r.name for r in training_order(parse_revision(n) for n in names)] == [
        "stage1-step9000-tokens36B",
        "stage1-step10000-tokens40B",
        "stage2-ingredient1-step900-tokens9B",
        "stage2-ingredient2-step100-tokens1B",
        "main",
        "v1",
        "0123456789abcdef0123456789abcdef01234567",
    ]


@pytest.mark.parametrize(
    "text, count",
    [
        ("2T", 2000 * BILLION),
        ("2000B", 2000 * BILLION),
        ("tokens=2000B", 2000 * BILLION),
        ("1.5T", 1500 * BILLION),
        ("800b", 800 * BILLION),
        ("1.1T", 1100 * BILLION),
        ("step5", None),
        ("2X", None),
        ("1.5", None),
    ],
)
def test_token_counts(text, count):
    assert parse_token_count(text) == count


@pytest.mark.parametrize(
    "count, text", [(84 * BILLION, "84B"), (2460 * BILLION, "2.46T"), (2 * 10**12, "2T"), (0, "0B"), (None, "")]
)
def test_tokens_for_people(count, text):
    assert format_tokens(count) == text


_numbers = st.integers(min_value=0, max_value=10**9)


@settings(max_examples=300, deadline=None)
@given(
    step=_numbers,
    tokens=st.none() | _numbers,
    stage=st.none() | _numbers,
    ingredient=st.none() | _numbers,
    underscore=st.booleans(),
)
def test_formatting_then_parsing_gives_the_same_fields_and_name(step, tokens, stage, ingredient, underscore):
    underscore = underscore and tokens is None and stage is None and ingredient is None
    name = format_checkpoint_name(step, None if tokens is None else tokens * BILLION, stage, ingredient, underscore)
    parsed = parse_revision(name)
    assert (parsed.step, parsed.stage, parsed.ingredient) == (step, stage, ingredient)
    assert parsed.tokens == (None if tokens is None else tokens * BILLION)
    assert format_revision(parsed) == name


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="step_tokensBagi0123456789-/", max_size=40) | st.text(max_size=20))
def test_any_string_parses_without_error_and_formats_back(text):
    assert format_revision(parse_revision(text)) == text


def test_the_packaged_index_is_the_top_level_revisions_txt():
    from importlib import resources

    top_level = Path(__file__).resolve().parent.parent / "revisions.txt"
    packaged = resources.files("olmo_cli").joinpath("data/revisions.txt").read_text(encoding="utf-8")
    assert packaged == top_level.read_text(encoding="utf-8")
    assert {repo: names for repo, names in parse_index(packaged).items()} == {
        repo: bundled_revisions(repo) for repo in known_repos()
    }


@pytest.mark.parametrize(
    "name, stage, ingredient, ingredients, step, variant",
    [
        ("stage1-step1413814", 1, None, None, 1413814, None),  # OLMo 3: no token suffix
        ("stage3-step11921", 3, None, None, 11921, None),
        (
            "stage2-step47684-mix-math-code-reasoning-web-from-2T-ckpt",
            2,
            None,
            None,
            47684,
            "mix-math-code-reasoning-web-from-2T-ckpt",
        ),
        ("stage2-step47684-mix-gen-mc-only-from-2T-ckpt", 2, None, None, 47684, "mix-gen-mc-only-from-2T-ckpt"),
        ("stage2-ingredient1+2-step23842", 2, None, (1, 2), 23842, None),
        ("stage2-ingredient3-step11931-tokens50B", 2, 3, None, 11931, None),
    ],
)
def test_olmo2_and_olmo3_names_with_variants_and_soups(name, stage, ingredient, ingredients, step, variant):
    parsed = parse_revision(name)
    assert parsed.kind == CHECKPOINT
    assert (parsed.stage, parsed.ingredient, parsed.ingredients, parsed.step, parsed.variant) == (
        stage,
        ingredient,
        ingredients,
        step,
        variant,
    )
    assert format_revision(parsed) == name


def test_variants_and_soups_sort_with_their_stage_and_step():
    names = [
        "main",
        "stage2-ingredient1+2-step23842",
        "stage3-step11921",
        "stage2-step47684-mix-math-code-reasoning-web-from-2T-ckpt",
        "stage2-ingredient2-step23842",
        "stage2-step47684",
        "stage1-step1413814",
        "stage2-ingredient1-step23842",
        "step150-tokens1B",  # OLMo 2 7B's early stage-1 branches lack the prefix
        "stage1-step1000-tokens5B",
    ]
    assert [r.name for r in training_order(map(parse_revision, names))] == [
        "step150-tokens1B",
        "stage1-step1000-tokens5B",
        "stage1-step1413814",
        "stage2-step47684",
        "stage2-step47684-mix-math-code-reasoning-web-from-2T-ckpt",
        "stage2-ingredient1-step23842",
        "stage2-ingredient2-step23842",
        "stage2-ingredient1+2-step23842",
        "stage3-step11921",
        "main",
    ]


@pytest.mark.parametrize(
    "name", ["step5-tokens007B", "stage1-step_5", "step_5-x", "stage2-ingredient01+2-step5", "step5-"]
)
def test_malformed_variants_stay_opaque(name):
    assert parse_revision(name).kind == OTHER
