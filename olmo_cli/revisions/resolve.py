"""Resolution against a listing: what a query means among a repo's revisions. Pure: no I/O.

Every `--revision` goes through here, by way of olmo_cli.hub.resolve, which fetches the listing.
A query is an exact revision name, `step452000` (or `452000`), a token count (`2T`, `2000B`,
`tokens=2000B`: the nearest existing checkpoint, with a note saying how far), `main`, `latest`
(the last checkpoint) or a commit sha. Without a repo, the repo is inferred from the bundled
index when the name belongs to exactly one known repo.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass

from olmo_cli.errors import NotFoundError, UsageError
from olmo_cli.revisions.index import bundled_revisions, known_repos, repos_with_revision
from olmo_cli.revisions.listing import Listing
from olmo_cli.revisions.names import (
    MAIN,
    Revision,
    format_tokens,
    is_commit_sha,
    parse_revision,
    parse_step_number,
    parse_token_count,
    training_order,
)

LATEST = "latest"


@dataclass(frozen=True)
class Resolved:
    repo: str
    revision: str  # the exact name (or commit sha) to ask the Hub for
    parsed: Revision
    exact: bool  # False when a token count resolved to the nearest checkpoint
    note: str | None = None

    def as_dict(self) -> dict:
        return {
            "repo": self.repo,
            "revision": self.revision,
            "step": self.parsed.step,
            "tokens": self.parsed.tokens,
            "exact": self.exact,
            "note": self.note,
        }


def infer_repo(query: str) -> str:
    """The one known repo whose bundled index has this revision; UsageError when none or several."""
    repos = repos_with_revision(query)
    if not repos:
        step = _step_query(query) if not query.isdigit() else None
        if step is not None:  # step452000: the repos with a checkpoint at that step
            repos = [
                repo
                for repo in known_repos()
                if any(parse_revision(name).step == step for name in bundled_revisions(repo) or ())
            ]
    if len(repos) == 1:
        return repos[0]
    if len(repos) > 1:
        raise UsageError(f"'{query}' exists in several repos: {', '.join(repos)}", hint="pick one with --repo")
    known = [name for repo in known_repos() for name in bundled_revisions(repo) or ()]
    close = _suggest(query, known)
    if close and (parse_revision(query).is_checkpoint or parse_token_count(query) is None):
        raise NotFoundError(
            f"revision '{query}' is in no known repo", hint=f"did you mean {_or(close)}? Or pass --repo"
        )
    raise UsageError(f"cannot tell which repo '{query}' belongs to", hint="pass the repo, e.g. --repo allenai/OLMo-7B")


def resolve_in(query: str, repo: str, listing: Listing) -> Resolved:
    """Resolve `query` against a repo's listing (no I/O)."""
    names = listing.names
    if query in names:
        return Resolved(repo, query, parse_revision(query), exact=True)
    if query == MAIN or is_commit_sha(query):  # main always exists; a sha names any commit
        return Resolved(repo, query, parse_revision(query), exact=True)
    revisions = [parse_revision(name) for name in names]
    checkpoints = [r for r in revisions if r.is_checkpoint]
    if query == LATEST:
        if not checkpoints:
            raise NotFoundError(f"{repo} has no step checkpoints, so no latest one ({listing.source})")
        last = training_order(checkpoints)[-1]
        return Resolved(repo, last.name, last, exact=True, note=f"latest = {last.name}")
    step = _step_query(query)
    if step is not None:
        return _by_step(query, step, repo, checkpoints, listing)
    tokens = parse_token_count(query)
    if tokens is not None:
        return _by_tokens(query, tokens, repo, checkpoints, listing)
    raise _not_found(query, repo, names, listing)


def _by_step(query: str, step: int, repo: str, checkpoints: list[Revision], listing: Listing) -> Resolved:
    matches = [r for r in checkpoints if r.step == step]
    if len(matches) == 1:
        return Resolved(repo, matches[0].name, matches[0], exact=True)
    if len(matches) > 1:
        raise UsageError(
            f"step {step} names several revisions of {repo}: {', '.join(r.name for r in matches)}",
            hint="give the full name",
        )
    nearest = sorted(checkpoints, key=lambda r: (abs(r.checkpoint_step - step), r.checkpoint_step))[:3]
    hint = f"the nearest: {', '.join(r.name for r in training_order(nearest))}" if nearest else None
    raise NotFoundError(f"{repo} has no checkpoint at step {step} ({listing.source})", hint=hint)


def _by_tokens(query: str, tokens: int, repo: str, checkpoints: list[Revision], listing: Listing) -> Resolved:
    counted = [(r, r.tokens) for r in checkpoints if r.tokens is not None]
    if not counted:
        raise NotFoundError(
            f"the revisions of {repo} carry no token counts, so '{query}' cannot be placed",
            hint="ask for a step instead, e.g. step1000",
        )
    best, best_tokens = min(counted, key=lambda pair: (abs(pair[1] - tokens), pair[0].sort_key))
    distance = best_tokens - tokens
    if distance == 0:
        return Resolved(repo, best.name, best, exact=True, note=f"{format_tokens(tokens)} tokens = {best.name}")
    direction = "after" if distance > 0 else "before"
    note = f"nearest to {format_tokens(tokens)} tokens: {best.name}, {format_tokens(abs(distance))} tokens {direction}"
    return Resolved(repo, best.name, best, exact=False, note=note)


def _step_query(query: str) -> int | None:
    number = parse_step_number(query)
    if number is not None:
        return number
    parsed = parse_revision(query)
    if parsed.is_checkpoint and parsed.tokens is None and parsed.stage is None and parsed.ingredient is None:
        return parsed.step  # step452000 or step_452000, matched whatever the full name's suffix
    return None


def _not_found(query: str, repo: str, names: list[str], listing: Listing) -> NotFoundError:
    close = _suggest(query, names)
    hint = f"did you mean {_or(close)}?" if close else f"run 'olmo list-revisions {repo}' to see the revisions"
    return NotFoundError(f"revision '{query}' not found in {repo} ({listing.source})", hint=hint)


def _suggest(query: str, names: Sequence[str]) -> list[str]:
    """Up to three names the user may have meant, best first: the closest spelling (a dropped
    digit), then, for a checkpoint name, the checkpoints of the same run nearest in step (a
    mistyped token count is still that step)."""
    unique = list(dict.fromkeys(names))
    wanted = parse_revision(query)
    if not wanted.is_checkpoint:
        return difflib.get_close_matches(query, unique, n=3, cutoff=0.6)
    same_run = [
        r
        for r in map(parse_revision, unique)
        if r.is_checkpoint and (r.stage, r.ingredient) == (wanted.stage, wanted.ingredient)
    ]
    nearest = [
        r.name
        for r in sorted(same_run, key=lambda r: (abs(r.checkpoint_step - wanted.checkpoint_step), r.checkpoint_step))[
            :3
        ]
    ]
    spelled = difflib.get_close_matches(query, unique, n=1, cutoff=0.85)
    return list(dict.fromkeys(spelled + nearest))[:3]


def _or(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


def clean_query(query: str) -> str:
    cleaned = (query or "").strip()
    if not cleaned:
        raise UsageError("an empty revision was given")
    return cleaned
