"""`olmo inspect` and inspect_checkpoint: everything from configs and tensor headers, nothing loaded."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import tiny_models
import torch
from safetensors.torch import save_file
from typer.testing import CliRunner

from olmo_cli.checkpoints.inspect import inspect_checkpoint, inspect_source
from olmo_cli.cli.app import app
from olmo_cli.errors import BadInputError, NotFoundError

OLMO1_TOKENIZER = Path(__file__).parent / "data" / "tokenizers" / "gpt-neox-olmo-dolma-v1_5"


def _hf_dir(
    directory: Path, model_type: str = "olmo2", dtype=torch.bfloat16, tokenizer: bool = False
) -> tuple[Path, int]:
    """A transformers-native checkpoint written directly (config.json + safetensors), and its parameter count."""
    directory.mkdir(parents=True, exist_ok=True)
    config = {
        "model_type": model_type,
        "architectures": ["Olmo2ForCausalLM"],
        "hidden_size": 16,
        "intermediate_size": 64,
        "num_hidden_layers": 1,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "vocab_size": 64,
        "max_position_embeddings": 4096,
        "tie_word_embeddings": False,
        "eos_token_id": 50,
        "pad_token_id": 1,
        "rope_parameters": {"rope_type": "default", "rope_theta": 500000.0},
    }
    (directory / "config.json").write_text(json.dumps(config))
    shapes = {
        "model.embed_tokens.weight": (64, 16),
        "model.layers.0.self_attn.q_proj.weight": (16, 16),
        "model.layers.0.self_attn.k_proj.weight": (8, 16),
        "model.layers.0.self_attn.v_proj.weight": (8, 16),
        "model.layers.0.self_attn.o_proj.weight": (16, 16),
        "model.layers.0.mlp.gate_proj.weight": (64, 16),
        "model.layers.0.mlp.up_proj.weight": (64, 16),
        "model.layers.0.mlp.down_proj.weight": (16, 64),
        "lm_head.weight": (64, 16),
    }
    if model_type != "olmo":  # OLMo-2 style: post-norms with weights and QK-norm over the whole projection
        shapes.update(
            {
                "model.norm.weight": (16,),
                "model.layers.0.post_attention_layernorm.weight": (16,),
                "model.layers.0.post_feedforward_layernorm.weight": (16,),
                "model.layers.0.self_attn.q_norm.weight": (16,),
                "model.layers.0.self_attn.k_norm.weight": (8,),
            }
        )
    save_file(
        {key: torch.ones(shape, dtype=dtype) for key, shape in shapes.items()},
        directory / "model.safetensors",
        metadata={"format": "pt"},
    )
    if tokenizer:
        for file in OLMO1_TOKENIZER.iterdir():
            (directory / file.name).write_bytes(file.read_bytes())
    return directory, sum(math.prod(shape) for shape in shapes.values())


def _native_parameters(arch: str, **overrides) -> int:
    return sum(t.numel() for t in tiny_models.native_state_dict(tiny_models.native_config(arch, **overrides)).values())


def test_native_model_pt(tmp_path):
    path = tiny_models.make_native(
        tmp_path / "ckpt", "olmo1", tokenizer="tokenizers/allenai_eleuther-ai-gpt-neox-20b-pii-special.json"
    )
    summary = inspect_checkpoint(path)
    assert (summary["format"], summary["family"]) == ("native", "olmo1")
    assert summary["parameters"] == _native_parameters("olmo1")
    assert summary["dtypes"] == {"float32": summary["parameters"]}
    assert summary["weights"] == ["model.pt"]
    arch = summary["architecture"]
    assert (arch["layers"], arch["d_model"], arch["heads"], arch["kv_heads"], arch["mlp_hidden"]) == (2, 16, 4, 4, 64)
    assert (arch["vocab_size"], arch["embedding_size"], arch["context_length"]) == (60, 64, 64)
    assert arch["tied_embeddings"] is True and (arch["norm"], arch["norm_weights"]) == ("layernorm", False)
    assert summary["tokenizer"]["name"] == "allenai/gpt-neox-olmo-dolma-v1_5"
    assert summary["tokenizer"]["identifier"].endswith("pii-special.json")
    assert {entry["name"] for entry in summary["files"]} == {"config.yaml", "model.pt", "train.pt"}
    assert summary["size_bytes"] == sum(file.stat().st_size for file in path.iterdir())
    json.dumps(summary)  # plain values only


def test_native_olmo2_with_olmo_encoded_safetensors(tmp_path):
    path = tiny_models.make_native(
        tmp_path / "ckpt", "olmo2", safetensors="olmo", tokenizer="allenai/dolma2-tokenizer", n_kv_heads=2, clip_qkv=8.0
    )
    summary = inspect_checkpoint(path)
    assert summary["family"] == "olmo2"
    assert summary["parameters"] == _native_parameters("olmo2", n_kv_heads=2) < _native_parameters("olmo2")
    arch = summary["architecture"]
    assert (arch["norm"], arch["qk_norm"], arch["norm_after"], arch["kv_heads"]) == ("rms", True, True, 2)
    assert (arch["rope_theta"], arch["clip_qkv"], arch["tied_embeddings"]) == (500000, 8.0, False)
    assert summary["tokenizer"]["eos_token_id"] == 100257


def test_hf_olmo_counts_weights_once_when_both_files_exist(tmp_path):
    path = tiny_models.make_hf_olmo(tmp_path / "ckpt", weights="both")
    summary = inspect_checkpoint(path)
    assert (summary["format"], summary["family"], summary["model_type"]) == ("hf_olmo", "olmo1", "olmo")
    assert summary["weights"] == ["model.safetensors"]
    bin_only = inspect_checkpoint(tiny_models.make_hf_olmo(tmp_path / "bin", weights="bin"))
    assert bin_only["parameters"] == summary["parameters"] > 0
    assert summary["tokenizer"]["source"] == "checkpoint"
    assert (summary["tokenizer"]["eos_token_id"], summary["tokenizer"]["pad_token_id"]) == (50279, 1)
    assert summary["architecture"]["vocab_size"] == 50280


@pytest.mark.parametrize("model_type, family", [("olmo2", "olmo2"), ("olmo3", "olmo3"), ("olmo", "olmo1")])
def test_hf_families_and_bf16(tmp_path, model_type, family):
    path, parameters = _hf_dir(tmp_path / "hf", model_type)
    summary = inspect_checkpoint(path)
    assert (summary["format"], summary["family"]) == ("hf", family)
    assert summary["dtypes"] == {"bfloat16": parameters} and summary["tensors"] == (9 if model_type == "olmo" else 14)
    assert summary["architecture"]["rope_theta"] == 500000.0
    assert summary["architecture"]["kv_heads"] == 2 and summary["architecture"]["context_length"] == 4096
    assert summary["tokenizer"] is None
    from olmo_cli.checkpoints.detect import detect_format
    from olmo_cli.checkpoints.formats import open_checkpoint

    # The count a config implies (shown when the weights cannot be read) is the spec's, and right.
    assert open_checkpoint(path, detect_format(path)).spec.n_parameters() == parameters


def test_hf_sharded_uses_the_index(tmp_path):
    path, parameters = _hf_dir(tmp_path / "hf")
    from safetensors.torch import load_file

    tensors = load_file(path / "model.safetensors")
    (path / "model.safetensors").unlink()
    keys = sorted(tensors)
    halves = {"model-00001-of-00002.safetensors": keys[:7], "model-00002-of-00002.safetensors": keys[7:]}
    for name, part in halves.items():
        save_file({key: tensors[key] for key in part}, path / name, metadata={"format": "pt"})
    (path / "model.safetensors.index.json").write_text(
        json.dumps(
            {"metadata": {"total_size": 0}, "weight_map": {key: name for name, part in halves.items() for key in part}}
        )
    )
    (path / "stray.safetensors").write_bytes(b"not counted")  # only the index's files are weights
    summary = inspect_checkpoint(path)
    assert summary["parameters"] == parameters and summary["weights"] == sorted(halves)


def test_config_estimate_matches_the_headers(tmp_path):
    from olmo_cli.checkpoints.detect import detect_format
    from olmo_cli.checkpoints.formats import open_checkpoint

    checkpoints = [
        tiny_models.make_native(tmp_path / "n1", "olmo1", n_kv_heads=2, weight_tying=False),
        tiny_models.make_native(tmp_path / "n2", "olmo2", safetensors="plain"),
        tiny_models.make_hf_olmo(tmp_path / "h1", tokenizer=False),
    ]
    for path in checkpoints:
        summary = inspect_checkpoint(path)
        assert open_checkpoint(path, detect_format(path)).spec.n_parameters() == summary["parameters"], path


def test_truncated_safetensors_is_bad_input(tmp_path):
    path, _ = _hf_dir(tmp_path / "hf")
    data = (path / "model.safetensors").read_bytes()
    (path / "model.safetensors").write_bytes(data[: len(data) - 100])
    with pytest.raises(BadInputError, match="truncated"):
        inspect_checkpoint(path)
    (path / "model.safetensors").write_bytes(data[:4])
    with pytest.raises(BadInputError, match="truncated"):
        inspect_checkpoint(path)


def test_truncated_model_pt_is_bad_input(tmp_path):
    path = tiny_models.make_native(tmp_path / "ckpt")
    data = (path / "model.pt").read_bytes()
    (path / "model.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(BadInputError):
        inspect_checkpoint(path)


class _Payload:
    def __reduce__(self):
        return (print, ("code ran",))


def test_model_pt_with_a_code_payload_is_refused_not_run(tmp_path, capsys):
    path = tiny_models.make_native(tmp_path / "ckpt")
    torch.save({"transformer.wte.weight": torch.zeros(2, 2), "evil": _Payload()}, path / "model.pt")
    with pytest.raises(BadInputError, match="refused"):
        inspect_checkpoint(path)
    assert "code ran" not in capsys.readouterr().out


def test_not_a_checkpoint(tmp_path):
    with pytest.raises(BadInputError):
        inspect_checkpoint(tmp_path)
    (tmp_path / "config.json").write_text("[1, 2]")
    with pytest.raises(BadInputError):
        inspect_checkpoint(tmp_path)


def test_cli_table_and_json(tmp_path):
    path = tiny_models.make_hf_olmo(tmp_path / "ckpt", weights="safetensors")
    runner = CliRunner()
    table = runner.invoke(app, ["inspect", str(path)])
    assert table.exit_code == 0, table.output
    assert "hf_olmo" in table.stdout and "olmo1" in table.stdout
    assert "allenai/gpt-neox-olmo-dolma-v1_5" in table.stdout and "eos 50279" in table.stdout
    assert "tokenizer.json" in table.stdout
    result = runner.invoke(app, ["inspect", str(path), "--json"])
    assert result.exit_code == 0
    summary = json.loads(result.stdout)
    assert summary["format"] == "hf_olmo" and summary["parameters"] == inspect_checkpoint(path)["parameters"]


def test_cli_bad_inputs_are_one_line_errors(tmp_path):
    runner = CliRunner()
    not_checkpoint = runner.invoke(app, ["inspect", str(tmp_path)])
    assert not_checkpoint.exit_code == 5
    assert not_checkpoint.stderr.startswith("error: ") and len(not_checkpoint.stderr.strip().splitlines()) == 1
    missing = runner.invoke(app, ["inspect", str(tmp_path / "nope")])
    assert missing.exit_code == 3
    revision_with_dir = runner.invoke(app, ["inspect", str(tmp_path), "--revision", "main"])
    assert revision_with_dir.exit_code == 2


def test_hub_repo_reads_weight_headers_without_downloading_weights(tmp_path, fake_hub):
    path, parameters = _hf_dir(tmp_path / "hf", tokenizer=True)
    files = {file.name: file.read_bytes() for file in path.iterdir()}
    fake_hub.add_repo("someone/tiny-olmo", branches={"main": files, "step1000": files})
    summary = inspect_source("someone/tiny-olmo", "step1000")
    assert (summary["repo"], summary["revision"], summary["format"]) == ("someone/tiny-olmo", "step1000", "hf")
    assert summary["parameters"] == parameters and summary["dtypes"] == {"bfloat16": parameters}
    weights = next(entry for entry in summary["files"] if entry["name"] == "model.safetensors")
    assert weights == {"name": "model.safetensors", "bytes": len(files["model.safetensors"]), "cached": False}
    assert summary["tokenizer"]["eos_token_id"] == 50279
    assert summary["size_bytes"] == sum(len(data) for data in files.values())
    assert fake_hub.bytes_sent("model.safetensors") < 4096 < len(files["model.safetensors"])


def test_hub_range_reads_and_small_files_are_retried_on_429_and_5xx(tmp_path, fake_hub, monkeypatch):
    from olmo_cli.hub import transfer

    monkeypatch.setattr(transfer, "DEFAULT_POLICY", transfer.RetryPolicy(base_delay=0.001, max_delay=0.01))
    path, parameters = _hf_dir(tmp_path / "hf", tokenizer=True)
    fake_hub.add_repo("someone/tiny-olmo", branches={"main": {f.name: f.read_bytes() for f in path.iterdir()}})
    fake_hub.fail("/model.safetensors", status=503, times=2, method="GET")  # the header's range reads
    fake_hub.fail("/config.json", status=429, retry_after="0", times=1, method="GET")  # a small file
    summary = inspect_source("someone/tiny-olmo")
    assert summary["parameters"] == parameters
    assert [r.status for r in fake_hub.requests if r.path.endswith("/model.safetensors")][:2] == [503, 503]


def test_hub_repo_offline_uses_the_cache(tmp_path, fake_hub):
    path, _ = _hf_dir(tmp_path / "hf")
    fake_hub.add_repo("someone/tiny-olmo", branches={"main": {file.name: file.read_bytes() for file in path.iterdir()}})
    inspect_source("someone/tiny-olmo")  # caches the small files
    offline = inspect_source("someone/tiny-olmo", offline=True)
    assert offline["format"] == "hf" and offline["parameters"] is None
    assert offline["parameters_from_config"] == inspect_checkpoint(path)["parameters"]
    with pytest.raises(NotFoundError):
        inspect_source("someone/missing")


@pytest.mark.parametrize("name, parameters", [("OLMo-1B", 1_176_764_416), ("OLMo-7B", 6_888_095_744)])
def test_real_hf_olmo_configs_without_weights(tmp_path, data_dir, name, parameters):
    (tmp_path / "config.json").write_bytes((data_dir / "hf_olmo_configs" / f"{name}.config.json").read_bytes())
    summary = inspect_checkpoint(tmp_path)
    assert (summary["format"], summary["family"]) == ("hf_olmo", "olmo1")
    assert summary["parameters"] is None and summary["parameters_from_config"] == parameters  # the published sizes
    assert summary["architecture"]["context_length"] == 2048


@pytest.mark.parametrize("kind", ["hf", "native"])
def test_inspecting_imports_neither_torch_nor_transformers(tmp_path, kind):
    """safetensors headers, and model.pt's zip index, are read without torch."""
    import subprocess
    import sys

    path = _hf_dir(tmp_path / "hf", tokenizer=True)[0] if kind == "hf" else tiny_models.make_native(tmp_path / "n")
    code = (
        "import sys\nfrom olmo_cli.cli.app import app\n"
        f"try:\n    app(args=['inspect', {str(path)!r}, '--json'], prog_name='olmo')\nexcept SystemExit:\n    pass\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'transformers'}), file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert json.loads(done.stdout)["format"] == kind
    assert done.stderr.strip().splitlines()[-1] == "[]"
