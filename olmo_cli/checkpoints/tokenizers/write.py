"""Writing an HF output's tokenizer files (tokenizer.json, its config, special tokens) and generation config."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from olmo_cli.checkpoints.tokenizers.fix import _fix_pii_special
from olmo_cli.checkpoints.tokenizers.known import ENDOFTEXT, TokenizerInfo
from olmo_cli.checkpoints.tokenizers.resolve import find_tokenizer
from olmo_cli.checkpoints.tokenizers.vocab import _config_token, _id_to_token
from olmo_cli.errors import NotFoundError
from olmo_cli.jsonfiles import read_json_object, write_json
from olmo_cli.reporting import NULL_REPORTER, Reporter

# The class both transformers 4.57 and 5.x know (5.x maps it to its TokenizersBackend).
STANDARD_CLASS = "PreTrainedTokenizerFast"


def write_hf_tokenizer(
    dst: Path,
    *,
    source_dir: Path | None = None,
    identifier: str | None = None,
    override: str | None = None,
    eos_token_id: int | None = None,
    pad_token_id: int | None = None,
    bos_token_id: int | None = None,
    model_max_length: int | None = None,
    embedding_size: int | None = None,
    offline: bool = False,
    reporter: Reporter = NULL_REPORTER,
) -> TokenizerInfo:
    """Write tokenizer.json, tokenizer_config.json and special_tokens_map.json into `dst`.

    `eos_token_id`/`pad_token_id`/`bos_token_id` are the model config's ids: the written special tokens
    are the tokens at those ids. `model_max_length` is the model's context; `embedding_size` (rows of
    the embedding matrix) is checked against the tokenizer's vocabulary.
    """
    found = find_tokenizer(
        source_dir=source_dir, identifier=identifier, override=override, offline=offline, reporter=reporter
    )
    if found is None:
        raise NotFoundError(
            "no tokenizer: the checkpoint has no tokenizer files and its config names none",
            hint="pass --tokenizer PATH|REPO, e.g. --tokenizer allenai/gpt-neox-olmo-dolma-v1_5",
        )
    if found.note:
        reporter.info(found.note)
    data = read_json_object(found.file, "tokenizer.json")
    vocab = _id_to_token(data, found.file)
    vocab, data, swapped = _fix_pii_special(vocab, data, eos_token_id)
    if swapped:
        reporter.info(
            f"tokenizer {found.name}: ids 0 and 50279 swapped (pii-special -> dolma-v1_5) "
            f"so eos id 50279 decodes as {ENDOFTEXT}"
        )

    eos = _special(
        vocab,
        eos_token_id,
        _config_token(found.config, "eos_token"),
        found.known.eos_token if found.known else None,
        "eos",
        reporter,
    )
    pad = _special(
        vocab,
        pad_token_id,
        _config_token(found.config, "pad_token"),
        found.known.pad_token if found.known else None,
        "pad",
        reporter,
    )
    bos = _special(vocab, bos_token_id, _config_token(found.config, "bos_token"), None, "bos", reporter)
    vocab_size = max(vocab) + 1 if vocab else 0
    if embedding_size is not None and vocab_size > embedding_size:
        reporter.warn(
            f"tokenizer {found.name} has {vocab_size} ids but the model's embedding has {embedding_size} rows"
        )

    dst = Path(dst)
    dst.mkdir(parents=True, exist_ok=True)
    if swapped:
        (dst / "tokenizer.json").write_text(
            json.dumps(data, ensure_ascii=False, separators=(",", ":")), encoding="utf-8"
        )
    else:
        shutil.copyfile(found.file, dst / "tokenizer.json")  # byte for byte: nothing to change
    config = tokenizer_config(eos[1], pad[1], bos[1], model_max_length)
    # An instruct model's chat template survives the rewrite (in the config, or in its own file).
    if isinstance(found.config.get("chat_template"), (str, list)):
        config["chat_template"] = found.config["chat_template"]
    write_json(dst / "tokenizer_config.json", config)
    write_json(dst / "special_tokens_map.json", special_tokens_map(eos[1], pad[1], bos[1]))
    template = found.file.parent / "chat_template.jinja"
    if found.file.name == "tokenizer.json" and template.is_file():
        shutil.copyfile(template, dst / "chat_template.jinja")
    return TokenizerInfo(
        name=found.name,
        eos_token_id=eos[0],
        pad_token_id=pad[0],
        vocab_size=vocab_size,
        source=found.source,
        bos_token_id=bos[0],
        eos_token=eos[1],
        pad_token=pad[1],
        bos_token=bos[1],
    )


def tokenizer_config(
    eos_token: str | None, pad_token: str | None, bos_token: str | None = None, model_max_length: int | None = None
) -> dict[str, Any]:
    """A tokenizer_config.json both transformers 4.57 and 5.x load as a standard fast tokenizer."""
    config: dict[str, Any] = {
        "tokenizer_class": STANDARD_CLASS,
        "bos_token": bos_token,
        "eos_token": eos_token,
        "pad_token": pad_token,
        "unk_token": None,
        # OLMo's own tokenizer decodes without clean-up; clean-up would turn "a ." into "a.".
        "clean_up_tokenization_spaces": False,
        # Without this, 4.x fast tokenizers return token_type_ids, which OLMo models' generate() rejects.
        "model_input_names": ["input_ids", "attention_mask"],
    }
    if model_max_length:
        config["model_max_length"] = int(model_max_length)
    return config


def special_tokens_map(eos_token: str | None, pad_token: str | None, bos_token: str | None = None) -> dict[str, str]:
    names = {"bos_token": bos_token, "eos_token": eos_token, "pad_token": pad_token}
    return {key: value for key, value in names.items() if value is not None}


def generation_config(
    eos_token_id: int | None, pad_token_id: int | None = None, bos_token_id: int | None = None
) -> dict[str, Any]:
    """generation_config.json as the original OLMo repos carry it: token ids only.

    No sampling defaults or lengths: transformers lets a `max_new_tokens` here override a caller's
    `max_length` (lm-evaluation-harness' max_gen_toks), and `do_sample` makes a bare generate()
    sample. The model card's defaults live in `olmo generate` alone (olmo_cli.generate).
    """
    from olmo_cli.checkpoints.formats.hf import transformers_version

    config: dict[str, Any] = {"transformers_version": transformers_version()}
    for key, value in (("bos_token_id", bos_token_id), ("eos_token_id", eos_token_id), ("pad_token_id", pad_token_id)):
        if value is not None:
            config[key] = int(value)
    return config


def _special(
    vocab: dict[int, str],
    model_id: int | None,
    configured: str | None,
    default: str | None,
    role: str,
    reporter: Reporter,
) -> tuple[int | None, str | None]:
    """(id, token) for one special token. The model config's id wins: its token is what the model emits."""
    ids = {token: index for index, token in vocab.items()}
    if model_id is not None:
        token = vocab.get(int(model_id))
        if token is None:
            reporter.warn(
                f"the model's {role} id {model_id} is outside the tokenizer's vocabulary; no {role} token written"
            )
            return int(model_id), None
        expected = configured or default
        if expected is not None and expected != token:
            reporter.warn(
                f"the tokenizer's {role} token is {expected!r} but the model's {role} id {model_id} "
                f"is {token!r}; using {token!r}"
            )
        return int(model_id), token
    token = configured or default
    if token is not None and token in ids:
        return ids[token], token
    return None, None
