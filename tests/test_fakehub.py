"""The loopback Hub answers the real huggingface_hub client like the Hub does."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from urllib.request import Request as UrlRequest
from urllib.request import urlopen

import pytest
from fakehub import FakeHub

REPO = "allenai/OLMo-fake"
WEIGHTS = bytes(range(256)) * 64  # 16 KiB: LFS
CONFIG = b'{"model_type": "olmo"}'


@pytest.fixture
def hub(fake_hub: FakeHub) -> FakeHub:
    fake_hub.add_repo(
        REPO,
        {
            "main": {"config.json": CONFIG, "model.safetensors": WEIGHTS, "sub/dir/tok.json": b"{}"},
            "step1000-tokens4B": {"config.json": CONFIG, "model.safetensors": WEIGHTS[::-1]},
        },
        tags={"v1": "main"},
    )
    return fake_hub


def api(hub):
    from huggingface_hub import HfApi

    return HfApi(endpoint=hub.url)


def download(hub, filename, revision="main", cache=None, **kwargs):
    from huggingface_hub import hf_hub_download

    return Path(hf_hub_download(REPO, filename, revision=revision, cache_dir=cache, endpoint=hub.url, **kwargs))


def test_refs_list_branches_and_tags_with_commits(hub):
    refs = api(hub).list_repo_refs(REPO)
    assert {b.name: b.target_commit for b in refs.branches} == {
        "main": hub.commit(REPO, "main"),
        "step1000-tokens4B": hub.commit(REPO, "step1000-tokens4B"),
    }
    assert [(t.name, t.target_commit) for t in refs.tags] == [("v1", hub.commit(REPO, "main"))]


def test_model_info_with_files_metadata_gives_sizes_and_sha256(hub):
    info = api(hub).model_info(REPO, revision="step1000-tokens4B", files_metadata=True)
    assert info.sha == hub.commit(REPO, "step1000-tokens4B")
    siblings = {s.rfilename: s for s in info.siblings}
    assert siblings["model.safetensors"].size == len(WEIGHTS)
    assert siblings["model.safetensors"].lfs.sha256 == hashlib.sha256(WEIGHTS[::-1]).hexdigest()
    assert siblings["config.json"].lfs is None and siblings["config.json"].size == len(CONFIG)


def test_tree_and_paths_info(hub):
    entries = {e.path: e for e in api(hub).list_repo_tree(REPO, revision="main", recursive=True)}
    assert set(entries) == {"config.json", "model.safetensors", "sub", "sub/dir", "sub/dir/tok.json"}
    assert entries["model.safetensors"].lfs.sha256 == hashlib.sha256(WEIGHTS).hexdigest()
    top = {e.path for e in api(hub).list_repo_tree(REPO, revision="v1")}
    assert top == {"config.json", "model.safetensors", "sub"}
    info = api(hub).get_paths_info(REPO, ["config.json", "nope.txt"], revision="main")
    assert [i.path for i in info] == ["config.json"] and info[0].size == len(CONFIG)


def test_hf_hub_download_builds_the_standard_cache_layout(hub, tmp_path):
    path = download(hub, "model.safetensors", cache=tmp_path)
    commit = hub.commit(REPO, "main")
    assert path == tmp_path / "models--allenai--OLMo-fake" / "snapshots" / commit / "model.safetensors"
    assert path.resolve().name == hashlib.sha256(WEIGHTS).hexdigest()  # LFS blob named by sha256
    assert path.read_bytes() == WEIGHTS
    small = download(hub, "config.json", cache=tmp_path)
    assert small.resolve().name == hub.etag(REPO, "main", "config.json")
    assert (tmp_path / "models--allenai--OLMo-fake" / "refs" / "main").read_text() == commit


def test_snapshot_download_and_unknown_revision(hub, tmp_path):
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import RevisionNotFoundError

    snap = Path(snapshot_download(REPO, revision="step1000-tokens4B", cache_dir=tmp_path, endpoint=hub.url))
    assert (snap / "model.safetensors").read_bytes() == WEIGHTS[::-1]
    with pytest.raises(RevisionNotFoundError):
        api(hub).model_info(REPO, revision="step9")


def test_client_recovers_from_injected_500_429_and_dropped_connection(hub, tmp_path):
    hub.fail("model.safetensors", status=500, times=1, method="HEAD")
    hub.fail("cdn-lfs", status=429, times=1, retry_after=0)
    hub.drop_connection("cdn-lfs", after_bytes=1000)
    path = download(hub, "model.safetensors", cache=tmp_path, etag_timeout=5)
    assert path.read_bytes() == WEIGHTS
    statuses = [(r.method, r.status, r.sent) for r in hub.requests]
    assert statuses[0] == ("HEAD", 500, 0)
    assert ("GET", 429, 25) in statuses
    assert ("GET", 200, 1000) in statuses  # the dropped one
    assert statuses[-1][1:] in ((200, len(WEIGHTS)), (206, len(WEIGHTS) - 1000))


def test_token_gating_and_error_codes(hub):
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    hub.add_repo("allenai/gated", {"main": {"config.json": CONFIG}}, gated=True)
    hub.set_token("hf_good")
    with pytest.raises(GatedRepoError):
        api(hub).model_info("allenai/gated")
    with pytest.raises(RepositoryNotFoundError) as caught:
        api(hub).model_info(REPO)
    assert caught.value.response.status_code == 401
    from huggingface_hub import HfApi

    assert HfApi(endpoint=hub.url, token="hf_good").model_info("allenai/gated").sha == hub.commit("allenai/gated")


def test_range_requests_and_bytes_sent(hub):
    url = f"{hub.url}/{REPO}/resolve/main/config.json"
    with urlopen(UrlRequest(url, headers={"Range": "bytes=2-5"})) as response:
        assert response.status == 206 and response.read() == CONFIG[2:6]
        assert response.headers["Content-Range"] == f"bytes 2-5/{len(CONFIG)}"
    with urlopen(UrlRequest(url, headers={"Range": "bytes=-3"})) as response:
        assert response.read() == CONFIG[-3:]
    with pytest.raises(Exception, match="416"):
        urlopen(UrlRequest(url, headers={"Range": f"bytes={len(CONFIG)}-"}))
    assert hub.bytes_sent("config.json") == 4 + 3
    hub.clear_log()
    assert hub.bytes_sent() == 0


def test_throttle_slows_a_body_down(hub):
    hub.throttle("cdn-lfs", bytes_per_second=80_000)  # 16 KiB in ~0.2 s
    start = time.monotonic()
    url = f"{hub.cdn_url}/cdn-lfs/{REPO}/{hub.sha256(REPO, 'main', 'model.safetensors')}/model.safetensors"
    with urlopen(url) as response:
        assert response.read() == WEIGHTS
    assert time.monotonic() - start >= 0.15
    hub.throttle("cdn-lfs", None)
    start = time.monotonic()
    with urlopen(url) as response:
        response.read()
    assert time.monotonic() - start < 0.15
