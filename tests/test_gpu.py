"""The CUDA paths: device/dtype auto, logits on the GPU, --compile, int4 and int8 quantized models.

Deselected by default (marker `gpu`); run them on a CUDA machine with `pytest -m gpu`. The CPU
paths of the same features are tested in test_loading, test_generate and test_quantize.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from olmo_cli.generate import SamplingParams, generate
from olmo_cli.loading import load_model

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

# int4 needs in-features that are multiples of its group size (128), hence the wider tiny model.
SHAPE = dict(
    hidden_size=256, intermediate_size=1024, num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=256
)
PROMPTS = ["Language modeling is", "The capital of France is"]


@pytest.fixture(scope="module")
def tiny(tiny_model) -> Path:
    return tiny_model(**SHAPE)


def greedy_texts(loaded, n=12, compile_=False) -> list[str]:
    result = generate(loaded, PROMPTS, SamplingParams(max_new_tokens=n, greedy=True, compile=compile_))
    return [c.completion for c in result.completions]


def test_auto_picks_cuda_and_bf16_and_inputs_follow(tiny):
    loaded = load_model(str(tiny))
    assert loaded.model.device.type == "cuda"
    expected = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32
    assert loaded.model.dtype == expected
    assert loaded.to_inputs(PROMPTS)["input_ids"].device.type == "cuda"
    assert all(text for text in greedy_texts(loaded, n=4))


def test_fp32_logits_on_cuda_match_the_cpu(tiny):
    ids = torch.tensor([[5, 17, 300, 4000, 12, 9]])
    logits = {}
    for device in ("cpu", "cuda"):
        loaded = load_model(str(tiny), dtype="float32", device=device)
        with torch.inference_mode():
            logits[device] = loaded.model(ids.to(loaded.model.device)).logits.float().cpu()
        loaded.release()
    assert (logits["cpu"] - logits["cuda"]).abs().max().item() < 1e-3


def test_compile_gives_the_eager_greedy_text(tiny):
    loaded = load_model(str(tiny), dtype="float32", device="cuda")
    assert greedy_texts(loaded, compile_=True) == greedy_texts(loaded, compile_=False)


def test_cli_generate_with_compile_on_cuda(tiny):
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1]), os.environ.get("PYTHONPATH", "")]),
    }
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "olmo_cli",
            "generate",
            str(tiny),
            "--greedy",
            "-n",
            "8",
            "-p",
            "Hello there",
            "--compile",
            "--json",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    payload = json.loads(run.stdout)
    assert payload["device"].startswith("cuda")
    assert payload["completions"][0]["completion_tokens"] == 8


@pytest.mark.parametrize("method", ["int4", "int8"])
def test_quantized_checkpoint_reloads_and_generates_on_cuda(tiny, tmp_path, method):
    from olmo_cli.quantize.run import quantize

    report = quantize(str(tiny), tmp_path / method, method=method)
    assert report.size_after < report.size_before
    assert report.top1_agreement is not None and 0.0 <= report.top1_agreement <= 1.0
    loaded = load_model(str(tmp_path / method), device="cuda")
    assert loaded.model.device.type == "cuda"
    assert all(text for text in greedy_texts(loaded, n=4))


def test_int4_at_load_time_runs_in_bf16_on_cuda(tiny):
    loaded = load_model(str(tiny), quantization="int4")
    assert loaded.model.device.type == "cuda" and loaded.model.dtype == torch.bfloat16
    assert all(text for text in greedy_texts(loaded, n=4))
