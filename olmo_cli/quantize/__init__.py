"""`olmo quantize`: smaller checkpoints (torchao int8 / int4, bitsandbytes nf4, fp16 / bf16 casts).

`methods` holds the one method table (also used when quantizing at load time), `quality` the
logits / top-1 / perplexity check, `cast` the streaming dtype cast, `run` the whole command.
Importing this package imports neither torch nor transformers.
"""

from __future__ import annotations

from olmo_cli.quantize.methods import LOAD_METHODS, METHODS, QUANTIZE_METHODS, quantization_config, require_backend
from olmo_cli.quantize.run import QuantizeReport, quantize

__all__ = [
    "LOAD_METHODS",
    "METHODS",
    "QUANTIZE_METHODS",
    "QuantizeReport",
    "quantization_config",
    "quantize",
    "require_backend",
]
