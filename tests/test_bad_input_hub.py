"""Bad input and faults for download, verify and cache: a documented exit code and one line naming
the problem, never exit 70, nothing written outside the cache or --local-dir.

The Hub's answers are input too: the loopback Hub (tests/fakehub.py) lies, stalls and rate-limits.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
from fakehub import FakeHub, checkpoint_repo
from helpers import assert_one_line_error, olmo

from olmo_cli.hub import transfer
from olmo_cli.hub.env import hub_cache_dir

REPO = "allenai/OLMo-fake"
MAIN = "main"


@pytest.fixture
def hub(fake_hub: FakeHub, monkeypatch) -> FakeHub:
    checkpoint_repo(fake_hub, REPO, [1000, 2000], weight_bytes=4096)
    # Fast retries: the backoff's shape is tested in test_download; here only what happens after.
    fast = transfer.RetryPolicy(base_delay=0.001, max_delay=0.01, max_retry_after=0.05)
    monkeypatch.setattr(transfer, "DEFAULT_POLICY", fast)
    return fake_hub


def files_outside(root: Path, *allowed: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and not any(p.is_relative_to(a) for a in allowed if a.exists())]


def snapshot_of(revision: str = MAIN) -> Path:
    snapshots = hub_cache_dir() / "models--allenai--OLMo-fake" / "snapshots"
    return next(snapshots.iterdir())


# ----- the Hub's answers are untrusted -----


@pytest.mark.parametrize("name", ["../../escaped.txt", "/etc/owned", "a/../../b", "dir//x", "a\\..\\b", "./x"])
def test_a_listed_file_name_never_places_a_file_outside_the_cache(fake_hub, tmp_path, name):
    fake_hub.add_repo(REPO, branches={MAIN: {"config.json": b"{}", name: b"payload"}})
    out = tmp_path / "export"
    result = olmo("download", REPO, "--all-files", "--local-dir", str(out))
    assert_one_line_error(result, 4, "invalid file name")
    assert not list(tmp_path.rglob("escaped.txt")) and not Path("/etc/owned").exists()
    assert not out.exists()


def test_a_listing_with_a_bad_commit_sha_is_refused(hub):
    hub.fail(f"/api/models/{REPO}/revision/", status=200, body={"id": REPO, "sha": "../../x", "siblings": []}, times=1)
    assert_one_line_error(olmo("download", REPO, "-r", MAIN), 4, "invalid commit sha")


@pytest.mark.parametrize(
    "body", [b"<html>not json</html>", b"", {"siblings": "nope"}, [1, 2, 3], {"sha": "a" * 40, "siblings": [{}]}]
)
def test_answers_that_are_not_the_api_s_shape_are_one_line_network_errors(hub, body):
    hub.fail(f"/api/models/{REPO}/revision/", status=200, body=body, times=10)
    assert_one_line_error(olmo("download", REPO, "-r", MAIN), 4, "Hub")


def test_refs_that_are_not_json_fall_back_or_fail_in_one_line(hub):
    hub.fail(f"/api/models/{REPO}/refs", status=200, body=b"{{{", times=10)
    assert_one_line_error(olmo("list-revisions", REPO), 4, "not what its API returns")


@pytest.mark.parametrize("after", ["nan", "-5", "1e999", "soon", "Wed, 21 Oct 2015 07:28:00 GMT", "0"])
def test_odd_retry_after_values_are_survived(hub, after):
    hub.fail(f"/api/models/{REPO}/revision/", status=503, retry_after=after, times=2)
    result = olmo("download", REPO, "-r", MAIN)
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("after", ["7", None])
def test_a_persistent_429_says_when_to_try_again(hub, after):
    hub.fail(f"/api/models/{REPO}/refs", status=429, retry_after=after, times=100)
    wait = "7" if after else "1"  # without Retry-After: the policy's longest backoff, rounded up
    assert_one_line_error(
        olmo("list-revisions", REPO, "--refresh"), 4, f"rate limited by the Hub; try again in {wait} s"
    )


def test_a_429_asking_for_an_absurd_wait_fails_at_once(hub):
    hub.fail(f"/api/models/{REPO}/revision/", status=429, retry_after="86400000", times=100)
    result = olmo("download", REPO, "-r", MAIN)
    assert_one_line_error(result, 4, "rate limited by the Hub; try again in 86400 s")
    assert len([r for r in hub.requests if "/revision/" in r.path]) == 1  # no hammering


def test_a_wrong_byte_is_caught_by_the_hash_and_fetched_again(hub):
    hub.drop_connection("model.safetensors", after_bytes=100, times=1)
    assert olmo("download", REPO, "-r", MAIN).exit_code == 0
    assert olmo("verify", REPO, "-r", MAIN).exit_code == 0


# ----- the cache and its surroundings -----


def test_a_hub_cache_that_is_a_file(hub, tmp_path, monkeypatch):
    file = tmp_path / "cache-file"
    file.write_text("x")
    monkeypatch.setenv("HF_HUB_CACHE", str(file))
    assert_one_line_error(olmo("download", REPO, "-r", MAIN), 5, "is not a directory")
    assert_one_line_error(olmo("cache", "ls"), 5, "is not a directory")


def test_cache_ls_of_an_empty_cache_says_where_it_looked(isolated_caches):
    result = olmo("cache", "ls")
    assert result.exit_code == 0
    assert f"nothing is cached in {hub_cache_dir()}" in result.stderr


def test_a_read_only_cache_for_one_revision_is_its_own_code_printed_once(hub, monkeypatch):
    def read_only(path):
        raise OSError(errno.EROFS, "Read-only file system", str(path))

    monkeypatch.setattr(transfer, "_open_append", read_only)
    line = assert_one_line_error(olmo("download", REPO, "-r", MAIN), 5, "Read-only file system")
    assert line.startswith("error: cannot write")


def test_include_matching_nothing_is_said_once(hub):
    result = olmo("download", REPO, "-r", MAIN, "--include", "*.nothing")
    assert_one_line_error(result, 3, "no files of allenai/OLMo-fake@main match")
    assert "warning" not in result.stderr


def test_cache_rm_on_a_read_only_cache_removes_nothing(hub, monkeypatch):
    assert olmo("download", REPO, "-r", MAIN).exit_code == 0
    before = sorted(p for p in hub_cache_dir().rglob("*"))
    from olmo_cli import oserrors

    monkeypatch.setattr(oserrors, "is_read_only", lambda path: True)
    assert_one_line_error(olmo("cache", "rm", REPO, "-r", MAIN, "--yes"), 5, "read-only filesystem")
    assert sorted(p for p in hub_cache_dir().rglob("*")) == before


def test_cache_rm_when_a_removal_fails_midway(hub, monkeypatch):
    assert olmo("download", REPO, "-r", MAIN).exit_code == 0
    real_unlink = Path.unlink

    def refuse(self, missing_ok=False):
        if "blobs" in self.parts:
            raise OSError(errno.EROFS, "Read-only file system", str(self))
        return real_unlink(self, missing_ok=missing_ok)

    monkeypatch.setattr(Path, "unlink", refuse)
    assert_one_line_error(olmo("cache", "rm", REPO, "-r", MAIN, "--yes"), 5, "read-only filesystem")


# ----- tampered caches -----


@pytest.mark.parametrize("offline", [False, True])
def test_verify_catches_an_edited_file_where_the_blob_link_was(hub, offline):
    assert olmo("download", REPO, "-r", MAIN).exit_code == 0
    config = snapshot_of() / "config.json"
    config.unlink()
    config.write_text('{"edited": true}')
    result = olmo("verify", REPO, "-r", MAIN, *(["--offline"] if offline else []))
    assert_one_line_error(result, 7, "do not match")
    assert "config.json" in result.stderr


@pytest.mark.parametrize("offline", [False, True])
def test_verify_catches_a_missing_blob(hub, offline):
    assert olmo("download", REPO, "-r", MAIN).exit_code == 0
    weights = snapshot_of() / "model.safetensors"
    Path(os.path.realpath(weights)).unlink()
    result = olmo("verify", REPO, "-r", MAIN, *(["--offline"] if offline else []))
    assert_one_line_error(result, 7, "do not match")
    assert "missing" in result.stderr and "model.safetensors" in result.stderr


def test_download_repair_fetches_exactly_the_files_that_fail(hub):
    assert olmo("download", REPO, "-r", MAIN).exit_code == 0
    snapshot = snapshot_of()
    blob = Path(os.path.realpath(snapshot / "model.safetensors"))
    blob.write_bytes(b"x" * blob.stat().st_size)  # corrupted blob, same size
    plain = olmo("download", REPO, "-r", MAIN)
    assert "already present" in plain.stdout  # without --repair no bytes are checked
    (snapshot / "config.json").unlink()
    (snapshot / "config.json").write_text("{}")  # edited in place of its link
    hub.clear_log()
    result = olmo("download", REPO, "-r", MAIN, "--repair")
    assert result.exit_code == 0, result.output
    assert "fetching again 2 file(s)" in result.stderr
    fetched = {r.path.rsplit("/", 1)[-1] for r in hub.requests if r.method == "GET" and "/resolve/" in r.path}
    assert fetched == {"model.safetensors"}  # config.json's blob was intact: only relinked
    assert olmo("verify", REPO, "-r", MAIN).exit_code == 0
    assert (snapshot / "config.json").is_symlink()


def test_download_into_a_local_dir_that_is_a_file(hub, tmp_path):
    target = tmp_path / "f"
    target.write_text("x")
    assert_one_line_error(olmo("download", REPO, "-r", MAIN, "--local-dir", str(target)), 2, "is a file")


@pytest.mark.parametrize("endpoint", ["http://[::1", "http://127.0.0.1:99999", "not a url", "ftp://x"])
def test_hf_endpoint_may_hold_anything(monkeypatch, endpoint):
    monkeypatch.setenv("HF_ENDPOINT", endpoint)
    result = olmo("download", REPO, "-r", MAIN)
    assert result.exit_code in (4, 5), result.output
    assert_one_line_error(result, result.exit_code, "")


@pytest.mark.parametrize("token", ["abc\ndef", "tök", "hf x"])
def test_hf_token_may_hold_anything(hub, monkeypatch, token):
    monkeypatch.setenv("HF_TOKEN", token)
    assert_one_line_error(olmo("download", REPO, "-r", MAIN, "--refresh"), 5, "HF_TOKEN holds characters")


def test_a_redirect_loop_in_the_api(hub):
    loop = {"Location": f"{hub.url}/api/models/{REPO}/revision/main"}
    hub.fail("/revision/", status=302, headers=loop, times=1000)
    assert_one_line_error(olmo("download", REPO, "-r", MAIN), 4, "redirects")


def test_a_redirect_loop_for_a_file(hub):
    loop = {"Location": f"{hub.url}/{REPO}/resolve/main/tokenizer.json"}
    hub.fail("tokenizer.json", status=302, headers=loop, times=1000, method="GET")
    assert_one_line_error(olmo("download", REPO, "-r", MAIN), 4, "redirected too many times")


def test_a_body_that_claims_an_encoding_it_does_not_have(hub):
    hub.fail(
        "tokenizer.json", status=200, headers={"Content-Encoding": "gzip"}, body=b"not gzip", times=2, method="GET"
    )
    assert olmo("download", REPO, "-r", MAIN).exit_code == 0  # retried, then the real bytes, hash-checked
    assert olmo("verify", REPO, "-r", MAIN).exit_code == 0


def test_two_downloads_into_one_cache_at_once(hub):
    import subprocess
    import sys

    hub.throttle("cdn-lfs", bytes_per_second=200_000)  # long enough for the two runs to overlap
    cmd = [sys.executable, "-m", "olmo_cli", "download", REPO, "--from", "1000"]
    runs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outcomes = [(run.wait(timeout=120), run.stderr.read()) for run in runs]
    assert [code for code, _ in outcomes] == [0, 0], outcomes
    assert all("Traceback" not in err for _, err in outcomes)
    assert olmo("verify", REPO).exit_code == 0
    blobs = hub_cache_dir() / "models--allenai--OLMo-fake" / "blobs"
    assert not [p for p in blobs.iterdir() if p.name.endswith(".incomplete")]
