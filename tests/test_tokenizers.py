"""Tokenizers for converted checkpoints: sources, the pii-special fix, files transformers loads without remote code."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from helpers import Recorder

from olmo_cli.checkpoints import tokenizers as tk
from olmo_cli.errors import BadInputError, NetworkError, NotFoundError, UnsupportedError

DATA = Path(__file__).parent / "data" / "tokenizers"
HF_OLMO_TOKENIZER = DATA / "gpt-neox-olmo-dolma-v1_5"  # as the hf_olmo repos ship it (OLMoTokenizer + auto_map)
TEXT = "Language modeling is fun: OLMo 1B, 7B & Twin-2T!\n  Indented  text, émigré, 東京."


def _config(directory: Path) -> dict:
    return json.loads((directory / "tokenizer_config.json").read_text())


def _auto_tokenizer(directory: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(directory))  # no trust_remote_code


def _pii_special_dir(tmp_path: Path) -> Path:
    """The pii-special tokenizer the OLMo 1 models trained with: dolma-v1_5 with ids 0 and 50279 swapped back."""
    data = json.loads(tk.DOLMA_V1_5.path.read_text())
    vocab = data["model"]["vocab"]
    for token, index in list(vocab.items()):
        if index in (0, 50279):
            vocab[token] = 50279 - index
    for added in data["added_tokens"]:
        if added["id"] in (0, 50279):
            added["id"] = 50279 - added["id"]
    data["added_tokens"].sort(key=lambda added: added["id"])
    directory = tmp_path / "pii-special"
    directory.mkdir()
    (directory / "tokenizer.json").write_text(json.dumps(data))
    return directory


@pytest.fixture(scope="module")
def olmo1_out(tmp_path_factory) -> tuple[Path, tk.TokenizerInfo, Recorder]:
    """A native OLMo-1 checkpoint's tokenizer: config.yaml names the pii-special file."""
    dst = tmp_path_factory.mktemp("olmo1")
    reporter = Recorder()
    info = tk.write_hf_tokenizer(
        dst,
        identifier="tokenizers/allenai_eleuther-ai-gpt-neox-20b-pii-special.json",
        eos_token_id=50279,
        pad_token_id=1,
        model_max_length=2048,
        reporter=reporter,
    )
    return dst, info, reporter


def test_bundled_files_are_the_shared_copies():
    for known in tk.KNOWN_TOKENIZERS:
        assert known.path.read_bytes() == (DATA / known.folder / "tokenizer.json").read_bytes()
    assert "Provenance" in (tk.BUNDLED_DIR / "README.md").read_text()


def test_pii_special_identifier_becomes_dolma_v1_5_and_says_so(olmo1_out):
    dst, info, reporter = olmo1_out
    assert info.name == "allenai/gpt-neox-olmo-dolma-v1_5"
    assert (info.eos_token_id, info.pad_token_id, info.vocab_size) == (50279, 1, 50280)
    assert (dst / "tokenizer.json").read_bytes() == tk.DOLMA_V1_5.path.read_bytes()
    assert any("pii-special" in message and "50279" in message for message in reporter.infos)
    assert sorted(path.name for path in dst.iterdir()) == sorted(tk.TOKENIZER_FILES)


def test_written_config_is_standard_and_complete(olmo1_out):
    dst, _, _ = olmo1_out
    config = _config(dst)
    assert config["tokenizer_class"] == "PreTrainedTokenizerFast"
    assert "auto_map" not in config
    assert (config["eos_token"], config["pad_token"], config["bos_token"]) == ("<|endoftext|>", "<|padding|>", None)
    assert config["model_max_length"] == 2048
    assert json.loads((dst / "special_tokens_map.json").read_text()) == {
        "eos_token": "<|endoftext|>",
        "pad_token": "<|padding|>",
    }


def test_olmo1_output_loads_with_auto_tokenizer_and_round_trips(olmo1_out):
    dst, _, _ = olmo1_out
    tokenizer = _auto_tokenizer(dst)
    assert tokenizer.eos_token_id == 50279 and tokenizer.decode([50279]) == "<|endoftext|>"
    assert tokenizer.pad_token_id == 1 and tokenizer.decode([1]) == "<|padding|>"
    assert tokenizer.bos_token_id is None
    assert tokenizer.model_max_length == 2048
    encoded = tokenizer(TEXT)
    assert set(encoded) == {"input_ids", "attention_mask"}  # no token_type_ids for generate()
    assert tokenizer.decode(encoded["input_ids"]) == TEXT
    assert len(tokenizer) == 50280


def test_dolma2_identifier_gives_olmo2_tokenizer(tmp_path):
    info = tk.write_hf_tokenizer(
        tmp_path, identifier="allenai/dolma2-tokenizer", eos_token_id=100257, pad_token_id=100277, model_max_length=4096
    )
    assert (info.name, info.eos_token_id, info.pad_token_id, info.vocab_size) == (
        "allenai/dolma2-tokenizer",
        100257,
        100277,
        100278,
    )
    tokenizer = _auto_tokenizer(tmp_path)
    assert (tokenizer.eos_token, tokenizer.eos_token_id) == ("<|endoftext|>", 100257)
    assert (tokenizer.pad_token, tokenizer.pad_token_id) == ("<|pad|>", 100277)
    ids = tokenizer(TEXT)["input_ids"]
    assert ids[0] != 100257  # no bos/eos added around the text
    assert tokenizer.decode(ids) == TEXT


@pytest.mark.parametrize(
    "identifier", ["tokenizers/allenai_dolma2.json", "allenai_dolma2", "/opt/olmo/tokenizers/allenai_dolma2.json"]
)
def test_dolma2_package_file_names_resolve_offline(tmp_path, identifier):
    info = tk.write_hf_tokenizer(tmp_path, identifier=identifier, offline=True)
    assert info.name == "allenai/dolma2-tokenizer"
    assert (info.eos_token_id, info.pad_token_id) == (100257, 100277)  # the known defaults, no ids given


@pytest.mark.parametrize(
    "identifier",
    [
        "tokenizers/allenai_gpt-neox-olmo-dolma-v1_5.json",
        "allenai/gpt-neox-olmo-dolma-v1_5",
        "allenai/eleuther-ai-gpt-neox-20b-pii-special",
    ],
)
def test_olmo1_identifiers_resolve_offline_to_dolma_v1_5(tmp_path, identifier):
    info = tk.write_hf_tokenizer(tmp_path, identifier=identifier, eos_token_id=50279, pad_token_id=1, offline=True)
    assert info.name == "allenai/gpt-neox-olmo-dolma-v1_5"
    assert _config(tmp_path)["eos_token"] == "<|endoftext|>"


def test_hf_olmo_tokenizer_is_rewritten_to_a_standard_class(tmp_path):
    source = tmp_path / "hf_olmo"
    shutil.copytree(HF_OLMO_TOKENIZER, source)
    assert _config(source)["tokenizer_class"] == "OLMoTokenizer" and "auto_map" in _config(source)
    dst = tmp_path / "out"
    info = tk.write_hf_tokenizer(
        dst,
        source_dir=source,
        identifier="allenai/dolma2-tokenizer",  # files win over identifier
        eos_token_id=50279,
        pad_token_id=1,
        model_max_length=2048,
    )
    assert info.source == "checkpoint" and info.vocab_size == 50280
    config = _config(dst)
    assert config["tokenizer_class"] == "PreTrainedTokenizerFast" and "auto_map" not in config
    tokenizer = _auto_tokenizer(dst)
    assert tokenizer.decode([tokenizer.eos_token_id]) == "<|endoftext|>" and tokenizer.eos_token_id == 50279
    assert tokenizer.decode(tokenizer(TEXT)["input_ids"]) == TEXT


def test_chat_template_survives_the_rewrite(tmp_path):
    """An instruct model's template, in tokenizer_config.json or in chat_template.jinja, is kept."""
    from transformers import AutoTokenizer

    template = "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}\n{% endfor %}"
    source = tmp_path / "instruct"
    source.mkdir()
    shutil.copy(tk.DOLMA2.path, source / "tokenizer.json")
    (source / "tokenizer_config.json").write_text(
        json.dumps({"tokenizer_class": "GPT2Tokenizer", "chat_template": template})
    )
    tk.write_hf_tokenizer(tmp_path / "a", source_dir=source, eos_token_id=100257, pad_token_id=100277)
    (source / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "GPT2Tokenizer"}))
    (source / "chat_template.jinja").write_text(template)
    tk.write_hf_tokenizer(tmp_path / "b", source_dir=source, eos_token_id=100257, pad_token_id=100277)
    for out in (tmp_path / "a", tmp_path / "b"):
        tokenizer = AutoTokenizer.from_pretrained(out)
        text = tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False)
        assert text == "<|user|>\nhi\n", out.name


def test_override_wins_and_pii_special_file_is_swapped(tmp_path):
    pii = _pii_special_dir(tmp_path)
    reporter = Recorder()
    dst = tmp_path / "out"
    info = tk.write_hf_tokenizer(
        dst,
        override=str(pii),
        source_dir=HF_OLMO_TOKENIZER,
        identifier="allenai/dolma2-tokenizer",
        eos_token_id=50279,
        pad_token_id=1,
        reporter=reporter,
    )
    assert info.source == str(pii)
    assert any("swapped" in message for message in reporter.infos)
    written = json.loads((dst / "tokenizer.json").read_text())
    reference = json.loads(tk.DOLMA_V1_5.path.read_text())
    assert written["model"]["vocab"] == reference["model"]["vocab"]
    assert written["added_tokens"] == reference["added_tokens"]
    assert tk.match_known(dst / "tokenizer.json") == "allenai/gpt-neox-olmo-dolma-v1_5"


def test_override_known_name_needs_no_network(tmp_path):
    info = tk.write_hf_tokenizer(
        tmp_path, override="allenai/dolma2-tokenizer", source_dir=HF_OLMO_TOKENIZER, offline=True
    )
    assert info.name == "allenai/dolma2-tokenizer"


def test_override_hub_repo_is_downloaded(tmp_path, fake_hub):
    files = {name: (HF_OLMO_TOKENIZER / name).read_bytes() for name in ("tokenizer.json", "tokenizer_config.json")}
    fake_hub.add_repo("someone/my-tokenizer", branches={"main": files})
    info = tk.write_hf_tokenizer(tmp_path / "out", override="someone/my-tokenizer", eos_token_id=50279, pad_token_id=1)
    assert info.name == "someone/my-tokenizer" and info.source == "hub (someone/my-tokenizer)"
    assert (tmp_path / "out" / "tokenizer.json").read_bytes() == files["tokenizer.json"]
    assert _config(tmp_path / "out")["tokenizer_class"] == "PreTrainedTokenizerFast"
    # Cached now: works offline too.
    assert tk.write_hf_tokenizer(tmp_path / "again", override="someone/my-tokenizer", offline=True).vocab_size == 50280


def test_unknown_hub_identifier_offline_is_a_network_error(tmp_path):
    with pytest.raises(NetworkError):
        tk.write_hf_tokenizer(tmp_path, identifier="someone/not-cached", offline=True)
    assert not (tmp_path / "tokenizer.json").exists()


def test_missing_hub_tokenizer_repo_is_not_found(tmp_path, fake_hub):
    with pytest.raises(NotFoundError):
        tk.write_hf_tokenizer(tmp_path, identifier="someone/missing")


def test_no_source_at_all_is_not_found_with_a_hint(tmp_path):
    with pytest.raises(NotFoundError) as raised:
        tk.write_hf_tokenizer(tmp_path, source_dir=tmp_path)
    assert "--tokenizer" in raised.value.hint


def test_unknown_non_repo_identifier_is_not_found(tmp_path):
    with pytest.raises(NotFoundError, match="no-such-tokenizer"):
        tk.write_hf_tokenizer(tmp_path, identifier="tokenizers/no-such-tokenizer.json")


def test_corrupt_tokenizer_json_is_bad_input(tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "tokenizer.json").write_text('{"model": {"vocab": {"a": 0}')
    with pytest.raises(BadInputError):
        tk.write_hf_tokenizer(tmp_path / "out", source_dir=tmp_path / "src")


def test_model_ids_win_over_tokenizer_config_with_a_warning(tmp_path):
    reporter = Recorder()
    info = tk.write_hf_tokenizer(
        tmp_path,
        source_dir=HF_OLMO_TOKENIZER,
        eos_token_id=50279,
        pad_token_id=50278,
        embedding_size=50000,
        reporter=reporter,
    )
    assert (info.pad_token_id, info.pad_token) == (50278, "|||PHONE_NUMBER|||")
    assert any("pad" in message for message in reporter.warnings)
    assert any("embedding" in message for message in reporter.warnings)


def test_model_eos_that_is_not_the_known_eos_warns(tmp_path):
    reporter = Recorder()
    info = tk.write_hf_tokenizer(tmp_path, identifier="allenai/dolma2-tokenizer", eos_token_id=50, reporter=reporter)
    assert info.eos_token_id == 50 and info.eos_token != "<|endoftext|>"
    assert any("eos" in message and "<|endoftext|>" in message for message in reporter.warnings)


def test_generation_config_carries_token_ids_only():
    """As the original repos' generation configs: no lengths or sampling settings, which
    transformers would let override a caller's max_length (docs/REFERENCE.md 8)."""
    from transformers import GenerationConfig

    values = tk.generation_config(50279, 1)
    assert {k: v for k, v in values.items() if k != "transformers_version"} == {
        "eos_token_id": 50279,
        "pad_token_id": 1,
    }
    config = GenerationConfig(**values)
    config.validate(strict=True)
    assert (bool(config.do_sample), config.max_new_tokens, config.eos_token_id) == (False, None, 50279)


def test_hf_to_native_identifier_matches_by_vocabulary(tmp_path, olmo1_out):
    dst, info, _ = olmo1_out
    assert tk.hf_to_native_identifier(dst) == "allenai/gpt-neox-olmo-dolma-v1_5"
    assert tk.hf_to_native_identifier(info) == "allenai/gpt-neox-olmo-dolma-v1_5"
    assert tk.hf_to_native_identifier(HF_OLMO_TOKENIZER) == "allenai/gpt-neox-olmo-dolma-v1_5"
    assert tk.hf_to_native_identifier(DATA / "dolma2") == "allenai/dolma2-tokenizer"
    assert tk.hf_to_native_identifier(_pii_special_dir(tmp_path)) == tk.PII_SPECIAL_NAME


def test_hf_to_native_identifier_of_a_foreign_tokenizer(tmp_path):
    data = json.loads(tk.DOLMA_V1_5.path.read_text())
    data["model"]["vocab"]["hello-extra"] = 50280
    (tmp_path / "tokenizer.json").write_text(json.dumps(data))
    assert tk.hf_to_native_identifier(tmp_path, fallback="someone/model") == "someone/model"
    with pytest.raises(UnsupportedError):
        tk.hf_to_native_identifier(tmp_path)


def test_describe_tokenizer_reads_without_writing(tmp_path):
    info = tk.describe_tokenizer(source_dir=HF_OLMO_TOKENIZER)
    assert (info.name, info.eos_token_id, info.pad_token_id) == ("allenai/gpt-neox-olmo-dolma-v1_5", 50279, 1)
    assert tk.describe_tokenizer(identifier="allenai_dolma2").eos_token_id == 100257
    remote = tk.describe_tokenizer(identifier="someone/tok")
    assert remote.name == "someone/tok" and remote.vocab_size == 0
    assert tk.describe_tokenizer(source_dir=tmp_path) is None
