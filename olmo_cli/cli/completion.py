"""Value completion for TAB: from the bundled index and the local cache, never the network."""

from __future__ import annotations


def complete_repo(incomplete: str) -> list[str]:
    """The bundled index's repos, then the other repos the local HF cache holds."""
    from olmo_cli.hub.cache import cached_repos
    from olmo_cli.revisions.index import known_repos

    try:
        cached = cached_repos()
    except OSError:  # an unreadable cache folder must not break TAB
        cached = []
    repos = dict.fromkeys([*known_repos(), *cached])
    return [repo for repo in repos if repo.startswith(incomplete)]


def complete_revision(ctx, incomplete: str) -> list[str]:
    from olmo_cli.revisions.complete import revision_candidates

    return revision_candidates(ctx.params, incomplete)


def complete_device(incomplete: str) -> list[str]:
    """The device kinds `--device` takes (cuda:N too, which no fixed list can hold)."""
    return [device for device in ("auto", "cpu", "cuda", "mps") if device.startswith(incomplete)]


def complete_load_quantization(incomplete: str) -> list[str]:
    """What `generate --quantize` takes (a plain option, so that a wrong name is olmo's one-line error)."""
    from olmo_cli.cli.options import LoadQuantization

    return [choice.value for choice in LoadQuantization if choice.value.startswith(incomplete)]
