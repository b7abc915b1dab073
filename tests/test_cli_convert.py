"""`olmo convert` end to end: Hub sources through the shared core, --json, --verify, help."""

from __future__ import annotations

import json

import pytest
import torch
from helpers import olmo
from tiny_models import make_hf, make_hf_olmo
from typer.testing import CliRunner

from olmo_cli.checkpoints.convert import convert
from olmo_cli.cli.app import app
from olmo_cli.errors import UsageError


def files_of(directory):
    return {p.name: p.read_bytes() for p in directory.iterdir() if p.is_file()}


def test_hub_hf_olmo_revision_to_hf(tmp_path, fake_hub):
    src = make_hf_olmo(tmp_path / "src", weights="safetensors")
    fake_hub.add_repo("test/OLMo-tiny", branches={"main": files_of(src), "step1000-tokens4B": files_of(src)})
    result = CliRunner().invoke(
        app,
        ["convert", "test/OLMo-tiny", "--revision", "step1000-tokens4B", str(tmp_path / "out"), "--json", "--verify"],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["source_format"] == "hf_olmo" and data["target_format"] == "hf"
    assert data["source"] == "test/OLMo-tiny@step1000-tokens4B"
    assert data["max_logit_diff"] < 1e-4
    config = json.loads((tmp_path / "out" / "config.json").read_text())
    assert config["architectures"] == ["OlmoForCausalLM"] and config["eos_token_id"] == 50279


def test_hub_hf_revision_to_native_records_the_step(tmp_path, fake_hub):
    src = make_hf(tmp_path / "src", eos_token_id=50279, vocab_size=50304)
    fake_hub.add_repo("test/OLMo-tiny-hf", branches={"main": files_of(src), "step2000-tokens8B": files_of(src)})
    dst = tmp_path / "step2000-unsharded"
    result = olmo("convert", "test/OLMo-tiny-hf", "-r", "step2000-tokens8B", str(dst), "--to", "native")
    assert result.exit_code == 0, result.output
    assert "step2000-tokens8B" in result.stdout and "native" in result.stdout
    train = torch.load(dst / "train.pt", weights_only=True)
    assert train["global_step"] == 2000 and train["global_train_tokens_seen"] == 8 * 10**9
    # The eos id says which OLMo tokenizer it is when the source names none.
    assert "identifier: tokenizers/allenai_gpt-neox-olmo-dolma-v1_5.json" in (dst / "config.yaml").read_text()


def test_verify_failure_exits_7_and_writes_nothing(tmp_path, monkeypatch):
    from olmo_cli.checkpoints import verify

    src = make_hf(tmp_path / "src")
    real = verify.hf_logits
    monkeypatch.setattr(verify, "hf_logits", lambda path, ids: real(path, ids) + 1.0)
    result = CliRunner().invoke(
        app,
        [
            "convert",
            str(src),
            str(tmp_path / "out-unsharded"),
            "--to",
            "native",
            "--tokenizer",
            "allenai/gpt-neox-olmo-dolma-v1_5",
            "--verify",
        ],
    )
    assert result.exit_code == 7, result.output
    assert "max logit difference" in result.stderr
    assert not (tmp_path / "out-unsharded").exists()


def test_usage_errors(tmp_path):
    src = make_hf(tmp_path / "src")
    runner = CliRunner()
    overlap = runner.invoke(app, ["convert", str(src), str(src / "inside"), "--to", "native"])
    assert overlap.exit_code == 2 and "overlaps" in overlap.stderr
    target = runner.invoke(app, ["convert", str(src), str(tmp_path / "out"), "--to", "onnx"])
    assert target.exit_code == 2 and "'onnx' is not one of 'hf', 'native', 'olmo-core', 'gguf'" in target.stderr
    with pytest.raises(UsageError, match="unknown target format 'onnx'") as caught:  # the core, for Python callers
        convert(src, tmp_path / "out", to="onnx")
    assert "--to gguf" in (caught.value.hint or "")
    bad = runner.invoke(app, ["convert", str(src), str(tmp_path / "out"), "--to", "native", "--dtype", "int3"])
    assert bad.exit_code == 2 and "dtype" in bad.stderr
    size = runner.invoke(app, ["convert", str(src), str(tmp_path / "out"), "--to", "native", "--shard-size", "lots"])
    assert size.exit_code == 2 and "bad size" in size.stderr
    assert not (tmp_path / "out").exists()


def test_help_has_examples():
    result = olmo("convert", "--help")
    assert result.exit_code == 0
    assert "olmo convert allenai/OLMo-1B --revision" in result.stdout and "--to native" in result.stdout


def test_uncast_native_to_hf_does_not_import_torch(tmp_path):
    """Shapes and byte offsets come from model.pt's zip index; the bytes are copied by the kernel."""
    import subprocess
    import sys

    from tiny_models import make_native

    src = make_native(tmp_path / "src", tokenizer=None)
    code = (
        "import sys\nfrom olmo_cli.cli.app import app\n"
        f"try:\n    app(args=['convert', {str(src)!r}, {str(tmp_path / 'out')!r}], prog_name='olmo')\n"
        "except SystemExit as e:\n    assert e.code in (0, None), e.code\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'transformers')))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"
    assert (tmp_path / "out" / "model.safetensors").is_file()


def test_native_output_name_without_unsharded_warns(tmp_path):
    src = make_hf(tmp_path / "src")
    result = CliRunner().invoke(
        app,
        [
            "convert",
            str(src),
            str(tmp_path / "plain-name"),
            "--to",
            "native",
            "--tokenizer",
            "allenai/gpt-neox-olmo-dolma-v1_5",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "warning:" in result.stderr and "-unsharded" in result.stderr
    assert (tmp_path / "plain-name" / "model.pt").is_file()


def test_hf_to_native_with_a_non_olmo_tokenizer_warns(tmp_path):
    """A fine-tune's tokenizer with an added token is not an OLMo tokenizer: the identifier its eos id
    implies is written, with a warning that says so."""
    import shutil

    from tiny_models import OLMO1_TOKENIZER

    src = make_hf(tmp_path / "src", eos_token_id=50279, vocab_size=50304)
    data = json.loads((OLMO1_TOKENIZER / "tokenizer.json").read_text())
    data["added_tokens"].append({**data["added_tokens"][-1], "id": 50280, "content": "<|assistant|>"})
    (src / "tokenizer.json").write_text(json.dumps(data))
    shutil.copy(OLMO1_TOKENIZER / "tokenizer_config.json", src / "tokenizer_config.json")
    dst = tmp_path / "ft-unsharded"
    result = olmo("convert", str(src), str(dst), "--to", "native")
    assert result.exit_code == 0, result.output
    assert "not one of the OLMo tokenizers" in result.stderr and "--tokenizer" in result.stderr
    assert "identifier: tokenizers/allenai_gpt-neox-olmo-dolma-v1_5.json" in (dst / "config.yaml").read_text()
