"""The commands list-revisions, parse-revision, resolve and models, end to end through the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import assert_one_line_error, olmo

SEVEN_B = "allenai/OLMo-7B"


def one_line_error(result, code: int, fragment: str):
    assert_one_line_error(result, code, fragment)
    assert result.stdout == ""


def add_repo(hub):
    names = [
        "main",
        "step0-tokens0B",
        "step1000-tokens4B",
        "step2000-tokens8B",
        "step90000-tokens377B",
        "stage2-ingredient1-step10-tokens1B",
        "v1.0",
    ]
    hub.add_repo("someone/OLMo-mini", branches={name: {"config.json": name.encode()} for name in names})


# ----- list-revisions -----


def test_list_offline_table_with_source_on_stderr():
    result = olmo("list-revisions", SEVEN_B, "--offline", "--from", "step1000", "--to", "3000")
    assert result.exit_code == 0, result.stderr
    assert "source: bundled index + local cache" in result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["revision", "step", "tokens", "stage/ingredient", "cached"]
    assert [line.split()[:3] for line in lines[1:]] == [
        ["step1000-tokens4B", "1000", "4B"],
        ["step2000-tokens9B", "2000", "9B"],
        ["step3000-tokens13B", "3000", "13B"],
    ]


def test_list_json_keys_and_cached_flag(fake_hub):
    add_repo(fake_hub)
    sha = fake_hub.commit("someone/OLMo-mini", "step1000-tokens4B")
    (Path(os.environ["HF_HUB_CACHE"]) / "models--someone--OLMo-mini" / "snapshots" / sha).mkdir(parents=True)
    result = olmo("list-revisions", "someone/OLMo-mini", "--json")
    assert result.exit_code == 0, result.stderr
    assert result.stderr.strip() == "source: hub"
    rows = json.loads(result.stdout)
    assert [row["name"] for row in rows] == [
        "step0-tokens0B",
        "step1000-tokens4B",
        "step2000-tokens8B",
        "step90000-tokens377B",
        "stage2-ingredient1-step10-tokens1B",
        "main",
        "v1.0",
    ]
    assert set(rows[0]) == {"name", "step", "tokens", "stage", "ingredient", "ingredients", "variant", "cached"}
    assert rows[1] == {
        "name": "step1000-tokens4B",
        "step": 1000,
        "tokens": 4 * 10**9,
        "stage": None,
        "ingredient": None,
        "ingredients": None,
        "variant": None,
        "cached": True,
    }
    assert [row["cached"] for row in rows].count(True) == 1
    assert rows[4]["stage"] == 2 and rows[4]["ingredient"] == 1
    again = olmo("list-revisions", "someone/OLMo-mini", "-q")
    assert again.stderr.startswith("source: hub (cached ")
    assert again.stdout.splitlines()[-2:] == ["main", "v1.0"]
    assert len([r for r in fake_hub.requests if r.path.endswith("/refs")]) == 1
    olmo("list-revisions", "someone/OLMo-mini", "-q", "--refresh")
    assert len([r for r in fake_hub.requests if r.path.endswith("/refs")]) == 2


def test_list_quiet_with_selection_flags():
    result = olmo("list-revisions", "allenai/OLMo-1B", "--offline", "-q", "--log-spaced", "5")
    # Evenly spaced in log(step) from 20000 to 738020, snapped to what exists (the 1B has a gap).
    assert result.stdout.splitlines() == [
        "step20000-tokens84B",
        "step50000-tokens210B",
        "step117850-tokens494B",
        "step330000-tokens1384B",
        "step738020-tokens3095B",
    ]
    result = olmo("list-revisions", SEVEN_B, "--offline", "-q", "--every", "100000", "--limit", "3")
    assert result.stdout.splitlines() == ["step0-tokens0B", "step100000-tokens442B", "step200000-tokens885B"]
    empty = olmo("list-revisions", SEVEN_B, "--offline", "--stage", "1")  # OLMo 1 names carry no stage
    assert empty.exit_code == 0 and "0 of 559 revisions" in empty.stderr


def test_list_gaps():
    result = olmo("list-revisions", "allenai/OLMo-7B-Twin-2T", "--offline", "--gaps", "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == [
        {
            "from": "step89500-tokens375B",
            "to": "step237000-tokens994B",
            "steps": 147500,
            "usual_interval": 1000,
            "times_usual": 147.5,
        }
    ]
    table = olmo("list-revisions", "allenai/OLMo-1B", "--offline", "--gaps")
    assert "step117850-tokens494B" in table.stdout and "step330000-tokens1384B" in table.stdout
    assert "1 gap(s)" in table.stderr
    one = olmo("list-revisions", "allenai/OLMo-1B", "--offline", "--gaps", "--to", "step20000")
    assert one.exit_code == 0 and "fewer than two checkpoints" in one.stderr  # not "usual interval None"


def test_unreachable_hub_falls_back_with_a_warning():
    result = olmo("list-revisions", SEVEN_B, "-q", "--limit", "1")  # HF_ENDPOINT is a closed port
    assert result.exit_code == 0
    assert result.stdout == "step0-tokens0B\n"
    assert "warning: cannot reach http://127.0.0.1:9" in result.stderr
    assert "source: bundled index + local cache" in result.stderr


def test_hf_hub_offline_env_is_honoured(fake_hub):
    add_repo(fake_hub)
    result = olmo("list-revisions", SEVEN_B, "-q", env={"HF_HUB_OFFLINE": "1"})
    assert result.exit_code == 0 and "bundled index" in result.stderr
    assert fake_hub.requests == []


# ----- bad input: one line and an exit code each -----


@pytest.mark.parametrize(
    "argv, code, fragment",
    [
        (("list-revisions", "allenai//OLMo", "--offline"), 2, "'allenai//OLMo' is not a valid Hub repo id"),
        (("resolve", "main", "--repo", "not a repo"), 2, "not a valid Hub repo id"),
        (("list-revisions", SEVEN_B, "--offline", "--from", "2T", "--to", "1T"), 2, "--from 2T comes after --to 1T"),
        (("list-revisions", SEVEN_B, "--offline", "--every", "0"), 2, "--every must be at least 1, got 0"),
        (("list-revisions", SEVEN_B, "--offline", "--from", "yesterday"), 2, "--from 'yesterday' is neither"),
        (("resolve", "step45200-tokens2000B", "--repo", SEVEN_B, "--offline"), 3, "'step45200-tokens2000B' not found"),
        (("resolve", "step1000-tokens4B", "--offline"), 2, "several repos"),
        (("list-revisions", "someone/not-bundled"), 4, "cannot reach http://127.0.0.1:9"),
    ],
)
def test_bad_input(argv, code, fragment):
    one_line_error(olmo(*argv), code, fragment)


def test_unknown_revision_suggests_close_names():
    result = olmo("resolve", "step45200-tokens2000B", "--repo", SEVEN_B, "--offline")
    assert "hint: did you mean step452000-tokens2000B" in result.stderr


@pytest.mark.parametrize(
    "status, code, fragment",
    [(401, 9, "not authorized (401)"), (404, 3, "not found"), (500, 4, "the Hub answered 500")],
)
def test_hub_error_statuses(fake_hub, status, code, fragment, monkeypatch):
    from olmo_cli.hub import transfer

    monkeypatch.setattr(transfer, "DEFAULT_POLICY", transfer.RetryPolicy(base_delay=0.001, max_delay=0.01))
    add_repo(fake_hub)
    fake_hub.fail("/refs", status=status, times=10)  # a 500 that outlasts the retries
    one_line_error(olmo("list-revisions", "someone/OLMo-mini"), code, fragment)


def test_missing_token_and_missing_repo(fake_hub):
    add_repo(fake_hub)
    fake_hub.set_token("hf_secret")
    one_line_error(olmo("resolve", "main", "--repo", "someone/OLMo-mini"), 9, "not authorized")
    assert (
        olmo("resolve", "main", "--repo", "someone/OLMo-mini", "-q", env={"HF_TOKEN": "hf_secret"}).stdout == "main\n"
    )
    one_line_error(
        olmo("list-revisions", "someone/missing", env={"HF_TOKEN": "hf_secret"}), 3, "repo 'someone/missing' not found"
    )


# ----- parse-revision, resolve, models -----


def test_parse_revision_table_and_json():
    result = olmo(
        "parse-revision", "step452000-tokens2000B", "stage2-ingredient3-step11931-tokens100B", "main", "--json"
    )
    assert result.exit_code == 0
    assert json.loads(result.stdout) == [
        {
            "name": "step452000-tokens2000B",
            "step": 452000,
            "tokens": 2 * 10**12,
            "stage": None,
            "ingredient": None,
            "ingredients": None,
            "variant": None,
        },
        {
            "name": "stage2-ingredient3-step11931-tokens100B",
            "step": 11931,
            "tokens": 10**11,
            "stage": 2,
            "ingredient": 3,
            "ingredients": None,
            "variant": None,
        },
        {
            "name": "main",
            "step": None,
            "tokens": None,
            "stage": None,
            "ingredient": None,
            "ingredients": None,
            "variant": None,
        },
    ]
    table = olmo("parse-revision", "step452000-tokens2000B", "step_5")
    assert table.stdout.splitlines()[1].split() == ["step452000-tokens2000B", "checkpoint", "452000", "2T"]
    assert table.stdout.splitlines()[2].split() == ["step_5", "checkpoint", "5"]


def test_resolve_outputs():
    plain = olmo("resolve", "step452000-tokens2000B", "--offline")
    assert plain.stdout.splitlines() == ["repo      allenai/OLMo-7B", "revision  step452000-tokens2000B"]
    near = olmo("resolve", "tokens=2001B", "--repo", SEVEN_B, "--offline", "--json")
    assert json.loads(near.stdout) == {
        "repo": SEVEN_B,
        "revision": "step452000-tokens2000B",
        "step": 452000,
        "tokens": 2 * 10**12,
        "exact": False,
        "note": "nearest to 2.001T tokens: step452000-tokens2000B, 1B tokens before",
    }
    quiet = olmo("resolve", "2T", "--repo", SEVEN_B, "--offline", "-q")
    assert quiet.stdout == "step452000-tokens2000B\n" and "note: 2T tokens = " in quiet.stderr


def test_models_json_and_table():
    result = olmo("models", "--json")
    models = json.loads(result.stdout)
    assert [(m["name"], m["layers"], m["d_model"], m["heads"], m["context"]) for m in models[:3]] == [
        ("OLMo 1B", 16, 2048, 16, 2048),
        ("OLMo 7B", 32, 4096, 32, 2048),
        ("OLMo 7B Twin 2T", 32, 4096, 32, 2048),
    ]
    assert [m["tokens"] for m in models[:3]] == [3 * 10**12, 2_500_000_000_000, 2 * 10**12]
    assert {m["family"] for m in models} == {"olmo1", "olmo2", "olmo3", "olmoe"}
    assert models[1]["repos"] == ["allenai/OLMo-7B", "allenai/OLMo-7B-hf"]
    assert [n["revision"] for n in models[1]["named_revisions"]] == [
        "main",
        "step556000-tokens2460B",
        "step452000-tokens2000B",
    ]
    assert models[2]["named_revisions"][0]["note"] == "twin run on different hardware"
    table = olmo("models")
    assert "OLMo 7B Twin 2T" in table.stdout and "2.5T" in table.stdout


def test_models_cover_olmo2_olmo3_olmoe_and_cite():
    models = {m["repos"][0]: m for m in json.loads(olmo("models", "--json").stdout)}
    for repo in (
        "allenai/OLMo-2-0425-1B",
        "allenai/OLMo-2-1124-7B",
        "allenai/OLMo-2-1124-13B",
        "allenai/OLMo-2-0325-32B",
        "allenai/Olmo-3-1025-7B",
        "allenai/Olmo-3-1125-32B",
        "allenai/OLMoE-1B-7B-0924",
    ):
        assert models[repo]["checkpoints"].startswith("Hub branches"), repo
    assert models["allenai/OLMo-2-0325-32B"]["kv_heads"] == 8 and models["allenai/Olmo-3-1025-7B"]["context"] == 65536
    bibtex = olmo("models", "--cite")
    assert bibtex.exit_code == 0 and bibtex.stdout.startswith("@article{Groeneveld2023OLMo,")
    assert "title={OLMo: Accelerating the Science of Language Models}" in bibtex.stdout
    apa = olmo("models", "--cite", "--format", "apa")
    assert apa.stdout.startswith("Groeneveld, D., Beltagy, I.,") and "(2024). OLMo: Accelerating" in apa.stdout


def test_catalog_shapes_match_olmo_core_presets():
    """The OLMo 2 / 3 shapes are OLMo-core's own presets."""
    from olmo_core.nn.transformer import TransformerConfig

    from olmo_cli.revisions.catalog import MODELS

    presets = {
        "allenai/OLMo-2-0425-1B": "olmo2_1B_v2",
        "allenai/OLMo-2-1124-7B": "olmo2_7B",
        "allenai/OLMo-2-1124-13B": "olmo2_13B",
        "allenai/OLMo-2-0325-32B": "olmo2_32B",
        "allenai/Olmo-3-1025-7B": "olmo3_7B",
        "allenai/Olmo-3-1125-32B": "olmo3_32B",
    }
    for model in MODELS:
        if model.repo in presets:
            config = getattr(TransformerConfig, presets[model.repo])(vocab_size=100352)
            mixer = config.block.sequence_mixer
            assert (model.layers, model.d_model, model.heads, model.kv_heads) == (
                config.n_layers,
                config.d_model,
                mixer.n_heads,
                mixer.n_kv_heads,
            ), model.name


def test_named_revisions_exist_in_the_bundled_index():
    from olmo_cli.revisions.catalog import NAMED_REVISIONS
    from olmo_cli.revisions.index import bundled_revisions

    for named in NAMED_REVISIONS:
        assert named.revision == "main" or named.revision in bundled_revisions(named.repo)


def test_python_dash_m_runs_a_command():
    done = subprocess.run(
        [sys.executable, "-m", "olmo_cli", "parse-revision", "step1-tokens2B", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0 and json.loads(done.stdout)[0]["tokens"] == 2 * 10**9
