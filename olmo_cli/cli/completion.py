"""Value completion for TAB: from the bundled index and the local cache, never the network."""

from __future__ import annotations


def complete_repo(incomplete: str) -> list[str]:
    from olmo_cli.revisions.index import known_repos

    return [repo for repo in known_repos() if repo.startswith(incomplete)]


def complete_revision(ctx, incomplete: str) -> list[str]:
    from olmo_cli.revisions.complete import revision_candidates

    return revision_candidates(ctx.params, incomplete)
