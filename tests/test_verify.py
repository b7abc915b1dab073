"""`olmo verify`: cached files against the Hub's sizes and hashes."""

from __future__ import annotations

import json
import os

import pytest
from fakehub import FakeHub, checkpoint_repo
from helpers import olmo

from olmo_cli.hub.env import hub_cache_dir

REPO = "allenai/OLMo-fake"
A, B = "step1000-tokens4B", "step2000-tokens8B"


@pytest.fixture
def hub(fake_hub: FakeHub) -> FakeHub:
    checkpoint_repo(fake_hub, REPO, [1000, 2000], main=False)
    result = olmo("download", REPO, "-r", A, "-r", B)
    assert result.exit_code == 0, result.output
    return fake_hub


def verify(*args):
    return olmo("verify", REPO, *args)


def snapshot(hub, revision):
    return hub_cache_dir() / "models--allenai--OLMo-fake" / "snapshots" / hub.commit(REPO, revision)


def corrupt(path):
    blob = path.resolve()
    data = bytearray(blob.read_bytes())
    data[-1] ^= 0xFF  # same size, different bytes
    blob.write_bytes(bytes(data))


def test_a_clean_cache_verifies(hub):
    result = verify("--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["ok"] and [r["revision"] for r in report["revisions"]] == [A, B]
    assert all(r["checked"] == 4 for r in report["revisions"])


def test_corrupt_missing_and_extra_files_are_reported_with_exit_7(hub):
    corrupt(snapshot(hub, A) / "model.safetensors")
    (snapshot(hub, B) / "tokenizer_config.json").unlink()
    (snapshot(hub, B) / "notes.txt").write_text("mine")
    result = verify("--json")
    assert result.exit_code == 7
    first, second = json.loads(result.stdout)["revisions"]
    assert first["corrupt"] == [{"path": "model.safetensors", "reason": "sha256 differs from the Hub's"}]
    assert second["missing"] == ["tokenizer_config.json"] and second["extra"] == ["notes.txt"]
    assert "do not match the Hub" in result.stderr


def test_a_small_file_with_a_wrong_size_or_git_sha1(hub):
    config = (snapshot(hub, A) / "config.json").resolve()
    os.chmod(config, 0o644)
    config.write_bytes(config.read_bytes() + b" ")
    result = verify("-r", A, "--json")
    assert result.exit_code == 7
    assert "size" in json.loads(result.stdout)["revisions"][0]["corrupt"][0]["reason"]
    config.write_bytes(config.read_bytes()[:-2] + b"X")  # right size, wrong content
    result = verify("-r", A, "--json")
    assert json.loads(result.stdout)["revisions"][0]["corrupt"][0]["reason"] == "git sha1 differs from the Hub's"


def test_offline_checks_each_blob_against_its_name(hub):
    corrupt(snapshot(hub, B) / "model.safetensors")
    hub.clear_log()
    result = verify("--offline", "--json")
    assert result.exit_code == 7
    assert hub.requests == []
    a, b = json.loads(result.stdout)["revisions"]
    assert a["ok"] and [c["path"] for c in b["corrupt"]] == ["model.safetensors"]


def test_a_revision_that_is_not_cached_fails(hub):
    checkpoint_repo(hub, "allenai/other", [5000], main=False)
    result = olmo("verify", "allenai/other")
    assert result.exit_code == 3 and "nothing of allenai/other is in the local cache" in result.stderr


def test_a_named_revision_that_is_not_cached_is_not_found(hub):
    result = verify("-r", "step1000-tokens4B", "-r", "main")
    assert result.exit_code == 3 and "1 of 2 revisions of allenai/OLMo-fake are not in the local cache" in result.stderr


def test_an_unreachable_hub_falls_back_to_the_blob_names_with_a_warning(hub, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    result = verify("--json")
    assert result.exit_code == 0, result.output
    assert "warning: cannot reach http://127.0.0.1:9" in result.stderr
    assert all(r["note"].startswith("offline") for r in json.loads(result.stdout)["revisions"])
    corrupt(snapshot(hub, A) / "model.safetensors")
    assert verify("-r", A).exit_code == 7
