"""`olmo parse-revision NAME...`: what a revision name says (step, tokens, stage, ingredient)."""

from __future__ import annotations

from typing import Annotated

import typer

from olmo_cli.cli.options import JsonOpt, command_app
from olmo_cli.cli.output import print_json, print_table
from olmo_cli.revisions.names import format_tokens
from olmo_cli.revisions.names import parse_revision as parse

app = command_app()

NamesArg = Annotated[
    list[str],
    typer.Argument(metavar="NAME...", help="Revision names, e.g. step452000-tokens2000B.", show_default=False),
]


@app.command()
def parse_revision(names: NamesArg, as_json: JsonOpt = False):
    """Parse revision names into step, tokens, stage, ingredient, variant.

    Every naming family parses (step{N}-tokens{T}B, stage{S}-step{N}-tokens{T}B,
    stage{S}-ingredient{K}-step{N}-tokens{T}B, OLMo 3's stage{S}-step{N}, souped
    ingredient{J}+{K}, ablation suffixes, step{N}, step_{N}); main, tags, commit shas
    and other names are shown as they are, with no fields. Offline, no Hub request.

    \b
    Examples:
      olmo parse-revision step452000-tokens2000B
      olmo parse-revision stage2-ingredient3-step11931-tokens100B --json
      olmo parse-revision main step_1000 step1000-tokens4B
    """
    parsed = [parse(name) for name in names]
    if as_json:
        print_json([revision.as_dict() for revision in parsed])
        return
    print_table(
        ("name", "kind", "step", "tokens", "stage", "ingredient", "variant"),
        [
            (
                r.name,
                r.kind,
                r.step,
                format_tokens(r.tokens),
                r.stage,
                "+".join(map(str, r.ingredients)) if r.ingredients else r.ingredient,
                r.variant,
            )
            for r in parsed
        ],
    )
