"""What the local Hugging Face cache holds for a repo, by revision name: pure filesystem, no
huggingface_hub import (it runs on TAB and on offline listings).

The layout is described (and read) in `olmo_cli.hub.cache`: a ref counts as cached only when
its snapshot directory exists.
"""

from __future__ import annotations

from olmo_cli.hub.cache import RepoCache


def cached_snapshots(repo: str) -> set[str]:
    """The commit shas that have a snapshot directory (possibly partial)."""
    return set(RepoCache.of(repo).commits())


def cached_revisions(repo: str) -> dict[str, str]:
    """{revision name: commit sha} for every ref of `repo` whose snapshot is in the cache."""
    return RepoCache.of(repo).refs()
