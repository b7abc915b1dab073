"""Quantizing at load time: torchao int8 (CPU and GPU) or bitsandbytes 8-bit / 4-bit."""

from __future__ import annotations

import importlib.util

from olmo_cli.errors import UnsupportedError, UsageError

TORCHAO = ("int8",)
BITSANDBYTES = {"8bit": "8bit", "int8-bnb": "8bit", "4bit": "nf4", "nf4": "nf4", "fp4": "fp4"}
METHODS = (*TORCHAO, *BITSANDBYTES)


def quantization_config(method: str | None, compute_dtype=None):
    """A transformers `quantization_config` for `method`, or None for full precision."""
    if method is None:
        return None
    require_backend(method)
    key = method.lower()
    if key in TORCHAO:
        from torchao.quantization import Int8WeightOnlyConfig
        from transformers import TorchAoConfig

        return TorchAoConfig(Int8WeightOnlyConfig())
    if key in BITSANDBYTES:
        from transformers import BitsAndBytesConfig

        if BITSANDBYTES[key] == "8bit":
            return BitsAndBytesConfig(load_in_8bit=True)
        return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type=BITSANDBYTES[key],
                                  bnb_4bit_compute_dtype=compute_dtype)
    raise AssertionError(method)  # require_backend rejected unknown methods


def require_backend(method: str | None) -> None:
    """Fail early (before any download) when the package `method` needs is missing or it is unknown."""
    if method is None:
        return
    key = method.lower()
    if key in TORCHAO:
        _require("torchao", "--quantize int8", "pip install 'olmo-cli[quant]'")
    elif key in BITSANDBYTES:
        flag = "--load-in-8bit" if BITSANDBYTES[key] == "8bit" else "--load-in-4bit"
        _require("bitsandbytes", flag, "pip install 'olmo-cli[bnb]', or use --quantize int8 (torchao)")
    else:
        raise UsageError(f"unknown quantization '{method}'", hint=f"use one of: {', '.join(METHODS)}")


def _require(package: str, what: str, hint: str) -> None:
    if importlib.util.find_spec(package) is None:
        raise UnsupportedError(f"{what} needs the '{package}' package, which is not installed", hint=hint)
