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
