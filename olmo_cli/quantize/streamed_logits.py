"""A model's logits with one weight in memory at a time: the quality check's two forwards.

The transformers model is built with its parameters on the meta device (buffers such as RoPE's
inverse frequencies are real); a forward pre-hook on each module with parameters of its own
puts them in place - read from the checkpoint and cast - just before the module runs, and a
forward hook puts the meta tensors back right after. The forward is transformers' own, so the
numbers are those of the whole model in memory; the memory is one tensor plus activations.
A torchao-quantized checkpoint (what `olmo quantize --method int8` writes) works the same way:
its quantized weights are rebuilt by torchao's safetensors support from the memory-mapped
parts and the header metadata, as transformers does when it loads one.
"""

from __future__ import annotations

from pathlib import Path


def streamed_logits(hf_dir: Path, dtype: str, ids):
    """float32 logits of the transformers checkpoint `hf_dir` computed in `dtype`, for `ids`."""
    import torch
    from accelerate import init_empty_weights
    from transformers import AutoConfig, AutoModelForCausalLM

    from olmo_cli.quantize.layout import checkpoint_keys
    from olmo_cli.quantize.stream import _SourceReader

    torch_dtype = getattr(torch, dtype)
    config = AutoConfig.from_pretrained(hf_dir, local_files_only=True, trust_remote_code=False)
    with init_empty_weights(include_buffers=False):
        model = AutoModelForCausalLM.from_config(config, dtype=torch_dtype)
    model.eval()
    reader = _SourceReader(hf_dir, checkpoint_keys(model))
    subclassed = _torchao_metadata(hf_dir, config)
    names = {id(module): name for name, module in model.named_modules()}

    def materialize(module, args):
        prefix = names[id(module)]
        for name, _ in list(module.named_parameters(recurse=False)):
            full = f"{prefix}.{name}" if prefix else name
            if full in subclassed:
                weight = _torchao_weight(reader, full, subclassed[full])
            else:
                source, key = reader.reader_and_key(full)
                weight = source.get(key).to(torch_dtype)
            module._parameters[name] = torch.nn.Parameter(weight, requires_grad=False)

    def release(module, args, output):
        for name, param in list(module.named_parameters(recurse=False)):
            module._parameters[name] = torch.nn.Parameter(
                torch.empty(param.shape, dtype=param.dtype, device="meta"), requires_grad=False
            )

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


def _torchao_metadata(hf_dir: Path, config) -> dict[str, str]:
    """{parameter: its tensor-subclass description} of a torchao checkpoint; {} for any other."""
    import json

    from safetensors import safe_open

    from olmo_cli.quantize.files import weight_files

    quantization = getattr(config, "quantization_config", None)
    method = quantization.get("quant_method") if isinstance(quantization, dict) else None
    if quantization is None:
        return {}
    if method != "torchao":
        raise ValueError(f"streamed logits read torchao checkpoints, not {method}")
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
