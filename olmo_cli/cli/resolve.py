"""`olmo resolve QUERY`: the exact revision (and repo) a query means."""

from __future__ import annotations

from typing import Annotated

import typer

from olmo_cli.cli.completion import complete_revision
from olmo_cli.cli.options import JsonOpt, OfflineOpt, RefreshOpt, RepoOpt, command_app
from olmo_cli.cli.output import ConsoleReporter, print_json, print_lines, say
from olmo_cli.hub.resolve import resolve as resolve_query

app = command_app()

QueryArg = Annotated[
    str,
    typer.Argument(
        metavar="QUERY",
        help="An exact name, step452000, 452000, 2T, 2000B, tokens=2000B, main, latest or a commit sha.",
        autocompletion=complete_revision,
        show_default=False,
    ),
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Print the revision name only.")]


@app.command()
def resolve(
    query: QueryArg,
    repo: RepoOpt = None,
    offline: OfflineOpt = False,
    refresh: RefreshOpt = False,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
):
    """Turn a query (step452000, 2T, latest...) into the exact revision.

    A token count resolves to the nearest existing checkpoint, and a note on stderr says how far
    it is. Without --repo, the repo is inferred when the name belongs to exactly one known repo.

    \b
    Examples:
      olmo resolve step452000-tokens2000B            # -> allenai/OLMo-7B
      olmo resolve 2T --repo allenai/OLMo-7B
      olmo resolve tokens=1.5T --repo allenai/OLMo-1B --json
      olmo resolve latest --repo allenai/OLMo-7B-Twin-2T -q
    """
    resolved = resolve_query(query, repo, offline=offline, refresh=refresh, reporter=ConsoleReporter())
    if as_json:
        print_json(resolved.as_dict())
        return
    if resolved.note:
        say(f"note: {resolved.note}")
    if quiet:
        print_lines([resolved.revision])
    else:
        print_lines([f"repo      {resolved.repo}", f"revision  {resolved.revision}"])
