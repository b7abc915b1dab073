"""Resolution with the Hub: fetch a repo's listing (hub.refs), then resolve against it (revisions.resolve).

A listing reused from the last few minutes may predate a branch pushed since, so a name not found
in it is looked up once more in a fresh answer before it fails.
"""

from __future__ import annotations

from collections.abc import Sequence

from olmo_cli.errors import NotFoundError, UsageError
from olmo_cli.hub.cache import RepoCache
from olmo_cli.hub.files import list_files
from olmo_cli.hub.refs import list_revisions
from olmo_cli.hub.repo_id import check_repo_id
from olmo_cli.reporting import NULL_REPORTER, Reporter
from olmo_cli.revisions.listing import SOURCE_LOCAL, SOURCE_OFFLINE, Listing
from olmo_cli.revisions.names import COMMIT, parse_revision, training_order
from olmo_cli.revisions.resolve import Resolved, clean_query, infer_repo, resolve_in
from olmo_cli.revisions.select import Selection


def resolve(
    query: str,
    repo: str | None = None,
    *,
    offline: bool = False,
    refresh: bool = False,
    reporter: Reporter = NULL_REPORTER,
) -> Resolved:
    query = clean_query(query)
    repo = check_repo_id(repo) if repo else infer_repo(query)
    listing = list_revisions(repo, offline=offline, refresh=refresh, reporter=reporter)
    try:
        resolved = resolve_in(query, repo, listing)
    except NotFoundError:
        if not listing.from_cache:
            raise
        # The reused answer may predate a branch pushed since: ask the Hub once before failing.
        listing = list_revisions(repo, offline=offline, refresh=True, reporter=reporter)
        resolved = resolve_in(query, repo, listing)
    check_commit(resolved, listing, reporter)
    return resolved


def check_commit(resolved: Resolved, listing: Listing, reporter: Reporter = NULL_REPORTER) -> None:
    """A commit sha that no branch points to and the cache does not hold is asked of the Hub
    (NotFoundError when it has no such commit); offline, a warning says it could not be checked."""
    if resolved.parsed.kind != COMMIT or resolved.revision in listing.commits.values():
        return
    if RepoCache.of(resolved.repo).snapshot(resolved.revision).is_dir():
        return
    if listing.source in (SOURCE_OFFLINE, SOURCE_LOCAL) or listing.warning:
        reporter.warn(
            f"commit {resolved.revision} cannot be checked offline: no branch of {resolved.repo} "
            f"known here points to it and it is not cached"
        )
        return
    list_files(resolved.repo, resolved.revision)  # NotFoundError from the Hub when there is no such commit


def select_revisions(
    repo: str | None,
    queries: Sequence[str],
    selection: Selection | None = None,
    *,
    offline: bool = False,
    refresh: bool = False,
    reporter: Reporter = NULL_REPORTER,
) -> list[Resolved]:
    """The named revisions plus those the selection keeps, in training order, without duplicates."""
    queries = [clean_query(query) for query in queries]
    if selection is not None and not selection.active:
        selection = None
    if not queries and selection is None:
        raise UsageError(
            "no revisions given",
            hint="name revisions with --revision, or select some with --from/--to/--every/--log-spaced/--stage/--limit",
        )
    if repo:
        check_repo_id(repo)
    elif queries:
        repo = infer_repo(queries[0])
    else:
        raise UsageError("a selection needs a repo", hint="pass the repo, e.g. allenai/OLMo-7B")
    listing = list_revisions(repo, offline=offline, refresh=refresh, reporter=reporter)
    try:
        named = [resolve_in(query, repo, listing) for query in queries]
    except NotFoundError:
        if not listing.from_cache:
            raise
        # The reused answer may predate a branch pushed since: ask the Hub once before failing.
        listing = list_revisions(repo, offline=offline, refresh=True, reporter=reporter)
        named = [resolve_in(query, repo, listing) for query in queries]
    for resolved in named:
        check_commit(resolved, listing, reporter)
    chosen: dict[str, Resolved] = {}
    for resolved in named:
        if resolved.note:  # "nearest to 2T tokens: ..., 36B tokens before": never silently
            reporter.info(f"note: {resolved.note}")
        chosen.setdefault(resolved.revision, resolved)
    if selection is not None:
        kept = selection.apply([parse_revision(name) for name in listing.names])
        if not kept and not queries:
            raise NotFoundError(
                f"no revision of {repo} matches {selection.describe()}",
                hint=f"run 'olmo list-revisions {repo}' to see what exists",
            )
        for revision in kept:
            chosen.setdefault(revision.name, Resolved(repo, revision.name, revision, exact=True))
    order = {r.name: i for i, r in enumerate(training_order(parse_revision(name) for name in chosen))}
    return sorted(chosen.values(), key=lambda resolved: order[resolved.revision])
