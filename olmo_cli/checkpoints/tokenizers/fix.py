"""Fixing a pii-special tokenizer.json into dolma-v1_5 (ids 0 and 50279 swapped)."""

from __future__ import annotations

from olmo_cli.checkpoints.tokenizers.known import ENDOFTEXT, IP_ADDRESS
from olmo_cli.checkpoints.tokenizers.vocab import _swap


def _fix_pii_special(vocab: dict[int, str], data: dict, eos_token_id: int | None):
    """Swap ids 0 and 50279 of a pii-special tokenizer (the dolma-v1_5 fix). Returns (vocab, data, swapped)."""
    if vocab.get(0) != ENDOFTEXT or vocab.get(50279) != IP_ADDRESS or eos_token_id not in (None, 50279):
        return vocab, data, False
    model_vocab = data["model"]["vocab"]
    if isinstance(model_vocab, dict):
        for token, index in list(model_vocab.items()):
            if index in (0, 50279):
                model_vocab[token] = 50279 if index == 0 else 0
    for added in data.get("added_tokens") or []:
        if added["id"] in (0, 50279):
            added["id"] = 50279 if added["id"] == 0 else 0
    data["added_tokens"] = sorted(data.get("added_tokens") or [], key=lambda added: added["id"])
    return _swap(vocab, 0, 50279), data, True
