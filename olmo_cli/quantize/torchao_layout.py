"""torchao's int8 checkpoint layout, written with plain torch: no torchao, no transformers.

What `save_pretrained` writes for a model quantized with torchao's `Int8WeightOnlyConfig` or
`Int8DynamicActivationInt8WeightConfig` (an `Int8Tensor` per quantized weight, flattened by
torchao's safetensors support), and what transformers + torchao read back:
- per weight `W` of module `m`: `m._weight_qdata` (int8, W's shape), `m._weight_scale` (float32,
  [rows, 1]) and `m._weight_zero_point` (int8 zeros, [rows, 1]);
- header metadata: each state-dict tensor's description (the Int8Tensor's attributes as JSON, or
  `{"_type": "Tensor"}`) and `tensor_names`, every state-dict name in order;
- config.json's `quantization_config`: the TorchAoConfig as transformers serializes it.
The numbers are torchao's symmetric per-row int8 (`choose_qparams_affine` + `quantize_affine`),
the same operations in the same dtypes, done a block of rows at a time so that the temporaries
stay in the CPU cache. Tests compare all of it with torchao's and transformers' own output.
"""

from __future__ import annotations

import json

# A block of about this many elements is quantized at a time (float32 temporaries of 2 MiB).
_BLOCK_ELEMENTS = 1 << 19
_INT8_PARTS = ("qdata", "scale", "zero_point")  # what an Int8Tensor of a plain weight holds
_DATA_NAMES = ["zero_point", "qdata", "scale"]  # the order torchao's JSON encoder lists them in
PLAIN_TENSOR = json.dumps({"_type": "Tensor"})

_PER_ROW = {"_type": "PerRow", "_data": {"dim": -1}}
_ACT_KWARGS = {
    "_type": "QuantizeTensorToInt8Kwargs",
    "_data": {
        "granularity": _PER_ROW,
        "mapping_type": {"_type": "MappingType", "_data": "SYMMETRIC"},
        "reduce_range": False,
    },
}
_CONFIG_PER_ROW = {"_data": {"dim": -1}, "_type": "PerRow", "_version": 1}
_QUANT_TYPES = {
    "int8": {
        "_data": {"granularity": _CONFIG_PER_ROW, "group_size": None, "set_inductor_config": True},
        "_type": "Int8WeightOnlyConfig",
        "_version": 2,
    },
    "int8-dynamic": {
        "_data": {
            "act_mapping_type": {"_data": "SYMMETRIC", "_type": "MappingType"},
            "granularity": _CONFIG_PER_ROW,
            "reduce_range": False,
            "set_inductor_config": True,
            "weight_only_decode": False,
        },
        "_type": "Int8DynamicActivationInt8WeightConfig",
        "_version": 2,
    },
}
METHODS = tuple(_QUANT_TYPES)


def part_keys(param: str) -> list[str]:
    """The flattened keys of quantized weight `param` (model.x.weight -> model.x._weight_qdata ...)."""
    module, name = param.rsplit(".", 1)
    return [f"{module}._{name}_{part}" for part in _INT8_PARTS]


def part_shapes(shape: tuple[int, ...]) -> list[tuple[tuple[int, ...], str]]:
    """(shape, dtype) of each part, in part_keys' order, for a weight of `shape`."""
    rows = shape[0]
    return [(tuple(shape), "int8"), ((rows, 1), "float32"), ((rows, 1), "int8")]


def description(method: str, shape: tuple[int, ...], dtype: str) -> str:
    """The header metadata entry of a weight quantized by `method`, as torchao's encoder writes it."""
    act_kwargs = _ACT_KWARGS if method == "int8-dynamic" else None
    return json.dumps(
        {
            "_type": "Int8Tensor",
            "_data": {
                "act_quant_kwargs": act_kwargs,
                "reduce_range": False,
                "block_size": [1, shape[1]],
                "dtype": {"_type": "torch.dtype", "_data": dtype},
            },
            "_tensor_data_names": _DATA_NAMES,
        }
    )


def quantization_config(method: str) -> dict:
    """config.json's `quantization_config` for `method`, as TorchAoConfig.to_dict gives it."""
    return {
        "include_input_output_embeddings": False,
        "modules_to_not_convert": None,
        "quant_method": "torchao",
        "quant_type": {"default": _QUANT_TYPES[method]},
        "untie_embedding_weights": False,
    }


def quantize_int8(weight, dtype) -> list:
    """[qdata, scale, zero_point] of the 2-D `weight` (any float dtype; read, never written),
    cast to `dtype` first as transformers does, then quantized per row as torchao does."""
    import torch

    rows, cols = weight.shape
    qdata = torch.empty((rows, cols), dtype=torch.int8)
    scale = torch.empty((rows, 1), dtype=torch.float32)
    eps = torch.finfo(torch.float32).eps  # torchao's floor for every dtype
    step = max(1, min(rows, _BLOCK_ELEMENTS // max(cols, 1)))
    # One pair of block buffers for the whole weight: no fresh pages to fault in per block.
    cast = torch.empty((step, cols), dtype=dtype)
    scaled = torch.empty((step, cols), dtype=torch.float32)
    for start in range(0, rows, step):
        n = min(step, rows - start)
        block = cast[:n].copy_(weight[start : start + n])
        # max(-min, max) in `dtype`, as choose_qparams_affine's SYMMETRIC mapping takes it.
        absmax = torch.maximum(-block.amin(dim=1, keepdim=True), block.amax(dim=1, keepdim=True))
        block_scale = (absmax / 127.5).clamp(min=eps).to(torch.float32)
        scale[start : start + n] = block_scale
        # quantize_affine: input * (1 / scale) in float32, rounded half to even, clamped.
        torch.mul(block, 1.0 / block_scale, out=scaled[:n])
        qdata[start : start + n] = scaled[:n].round_().clamp_(-128, 127)
    return [qdata, scale, torch.zeros((rows, 1), dtype=torch.int8)]
