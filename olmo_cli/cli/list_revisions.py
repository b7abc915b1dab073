"""`olmo list-revisions REPO`: a repo's checkpoints in training order."""

from __future__ import annotations

from typing import Annotated

import typer

from olmo_cli.cli.options import JsonOpt, OfflineOpt, QuietOpt, RefreshOpt, RepoArg, command_app, selection_options
from olmo_cli.cli.output import ConsoleReporter, print_json, print_lines, print_table, say
from olmo_cli.hub.local import cached_snapshots
from olmo_cli.hub.refs import list_revisions as fetch_listing
from olmo_cli.revisions.gaps import find_gaps, usual_interval
from olmo_cli.revisions.names import format_tokens, parse_revision
from olmo_cli.revisions.select import Selection

app = command_app()

GapsOpt = Annotated[
    bool, typer.Option("--gaps", help="Show where checkpoints are missing (much further apart than usual).")
]


@app.command()
@selection_options
def list_revisions(
    repo: RepoArg,
    selection: Selection,
    gaps: GapsOpt = False,
    offline: OfflineOpt = False,
    refresh: RefreshOpt = False,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
):
    """List the step/token revisions of a repo, in training order.

    Online this is one request to the Hub (its answer is reused for 5 minutes); offline
    (--offline, HF_HUB_OFFLINE=1, or the Hub unreachable) it answers from the bundled index
    plus the local HF cache. Which source answered is said on stderr.

    \b
    Examples:
      olmo list-revisions allenai/OLMo-7B
      olmo list-revisions allenai/OLMo-7B --from 1.5T --to 2T --every 10000
      olmo list-revisions allenai/OLMo-1B --log-spaced 10 -q
      olmo list-revisions allenai/OLMo-1B --gaps --offline
      olmo list-revisions allenai/OLMo-7B-Twin-2T --json --limit 3
    """
    listing = fetch_listing(repo, offline=offline, refresh=refresh, reporter=ConsoleReporter())
    say(f"source: {listing.source}")
    revisions = [parse_revision(name) for name in listing.names]

    if gaps:
        _show_gaps(repo, revisions, selection, as_json, quiet)
        return

    kept = selection.apply(revisions)
    snapshots = cached_snapshots(repo)
    cached = {r.name: listing.commits.get(r.name) in snapshots for r in kept}
    if as_json:
        print_json([{**r.as_dict(), "cached": cached[r.name]} for r in kept])
    elif quiet:
        print_lines(r.name for r in kept)
    else:
        rows = [(r.name, r.step, format_tokens(r.tokens), _stage(r), "yes" if cached[r.name] else "") for r in kept]
        print_table(("revision", "step", "tokens", "stage/ingredient", "cached"), rows)
        say(f"{len(kept)} of {len(revisions)} revisions")


def _stage(revision) -> str:
    parts = []
    if revision.stage is not None:
        parts.append(f"stage {revision.stage}")
    if revision.ingredient is not None:
        parts.append(f"ingredient {revision.ingredient}")
    return ", ".join(parts)


def _show_gaps(repo, revisions, selection, as_json: bool, quiet: bool) -> None:
    # Gaps are measured over the selected range, but a lone --limit would cut the list short.
    scope = (
        selection.apply(revisions) if (selection.start or selection.end or selection.stage is not None) else revisions
    )
    found = find_gaps(scope)
    if as_json:
        print_json([gap.as_dict() for gap in found])
    elif quiet:
        print_lines(f"{gap.before.name} {gap.after.name}" for gap in found)
    else:
        print_table(
            ("after", "before", "steps apart", "times usual"),
            [(g.before.name, g.after.name, g.steps, f"{g.steps / g.usual:.0f}x") for g in found],
        )
        usual = usual_interval(scope)
        say(
            f"{len(found)} gap(s) in {repo}; "
            + (f"usual interval {usual} steps" if usual else "fewer than two checkpoints, so no interval to compare")
        )
