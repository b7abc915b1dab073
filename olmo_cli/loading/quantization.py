"""Quantizing at load time: the same method table as `olmo quantize` (olmo_cli.quantize.methods).

torchao int8 / int8-dynamic (CPU and GPU) and int4 (CUDA), or bitsandbytes 8-bit / nf4 / fp4.
"""

from __future__ import annotations

from olmo_cli.quantize.methods import LOAD_METHODS as METHODS
from olmo_cli.quantize.methods import quantization_config, require_backend

__all__ = ["METHODS", "quantization_config", "require_backend"]
