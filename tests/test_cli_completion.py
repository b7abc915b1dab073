"""Shell completion: the committed scripts are fresh, and revisions complete without the network."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

from olmo_cli.cli.completion import revision_candidates

ROOT = Path(__file__).resolve().parent.parent


def load_generator():
    spec = importlib.util.spec_from_file_location("gen_completions", ROOT / "scripts" / "gen_completions.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_committed_completion_scripts_are_not_stale(shell):
    generator = load_generator()
    fresh = generator.render(shell)
    assert "_OLMO_COMPLETE" in fresh and "olmo" in fresh
    assert generator.path_for(shell).read_text() == fresh, "run: python scripts/gen_completions.py"


def test_check_mode_reports_a_stale_file(tmp_path, monkeypatch):
    generator = load_generator()
    monkeypatch.setattr(generator, "ROOT", tmp_path)
    (tmp_path / "completions").mkdir()
    (tmp_path / "completions" / "olmo.bash").write_text("old\n")
    monkeypatch.setattr(generator, "render", lambda shell: f"script for {shell}\n")
    assert generator.main(["--check"]) == 1
    assert generator.main([]) == 0
    assert (tmp_path / "completions" / "olmo.zsh").read_text() == "script for zsh\n"
    assert generator.main(["--check"]) == 0


def test_revisions_complete_from_the_bundled_index_of_the_given_repo():
    got = revision_candidates({"repo": "allenai/OLMo-7B"}, "step55")
    assert got[0] == "step55000-tokens243B" and got[-1] == "step557000-tokens2464B"
    assert all(name.startswith("step55") for name in got)
    assert revision_candidates({"repo": "allenai/OLMo-7B"}, "ma") == ["main"]
    assert revision_candidates({"repo": "allenai/OLMo-7B"}, "la") == ["latest"]


def test_without_a_repo_every_known_repo_contributes():
    got = revision_candidates({}, "step117")
    # step117000 from OLMo-1B (491B) and OLMo-7B (518B); step117850 from OLMo-1B only.
    assert got == ["step117000-tokens491B", "step117000-tokens518B", "step117850-tokens494B"]


def test_the_local_cache_adds_branches_and_nothing_touches_the_network(monkeypatch):
    root = Path(os.environ["HF_HUB_CACHE"]) / "models--someone--mini"
    (root / "refs" / "feature").mkdir(parents=True)
    (root / "refs" / "feature" / "x").write_text("a" * 40)
    (root / "snapshots" / ("a" * 40)).mkdir(parents=True)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    assert revision_candidates({"repo": "someone/mini"}, "") == ["main", "feature/x", "latest"]
    assert revision_candidates({"model": "someone/mini"}, "fea") == ["feature/x"]


def test_repos_complete_from_the_bundled_index_and_the_local_cache():
    from olmo_cli.cli.completion import complete_repo

    (Path(os.environ["HF_HUB_CACHE"]) / "models--someone--mini").mkdir(parents=True)
    (Path(os.environ["HF_HUB_CACHE"]) / "datasets--someone--data").mkdir(parents=True)
    assert complete_repo("allenai/OLMo-7") == ["allenai/OLMo-7B", "allenai/OLMo-7B-Twin-2T"]
    assert complete_repo("some") == ["someone/mini"]
