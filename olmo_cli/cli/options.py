"""Shared option and argument declarations, so every command spells them the same way."""

from __future__ import annotations

from typing import Annotated

import typer

from olmo_cli.cli.completion import complete_repo, complete_revision


def command_app(**settings) -> typer.Typer:
    """A command module's app: plain help, and no completion options of its own (the root app owns them)."""
    return typer.Typer(rich_markup_mode=None, add_completion=False, **settings)


RepoArg = Annotated[
    str, typer.Argument(help="Hub repo id, e.g. allenai/OLMo-7B.", autocompletion=complete_repo, show_default=False)
]
RepoOpt = Annotated[
    str | None,
    typer.Option(
        "--repo",
        help="Hub repo id (inferred from the revision when it belongs to one known repo).",
        autocompletion=complete_repo,
        show_default=False,
    ),
]
RevisionOpt = Annotated[
    str | None,
    typer.Option(
        "--revision",
        "-r",
        help="Revision: an exact name, step452000, 2T, 2000B, main, latest.",
        autocompletion=complete_revision,
        show_default=False,
    ),
]
RevisionsOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--revision",
        "-r",
        help="Revision (repeatable): an exact name, step452000, 2T, 2000B, main, latest.",
        autocompletion=complete_revision,
        show_default=False,
    ),
]
OfflineOpt = Annotated[bool, typer.Option("--offline", help="Do not contact the Hub (also HF_HUB_OFFLINE=1).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Print names only, one a line.")]
ForceOpt = Annotated[bool, typer.Option("--force", help="Replace an existing output.")]

# Selection of many revisions (olmo_cli.revisions.select.Selection takes these fields).
FromOpt = Annotated[
    str | None,
    typer.Option(
        "--from",
        help="First revision to include: step100000, 100000, 1.5T, 800B.",
        autocompletion=complete_revision,
        show_default=False,
    ),
]
ToOpt = Annotated[
    str | None,
    typer.Option(
        "--to",
        help="Last revision to include: step200000, 200000, 2T, 2000B.",
        autocompletion=complete_revision,
        show_default=False,
    ),
]
EveryOpt = Annotated[
    int | None, typer.Option("--every", help="Keep revisions whose step is a multiple of N.", show_default=False)
]
LogSpacedOpt = Annotated[
    int | None, typer.Option("--log-spaced", help="Keep N revisions spread evenly in log(step).", show_default=False)
]
StageOpt = Annotated[
    int | None, typer.Option("--stage", help="Keep revisions of this training stage only.", show_default=False)
]
LimitOpt = Annotated[int | None, typer.Option("--limit", help="Keep at most N revisions.", show_default=False)]
