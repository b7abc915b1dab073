"""Startup: the light commands and TAB completion never import torch, transformers or (offline)
huggingface_hub. Each case runs in a fresh interpreter (tests/helpers.py's modules_after calls the
app's `main` with argv and then writes the sorted `sys.modules` to a file)."""

from __future__ import annotations

import pytest
from helpers import modules_after

HEAVY = ("torch", "transformers", "huggingface_hub", "safetensors", "numpy", "tokenizers")

CASES = {
    "help": ((["--help"]), {}),
    "list-revisions": (["list-revisions", "allenai/OLMo-7B", "--offline", "--limit", "3"], {}),
    "list-revisions HF_HUB_OFFLINE": (["list-revisions", "allenai/OLMo-1B", "--gaps"], {"HF_HUB_OFFLINE": "1"}),
    "list-revisions --help": (["list-revisions", "--help"], {}),
    "parse-revision": (["parse-revision", "step452000-tokens2000B", "--json"], {}),
    "resolve": (["resolve", "2T", "--repo", "allenai/OLMo-7B", "--offline"], {}),
    "models": (["models"], {}),
    "complete a revision": (
        [],
        {
            "_OLMO_COMPLETE": "complete_bash",
            "COMP_CWORD": "4",
            "COMP_WORDS": "olmo resolve --repo allenai/OLMo-7B step45",
        },
    ),
    "complete a command": ([], {"_OLMO_COMPLETE": "complete_bash", "COMP_CWORD": "1", "COMP_WORDS": "olmo li"}),
    "complete a repo": (
        [],
        {"_OLMO_COMPLETE": "complete_bash", "COMP_CWORD": "3", "COMP_WORDS": "olmo cache ls allenai/OLMo-7"},
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_light_paths_import_nothing_heavy(case, tmp_path):
    argv, env = CASES[case]
    loaded, stdout = modules_after(tmp_path, argv, env)
    assert stdout  # the command really ran and answered
    heavy = sorted(name for name in loaded if name.split(".")[0] in HEAVY)
    assert heavy == []


def test_completion_answers_from_the_bundled_index(tmp_path):
    _, stdout = modules_after(tmp_path, *CASES["complete a revision"])
    assert stdout.split() == [
        "step45000-tokens199B",
        "step450000-tokens1991B",
        "step451000-tokens1995B",
        "step452000-tokens2000B",
        "step453000-tokens2004B",
        "step454000-tokens2008B",
        "step455000-tokens2013B",
        "step456000-tokens2017B",
        "step457000-tokens2022B",
        "step458000-tokens2026B",
        "step459000-tokens2030B",
    ]


def test_online_listing_imports_huggingface_hub_but_not_torch(tmp_path, fake_hub):
    fake_hub.add_repo("someone/OLMo-mini", branches={"main": {"config.json": b"{}"}})
    loaded, stdout = modules_after(tmp_path, ["list-revisions", "someone/OLMo-mini", "-q"], {})
    assert stdout == "main\n"
    assert "huggingface_hub" in loaded  # the check above is not vacuous: this path does need it
    assert not [name for name in loaded if name.split(".")[0] in ("torch", "transformers")]
