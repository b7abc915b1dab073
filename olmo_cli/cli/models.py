"""`olmo models`: the OLMo models, their Hub repos and named revisions."""

from __future__ import annotations

from enum import Enum
from typing import Annotated

import typer

from olmo_cli.cli.options import JsonOpt, command_app
from olmo_cli.cli.output import print_json, print_table
from olmo_cli.revisions.catalog import CITATIONS, MODELS, NAMED_REVISIONS, catalog
from olmo_cli.revisions.names import format_tokens

app = command_app()


class CiteFormat(str, Enum):
    BIBTEX = "bibtex"
    APA = "apa"


@app.command()
def models(
    as_json: JsonOpt = False,
    cite: Annotated[bool, typer.Option("--cite", help="Print the OLMo paper's citation instead.")] = False,
    cite_format: Annotated[CiteFormat, typer.Option("--format", help="Citation style for --cite.")] = CiteFormat.BIBTEX,
):
    """The OLMo models (OLMo 1, OLMo 2, OLMo 3, OLMoE), their Hub repos and named revisions.

    Size, training tokens, layers, d_model, heads (KV heads), context, attention pattern; the
    repos and how their intermediate checkpoints are published; and OLMo 1's named revisions
    (not annealed, 2T, twin). `--cite` prints the OLMo paper's BibTeX (or `--format apa`) as the
    model card gives it. Offline, no Hub request.

    \b
    Examples:
      olmo models
      olmo models --json
      olmo models --cite --format apa
    """
    if cite:
        text = CITATIONS[cite_format.value]
        if as_json:
            print_json({"format": cite_format.value, "citation": text})
        else:
            typer.echo(text)
        return
    if as_json:
        print_json(catalog())
        return
    print_table(
        ("model", "size", "tokens", "layers", "d_model", "heads", "context", "repos"),
        [
            (
                m.name,
                m.size,
                format_tokens(m.tokens) or "?",
                m.layers,
                m.d_model,
                m.heads if m.kv_heads is None else f"{m.heads} (kv {m.kv_heads})",
                m.context,
                " ".join(m.repos),
            )
            for m in MODELS
        ],
        title="Models",
    )
    print_table(
        ("model", "attention", "intermediate checkpoints"),
        [(m.name, m.attention, m.checkpoints) for m in MODELS],
        title="Architecture and checkpoints",
    )
    print_table(
        ("name", "repo", "revision", "tokens", "note"),
        [(n.name, n.repo, n.revision, format_tokens(n.tokens), n.note) for n in NAMED_REVISIONS],
        title="Named revisions",
    )
