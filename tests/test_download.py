"""`olmo download` and fetch_revision against the loopback Hub: cache layout, file choice, sharing,
faults, resume across runs, bad input."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fakehub import FakeHub, checkpoint_repo, safetensors_bytes
from helpers import Recorder, error_line, olmo

from olmo_cli.hub.env import hub_cache_dir
from olmo_cli.hub.files import needed_files

REPO = "allenai/OLMo-fake"
STEPS = [1000, 2000, 3000]


def rev(step: int) -> str:
    return f"step{step}-tokens{step * 4 // 1000}B"


@pytest.fixture
def hub(fake_hub: FakeHub) -> FakeHub:
    checkpoint_repo(fake_hub, REPO, STEPS)
    return fake_hub


def snapshot(hub: FakeHub, revision: str) -> Path:
    return hub_cache_dir() / "models--allenai--OLMo-fake" / "snapshots" / hub.commit(REPO, revision)


def assert_intact(hub: FakeHub, revision: str, paths=("config.json", "tokenizer.json", "model.safetensors")):
    for path in paths:
        data = (snapshot(hub, revision) / path).read_bytes()
        assert hashlib.sha256(data).hexdigest() == hashlib.sha256(hub.file_bytes(REPO, revision, path)).hexdigest(), (
            path
        )


# ----- file choice -----
def test_needed_files_prefers_safetensors_and_skips_extras():
    both = [
        "config.json",
        "model.safetensors",
        "pytorch_model.bin",
        "README.md",
        "modeling_olmo.py",
        "tokenizer.json",
        "special_tokens_map.json",
        "generation_config.json",
        "optim/state.pt",
    ]
    assert needed_files(both) == [
        "config.json",
        "generation_config.json",
        "model.safetensors",
        "special_tokens_map.json",
        "tokenizer.json",
    ]
    sharded = [
        "config.json",
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
        "model.safetensors.index.json",
        "pytorch_model.bin.index.json",
        "pytorch_model-00001-of-00001.bin",
    ]
    assert needed_files(sharded) == [
        "config.json",
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
        "model.safetensors.index.json",
    ]
    assert needed_files(["config.json", "pytorch_model.bin"]) == ["config.json", "pytorch_model.bin"]


# ----- one revision -----
def test_fetch_revision_writes_the_standard_hf_cache_layout(hub):
    from olmo_cli.hub.download import fetch_revision

    path = fetch_revision(REPO, rev(1000))
    commit = hub.commit(REPO, rev(1000))
    assert path == snapshot(hub, rev(1000)) and path.name == commit
    assert sorted(p.name for p in path.iterdir()) == [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
    ]
    weights = path / "model.safetensors"
    assert weights.is_symlink() and not os.path.isabs(os.readlink(weights))
    assert weights.resolve().name == hub.sha256(REPO, rev(1000), "model.safetensors")  # blob named by etag
    assert (path / "config.json").resolve().name == hub.etag(REPO, rev(1000), "config.json")
    assert (path.parent.parent / "refs" / rev(1000)).read_text() == commit
    assert_intact(hub, rev(1000))
    # huggingface_hub reads what we wrote, offline, as its own cache
    from huggingface_hub import hf_hub_download

    found = hf_hub_download(REPO, "config.json", revision=rev(1000), cache_dir=hub_cache_dir(), local_files_only=True)
    assert Path(found) == path / "config.json"


def test_fetch_revision_offline_uses_the_cache_or_says_it_is_missing(hub):
    from olmo_cli.errors import NetworkError
    from olmo_cli.hub.download import fetch_revision

    with pytest.raises(NetworkError, match="not in the local cache"):
        fetch_revision(REPO, rev(2000), offline=True)
    online = fetch_revision(REPO, rev(2000))
    hub.clear_log()
    assert fetch_revision(REPO, rev(2000), offline=True) == online
    assert hub.requests == []


def test_empty_files_and_nested_paths_are_fetched(fake_hub):
    from olmo_cli.hub.download import fetch_revision

    fake_hub.add_repo(REPO, {"main": {"config.json": b"{}", "added_tokens.json": b"", "extra/notes.txt": b"x" * 2000}})
    path = fetch_revision(REPO, "main", include=["*.json", "extra/*"])
    assert (path / "added_tokens.json").read_bytes() == b""
    assert (path / "extra" / "notes.txt").read_bytes() == b"x" * 2000
    assert os.path.samefile(
        path / "extra" / "notes.txt", path.parent.parent / "blobs" / fake_hub.sha256(REPO, "main", "extra/notes.txt")
    )


def test_fetch_revision_falls_back_to_the_cache_when_the_hub_is_unreachable(hub, monkeypatch):
    from olmo_cli.errors import NetworkError
    from olmo_cli.hub.download import fetch_revision

    path = fetch_revision(REPO, rev(1000))
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    reporter = Recorder()
    assert fetch_revision(REPO, rev(1000), reporter=reporter) == path
    assert len(reporter.warnings) == 1 and "using the cached" in reporter.warnings[0]
    with pytest.raises(NetworkError, match="cannot reach"):
        fetch_revision(REPO, rev(2000))


# ----- faults -----
def test_dropped_connection_500_and_429_all_end_with_the_right_sha256(hub):
    hub.fail("cdn-lfs", status=500, times=1)
    hub.fail("resolve", status=429, times=1, retry_after=0)
    hub.drop_connection("model.safetensors", after_bytes=5000, times=2)
    result = olmo("download", REPO, "-r", rev(1000), "-r", rev(2000), "--json", "--max-workers", "2")
    assert result.exit_code == 0, result.output
    for step in (1000, 2000):
        assert_intact(hub, rev(step))
    statuses = [r.status for r in hub.requests]
    assert 500 in statuses and 429 in statuses
    resumed = [r for r in hub.requests if r.server == "cdn" and r.headers.get("range")]
    assert len(resumed) == 2 and all(r.status == 206 for r in resumed)
    # continued, not restarted: no byte of the weights crossed the wire twice
    weights = sum(len(hub.file_bytes(REPO, rev(s), "model.safetensors")) for s in (1000, 2000))
    assert (
        sum(
            r.sent
            for r in hub.requests
            if r.server == "cdn" and "model.safetensors" in r.path and r.status in (200, 206)
        )
        == weights
    )


def test_many_drops_with_progress_still_finish_but_a_dead_file_gives_up(hub, monkeypatch):
    from olmo_cli.hub import transfer

    monkeypatch.setattr(transfer, "DEFAULT_POLICY", transfer.RetryPolicy(attempts=3, base_delay=0.01))
    hub.drop_connection("model.safetensors", after_bytes=3000, times=10)  # more drops than attempts
    assert olmo("download", REPO, "-r", rev(1000)).exit_code == 0
    assert_intact(hub, rev(1000))
    hub.fail(hub.sha256(REPO, rev(2000), "model.safetensors"), status=503, times=100)
    result = olmo("download", REPO, "-r", rev(2000), "-r", rev(3000), "--json")
    assert result.exit_code == 1
    failed, ok = json.loads(result.stdout)["revisions"]
    assert "giving up after 3 attempts (the Hub answered 503)" in failed["error"] and ok["ok"]
    assert error_line(result) == "error: 1 of 2 revisions failed"


def test_a_sweep_transfers_shared_tokenizer_and_config_once(hub):
    result = olmo("download", REPO, "--from", "1000", "--to", "3000", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert [r["revision"] for r in summary["revisions"]] == [rev(s) for s in STEPS]
    assert summary["downloaded"] == 3 and summary["failed"] == 0
    assert len([r for r in hub.requests if r.method == "GET" and "tokenizer.json" in r.path and r.status == 200]) == 1
    tokenizer = hub.file_bytes(REPO, "main", "tokenizer.json")
    config = hub.file_bytes(REPO, "main", "config.json")
    weights = sum(len(hub.file_bytes(REPO, rev(s), "model.safetensors")) for s in STEPS)
    unique = weights + len(tokenizer) + len(config) + len(hub.file_bytes(REPO, "main", "tokenizer_config.json"))
    assert hub.bytes_sent("/resolve/") + hub.bytes_sent("cdn-lfs") == unique == summary["bytes_transferred"]
    # main is the same commit content as the last step: a second sweep transfers nothing
    hub.clear_log()
    again = olmo("download", REPO, "-r", "main", "-r", rev(3000), "--json")
    assert again.exit_code == 0 and json.loads(again.stdout)["bytes_transferred"] == 0
    assert hub.bytes_sent("cdn-lfs") == 0


def test_a_failed_revision_does_not_stop_the_sweep(hub):
    hub.fail(f"revision/{rev(2000)}", status=404, times=1)  # its listing fails
    result = olmo("download", REPO, "--from", "1000", "--json")
    assert result.exit_code == 1
    summary = json.loads(result.stdout)
    assert [r["ok"] for r in summary["revisions"]] == [True, False, True]
    assert error_line(result) == "error: 1 of 3 revisions failed"
    assert_intact(hub, rev(3000))


def test_killed_download_resumes_with_less_than_a_whole_file(fake_hub, tmp_path):
    big = 4 * 1024 * 1024
    fake_hub.add_repo(
        REPO, {"main": {"config.json": b"{}", "model.safetensors": safetensors_bytes({"w": os.urandom(big)})}}
    )
    size = len(fake_hub.file_bytes(REPO, "main", "model.safetensors"))
    fake_hub.throttle("cdn-lfs", bytes_per_second=4 * 1024 * 1024)  # ~1 s for the whole file
    process = subprocess.Popen(
        [sys.executable, "-m", "olmo_cli", "download", REPO], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 20
    while fake_hub.bytes_sent("cdn-lfs") < size // 4 and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    first = fake_hub.bytes_sent("cdn-lfs")
    assert size // 4 <= first < size
    partial = (
        hub_cache_dir()
        / "models--allenai--OLMo-fake"
        / "blobs"
        / f"{fake_hub.sha256(REPO, 'main', 'model.safetensors')}.incomplete"
    )
    assert partial.is_file() and partial.stat().st_size > 0
    fake_hub.throttle("cdn-lfs", None)
    fake_hub.clear_log()
    rerun = subprocess.run([sys.executable, "-m", "olmo_cli", "download", REPO], capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    second = fake_hub.bytes_sent("cdn-lfs")
    assert second < size and second == size - partial_size_at_kill(fake_hub)
    data = (
        hub_cache_dir() / "models--allenai--OLMo-fake" / "snapshots" / fake_hub.commit(REPO) / "model.safetensors"
    ).read_bytes()
    assert hashlib.sha256(data).hexdigest() == fake_hub.sha256(REPO, "main", "model.safetensors")


def test_ctrl_c_stops_promptly_and_keeps_partial_files(fake_hub):
    checkpoint_repo(fake_hub, REPO, [1000, 2000], weight_bytes=2 * 1024 * 1024, main=False)
    fake_hub.throttle("cdn-lfs", bytes_per_second=1024 * 1024)
    process = subprocess.Popen(
        [sys.executable, "-m", "olmo_cli", "download", REPO, "--from", "0"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 20
    while fake_hub.bytes_sent("cdn-lfs") < 300_000 and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGINT)
    start = time.monotonic()
    assert process.wait(timeout=10) == 130
    assert time.monotonic() - start < 3  # not after the throttled files finish
    assert process.stderr.read().strip().endswith("error: interrupted")
    blobs = hub_cache_dir() / "models--allenai--OLMo-fake" / "blobs"
    assert any(p.name.endswith(".incomplete") and p.stat().st_size > 0 for p in blobs.iterdir())


def partial_size_at_kill(hub: FakeHub) -> int:
    """The offset the rerun asked for: what the killed process had written to disk."""
    ranged = [r for r in hub.requests if "cdn-lfs" in r.path and r.headers.get("range")]
    assert len(ranged) == 1
    return int(ranged[0].headers["range"].removeprefix("bytes=").rstrip("-"))


# ----- exports and dry runs -----
def test_local_dir_exports_plain_files(hub, tmp_path):
    out = tmp_path / "export"
    result = olmo("download", REPO, "-r", rev(1000), "--local-dir", str(out))
    assert result.exit_code == 0, result.output
    weights = out / "model.safetensors"
    assert not weights.is_symlink() and weights.read_bytes() == hub.file_bytes(REPO, rev(1000), "model.safetensors")
    assert os.path.samefile(weights, snapshot(hub, rev(1000)) / "model.safetensors")  # hard link: no extra space
    assert not os.path.samefile(out / "config.json", snapshot(hub, rev(1000)) / "config.json")  # a copy
    many = tmp_path / "many"
    assert olmo("download", REPO, "--from", "2000", "--local-dir", str(many)).exit_code == 0
    assert sorted(p.name for p in many.iterdir()) == [rev(2000), rev(3000)]


def test_dry_run_lists_files_and_counts_shared_bytes_once(hub):
    assert olmo("download", REPO, "-r", rev(1000)).exit_code == 0
    hub.clear_log()
    result = olmo("download", REPO, "--from", "1000", "--to", "2000", "--dry-run", "--json")
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    first, second = plan["revisions"]
    assert all(f["cached"] for f in first["files"])
    assert {f["path"]: f["cached"] for f in second["files"]} == {
        "config.json": True,
        "model.safetensors": False,
        "tokenizer.json": True,
        "tokenizer_config.json": True,
    }
    assert plan["to_download_bytes"] == len(hub.file_bytes(REPO, rev(2000), "model.safetensors"))
    assert hub.bytes_sent("cdn-lfs") == 0 and not snapshot(hub, rev(2000)).exists()


# ----- bad input -----
def test_a_range_selecting_nothing_is_one_line(hub):
    result = olmo("download", REPO, "--from", "900000")
    assert result.exit_code == 3
    assert error_line(result).startswith("error: no revision of allenai/OLMo-fake matches --from 900000")


def test_local_dir_that_is_a_file(hub, tmp_path):
    target = tmp_path / "file.txt"
    target.write_text("x")
    result = olmo("download", REPO, "--local-dir", str(target))
    assert result.exit_code == 2 and "is a file" in error_line(result)
    assert hub.requests == []


def test_no_space_left_is_one_line_and_keeps_the_partial_for_resume(hub, monkeypatch):
    from olmo_cli.hub import transfer

    real_open = transfer._open_append

    class FullDisk:
        def __init__(self, path):
            self.handle = real_open(path)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.handle.close()

        def write(self, data):
            if self.handle.tell() + len(data) > 10_000:
                room = 10_000 - self.handle.tell()
                self.handle.write(data[:room])
                raise OSError(errno.ENOSPC, "No space left on device")
            self.handle.write(data)

    monkeypatch.setattr(transfer, "_open_append", FullDisk)
    result = olmo("download", REPO, "-r", rev(1000), "--max-workers", "1")
    assert result.exit_code == 5
    line = error_line(result)
    assert line.startswith("error: no space left on /") and "needed ~" in line and "free " in line, line
    assert "while writing model.safetensors" in line
    blobs = hub_cache_dir() / "models--allenai--OLMo-fake" / "blobs"
    partial = blobs / f"{hub.sha256(REPO, rev(1000), 'model.safetensors')}.incomplete"
    assert partial.stat().st_size == 10_000
    monkeypatch.setattr(transfer, "_open_append", real_open)
    hub.clear_log()
    assert olmo("download", REPO, "-r", rev(1000)).exit_code == 0
    assert [r.headers.get("range") for r in hub.requests if "cdn-lfs" in r.path and "model" in r.path] == [
        "bytes=10000-"
    ]
    assert_intact(hub, rev(1000))


@pytest.mark.parametrize("token", [None, "hf_expired"])
def test_gated_repo_without_a_valid_token_is_auth_error(fake_hub, monkeypatch, token):
    fake_hub.add_repo("allenai/gated", {"main": {"config.json": b"{}"}}, gated=True)
    fake_hub.set_token("hf_valid")
    if token:
        monkeypatch.setenv("HF_TOKEN", token)
    result = olmo("download", "allenai/gated")
    assert result.exit_code == 9
    assert "gated" in error_line(result)
    monkeypatch.setenv("HF_TOKEN", "hf_valid")
    assert olmo("download", "allenai/gated").exit_code == 0


def test_token_goes_to_the_hub_but_not_to_the_cdn(hub, monkeypatch):
    hub.set_token("hf_valid")
    monkeypatch.setenv("HF_TOKEN", "hf_valid")
    assert olmo("download", REPO, "-r", rev(1000)).exit_code == 0
    assert all(r.headers.get("authorization") == "Bearer hf_valid" for r in hub.requests if r.server == "hub")
    cdn = [r for r in hub.requests if r.server == "cdn"]
    assert cdn and all("authorization" not in r.headers for r in cdn)


# ----- review fixes -----
def test_a_blob_first_needed_by_a_failed_revision_is_still_fetched_for_the_next(hub):
    # With one worker, step1000's weights fail before the tokenizer it shares with step2000 is
    # fetched; step2000 must still get the tokenizer, not a snapshot linking to a missing blob.
    hub.fail(hub.sha256(REPO, rev(1000), "model.safetensors"), status=404, times=100)
    result = olmo("download", REPO, "-r", rev(1000), "-r", rev(2000), "--max-workers", "1", "--json")
    assert result.exit_code == 1
    failed, ok = json.loads(result.stdout)["revisions"]
    assert not failed["ok"] and ok["ok"]
    assert_intact(hub, rev(2000))
    links = [p for p in snapshot(hub, rev(2000)).iterdir()]
    assert links and all(p.exists() for p in links)  # no dangling link


def test_offline_download_reports_cached_revisions_and_fails_the_others(hub, monkeypatch, tmp_path):
    assert olmo("download", REPO, "-r", rev(1000)).exit_code == 0
    hub.clear_log()
    result = olmo("download", REPO, "-r", rev(1000), "--offline", "--json", "--local-dir", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["already_present"], summary["downloaded"], summary["bytes_transferred"]) == (1, 0, 0)
    assert (tmp_path / "out" / "model.safetensors").read_bytes() == hub.file_bytes(REPO, rev(1000), "model.safetensors")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    dry = olmo("download", REPO, "-r", rev(1000), "--dry-run", "--json")
    assert dry.exit_code == 0 and json.loads(dry.stdout)["to_download_bytes"] == 0
    missing = olmo("download", REPO, "-r", rev(2000))  # the offline listing knows only what is cached
    assert missing.exit_code == 3 and f"'{rev(2000)}' not found" in error_line(missing)
    main = olmo("download", REPO)  # `main` needs no listing: the one revision's own error, not "1 of 1"
    assert main.exit_code == 4
    assert error_line(main) == f"error: offline mode is on and {REPO}@main is not in the local cache"
    assert hub.requests == []


def test_offline_sweep_fails_only_the_uncached_revisions(hub):
    from olmo_cli.hub.download import download_revisions

    assert olmo("download", REPO, "-r", rev(1000)).exit_code == 0
    result = download_revisions(REPO, [rev(1000), rev(3000)], offline=True)
    assert [o.error is None for o in result.outcomes] == [True, False]
    assert "not in the local cache" in result.outcomes[1].error


def test_an_unreachable_hub_uses_cached_revisions_with_a_warning(hub, monkeypatch):
    assert olmo("download", REPO, "-r", rev(1000)).exit_code == 0
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    result = olmo("download", REPO, "-r", rev(1000), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["already_present"] == 1
    assert "using the cached allenai/OLMo-fake@" in result.stderr


def test_the_token_saved_by_hf_auth_login_is_sent_too(fake_hub):
    from huggingface_hub import constants

    fake_hub.add_repo("allenai/gated", {"main": {"config.json": b"{}", "model.safetensors": b"w" * 5000}}, gated=True)
    fake_hub.set_token("hf_saved")
    token_file = Path(constants.HF_TOKEN_PATH)
    token_file.parent.mkdir(parents=True, exist_ok=True)
    token_file.write_text("hf_saved")
    try:
        result = olmo("download", "allenai/gated")
    finally:
        token_file.unlink()
    assert result.exit_code == 0, result.output
    assert all(r.headers.get("authorization") == "Bearer hf_saved" for r in fake_hub.requests if r.server == "hub")


def test_an_unwritable_cache_is_one_line_and_stops_the_sweep(hub, monkeypatch):
    from olmo_cli.hub import transfer

    def refuse(path):
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr(transfer, "_open_append", refuse)
    result = olmo("download", REPO, "--from", "1000")
    assert result.exit_code == 5  # the machine's problem, as for one revision: not "some revisions failed"
    assert error_line(result).startswith("error: cannot write ")
    assert "Permission denied" in error_line(result)


def test_a_re_export_replaces_a_small_file_that_differs(hub, tmp_path):
    out = tmp_path / "export"
    assert olmo("download", REPO, "-r", rev(1000), "--local-dir", str(out)).exit_code == 0
    config = out / "config.json"
    original = config.read_bytes()
    config.write_bytes(original.replace(b"olmo", b"OLMO"))  # same size, other bytes
    assert olmo("download", REPO, "-r", rev(1000), "--local-dir", str(out)).exit_code == 0
    assert config.read_bytes() == original
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary files left


@pytest.mark.parametrize("repo", ["allenai//x", "a..b/c", "owner/na--me", "x/y/z"])
def test_malformed_repo_ids_are_one_line_usage_errors(repo):
    result = olmo("download", repo)
    assert result.exit_code == 2 and "not a valid Hub repo id" in error_line(result)


def test_a_token_count_that_is_not_exact_says_which_revision_it_took(hub):
    result = olmo("download", REPO, "-r", "5B", "--dry-run")
    assert result.exit_code == 0, result.output
    assert f"note: nearest to 5B tokens: {rev(1000)}, 1B tokens before" in result.stderr


def test_a_missing_repo_stops_the_sweep_at_once(fake_hub):
    from olmo_cli.hub.download import download_revisions
    from olmo_cli.hub.errors import RepoNotFoundError

    with pytest.raises(RepoNotFoundError, match="repo 'someone/missing' not found"):
        download_revisions("someone/missing", ["main", "step1"])
