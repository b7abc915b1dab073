"""int8 weight-only linears on the CPU run through torch's int8 GEMM after loading.

The reference for the numbers is torchao's own Int8Tensor linear (what the model computed before
the swap) and the float32 model: the swap may move logits by rounding only, never further from
float32 than torchao's path is.
"""

from __future__ import annotations

import pytest
import torch
from tiny_models import make_hf_with_tokenizer

from olmo_cli.loading.cpu_int8 import Int8PackedLinear, pack_int8_linears
from olmo_cli.loading.model import load_model
from olmo_cli.quantize.methods import quantization_config
from olmo_cli.quantize.run import quantize

IDS = torch.tensor([[3, 17, 42, 5, 9, 31, 0, 58, 12, 7, 44, 2]])


@pytest.fixture(scope="module", params=["olmo", "olmo2"])
def source(request, tmp_path_factory):
    return make_hf_with_tokenizer(
        tmp_path_factory.mktemp("src") / request.param, arch=request.param, hidden_size=64, intermediate_size=256
    )


def rms(x) -> float:
    return x.pow(2).mean().sqrt().item()


def logits(model):
    with torch.inference_mode():
        return model(IDS).logits.float()


def test_int8_at_load_uses_packed_linears_with_torchao_numbers(source):
    from transformers import AutoModelForCausalLM

    reference = logits(AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32).eval())
    loaded = load_model(str(source), quantization="int8", device="cpu")
    torchao = AutoModelForCausalLM.from_pretrained(
        source, dtype=loaded.dtype, quantization_config=quantization_config("int8")
    ).eval()
    before = logits(torchao)

    packed = [m for m in loaded.model.modules() if isinstance(m, Int8PackedLinear)]
    n_layers = loaded.model.config.num_hidden_layers
    assert len(packed) == 7 * n_layers  # q, k, v, o, gate, up, down; lm_head stays bf16
    assert not isinstance(loaded.model.lm_head, Int8PackedLinear)
    after = logits(loaded.model)
    # Rounding apart from torchao's path, and no further from float32 than it (RMS over all
    # logits: in a tiny random model single logits swing with bf16 rounding either way).
    assert rms(after - before) < 0.6 * rms(before - reference)
    assert rms(after - reference) <= 1.25 * rms(before - reference)
    assert (after.argmax(-1) == before.argmax(-1)).float().mean() >= 0.9
    with torch.inference_mode():
        out = loaded.model.generate(IDS[:, :6], max_new_tokens=4, do_sample=False, min_new_tokens=4)
    assert out.shape[1] == 10


def test_saved_int8_checkpoint_is_packed_and_int8_dynamic_is_not(source, tmp_path):
    quantize(str(source), tmp_path / "int8", method="int8", check=False)
    quantize(str(source), tmp_path / "dyn", method="int8-dynamic", check=False)
    saved = load_model(str(tmp_path / "int8"), device="cpu")
    assert any(isinstance(m, Int8PackedLinear) for m in saved.model.modules())
    dynamic = load_model(str(tmp_path / "dyn"), device="cpu")
    assert not any(isinstance(m, Int8PackedLinear) for m in dynamic.model.modules())
    assert pack_int8_linears(dynamic.model) == 0
