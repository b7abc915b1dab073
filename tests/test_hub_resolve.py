"""Resolution, the refs listing (Hub, its 5-minute cache, the offline fallback) and the local cache."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from helpers import Recorder

from olmo_cli.errors import AuthError, NetworkError, NotFoundError, UsageError
from olmo_cli.hub.local import cached_revisions, cached_snapshots
from olmo_cli.hub.refs import list_revisions
from olmo_cli.hub.repo_id import check_repo_id
from olmo_cli.hub.resolve import resolve, select_revisions
from olmo_cli.revisions.listing import SOURCE_HUB, SOURCE_OFFLINE
from olmo_cli.revisions.select import Selection

SEVEN_B = "allenai/OLMo-7B"


def add_olmo_1b(hub, extra=()):
    branches = {
        name: {"config.json": name.encode()}
        for name in ["main", "step20000-tokens84B", "step30000-tokens126B", "step738020-tokens3095B", *extra]
    }
    hub.add_repo("allenai/OLMo-1B", branches=branches, tags={"v1": "main"})
    return branches


def fake_cache(repo: str, refs: dict[str, str], snapshots=None) -> Path:
    """An HF cache entry as huggingface_hub writes it: refs/<branch> holds the sha, no newline."""
    root = Path(os.environ["HF_HUB_CACHE"]) / ("models--" + repo.replace("/", "--"))
    for name, sha in refs.items():
        ref = root / "refs" / name
        ref.parent.mkdir(parents=True, exist_ok=True)
        ref.write_text(sha)
    for sha in refs.values() if snapshots is None else snapshots:
        (root / "snapshots" / sha).mkdir(parents=True, exist_ok=True)
    return root


# ----- resolution against the bundled index (offline) -----


@pytest.mark.parametrize(
    "query, repo, revision, exact",
    [
        ("step452000-tokens2000B", None, "step452000-tokens2000B", True),
        ("step452000", SEVEN_B, "step452000-tokens2000B", True),
        ("452000", SEVEN_B, "step452000-tokens2000B", True),
        ("2T", SEVEN_B, "step452000-tokens2000B", True),
        ("2000B", SEVEN_B, "step452000-tokens2000B", True),
        ("tokens=2000B", SEVEN_B, "step452000-tokens2000B", True),
        ("main", SEVEN_B, "main", True),
        ("latest", SEVEN_B, "step557000-tokens2464B", True),
        ("latest", "allenai/OLMo-1B", "step738020-tokens3095B", True),
        ("1.5T", "allenai/OLMo-1B", "step358000-tokens1502B", False),
    ],
)
def test_resolve_offline(query, repo, revision, exact):
    resolved = resolve(query, repo, offline=True)
    assert (resolved.repo, resolved.revision, resolved.exact) == (repo or SEVEN_B, revision, exact)
    assert resolved.parsed.name == revision


def test_a_token_count_resolves_to_the_nearest_with_a_note_saying_how_far():
    resolved = resolve("2.001T", SEVEN_B, offline=True)
    assert resolved.revision == "step452000-tokens2000B" and not resolved.exact
    assert resolved.note == "nearest to 2.001T tokens: step452000-tokens2000B, 1B tokens before"
    assert resolved.as_dict() == {
        "repo": SEVEN_B,
        "revision": "step452000-tokens2000B",
        "step": 452000,
        "tokens": 2000 * 10**9,
        "exact": False,
        "note": resolved.note,
    }


def test_unknown_names_fail_with_up_to_three_suggestions():
    with pytest.raises(NotFoundError, match="'step45200-tokens2000B' not found in allenai/OLMo-7B") as caught:
        resolve("step45200-tokens2000B", SEVEN_B, offline=True)
    assert caught.value.hint.startswith("did you mean step452000-tokens2000B")
    assert caught.value.hint.count("step") == 3
    with pytest.raises(NotFoundError, match="no checkpoint at step 452001") as caught:
        resolve("step452001", SEVEN_B, offline=True)
    assert "step452000-tokens2000B" in caught.value.hint


def test_repo_inference_one_repo_several_or_none():
    assert resolve("step556000-tokens2460B", offline=True).repo == SEVEN_B
    assert resolve("step89500-tokens375B", offline=True).repo == "allenai/OLMo-7B-Twin-2T"
    with pytest.raises(UsageError, match="several repos: allenai/OLMo-7B, allenai/OLMo-7B-Twin-2T"):
        resolve("step1000-tokens4B", offline=True)
    with pytest.raises(UsageError, match="cannot tell which repo '2T'"):
        resolve("2T", offline=True)
    with pytest.raises(NotFoundError, match="in no known repo") as caught:
        resolve("step452000-tokens2001B", offline=True)
    assert "step452000-tokens2000B" in caught.value.hint


@pytest.mark.parametrize(
    "repo", ["allenai//OLMo", "allenai/OLMo 7B", "a/b/c", "-x/y", "x/y.", "x--y/z", "./local/dir", "x/" + "y" * 97, ""]
)
def test_malformed_repo_ids_are_usage_errors(repo):
    with pytest.raises(UsageError, match="not a valid Hub repo id"):
        check_repo_id(repo)
    with pytest.raises(UsageError):
        list_revisions(repo, offline=True)


def test_valid_repo_ids():
    for repo in ["allenai/OLMo-7B", "gpt2", "allenai/OLMo-2-1124-7B", "org_1/m.v2"]:
        assert check_repo_id(repo) == repo


def test_select_revisions_unions_queries_and_selection_in_training_order():
    chosen = select_revisions(SEVEN_B, ["main", "2T", "step1000"], Selection(end="step2000"), offline=True)
    assert [r.revision for r in chosen] == [
        "step0-tokens0B",
        "step1000-tokens4B",
        "step2000-tokens9B",
        "step452000-tokens2000B",
        "main",
    ]
    with pytest.raises(UsageError, match="no revisions given"):
        select_revisions(SEVEN_B, [], None, offline=True)
    with pytest.raises(NotFoundError, match="no revision of allenai/OLMo-7B matches --stage 3"):
        select_revisions(SEVEN_B, [], Selection(stage=3), offline=True)
    assert select_revisions(None, ["step556000-tokens2460B"], offline=True)[0].repo == SEVEN_B


# ----- the Hub listing, its cache and the fallbacks -----


def test_listing_from_the_hub_in_training_order_then_cached(fake_hub):
    add_olmo_1b(fake_hub)
    listing = list_revisions("allenai/OLMo-1B")
    assert listing.source == SOURCE_HUB
    assert listing.names == ["step20000-tokens84B", "step30000-tokens126B", "step738020-tokens3095B", "main", "v1"]
    assert listing.commits["main"] == fake_hub.commit("allenai/OLMo-1B", "main") == listing.commits["v1"]

    def refs_calls():
        return [r for r in fake_hub.requests if r.path.endswith("/refs")]

    assert len(refs_calls()) == 1
    again = list_revisions("allenai/OLMo-1B")
    assert again.source.startswith("hub (cached ") and again.source.endswith(" s ago)")
    assert again.names == listing.names and len(refs_calls()) == 1
    list_revisions("allenai/OLMo-1B", refresh=True)
    assert len(refs_calls()) == 2


def test_cache_expires_after_five_minutes_and_is_per_endpoint(fake_hub, monkeypatch):
    add_olmo_1b(fake_hub)
    list_revisions("allenai/OLMo-1B")
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() + 130)
    assert list_revisions("allenai/OLMo-1B").source == "hub (cached 2 min ago)"
    monkeypatch.setattr(time, "time", lambda: real_time() + 301)
    assert list_revisions("allenai/OLMo-1B").source == SOURCE_HUB  # refetched at +301 s
    monkeypatch.setattr(time, "time", lambda: real_time() + 302)
    monkeypatch.setenv("HF_ENDPOINT", fake_hub.url + "/")  # the same endpoint, spelt differently
    assert list_revisions("allenai/OLMo-1B").source.startswith("hub (cached")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # another endpoint: its own cache entry
    assert list_revisions("allenai/OLMo-1B").source == SOURCE_OFFLINE


def test_resolve_online_uses_the_hub_list(fake_hub):
    add_olmo_1b(fake_hub, extra=["step40000-tokens168B-extra"])
    assert resolve("latest", "allenai/OLMo-1B").revision == "step738020-tokens3095B"
    assert resolve("100B", "allenai/OLMo-1B").revision == "step20000-tokens84B"
    assert resolve("step40000-tokens168B-extra", "allenai/OLMo-1B").exact
    with pytest.raises(NotFoundError, match="'step30000-tokens127B' not found in allenai/OLMo-1B \\(hub\\)") as caught:
        resolve("step30000-tokens127B", "allenai/OLMo-1B", refresh=True)
    assert "step30000-tokens126B" in caught.value.hint


def test_offline_flag_and_env_answer_from_the_bundled_index_and_cache(fake_hub, monkeypatch):
    add_olmo_1b(fake_hub)
    fake_cache("allenai/OLMo-1B", {"step20000-tokens84B": "a" * 40, "my/branch": "b" * 40})
    listing = list_revisions("allenai/OLMo-1B", offline=True)
    assert listing.source == SOURCE_OFFLINE
    assert len(listing.names) == 335 + 2  # bundled + main + a cached branch not in the index
    assert listing.names[-2:] == ["main", "my/branch"]
    assert listing.commits == {"step20000-tokens84B": "a" * 40, "my/branch": "b" * 40}
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert list_revisions("allenai/OLMo-1B").source == SOURCE_OFFLINE
    assert fake_hub.requests == []


def test_unreachable_hub_falls_back_with_a_warning_for_bundled_repos():
    recorder = Recorder()
    listing = list_revisions(SEVEN_B, reporter=recorder)  # HF_ENDPOINT is a closed port
    assert listing.source == SOURCE_OFFLINE and len(listing.names) == 559
    assert recorder.warnings and recorder.warnings[0].startswith("cannot reach http://127.0.0.1:9")
    assert listing.warning == recorder.warnings[0]


def test_unreachable_hub_is_a_network_error_for_other_repos():
    with pytest.raises(NetworkError, match=r"cannot reach http://127\.0\.0\.1:9") as caught:
        list_revisions("someone/unknown-model")
    assert caught.value.exit_code == 4


def test_offline_repo_without_any_local_data_is_not_found():
    with pytest.raises(NotFoundError, match="not in the bundled index"):
        list_revisions("someone/unknown-model", offline=True)
    fake_cache("someone/unknown-model", {"main": "c" * 40})
    listing = list_revisions("someone/unknown-model", offline=True)
    assert (listing.names, listing.source) == (["main"], "local cache")


@pytest.mark.parametrize("status, error, code", [(401, AuthError, 9), (404, NotFoundError, 3), (500, NetworkError, 4)])
def test_hub_error_answers_map_to_one_line_errors(fake_hub, status, error, code, monkeypatch):
    from olmo_cli.hub import transfer

    monkeypatch.setattr(transfer, "DEFAULT_POLICY", transfer.RetryPolicy(base_delay=0.001, max_delay=0.01))
    add_olmo_1b(fake_hub)
    fake_hub.fail("/refs", status=status, times=10)  # more than the retries: a 500 that persists
    with pytest.raises(error) as caught:
        list_revisions("allenai/OLMo-1B")
    assert caught.value.exit_code == code
    assert "\n" not in caught.value.message and "allenai/OLMo-1B" in caught.value.message


def test_token_and_missing_repo(fake_hub, monkeypatch):
    add_olmo_1b(fake_hub)
    fake_hub.set_token("hf_right")
    with pytest.raises(AuthError, match="not authorized"):
        list_revisions("allenai/OLMo-1B")
    monkeypatch.setenv("HF_TOKEN", "hf_right")
    assert list_revisions("allenai/OLMo-1B").source == SOURCE_HUB
    with pytest.raises(NotFoundError, match="repo 'allenai/nothing-here' not found"):
        list_revisions("allenai/nothing-here")


# ----- the local HF cache -----


def test_cached_revisions_reads_refs_with_slashes_and_needs_the_snapshot():
    root = fake_cache(
        "allenai/OLMo-1B", {"main": "1" * 40, "feature/x": "2" * 40, "gone": "3" * 40}, snapshots=["1" * 40, "2" * 40]
    )
    assert cached_revisions("allenai/OLMo-1B") == {"feature/x": "2" * 40, "main": "1" * 40}
    assert cached_snapshots("allenai/OLMo-1B") == {"1" * 40, "2" * 40}
    assert cached_revisions("allenai/none") == {} and cached_snapshots("allenai/none") == set()
    assert (root / "refs" / "main").read_text() == "1" * 40


def test_corrupt_refs_cache_is_ignored(fake_hub):
    add_olmo_1b(fake_hub)
    list_revisions("allenai/OLMo-1B")
    (cache_file,) = (Path(os.environ["OLMO_CACHE_DIR"]) / "refs").iterdir()
    assert json.loads(cache_file.read_text())["endpoint"] == fake_hub.url
    cache_file.write_text("{not json")
    assert list_revisions("allenai/OLMo-1B").source == SOURCE_HUB


# ----- review fixes -----


def test_list_revisions_sends_hf_token(fake_hub, monkeypatch):
    add_olmo_1b(fake_hub)
    fake_hub.set_token("hf_secret")
    with pytest.raises(AuthError):
        list_revisions("allenai/OLMo-1B")
    monkeypatch.setenv("HF_TOKEN", "hf_secret")
    assert list_revisions("allenai/OLMo-1B").source == SOURCE_HUB
    refs = [r for r in fake_hub.requests if r.path.endswith("/refs")]
    assert refs[-1].headers.get("authorization") == "Bearer hf_secret"


def test_unreachable_hub_answers_from_the_local_cache_for_a_repo_not_in_the_index():
    fake_cache("someone/unknown-model", {"main": "c" * 40, "step10": "d" * 40})
    recorder = Recorder()
    listing = list_revisions("someone/unknown-model", reporter=recorder)  # HF_ENDPOINT is a closed port
    assert (listing.names, listing.source) == (["step10", "main"], "local cache")
    assert recorder.warnings[0].startswith("cannot reach http://127.0.0.1:9")


def test_the_refs_cache_is_written_atomically(fake_hub):
    add_olmo_1b(fake_hub)
    list_revisions("allenai/OLMo-1B")
    folder = Path(os.environ["OLMO_CACHE_DIR"]) / "refs"
    assert [p.suffix for p in folder.iterdir()] == [".json"]  # no temporary file left behind


def test_repo_ids_the_hub_client_refuses_are_usage_errors():
    from huggingface_hub.errors import HFValidationError

    from olmo_cli.hub.errors import hub_errors

    with pytest.raises(UsageError, match="Repo id must"), hub_errors("x"):
        raise HFValidationError("Repo id must use alphanumeric chars")


@pytest.mark.parametrize("source", ["a..b/c", "owner/na--me", "a/b/c"])
def test_locate_rejects_malformed_repo_ids_before_any_request(source):
    from olmo_cli.sources import locate

    with pytest.raises(NotFoundError, match="neither a local directory nor a Hub repo id"):
        locate(source)


def test_a_name_missing_from_the_reused_refs_answer_asks_the_hub_once_more(fake_hub):
    add_olmo_1b(fake_hub)
    list_revisions("allenai/OLMo-1B")  # the answer is now reused for five minutes
    add_olmo_1b(fake_hub, extra=["step40000-tokens168B"])  # a branch pushed since
    fake_hub.clear_log()
    assert resolve("step40000-tokens168B", "allenai/OLMo-1B").revision == "step40000-tokens168B"
    assert [r.revision for r in select_revisions("allenai/OLMo-1B", ["step40000-tokens168B"])] == [
        "step40000-tokens168B"
    ]
    with pytest.raises(NotFoundError, match="'nope' not found"):
        resolve("nope", "allenai/OLMo-1B")
    assert len([r for r in fake_hub.requests if r.path.endswith("/refs")]) == 2  # the first resolve, then 'nope'


def test_suggestions_for_a_mistyped_token_count_are_the_nearest_steps():
    with pytest.raises(NotFoundError) as caught:
        resolve("step20000-tokens83B", "allenai/OLMo-1B", offline=True)
    assert caught.value.hint == "did you mean step20000-tokens84B, step30000-tokens126B or step40000-tokens168B?"
