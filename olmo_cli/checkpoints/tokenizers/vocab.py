"""Reading tokenizer.json: its id -> token table (parsed once per version), size, and which known one it is."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from olmo_cli.checkpoints.tokenizers.known import DOLMA_V1_5, IP_ADDRESS, KNOWN_TOKENIZERS, PII_SPECIAL_NAME
from olmo_cli.errors import BadInputError
from olmo_cli.jsonfiles import read_json_object


def vocabulary_size(file: Path) -> int:
    """How many ids a tokenizer.json has, added tokens included (what the OLMo trainer calls vocab_size)."""
    return len(_vocabulary(file))


def match_known(file: Path) -> str | None:
    """The name of the known OLMo tokenizer whose vocabulary `file` has exactly, else None."""
    vocab = _vocabulary(file)
    for known in KNOWN_TOKENIZERS:
        if len(vocab) != known.vocab_size or vocab.get(known.eos_token_id) not in (known.eos_token, IP_ADDRESS):
            continue
        reference = _vocabulary(known.path)
        if vocab == reference:
            return known.name
        if known is DOLMA_V1_5 and vocab == _swap(reference, 0, 50279):
            return PII_SPECIAL_NAME
    return None


def _vocabulary(file: Path) -> dict[int, str]:
    """id -> token of a tokenizer.json (read-only: shared between callers). A conversion asks several
    times (check, match, size) and a file is megabytes of JSON, so each version is parsed once."""
    info = Path(file).stat()
    return _vocabulary_of(str(Path(file).resolve()), info.st_size, info.st_mtime_ns)


@lru_cache(maxsize=8)
def _vocabulary_of(path: str, size: int, mtime_ns: int) -> dict[int, str]:
    return _id_to_token(read_json_object(Path(path), "tokenizer.json"), Path(path))


def _id_to_token(data: Any, file: Path) -> dict[int, str]:
    """id -> token over the model vocabulary and the added tokens."""
    model = data.get("model") if isinstance(data, dict) else None
    if not isinstance(model, dict) or "vocab" not in model:
        raise BadInputError(f"{file} is not a tokenizers tokenizer.json (no model.vocab)")
    vocab = model["vocab"]
    try:
        if isinstance(vocab, dict):
            table = {int(index): token for token, index in vocab.items()}
        elif isinstance(vocab, list):  # Unigram: [[token, score], ...]
            table = {index: entry[0] for index, entry in enumerate(vocab)}
        else:
            raise BadInputError(f"{file}: model.vocab has an unknown shape")
        for added in data.get("added_tokens") or []:
            table[int(added["id"])] = added["content"]
    except (KeyError, TypeError, ValueError, IndexError) as error:
        raise BadInputError(f"{file}: not a valid tokenizer.json ({type(error).__name__}: {error})") from None
    return table


def _swap(vocab: dict[int, str], a: int, b: int) -> dict[int, str]:
    swapped = dict(vocab)
    for i, j in ((a, b), (b, a)):
        if j in vocab:
            swapped[i] = vocab[j]
        else:
            swapped.pop(i, None)
    return swapped


def _config_token(config: dict[str, Any], key: str) -> str | None:
    """A special token as tokenizer configs spell it: a string or an AddedToken dict."""
    value = config.get(key)
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) else None
