"""Tokenizers for converted checkpoints: find one, fix it up, write it in a form every transformers loads.

An HF output must carry a tokenizer that `AutoTokenizer` loads without remote code, in transformers
5 and in 4.57, with the model's eos/pad ids. Where it comes from, in priority order:

1. `override` (the user's `--tokenizer`): a local directory or tokenizer.json, a known OLMo
   tokenizer name, or a Hub tokenizer repo.
2. `source_dir`: the checkpoint's own tokenizer files (hf_olmo repos ship `tokenizer.json` with an
   `OLMoTokenizer` config and an `auto_map`, which asks for remote code; we rewrite the config).
3. `identifier`: a native `config.yaml`'s `tokenizer.identifier`. The OLMo identifiers map to the
   files bundled in `olmo_cli/data/tokenizers/`, so native conversion works offline.

The pii-special tokenizer the OLMo 1 models trained with has id 0 = `<|endoftext|>` and id 50279 =
`|||IP_ADDRESS|||`; the models' eos id is 50279, so the released dolma-v1_5 tokenizer swaps those two
entries. We always write the swapped one, so eos decodes as `<|endoftext|>`.

Nothing here imports transformers: the files are plain JSON. huggingface_hub is imported only to
download a tokenizer repo.

The modules: `known` (the bundled OLMo tokenizers, identifiers and aliases), `vocab` (reading
tokenizer.json), `resolve` (which tokenizer.json to use), `fetch` (Hub tokenizer repos), `fix` (the
pii-special swap), `write` (an HF output's tokenizer and generation config), `describe` (for
`olmo inspect`), `native` (the identifier a native config.yaml gets). Callers import from here.
"""

from __future__ import annotations

from olmo_cli.checkpoints.tokenizers.describe import describe_tokenizer
from olmo_cli.checkpoints.tokenizers.fetch import TOKENIZER_FILES, fetch_tokenizer_files
from olmo_cli.checkpoints.tokenizers.known import (
    BUNDLED_DIR,
    DOLMA2,
    DOLMA_V1_5,
    ENDOFTEXT,
    IP_ADDRESS,
    KNOWN_TOKENIZERS,
    PII_SPECIAL_ALIASES,
    PII_SPECIAL_NAME,
    KnownTokenizer,
    TokenizerInfo,
    known_by_eos,
    resolve_identifier,
)
from olmo_cli.checkpoints.tokenizers.native import TRAINER_FILES, hf_to_native_identifier, trainer_identifier
from olmo_cli.checkpoints.tokenizers.resolve import check_tokenizer, find_tokenizer
from olmo_cli.checkpoints.tokenizers.vocab import match_known, vocabulary_size
from olmo_cli.checkpoints.tokenizers.write import (
    STANDARD_CLASS,
    generation_config,
    special_tokens_map,
    tokenizer_config,
    write_hf_tokenizer,
)

__all__ = [
    "BUNDLED_DIR",
    "DOLMA2",
    "DOLMA_V1_5",
    "ENDOFTEXT",
    "IP_ADDRESS",
    "KNOWN_TOKENIZERS",
    "PII_SPECIAL_ALIASES",
    "PII_SPECIAL_NAME",
    "STANDARD_CLASS",
    "TOKENIZER_FILES",
    "TRAINER_FILES",
    "KnownTokenizer",
    "TokenizerInfo",
    "check_tokenizer",
    "describe_tokenizer",
    "fetch_tokenizer_files",
    "find_tokenizer",
    "generation_config",
    "hf_to_native_identifier",
    "known_by_eos",
    "match_known",
    "resolve_identifier",
    "special_tokens_map",
    "tokenizer_config",
    "trainer_identifier",
    "vocabulary_size",
    "write_hf_tokenizer",
]
