"""The OLMo tokenizers we bundle (names, aliases, special tokens), identifiers resolved to them, and TokenizerInfo."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

BUNDLED_DIR = Path(__file__).resolve().parent.parent.parent / "data" / "tokenizers"


ENDOFTEXT = "<|endoftext|>"
IP_ADDRESS = "|||IP_ADDRESS|||"
PII_SPECIAL_NAME = "allenai/eleuther-ai-gpt-neox-20b-pii-special"


@dataclass(frozen=True)
class KnownTokenizer:
    """An OLMo tokenizer we ship: its Hub name (what native configs should say) and its special tokens."""

    name: str
    folder: str
    eos_token: str
    pad_token: str
    eos_token_id: int
    pad_token_id: int
    vocab_size: int
    aliases: tuple[str, ...]

    @property
    def path(self) -> Path:
        return BUNDLED_DIR / self.folder / "tokenizer.json"


DOLMA_V1_5 = KnownTokenizer(
    name="allenai/gpt-neox-olmo-dolma-v1_5",
    folder="gpt-neox-olmo-dolma-v1_5",
    eos_token=ENDOFTEXT,
    pad_token="<|padding|>",
    eos_token_id=50279,
    pad_token_id=1,
    vocab_size=50280,
    aliases=("allenai/gpt-neox-olmo-dolma-v1_5", "allenai_gpt-neox-olmo-dolma-v1_5", "gpt-neox-olmo-dolma-v1_5"),
)
DOLMA2 = KnownTokenizer(
    name="allenai/dolma2-tokenizer",
    folder="dolma2",
    eos_token=ENDOFTEXT,
    pad_token="<|pad|>",
    eos_token_id=100257,
    pad_token_id=100277,
    vocab_size=100278,
    aliases=("allenai/dolma2-tokenizer", "allenai_dolma2", "dolma2", "dolma2-tokenizer"),
)
KNOWN_TOKENIZERS = (DOLMA_V1_5, DOLMA2)


def known_by_eos(eos_token_id: int | None) -> KnownTokenizer | None:
    """The OLMo tokenizer a model's eos id implies (each has its own), else None."""
    return next((known for known in KNOWN_TOKENIZERS if known.eos_token_id == eos_token_id), None)


# Identifiers of the pii-special file: we write dolma-v1_5 instead (the same tokenizer, ids 0/50279 swapped).
PII_SPECIAL_ALIASES = (
    PII_SPECIAL_NAME,
    "allenai_eleuther-ai-gpt-neox-20b-pii-special",
    "eleuther-ai-gpt-neox-20b-pii-special",
)


def resolve_identifier(identifier: str) -> tuple[KnownTokenizer, str | None] | None:
    """(bundled tokenizer, note) for an OLMo tokenizer identifier, or None when it is not one we ship."""
    key = identifier.strip()
    candidates = {key.lower(), Path(key).name.lower(), Path(key).stem.lower()}
    if candidates & {alias.lower() for alias in PII_SPECIAL_ALIASES}:
        return DOLMA_V1_5, (
            f"tokenizer identifier '{identifier}' (pii-special): using {DOLMA_V1_5.name}, the same "
            f"tokenizer with ids 0 and 50279 swapped so eos id 50279 decodes as {ENDOFTEXT}"
        )
    for known in KNOWN_TOKENIZERS:
        if candidates & {alias.lower() for alias in known.aliases}:
            return known, None
    return None


@dataclass(frozen=True)
class TokenizerInfo:
    name: str
    eos_token_id: int | None
    pad_token_id: int | None
    vocab_size: int
    source: str
    bos_token_id: int | None = None
    eos_token: str | None = None
    pad_token: str | None = None
    bos_token: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "source": self.source,
            "vocab_size": self.vocab_size,
            "eos_token_id": self.eos_token_id,
            "eos_token": self.eos_token,
            "pad_token_id": self.pad_token_id,
            "pad_token": self.pad_token,
            "bos_token_id": self.bos_token_id,
            "bos_token": self.bos_token,
        }
