"""`olmo models`: the OLMo models, their Hub repos and named revisions."""

from __future__ import annotations

from olmo_cli.cli.options import JsonOpt, command_app
from olmo_cli.cli.output import print_json, print_table
from olmo_cli.revisions.catalog import MODELS, NAMED_REVISIONS, catalog
from olmo_cli.revisions.names import format_tokens

app = command_app()


@app.command()
def models(as_json: JsonOpt = False):
    """The OLMo models, their Hub repos and named revisions.

    From the OLMo model card: size, training tokens, layers, d_model, heads, context; the
    original repos (every step branch, legacy hf_olmo format) and the transformers-native -hf
    copies; and the named revisions (not annealed, 2T, twin). Offline, no Hub request.

    \b
    Examples:
      olmo models
      olmo models --json
    """
    if as_json:
        print_json(catalog())
        return
    print_table(
        ("model", "size", "tokens", "layers", "d_model", "heads", "context", "repos"),
        [
            (m.name, m.size, format_tokens(m.tokens), m.layers, m.d_model, m.heads, m.context, " ".join(m.repos))
            for m in MODELS
        ],
        title="Models",
    )
    print_table(
        ("name", "repo", "revision", "tokens", "note"),
        [(n.name, n.repo, n.revision, format_tokens(n.tokens), n.note) for n in NAMED_REVISIONS],
        title="Named revisions",
    )
