"""GGUF export without llama.cpp: what the file holds (read back with gguf-py), bad input, atomicity."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import gguf
import numpy as np
import pytest
import torch
from gguf_sources import olmo1_native, olmo2_hf, olmo3_hf, tiny_bpe
from tiny_models import make_hf, make_native
from typer.testing import CliRunner

from olmo_cli.checkpoints.convert import convert
from olmo_cli.checkpoints.gguf import metadata
from olmo_cli.checkpoints.gguf.names import head_pair_order
from olmo_cli.checkpoints.tensors import SafetensorsReader
from olmo_cli.cli.app import app

TESTS = Path(__file__).parent
Q = gguf.GGMLQuantizationType


def fields(path: Path) -> dict:
    reader = gguf.GGUFReader(path)
    return {name: field.contents() for name, field in reader.fields.items()}, {t.name: t for t in reader.tensors}


def test_olmo1_file_holds_the_spec_tokenizer_and_provenance(tmp_path):
    src = olmo1_native(tmp_path / "src")
    hf = tmp_path / "hf"
    convert(src, hf, to="hf")
    out = tmp_path / "m.gguf"
    sha = "a" * 40
    result = convert(src, out, outtype="f32", revision="step1000-tokens4B", repo="allenai/OLMo-1B", commit=sha)
    assert result.target_format == "gguf" and result.files == ["m.gguf"] and result.architecture == "olmo"
    kv, tensors = fields(out)
    assert kv["general.architecture"] == "olmo"
    assert kv["general.name"] == "OLMo-1B step1000-tokens4B"
    assert kv[metadata.KEY_REVISION] == "step1000-tokens4B" and kv[metadata.KEY_COMMIT] == sha
    assert kv["olmo.block_count"] == 2 and kv["olmo.embedding_length"] == 64
    assert kv["olmo.attention.head_count"] == 4 and kv["olmo.attention.head_count_kv"] == 2
    assert kv["olmo.attention.clamp_kqv"] == pytest.approx(1.0)
    assert kv["olmo.feed_forward_length"] == 128
    assert kv["general.file_type"] == gguf.LlamaFileType.ALL_F32
    # Tokenizer: as `olmo convert --to hf` writes it.
    config = json.loads((hf / "config.json").read_text())
    hf_tokenizer = json.loads((hf / "tokenizer.json").read_text())
    assert kv["tokenizer.ggml.model"] == "gpt2" and kv["tokenizer.ggml.pre"] == "olmo"
    assert kv["tokenizer.ggml.eos_token_id"] == config["eos_token_id"] == 50279
    assert kv["tokenizer.ggml.padding_token_id"] == config["pad_token_id"] == 1
    assert kv["tokenizer.ggml.add_bos_token"] is False
    tokens = kv["tokenizer.ggml.tokens"]
    assert len(tokens) == 50304 and tokens[50279] == "<|endoftext|>" and tokens[50300] == "[PAD50300]"
    assert tokens[hf_tokenizer["model"]["vocab"]["Ġthe"]] == "Ġthe"
    types = kv["tokenizer.ggml.token_type"]
    assert types[50279] == gguf.TokenType.CONTROL and types[50276] == gguf.TokenType.USER_DEFINED
    assert types[500] == gguf.TokenType.NORMAL and types[50300] == gguf.TokenType.UNUSED
    assert len(kv["tokenizer.ggml.merges"]) == len(hf_tokenizer["model"]["merges"])
    # Tensors: names from gguf-py, untied so `output` exists, no norm tensors in OLMo-1.
    assert len(tensors) == 2 + 2 * 7 and "output.weight" in tensors and "blk.1.ffn_down.weight" in tensors
    assert all(t.tensor_type == Q.F32 for t in tensors.values())
    # Q and K rows are in llama.cpp's pair order; V is not reordered.
    reader = SafetensorsReader(hf / "model.safetensors")
    q = reader.get("model.layers.0.self_attn.q_proj.weight").numpy()
    k = reader.get("model.layers.0.self_attn.k_proj.weight").numpy()
    v = reader.get("model.layers.0.self_attn.v_proj.weight").numpy()
    assert np.array_equal(np.asarray(tensors["blk.0.attn_q.weight"].data), q[head_pair_order(4, 16)])
    assert np.array_equal(np.asarray(tensors["blk.0.attn_k.weight"].data), k[head_pair_order(2, 16)])
    assert np.array_equal(np.asarray(tensors["blk.0.attn_v.weight"].data), v)


def test_olmo2_and_olmo3_metadata(tmp_path):
    src = olmo2_hf(tmp_path / "o2")
    convert(src, tmp_path / "o2.gguf", outtype="f32")
    kv, tensors = fields(tmp_path / "o2.gguf")
    assert kv["general.architecture"] == "olmo2" and kv["tokenizer.ggml.pre"] == "dbrx"
    assert kv["tokenizer.ggml.eos_token_id"] == 100257 and kv["tokenizer.ggml.padding_token_id"] == 100277
    assert "olmo2.attention.sliding_window" not in kv and "olmo2.rope.scaling.type" not in kv
    assert kv["olmo2.rope.freq_base"] == 500000.0
    assert tensors["blk.0.attn_q_norm.weight"].tensor_type == Q.F32
    assert {"blk.0.post_attention_norm.weight", "blk.0.post_ffw_norm.weight", "output_norm.weight"} <= set(tensors)
    q = SafetensorsReader(src / "model.safetensors").get("model.layers.0.self_attn.q_proj.weight").numpy()
    assert np.array_equal(np.asarray(tensors["blk.0.attn_q.weight"].data), q)  # olmo2: NeoX rope, no reorder

    src3 = olmo3_hf(tmp_path / "o3", window=8, attention_factor=1.2)
    convert(src3, tmp_path / "o3.gguf", outtype="f16")
    kv, _ = fields(tmp_path / "o3.gguf")
    assert kv["olmo2.attention.sliding_window"] == 8
    assert kv["olmo2.attention.sliding_window_pattern"] == [True, True, True, False]
    assert kv["olmo2.rope.scaling.type"] == "yarn" and kv["olmo2.rope.scaling.factor"] == 4.0
    assert kv["olmo2.rope.scaling.original_context_length"] == 64
    # llama.cpp applies YaRN's default 0.1 ln(4) + 1 itself; the key carries the rest of 1.2.
    assert kv["olmo2.rope.scaling.attn_factor"] == pytest.approx(1.2 / (0.1 * np.log(4.0) + 1))


def test_olmo3_round_trips_through_hf_and_is_refused_by_native(tmp_path):
    src = olmo3_hf(tmp_path / "o3")
    hf = CliRunner().invoke(app, ["convert", str(src), str(tmp_path / "hf"), "--to", "hf"])
    assert hf.exit_code == 0, hf.output
    written = json.loads((tmp_path / "hf" / "config.json").read_text())
    original = json.loads((src / "config.json").read_text())
    assert written["model_type"] == "olmo3"
    assert (written["layer_types"], written["sliding_window"]) == (original["layer_types"], original["sliding_window"])
    native = CliRunner().invoke(app, ["convert", str(src), str(tmp_path / "native"), "--to", "native"])
    assert native.exit_code == 8 and "sliding" in native.stderr
    assert not (tmp_path / "native").exists()


def tiny_tokens(tmp_path: Path) -> dict:
    """Native fields for the 300-id test tokenizer (the real ones take seconds to read back)."""
    tokenizer = tiny_bpe(tmp_path) / "tokenizer.json"
    return dict(tokenizer=str(tokenizer), vocab_size=300, embedding_size=320, eos_token_id=0, pad_token_id=1)


def test_types_per_outtype(tmp_path):
    src = olmo1_native(tmp_path / "src", **tiny_tokens(tmp_path))
    convert(src, tmp_path / "q8.gguf", outtype="q8_0")
    _, tensors = fields(tmp_path / "q8.gguf")
    assert all(t.tensor_type == Q.Q8_0 for t in tensors.values())  # OLMo-1 has no norm tensors
    convert(src, tmp_path / "q4.gguf", outtype="q4_0")
    kv, tensors = fields(tmp_path / "q4.gguf")
    assert kv["general.file_type"] == gguf.LlamaFileType.MOSTLY_Q4_0
    assert tensors["output.weight"].tensor_type == Q.Q8_0  # llama.cpp gives it Q6_K; never less than that
    assert tensors["token_embd.weight"].tensor_type == Q.Q4_0
    assert tensors["blk.0.ffn_up.weight"].tensor_type == Q.Q4_0
    o2 = olmo2_hf(tmp_path / "o2", tokenizer="tiny", tie_word_embeddings=True)
    convert(o2, tmp_path / "o2.gguf", outtype="q8_0")
    _, tensors = fields(tmp_path / "o2.gguf")
    assert (
        tensors["blk.0.attn_k_norm.weight"].tensor_type == Q.F32 and tensors["output_norm.weight"].tensor_type == Q.F32
    )
    assert tensors["output.weight"].tensor_type == Q.Q8_0  # olmo2 needs `output`, even when tied
    # Rows that are not whole blocks (d_model 16) fall back to f16, as llama.cpp's converter does.
    tiny = make_native(tmp_path / "tiny", **tiny_tokens(tmp_path))
    convert(tiny, tmp_path / "tiny.gguf", outtype="q8_0")
    _, tensors = fields(tmp_path / "tiny.gguf")
    assert tensors["blk.0.attn_q.weight"].tensor_type == Q.F16


def test_default_outtype_follows_the_source_dtype(tmp_path):
    src = olmo2_hf(tmp_path / "f32", tokenizer="tiny")
    convert(src, tmp_path / "a.gguf")
    assert fields(tmp_path / "a.gguf")[0]["general.file_type"] == gguf.LlamaFileType.MOSTLY_F16
    convert(src, tmp_path / "bf16", to="hf", dtype="bfloat16")
    convert(tmp_path / "bf16", tmp_path / "b.gguf")
    kv, tensors = fields(tmp_path / "b.gguf")
    assert kv["general.file_type"] == gguf.LlamaFileType.MOSTLY_BF16
    assert tensors["blk.0.ffn_up.weight"].tensor_type == Q.BF16
    # bf16 -> bf16 is lossless.
    up = SafetensorsReader(tmp_path / "bf16" / "model.safetensors").get("model.layers.0.mlp.up_proj.weight")
    stored = np.asarray(tensors["blk.0.ffn_up.weight"].data).view(np.uint16).reshape(up.shape)
    assert np.array_equal(stored, up.view(torch.int16).numpy().view(np.uint16))


def run_cli(*argv):
    return CliRunner().invoke(app, ["convert", *map(str, argv)])


def assert_failed(result, code: int, fragment: str, dst: Path):
    assert result.exit_code == code, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines[0].startswith("error: ") and fragment in lines[0], result.stderr
    assert "Traceback" not in result.output
    assert not [p for p in dst.parent.iterdir() if p.name.startswith(f".{dst.name}.")] if dst.parent.exists() else True


def test_cli_implies_gguf_from_the_suffix_and_refuses_bad_input(tmp_path):
    src = olmo2_hf(tmp_path / "src", tokenizer="tiny")
    dst = tmp_path / "model.gguf"
    ok = run_cli(src, dst, "--outtype", "q8_0")
    assert ok.exit_code == 0, ok.output
    assert "(olmo2, q8_0)" in ok.stdout and fields(dst)[0]["general.file_type"] == gguf.LlamaFileType.MOSTLY_Q8_0
    before = dst.read_bytes()
    assert_failed(run_cli(src, dst), 6, "already exists", dst)
    assert dst.read_bytes() == before
    assert run_cli(src, dst, "--force", "--outtype", "f32").exit_code == 0
    missing = tmp_path / "nowhere" / "m.gguf"
    assert_failed(run_cli(src, missing), 3, "no such directory", missing)
    assert not missing.parent.exists()
    other = tmp_path / "other.gguf"
    assert_failed(run_cli(src, other, "--outtype", "q3_k"), 2, "unknown --outtype", other)
    assert_failed(run_cli(src, tmp_path / "hfout", "--to", "hf", "--outtype", "q8_0"), 2, "--outtype", other)
    affine = make_native(tmp_path / "affine", tokenizer="allenai/gpt-neox-olmo-dolma-v1_5", layer_norm_with_affine=True)
    assert_failed(run_cli(affine, other), 8, "llama.cpp", other)
    no_tokenizer = make_hf(tmp_path / "notok")
    assert_failed(run_cli(no_tokenizer, other), 3, "no tokenizer", other)
    assert not other.exists() and not (tmp_path / "hfout").exists()


_SLOW_CHILD = """
import sys, time
sys.path.insert(0, {tests!r})
from olmo_cli.checkpoints.gguf import quant
real = quant.encode
def slow(rows, qtype):
    time.sleep(0.2)
    return real(rows, qtype)
quant.encode = slow
from olmo_cli.cli.app import _stop_on_sigterm, app
_stop_on_sigterm()
app(args=["convert", {src!r}, {dst!r}, "--outtype", "q8_0"], prog_name="olmo")
"""


def test_ctrl_c_leaves_no_partial_file(tmp_path):
    src = olmo1_native(tmp_path / "src")
    dst = tmp_path / "m.gguf"
    code = _SLOW_CHILD.format(tests=str(TESTS), src=str(src), dst=str(dst))
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        partial: list[Path] = []
        while time.monotonic() < deadline and child.poll() is None:
            partial = [p for p in tmp_path.iterdir() if p.name.startswith(".m.gguf.partial-") and p.stat().st_size > 0]
            if partial:
                break
            time.sleep(0.05)
        assert partial, "the child never started writing"
        time.sleep(0.3)
        child.send_signal(signal.SIGINT)
        _, stderr = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == 130, stderr
    assert not dst.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["src"]


def test_chat_template_is_kept(tmp_path):
    src = olmo2_hf(tmp_path / "src", tokenizer="tiny")
    template = "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    (src / "tokenizer_config.json").write_text(json.dumps({"eos_token": "<|endoftext|>", "chat_template": template}))
    convert(src, tmp_path / "chat.gguf", outtype="f16")
    assert fields(tmp_path / "chat.gguf")[0]["tokenizer.chat_template"] == template


def test_a_dead_runs_partial_file_is_reclaimed_and_a_full_disk_refused_up_front(tmp_path, monkeypatch):
    """The single-file output gets the owner-stamped siblings and the free-space check of directories."""
    import os
    from collections import namedtuple

    from olmo_cli import oserrors
    from olmo_cli.checkpoints.atomic import owner_stamp, partial_prefix

    src = olmo2_hf(tmp_path / "src", tokenizer="tiny")
    dst = tmp_path / "m.gguf"
    dead = tmp_path / f"{partial_prefix(dst)}{owner_stamp(2**22 + 12345)}dead"  # no such pid
    live = tmp_path / f"{partial_prefix(dst)}{owner_stamp(os.getpid())}live"
    for path in (dead, live):
        path.write_bytes(b"x" * 5000)
    result = run_cli(src, dst, "--outtype", "f32")
    assert result.exit_code == 0, result.output
    assert f"removed {dead.name}" in result.stderr and not dead.exists() and live.exists()
    live.unlink()

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(oserrors.shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 1000, 1000))
    other = tmp_path / "other.gguf"
    from helpers import assert_nothing_at, assert_one_line_error

    assert_one_line_error(run_cli(src, other, "--outtype", "f32"), 5, "no space left on", "needed ~", "free 1000 B")
    assert_nothing_at(other)
