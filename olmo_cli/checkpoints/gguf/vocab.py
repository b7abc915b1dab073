"""The tokenizer as llama.cpp reads it: `tokenizer.ggml.*` for a byte-level BPE (`gpt2`) vocabulary.

The input is the tokenizer directory `olmo convert --to hf` writes (tokenizer.json and
tokenizer_config.json with the model's eos/pad/bos), so a GGUF and a transformers conversion of
one checkpoint agree on every token and special id. Token strings are the tokenizer.json
vocabulary (byte-level, e.g. `Ġthe`); added tokens keep their text and are CONTROL when special,
USER_DEFINED otherwise (llama.cpp then matches them before BPE, as tokenizers does). Ids between
the tokenizer's last and the embedding's last row are padding, UNUSED.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gguf

from olmo_cli.errors import BadInputError, UnsupportedError
from olmo_cli.jsonfiles import read_json_object

# The pre-tokenizer regex of dolma2 (OLMo 2 and 3; cl100k's): llama.cpp calls it `dbrx`.
CL100K_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)


@dataclass
class Vocabulary:
    pre: str  # llama.cpp's pre-tokenizer name
    tokens: list[str]
    types: list[int]
    merges: list[str]
    eos_token_id: int | None = None
    pad_token_id: int | None = None
    bos_token_id: int | None = None
    chat_template: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def add_to(self, writer: gguf.GGUFWriter) -> None:
        writer.add_tokenizer_model("gpt2")
        writer.add_tokenizer_pre(self.pre)
        writer.add_token_list(self.tokens)
        writer.add_token_types(self.types)
        writer.add_token_merges(self.merges)
        for value, add in (
            (self.eos_token_id, writer.add_eos_token_id),
            (self.pad_token_id, writer.add_pad_token_id),
            (self.bos_token_id, writer.add_bos_token_id),
        ):
            if value is not None:
                add(value)
        # OLMo prepends nothing (docs/REFERENCE.md 9); llama.cpp would otherwise decide by the pre-tokenizer.
        writer.add_add_bos_token(False)
        writer.add_add_eos_token(False)
        if self.chat_template:
            writer.add_chat_template(self.chat_template)


def read_vocabulary(
    directory: Path,
    embedding_size: int,
    *,
    eos_token_id: int | None,
    pad_token_id: int | None,
    bos_token_id: int | None,
) -> Vocabulary:
    """The GGUF vocabulary of the HF tokenizer files in `directory`, padded to `embedding_size` ids."""
    file = directory / "tokenizer.json"
    data = read_json_object(file, "tokenizer.json")
    model = data.get("model") or {}
    if model.get("type") != "BPE" or not isinstance(model.get("vocab"), dict):
        raise UnsupportedError(f"{file}: only BPE tokenizers can be written to GGUF, not {model.get('type')!r}")
    added = {int(t["id"]): t for t in data.get("added_tokens") or [] if isinstance(t, dict) and "id" in t}
    by_id: dict[int, str] = {int(i): token for token, i in model["vocab"].items()}
    by_id.update({i: str(t["content"]) for i, t in added.items()})
    size = max(by_id) + 1 if by_id else 0
    if size > embedding_size:
        raise BadInputError(
            f"the tokenizer has {size} ids but the model's embedding has only {embedding_size} rows",
            hint="pass the model's own tokenizer with --tokenizer",
        )
    tokens, types = [], []
    for i in range(embedding_size):
        if i in added:
            tokens.append(by_id[i])
            types.append(gguf.TokenType.CONTROL if added[i].get("special") else gguf.TokenType.USER_DEFINED)
        elif i in by_id:
            tokens.append(by_id[i])
            types.append(gguf.TokenType.NORMAL)
        else:
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges") or []]
    return Vocabulary(
        pre=pre_tokenizer_name(data.get("pre_tokenizer"), file),
        tokens=tokens,
        types=[int(t) for t in types],
        merges=merges,
        eos_token_id=eos_token_id,
        pad_token_id=pad_token_id,
        bos_token_id=bos_token_id,
        chat_template=_chat_template(directory),
    )


def pre_tokenizer_name(pre: Any, where: Path) -> str:
    """llama.cpp's name for a tokenizer's pre-tokenization (how text is split before BPE).

    dolma-v1_5 (OLMo 1) splits with GPT-2's byte-level regex: llama.cpp's `olmo`; dolma2 (OLMo 2/3)
    splits with cl100k's regex, then byte-level without a regex: llama.cpp's `dbrx`.
    """
    if (
        isinstance(pre, dict)
        and pre.get("type") == "ByteLevel"
        and pre.get("use_regex", True)
        and not pre.get("add_prefix_space", False)
    ):
        return "olmo"
    if isinstance(pre, dict) and pre.get("type") == "Sequence":
        steps = pre.get("pretokenizers") or []
        if (
            len(steps) == 2
            and steps[0].get("type") == "Split"
            and (steps[0].get("pattern") or {}).get("Regex") == CL100K_REGEX
            and steps[1].get("type") == "ByteLevel"
            and not steps[1].get("use_regex", True)
        ):
            return "dbrx"
    raise UnsupportedError(
        f"{where}: this tokenizer's pre-tokenizer has no llama.cpp equivalent here",
        hint="GGUF export knows the OLMo tokenizers (dolma-v1_5 and dolma2)",
    )


def _chat_template(directory: Path) -> str | None:
    config_file = directory / "tokenizer_config.json"
    config = read_json_object(config_file, "tokenizer_config.json") if config_file.is_file() else {}
    template = config.get("chat_template")
    if isinstance(template, list):  # named templates: llama.cpp reads the default one
        template = next(
            (t.get("template") for t in template if isinstance(t, dict) and t.get("name") == "default"), None
        )
    if not template and (directory / "chat_template.jinja").is_file():
        template = (directory / "chat_template.jinja").read_text(encoding="utf-8")
    return template if isinstance(template, str) and template else None
