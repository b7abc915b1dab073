"""Describing a checkpoint's tokenizer for `olmo inspect`, without writing or downloading anything."""

from __future__ import annotations

from pathlib import Path

from olmo_cli.checkpoints.tokenizers.known import TokenizerInfo
from olmo_cli.checkpoints.tokenizers.resolve import find_tokenizer
from olmo_cli.checkpoints.tokenizers.vocab import _config_token, _vocabulary, match_known
from olmo_cli.errors import BadInputError, NetworkError, NotFoundError, UnsupportedError


def describe_tokenizer(*, source_dir: Path | None = None, identifier: str | None = None) -> TokenizerInfo | None:
    """What tokenizer a checkpoint has, without writing or downloading anything (for `olmo inspect`)."""
    try:
        found = find_tokenizer(source_dir=source_dir, identifier=identifier, offline=True)
    except (NotFoundError, NetworkError, UnsupportedError):
        found = None
    if found is None:
        if identifier:
            return TokenizerInfo(
                name=identifier,
                eos_token_id=None,
                pad_token_id=None,
                vocab_size=0,
                source="identifier (not bundled; fetched from the Hub when converting)",
            )
        return None
    try:
        vocab = _vocabulary(found.file)
    except BadInputError as error:  # inspect still describes the rest of the checkpoint
        return TokenizerInfo(
            name=f"unreadable ({error.message})",
            eos_token_id=None,
            pad_token_id=None,
            vocab_size=0,
            source=found.source,
        )
    eos = _config_token(found.config, "eos_token") or (found.known.eos_token if found.known else None)
    pad = _config_token(found.config, "pad_token") or (found.known.pad_token if found.known else None)
    bos = _config_token(found.config, "bos_token")
    ids = {token: index for index, token in vocab.items()}
    name = found.name
    if found.known is None:
        name = match_known(found.file) or name
    return TokenizerInfo(
        name=name,
        eos_token_id=None if eos is None else ids.get(eos),
        pad_token_id=None if pad is None else ids.get(pad),
        vocab_size=max(vocab) + 1 if vocab else 0,
        source=found.source,
        bos_token_id=None if bos is None else ids.get(bos),
        eos_token=eos,
        pad_token=pad,
        bos_token=bos,
    )
