"""The quantization methods olmo knows, and the transformers `quantization_config` for each.

One table serves both `olmo quantize` (methods that write a smaller checkpoint) and quantizing at
load time (`olmo generate --quantize`, through `olmo_cli.loading.load_model`), so a name means the
same thing everywhere. Nothing here imports torch, transformers or torchao at module level.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from olmo_cli.errors import BadInputError, UnsupportedError, UsageError


@dataclass(frozen=True)
class Method:
    name: str
    backend: str  # "torchao", "bitsandbytes" or "cast" (a plain dtype change)
    summary: str
    bits: int
    needs_cuda: bool = False
    writable: bool = True  # `olmo quantize` can write it (else: load-time only)
    dtype: str | None = None  # the only dtype it computes in (a cast's target; int4's kernels), if any

    @property
    def package(self) -> str | None:
        return None if self.backend == "cast" else self.backend


_TABLE = (
    Method("int8", "torchao", "int8 weights, per output channel (torchao weight-only); CPU and GPU", 8),
    Method("int8-dynamic", "torchao", "int8 weights and int8 activations quantized on the fly (torchao)", 8),
    Method(
        "int4",
        "torchao",
        "int4 weights in groups of 128 (torchao, tinygemm layout); CUDA only",
        4,
        needs_cuda=True,
        dtype="bfloat16",
    ),
    Method("nf4", "bitsandbytes", "4-bit NormalFloat weights (bitsandbytes)", 4),
    Method("fp16", "cast", "every floating tensor cast to float16", 16, dtype="float16"),
    Method("bf16", "cast", "every floating tensor cast to bfloat16", 16, dtype="bfloat16"),
    # Load-time only: bitsandbytes LLM.int8() and 4-bit float, kept for `generate --quantize`.
    Method("8bit", "bitsandbytes", "bitsandbytes LLM.int8() at load time", 8, writable=False),
    Method("fp4", "bitsandbytes", "bitsandbytes 4-bit float at load time", 4, writable=False),
)
METHODS: dict[str, Method] = {method.name: method for method in _TABLE}
ALIASES = {"int8-bnb": "8bit", "4bit": "nf4", "float16": "fp16", "bfloat16": "bf16"}

# What `olmo quantize --method` accepts, and what quantizing at load time accepts.
QUANTIZE_METHODS = tuple(name for name, method in METHODS.items() if method.writable)
LOAD_METHODS = tuple(name for name, method in METHODS.items() if method.backend != "cast")

INSTALL_HINTS = {
    "torchao": "pip install 'olmo-cli[quant]' (torchao)",
    "bitsandbytes": "pip install 'olmo-cli[bnb]' (bitsandbytes), or use int8 (torchao, the [quant] extra)",
}
INT4_GROUP_SIZE = 128


def get_method(name: str, *, allowed: tuple[str, ...] = QUANTIZE_METHODS) -> Method:
    """The method called `name` (case-insensitive, aliases allowed); UsageError when unknown."""
    key = ALIASES.get(name.lower(), name.lower())
    if key not in allowed:
        raise UsageError(f"unknown quantization method '{name}'", hint=f"use one of: {', '.join(allowed)}")
    return METHODS[key]


def require_backend(
    name: str | None, *, allowed: tuple[str, ...] = LOAD_METHODS, cuda: bool | None = None
) -> Method | None:
    """Fail early (before any download or load) when `name` is unknown or cannot run here.

    `cuda`: whether the model will run on a CUDA device; None asks torch.
    """
    if name is None:
        return None
    method = get_method(name, allowed=allowed)
    if method.package and importlib.util.find_spec(method.package) is None:
        raise UnsupportedError(
            f"{method.name} quantization needs the '{method.package}' package, which is not installed",
            hint=INSTALL_HINTS[method.package],
        )
    if method.needs_cuda:
        if cuda is None:
            import torch

            cuda = torch.cuda.is_available()
        if not cuda:
            raise UnsupportedError(
                f"{method.name} quantization needs a CUDA GPU (torchao has no CPU kernel that packs int4)",
                hint="without a CUDA GPU use int8 (torchao), or nf4 with bitsandbytes installed",
            )
    return method


def quantization_config(name: str | None, compute_dtype=None):
    """The transformers `quantization_config` for `name`; None for no quantization or a plain cast.

    `compute_dtype` (a torch dtype) is what bitsandbytes 4-bit computes in; torchao follows the
    dtype the model is loaded in.
    """
    if name is None:
        return None
    method = require_backend(name, allowed=tuple(METHODS), cuda=True)  # CUDA is checked by the caller
    if method is None or method.backend == "cast":
        return None
    if method.backend == "torchao":
        from transformers import TorchAoConfig

        return TorchAoConfig(_torchao_config(method.name))
    from transformers import BitsAndBytesConfig

    if method.name == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type=method.name, bnb_4bit_compute_dtype=compute_dtype)


def _torchao_config(name: str):
    from torchao.quantization import Int4WeightOnlyConfig, Int8DynamicActivationInt8WeightConfig, Int8WeightOnlyConfig

    if name == "int8":
        return Int8WeightOnlyConfig()
    if name == "int8-dynamic":
        return Int8DynamicActivationInt8WeightConfig()
    # "tile_packed_to_4d" runs on torch's own CUDA int4 kernel (tinygemm); torchao's default
    # "plain" layout needs the separate mslk package.
    return Int4WeightOnlyConfig(group_size=INT4_GROUP_SIZE, int4_packing_format="tile_packed_to_4d")


def saved_quantization(checkpoint) -> str | None:
    """The `quant_method` a transformers checkpoint was saved with ("torchao", "bitsandbytes" ...); None if none."""
    from pathlib import Path

    from olmo_cli.jsonfiles import read_json_object_or_none

    config = read_json_object_or_none(Path(checkpoint) / "config.json") or {}
    saved = config.get("quantization_config")
    if not saved:
        return None
    return str(saved.get("quant_method", "unknown")) if isinstance(saved, dict) else "unknown"


def refuse_quantized(hf_dir: Path) -> None:
    """BadInputError when `hf_dir` holds an already-quantized checkpoint (quantizing twice only loses)."""
    kind = saved_quantization(hf_dir)
    if kind is not None:
        raise BadInputError(
            f"{hf_dir} is already quantized ({kind})", hint="quantize the full-precision checkpoint it was made from"
        )
