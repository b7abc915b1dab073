"""A model's logits with one weight in memory at a time: the quality check's two forwards.

The transformers model is built with its parameters on the meta device (buffers such as RoPE's
inverse frequencies are real); a forward pre-hook on each module with parameters of its own
puts them in place - read from the checkpoint and cast - just before the module runs, and a
forward hook puts the meta tensors back right after. The forward is transformers' own, so the
numbers are those of the whole model in memory; the memory is one tensor plus activations.
Quantized checkpoints (what `olmo quantize` writes) work the same way, their weights rebuilt as
transformers does when it loads them: torchao's from the memory-mapped parts and the header
metadata by torchao's safetensors support; bitsandbytes' as `Params4bit.from_prequantized` in
the `Linear4bit` modules that transformers' quantizer swaps into the skeleton.
"""

from __future__ import annotations

from pathlib import Path


def streamed_logits(hf_dir: Path, dtype: str, ids):
    """float32 logits of the transformers checkpoint `hf_dir` computed in `dtype`, for `ids`."""
    import torch
    from accelerate import init_empty_weights
    from transformers import AutoConfig, AutoModelForCausalLM

    from olmo_cli.quantize.stream import _SourceReader

    torch_dtype = getattr(torch, dtype)
    config = AutoConfig.from_pretrained(hf_dir, local_files_only=True, trust_remote_code=False)
    with init_empty_weights(include_buffers=False):
        model = AutoModelForCausalLM.from_config(config, dtype=torch_dtype)
    reader = _SourceReader(hf_dir, _checkpoint_keys(model))
    subclassed = _torchao_metadata(hf_dir, config)
    four_bit = _swap_in_linear4bit(model, config)
    model.eval()  # after the swap: Linear4bit's CPU kernel is for eval mode only
    names = {id(module): name for name, module in model.named_modules()}

    def materialize(module, args):
        prefix = names[id(module)]
        for name, _ in list(module.named_parameters(recurse=False)):
            full = f"{prefix}.{name}" if prefix else name
            if full in subclassed:
                weight = torch.nn.Parameter(_torchao_weight(reader, full, subclassed[full]), requires_grad=False)
            elif four_bit and isinstance(module, four_bit) and name == "weight":
                weight = _params4bit(reader, full, module)
            else:
                source, key = reader.reader_and_key(full)
                weight = torch.nn.Parameter(source.get(key).to(torch_dtype), requires_grad=False)
            module._parameters[name] = weight

    def release(module, args, output):
        for name, param in list(module.named_parameters(recurse=False)):
            module._parameters[name] = torch.nn.Parameter(
                torch.empty(param.shape, dtype=param.dtype, device="meta"), requires_grad=False
            )
        if four_bit and isinstance(module, four_bit):
            module.quant_state = None

    handles = []
    for module in model.modules():
        if any(True for _ in module.parameters(recurse=False)):
            handles.append(module.register_forward_pre_hook(materialize))
            handles.append(module.register_forward_hook(release))
    try:
        with torch.inference_mode():
            return model(input_ids=ids).logits.float()
    finally:
        for handle in handles:
            handle.remove()


def _quant_method(config) -> str | None:
    quantization = getattr(config, "quantization_config", None)
    if quantization is None:
        return None
    method = quantization.get("quant_method") if isinstance(quantization, dict) else quantization.quant_method
    if method not in ("torchao", "bitsandbytes"):
        raise ValueError(f"streamed logits read torchao and bitsandbytes checkpoints, not {method}")
    return str(method)


def _swap_in_linear4bit(model, config):
    """Linear4bit in the (meta) skeleton where a bitsandbytes checkpoint has them, as transformers'
    quantizer puts them there before loading; the Linear4bit class, or None for other checkpoints."""
    if _quant_method(config) != "bitsandbytes":
        return None
    from bitsandbytes.nn import Linear4bit
    from transformers.quantizers.auto import AutoHfQuantizer

    quantizer = AutoHfQuantizer.from_config(config.quantization_config, pre_quantized=True)
    quantizer._process_model_before_weight_loading(model, device_map=None)
    return Linear4bit


def _params4bit(reader, param: str, module):
    """The 4-bit weight `param` from its memory-mapped parts, as transformers deserializes it."""
    from bitsandbytes.nn import Params4bit

    stats = {key: source.get(key) for key, source in reader.by_key.items() if key.startswith(f"{param}.")}
    source, key = reader.reader_and_key(param)
    return Params4bit.from_prequantized(
        data=source.get(key), quantized_stats=stats, requires_grad=False, device="cpu", module=module
    )


def _torchao_metadata(hf_dir: Path, config) -> dict[str, str]:
    """{parameter: its tensor-subclass description} of a torchao checkpoint; {} for any other."""
    import json

    from safetensors import safe_open

    from olmo_cli.quantize.files import weight_files

    if _quant_method(config) != "torchao":
        return {}
    described = {}
    for path in weight_files(hf_dir):
        with safe_open(path, "pt") as f:
            for name, value in (f.metadata() or {}).items():
                if name not in ("format", "tensor_names") and json.loads(value).get("_type") != "Tensor":
                    described[name] = value
    return described


def _torchao_weight(reader, param: str, description: str):
    """The quantized weight `param`, rebuilt from its memory-mapped parts by torchao."""
    import json

    from torchao.prototype.safetensors.safetensors_support import unflatten_tensor_state_dict

    module, name = param.rsplit(".", 1)
    prefix = f"{module}._{name}_"
    parts = {}
    for key, source in reader.by_key.items():
        if key.startswith(prefix):
            parts[key] = source.get(key)
    rebuilt, _ = unflatten_tensor_state_dict(parts, {param: description, "tensor_names": json.dumps([param])})
    return rebuilt[param]


def _checkpoint_keys(model) -> dict[str, str]:
    """Parameter name -> the name it has in a checkpoint (tied parameters share the first name,
    also where the skeleton's ties are declared but not made, as on an empty-weights skeleton)."""
    first: dict[int, str] = {}
    keys = {}
    for name, param in model.named_parameters(remove_duplicate=False):
        keys[name] = first.setdefault(id(param), name)
    for tied, source in (getattr(model, "all_tied_weights_keys", None) or {}).items():
        keys[tied] = keys.get(source, source)
    return keys
