"""`olmo cache ls|rm`: the cache by revision name, in training order; removal keeps what others use."""

from __future__ import annotations

import json

import pytest
from fakehub import FakeHub, checkpoint_repo
from helpers import olmo

from olmo_cli.hub.env import hub_cache_dir

REPO = "allenai/OLMo-fake"
STEPS = [1000, 2000, 10000, 20000]
NAMES = [f"step{s}-tokens{s * 4 // 1000}B" for s in STEPS]


@pytest.fixture
def hub(fake_hub: FakeHub) -> FakeHub:
    checkpoint_repo(fake_hub, REPO, STEPS)
    result = olmo("download", REPO, "--from", "0", "-r", "main")
    assert result.exit_code == 0, result.output
    return fake_hub


def repo_dir():
    return hub_cache_dir() / "models--allenai--OLMo-fake"


def cached_names():
    return [r["revision"] for r in json.loads(olmo("cache", "ls", REPO, "--json").stdout)]


def assert_loadable(hub, name):
    """config.json parses and the safetensors weights load, byte for byte."""
    import safetensors.numpy

    snap = repo_dir() / "snapshots" / hub.commit(REPO, name)
    assert json.loads((snap / "config.json").read_text())["model_type"] == "olmo"
    tensors = safetensors.numpy.load_file(str(snap / "model.safetensors"))
    expected = safetensors.numpy.load(hub.file_bytes(REPO, name, "model.safetensors"))
    assert tensors["model.embed_tokens.weight"].tobytes() == expected["model.embed_tokens.weight"].tobytes()


def test_ls_lists_revisions_in_training_order_with_step_tokens_and_size(hub):
    result = olmo("cache", "ls", "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [r["revision"] for r in rows] == [*NAMES, "main"]  # 10000 after 2000: numbers, not strings
    assert rows[2]["step"] == 10000 and rows[2]["tokens"] == 40_000_000_000
    size = sum(
        len(hub.file_bytes(REPO, NAMES[2], p))
        for p in ("config.json", "tokenizer.json", "tokenizer_config.json", "model.safetensors")
    )
    assert rows[2]["size"] == size and rows[2]["files"] == 4
    table = olmo("cache", "ls", env={"COLUMNS": "200"})  # rich wraps cells when narrow
    assert table.exit_code == 0 and "step10000-tokens40B" in table.stdout and "5 revision(s)" in table.stderr


def test_rm_by_name_frees_unshared_blobs_and_leaves_others_loadable(hub):
    weights = repo_dir() / "blobs" / hub.sha256(REPO, NAMES[0], "model.safetensors")
    tokenizer = repo_dir() / "blobs" / hub.sha256(REPO, NAMES[0], "tokenizer.json")
    size = weights.stat().st_size
    result = olmo("cache", "rm", REPO, "-r", NAMES[0], "--yes", "--json")
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    assert plan["revisions"] == [NAMES[0]] and plan["bytes_freed"] == size
    assert not weights.exists() and tokenizer.exists()  # the tokenizer is still used by the others
    assert not (repo_dir() / "refs" / NAMES[0]).exists()
    assert cached_names() == [*NAMES[1:], "main"]
    for name in [*NAMES[1:], "main"]:
        assert_loadable(hub, name)


def test_rm_a_branch_sharing_its_commit_keeps_the_snapshot(hub):
    # main and the last step have identical files but are different commits here; remove the step
    result = olmo("cache", "rm", REPO, "-r", NAMES[-1], "--yes", "--json")
    assert json.loads(result.stdout)["bytes_freed"] == 0  # main still uses every blob
    assert_loadable(hub, "main")


def test_rm_a_range_with_dry_run_then_for_real(hub):
    dry = olmo("cache", "rm", REPO, "--from", "2000", "--to", "10000", "--dry-run", "--json")
    assert dry.exit_code == 0, dry.output
    plan = json.loads(dry.stdout)
    assert plan["revisions"] == NAMES[1:3] and plan["dry_run"]
    expected = sum(len(hub.file_bytes(REPO, n, "model.safetensors")) for n in NAMES[1:3])
    assert plan["bytes_freed"] == expected
    assert cached_names() == [*NAMES, "main"]  # nothing removed
    assert olmo("cache", "rm", REPO, "--from", "2000", "--to", "10000", "--yes").exit_code == 0
    assert cached_names() == [NAMES[0], NAMES[3], "main"]
    assert_loadable(hub, NAMES[0])


def test_keep_every_removes_off_grid_checkpoints_but_not_main(hub):
    result = olmo("cache", "rm", REPO, "--keep-every", "10000", "--yes")
    assert result.exit_code == 0, result.output
    assert cached_names() == [*NAMES[2:], "main"]


def test_rm_refuses_without_yes_when_not_a_terminal(hub):
    result = olmo("cache", "rm", REPO, "-r", NAMES[0])
    assert result.exit_code == 2 and "--yes" in result.stderr
    assert cached_names() == [*NAMES, "main"]


def test_rm_bad_input(hub):
    assert olmo("cache", "rm", REPO).exit_code == 2  # nothing said
    missing = olmo("cache", "rm", REPO, "-r", "step999-tokens4B", "--yes")
    assert missing.exit_code == 3 and "not in the local cache" in missing.stderr
    empty = olmo("cache", "rm", REPO, "--from", "900000", "--yes")
    assert empty.exit_code == 3 and "no cached revision" in empty.stderr
    assert olmo("cache", "rm", "allenai/none", "--keep-every", "2", "--yes").exit_code == 3


def test_removing_everything_removes_the_repo_folder(hub):
    assert olmo("cache", "rm", REPO, "--from", "0", "-r", "main", "--yes").exit_code == 0
    assert not repo_dir().exists()
    assert olmo("cache", "ls", "--json").stdout.strip() == "[]"


# ----- review fixes -----
@pytest.mark.parametrize(
    "argv, repo", [(("cache", "ls"), "allenai//x"), (("cache", "rm"), "a..b/c"), (("verify",), "owner/na--me")]
)
def test_malformed_repo_ids_are_one_line_usage_errors(argv, repo):
    result = olmo(*argv, repo, *(("-r", "main", "--yes") if "rm" in argv else ()))
    assert result.exit_code == 2, result.output
    assert [line for line in result.stderr.splitlines() if line.startswith("error:")] == [
        f"error: '{repo}' is not a valid Hub repo id"
    ]


def test_rm_frees_blobs_when_the_cache_sits_behind_a_symlink(hub, monkeypatch, tmp_path):
    link = tmp_path / "linked-cache"
    link.symlink_to(hub_cache_dir(), target_is_directory=True)
    monkeypatch.setenv("HF_HUB_CACHE", str(link))
    weights = (repo_dir() / "snapshots" / hub.commit(REPO, NAMES[0]) / "model.safetensors").resolve()
    result = olmo("cache", "rm", REPO, "-r", NAMES[0], "--yes", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["blobs"] == 1 and not weights.exists()
    for name in NAMES[1:]:
        assert_loadable(hub, name)


def test_refs_being_written_are_not_revisions(hub):
    refs = repo_dir() / "refs"
    (refs / f".{NAMES[0]}.123.456.tmp").write_text(hub.commit(REPO, NAMES[1]))
    assert cached_names() == [*NAMES, "main"]
