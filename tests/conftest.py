"""Test isolation: nothing reaches the Hub, nothing touches the real ~/.cache.

The environment is set at import time, before any test imports huggingface_hub (which reads
HF_* once, at import). Each test then gets its own HF_HUB_CACHE and OLMO_CACHE_DIR.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest

_SESSION_HOME = Path(tempfile.mkdtemp(prefix="olmo-tests-"))
atexit.register(shutil.rmtree, _SESSION_HOME, ignore_errors=True)
# A closed loopback port: a test that forgets the fake Hub fails fast instead of going online.
DEAD_ENDPOINT = "http://127.0.0.1:9"
os.environ.update(
    {
        "HF_HOME": str(_SESSION_HOME / "hf-home"),
        "HF_HUB_CACHE": str(_SESSION_HOME / "hf-cache"),
        "XDG_CACHE_HOME": str(_SESSION_HOME / "xdg-cache"),
        "OLMO_CACHE_DIR": str(_SESSION_HOME / "olmo-cache"),
        "HF_ENDPOINT": DEAD_ENDPOINT,
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
)
for _name in ("HF_TOKEN", "HF_HUB_OFFLINE", "OLMO_DEBUG", "HF_HUB_ENABLE_HF_TRANSFER"):
    os.environ.pop(_name, None)

DATA = Path(__file__).parent / "data"


@pytest.fixture(autouse=True)
def isolated_caches(tmp_path_factory, monkeypatch):
    """A fresh HF cache and olmo cache for every test."""
    root = tmp_path_factory.mktemp("caches")
    monkeypatch.setenv("HF_HUB_CACHE", str(root / "hf-cache"))
    monkeypatch.setenv("OLMO_CACHE_DIR", str(root / "olmo-cache"))
    monkeypatch.setenv("HF_ENDPOINT", DEAD_ENDPOINT)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    yield root


@pytest.fixture
def data_dir() -> Path:
    return DATA


@pytest.fixture
def fake_hub(monkeypatch):
    """A started loopback Hub (tests/fakehub.py); HF_ENDPOINT points at it, subprocesses included."""
    from fakehub import FakeHub

    hub = FakeHub().start()
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    try:
        yield hub
    finally:
        hub.stop()


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    """tiny_model(**shape): a tiny random transformers OLMo with the real OLMo-1 tokenizer files
    (tests/tiny_models.make_hf_with_tokenizer), built once per shape for the whole session.
    Tests must not change its directory: copy it first."""
    from tiny_models import make_hf_with_tokenizer

    built: dict[tuple, Path] = {}

    def get(**shape) -> Path:
        key = tuple(sorted(shape.items()))
        if key not in built:
            built[key] = make_hf_with_tokenizer(tmp_path_factory.mktemp("tiny") / "hf", **shape)
        return built[key]

    return get


# Four revisions of one tiny model (seeds 1-4), built once for every sweep test (eval, executors).
SWEEP_STEPS = {"step1000-tokens4B": 1, "step2000-tokens8B": 2, "step3000-tokens12B": 3, "step4000-tokens16B": 4}


@pytest.fixture(scope="session")
def sweep_checkpoints(tmp_path_factory) -> Path:
    from tiny_models import make_hf_with_tokenizer

    root = tmp_path_factory.mktemp("revisions")
    for name, seed in SWEEP_STEPS.items():
        make_hf_with_tokenizer(root / name, seed=seed, max_position_embeddings=64)
    return root


def revision_branches(root: Path) -> dict[str, dict[str, bytes]]:
    """The fake Hub's branches for `sweep_checkpoints`: one per step, and main = the last."""
    branches = {name: {p.name: p.read_bytes() for p in (root / name).iterdir() if p.is_file()} for name in SWEEP_STEPS}
    branches["main"] = branches["step4000-tokens16B"]
    return branches


@pytest.fixture(scope="session")
def ray_session():
    """One local Ray instance for the whole session (starting one takes seconds), for the executor tests."""
    ray = pytest.importorskip("ray")
    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()
