"""TAB completion candidates for revisions: the bundled index and the local HF cache, never the network.

Called on every TAB press, so it stays light: no huggingface_hub, no Hub request.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# Parameter names under which commands take the repo a revision belongs to.
_REPO_PARAMS = ("repo", "model", "source", "src")


def revision_candidates(params: Mapping[str, Any], incomplete: str) -> list[str]:
    from olmo_cli.hub.local import cached_revisions
    from olmo_cli.revisions.index import bundled_revisions, known_repos
    from olmo_cli.revisions.names import parse_revision, training_order

    repo = next((params[key] for key in _REPO_PARAMS if isinstance(params.get(key), str) and params.get(key)), None)
    repos = [repo] if repo else known_repos()
    names: dict[str, None] = {}
    for each in repos:
        names.update(dict.fromkeys(bundled_revisions(each) or []))
        names.update(dict.fromkeys(cached_revisions(each)))  # a local path as `repo`: nothing cached
    names.update(dict.fromkeys(["main", "latest"]))
    matching = [name for name in names if name.startswith(incomplete)]
    return [r.name for r in training_order(parse_revision(name) for name in matching)]
