"""The list of commands: name -> (module, static one-line help).

Commands are imported only when run (or when their own --help is asked for), so `olmo --help`
and TAB completion of command names never import a command module. Each module named here
defines `app`, a `typer.Typer` with one command (or several, for a group such as `cache`).
Keep the help strings in step with the commands' docstrings; a test checks every entry imports.
"""

from __future__ import annotations

COMMANDS: dict[str, tuple[str, str]] = {
    "list-revisions": ("olmo_cli.cli.list_revisions", "List the step/token revisions of a repo, in training order."),
    "parse-revision": ("olmo_cli.cli.parse_revision", "Parse revision names into step, tokens, stage, ingredient."),
    "resolve": ("olmo_cli.cli.resolve", "Turn a query (step452000, 2T, latest...) into the exact revision."),
    "models": ("olmo_cli.cli.models", "The OLMo models, their Hub repos and named revisions."),
    "download": ("olmo_cli.cli.download", "Download one revision or a sweep of many into the HF cache."),
    "verify": ("olmo_cli.cli.verify", "Check cached files against the Hub's hashes and sizes."),
    "cache": ("olmo_cli.cli.cache", "List or remove cached revisions by name or range."),
    "inspect": ("olmo_cli.cli.inspect", "Describe a checkpoint: format, architecture, size, tokenizer."),
    "convert": ("olmo_cli.cli.convert", "Convert between native OLMo, legacy hf_olmo and transformers."),
    "generate": ("olmo_cli.cli.generate", "Generate text from any revision or local checkpoint."),
    "quantize": ("olmo_cli.cli.quantize", "Write a smaller checkpoint (int8, int4, nf4, fp16, bf16)."),
    "eval": ("olmo_cli.cli.eval", "Measure loss, perplexity and task scores across revisions."),
}
