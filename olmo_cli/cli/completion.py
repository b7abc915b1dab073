"""Value completion for TAB: from the bundled index and the local cache, never the network.

Called on every TAB press, so it stays light: no huggingface_hub, no Hub request. Every command
module imports this one (through cli.options) just to declare its options, so what the callbacks
read (the cache scanners, the bundled index) is imported when TAB asks, not at startup.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


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
    return revision_candidates(_params_before_option(ctx), incomplete)


def _params_before_option(ctx) -> dict:
    """The command's parsed parameters while TAB completes an option's value (`olmo download
    REPO -r <TAB>`). Click parses the words with the option still missing its value, fails, and
    keeps none of the positional arguments, so REPO would be lost and every repo's names offered:
    parse the words again without that dangling option."""
    import os
    import shlex

    params = dict(ctx.params)
    words_text = os.environ.get("_TYPER_COMPLETE_ARGS") or os.environ.get("COMP_WORDS")
    if not words_text or ctx.info_name is None:
        return params
    try:
        words = shlex.split(words_text)
    except ValueError:  # an unclosed quote while typing
        words = words_text.split()
    if ctx.info_name not in words:
        return params
    args = words[words.index(ctx.info_name) + 1 :]
    while args and (args[-1].startswith("-") or args[-1] == ""):  # the option (and value) being completed
        args.pop()
    try:
        reparsed = ctx.command.make_context(ctx.info_name, args, resilient_parsing=True)
    except Exception:  # completion must never fail
        return params
    params.update({k: v for k, v in reparsed.params.items() if v is not None and params.get(k) is None})
    return params


# Parameter names under which commands take the repo a revision belongs to.
_REPO_PARAMS = ("repo", "model", "source", "src")


def revision_candidates(params: Mapping[str, Any], incomplete: str) -> list[str]:
    """Revisions of the repo named so far on the command line (else of every known repo) that
    start with `incomplete`, in training order: the bundled index, the local cache, main, latest."""
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


def complete_device(incomplete: str) -> list[str]:
    """The device kinds `--device` takes (cuda:N too, which no fixed list can hold)."""
    return [device for device in ("auto", "cpu", "cuda", "mps") if device.startswith(incomplete)]
