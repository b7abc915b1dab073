"""Output types: which GGML type each tensor gets, and the conversion itself, a block of rows at a time.

The rules are llama.cpp's: 1-D tensors and norms stay F32 (its kernels expect that), every other
weight gets the output type. For q4_0, llama.cpp's quantizer gives `output` (and a tied
`token_embd` that serves as it) Q6_K; gguf-py cannot write Q6_K, so those get Q8_0 here, more
precise, never less. A tensor whose rows are not a whole number of blocks falls back to F16, as
llama.cpp's own converter does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import gguf
import numpy as np

from olmo_cli.checkpoints.gguf.names import GGUFTensor

Q = gguf.GGMLQuantizationType
OUTTYPES: dict[str, tuple[Q, gguf.LlamaFileType]] = {
    "f32": (Q.F32, gguf.LlamaFileType.ALL_F32),
    "f16": (Q.F16, gguf.LlamaFileType.MOSTLY_F16),
    "bf16": (Q.BF16, gguf.LlamaFileType.MOSTLY_BF16),
    "q8_0": (Q.Q8_0, gguf.LlamaFileType.MOSTLY_Q8_0),
    "q4_0": (Q.Q4_0, gguf.LlamaFileType.MOSTLY_Q4_0),
}
# Rows converted at once: bounds the anonymous memory of a conversion (~4x this in float32 temporaries).
CHUNK_ELEMENTS = 4 * 1024 * 1024


def default_outtype(source_dtype: str | None) -> str:
    """bf16 for bf16 checkpoints (lossless), f16 otherwise (as llama.cpp's converter)."""
    return "bf16" if source_dtype == "bfloat16" else "f16"


def tensor_type(tensor: GGUFTensor, outtype: str, tied: bool) -> Q:
    qtype = OUTTYPES[outtype][0]
    if len(tensor.shape) <= 1 or tensor.name.endswith("_norm.weight"):
        return Q.F32
    if qtype == Q.Q4_0 and (
        tensor.kind == gguf.MODEL_TENSOR.OUTPUT or (tied and tensor.kind == gguf.MODEL_TENSOR.TOKEN_EMBD)
    ):
        qtype = Q.Q8_0
    block, _ = gguf.GGML_QUANT_SIZES[qtype]
    if tensor.shape[-1] % block:
        return Q.F16
    return qtype


def nbytes(shape: tuple[int, ...], qtype: Q) -> int:
    block, size = gguf.GGML_QUANT_SIZES[qtype]
    n = 1
    for s in shape:
        n *= s
    return n // block * size


def encode(rows: np.ndarray, qtype: Q) -> bytes:
    """float32 rows -> their GGML bytes (gguf-py's reference quantizers, rounding as llama.cpp's)."""
    if qtype == Q.F32:
        return rows.astype(np.float32, copy=False).tobytes()
    if qtype == Q.F16:
        return rows.astype(np.float16).tobytes()
    return gguf.quants.quantize(rows, qtype).tobytes()


def row_blocks(tensor: GGUFTensor, fetch: Callable[[str], object]) -> Iterator[np.ndarray]:
    """The output tensor as float32 numpy blocks of rows, in output row order.

    `fetch` gives the source tensor lazily (memory-mapped): only one block is ever copied out.
    """
    import torch

    source = fetch(tensor.source)
    assert isinstance(source, torch.Tensor)
    if tuple(source.shape) != tensor.shape:
        raise ValueError(f"{tensor.source}: shape {tuple(source.shape)}, expected {tensor.shape}")
    if source.dim() == 1:
        yield source.to(torch.float32).numpy()
        return
    rows, columns = tensor.shape[0], int(np.prod(tensor.shape[1:]))
    step = max(1, CHUNK_ELEMENTS // max(columns, 1))
    order = None if tensor.row_order is None else torch.from_numpy(tensor.row_order)
    for start in range(0, rows, step):
        stop = min(rows, start + step)
        block = source[start:stop] if order is None else source.index_select(0, order[start:stop])
        yield block.to(torch.float32).numpy()
