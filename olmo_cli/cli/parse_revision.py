"""`olmo parse-revision NAME...`: what a revision name says (step, tokens, stage, ingredient)."""

from __future__ import annotations

import typer

from olmo_cli.cli.options import JsonOpt, command_app

app = command_app()


@app.command()
def parse_revision(
    names: list[str] = typer.Argument(..., help="Revision names, e.g. step452000-tokens2000B.", show_default=False),
    as_json: JsonOpt = False,
):
    """Parse revision names into step, tokens, stage, ingredient, variant.

    Every naming family parses (step{N}-tokens{T}B, stage{S}-step{N}-tokens{T}B,
    stage{S}-ingredient{K}-step{N}-tokens{T}B, OLMo 3's stage{S}-step{N}, souped
    ingredient{J}+{K}, ablation suffixes, step{N}, step_{N}); main, tags, commit shas
    and other names are shown as they are, with no fields. Offline, no Hub request.

    \b
    Examples:
      olmo parse-revision step452000-tokens2000B
      olmo parse-revision stage2-ingredient3-step11931-tokens100B main --json
    """
    from olmo_cli.cli.output import print_json, print_table
    from olmo_cli.revisions.names import format_tokens
    from olmo_cli.revisions.names import parse_revision as parse

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
