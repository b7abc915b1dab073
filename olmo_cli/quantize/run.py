"""`quantize`: write a smaller copy of any OLMo checkpoint, and measure what it cost in quality.

Flow: find the source (Hub revision, native, hf_olmo or transformers directory; the first two are
converted once through the loading core's cache), refuse a source that is already quantized, compute
the float32 reference logits on the built-in text, then quantize while loading (transformers hands
each weight to torchao / bitsandbytes as it is read, so the unquantized model is never held twice)
or, for fp16/bf16, cast tensor by tensor; save as safetensors into a temporary sibling of DST that
is renamed into place only when everything is written.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

from olmo_cli.checkpoints.atomic import atomic_output_dir, check_destination, output_path, refuse_overlap
from olmo_cli.errors import BadInputError, UsageError
from olmo_cli.jsonfiles import read_json_object
from olmo_cli.oserrors import disk_full_is_error, require_free
from olmo_cli.quantize.files import copy_side_files, weights_bytes
from olmo_cli.quantize.memory import fix_mmap_threshold
from olmo_cli.quantize.methods import (
    QUANTIZE_METHODS,
    Method,
    get_method,
    quantization_config,
    refuse_quantized,
    require_backend,
)
from olmo_cli.quantize.stream import streams
from olmo_cli.reporting import NULL_REPORTER, Reporter

DTYPES = ("auto", "float32", "bfloat16", "float16")  # also their short names (bf16, fp32 ...), as generate takes
SHARD_SIZE = "1GB"  # safetensors builds each file in memory before writing it: smaller files, lower peak
# Quantized one weight at a time (quantize/stream.py) for olmo, olmo2 and olmo3 models; the others
# (and other model types, e.g. olmoe) load the model through transformers.
STREAMED = ("int8", "int8-dynamic", "nf4")


@dataclass
class QuantizeReport:
    method: str
    source: str
    destination: str
    dtype: str  # the dtype the output computes in (and keeps its unquantized tensors in)
    device: str
    size_before: int  # bytes of weight files
    size_after: int
    ratio: float  # size_after / size_before
    max_logit_diff: float | None  # None: the quality check was skipped (--no-check)
    top1_agreement: float | None
    ppl_before: float | None
    ppl_after: float | None
    eval_tokens: int | None
    seconds: float

    def as_dict(self) -> dict:
        return asdict(self)


def quantize(
    src: str,
    dst: str | Path,
    *,
    method: str = "int8",
    revision: str | None = None,
    dtype: str = "auto",
    force: bool = False,
    offline: bool = False,
    check: bool = True,
    reporter: Reporter = NULL_REPORTER,
) -> QuantizeReport:
    """Quantize `src` (anything `olmo_cli.sources.locate` reads) into the new directory `dst`."""
    start = time.perf_counter()
    chosen = get_method(method, allowed=QUANTIZE_METHODS)
    compute_dtype = _compute_dtype(chosen, dtype)
    dst = output_path(dst).expanduser().resolve()
    # Cheap refusals first: before any download, conversion or load.
    check_destination(dst, force)
    require_backend(chosen.name, allowed=QUANTIZE_METHODS)
    device = "cuda" if chosen.needs_cuda else "cpu"
    fix_mmap_threshold()

    from olmo_cli.loading import hf_checkpoint_dir
    from olmo_cli.loading.model import free_memory, transformers_progress_on_terminal_only
    from olmo_cli.sources import locate

    located = locate(src, revision, offline=offline, reporter=reporter)
    refuse_overlap(located.path, dst)  # before a native or hf_olmo source is converted
    hf_dir = hf_checkpoint_dir(located, offline=offline, reporter=reporter)
    refuse_quantized(hf_dir)
    refuse_overlap(hf_dir, dst)
    size_before = weights_bytes(hf_dir)

    tokenizer = _tokenizer_or_none(hf_dir, reporter) if check else None
    ids = reference = None
    if tokenizer is not None:
        from olmo_cli.quantize.quality import sample_ids

        ids = sample_ids(tokenizer, max_tokens=_context_length(hf_dir))
        ids = _ids_within_vocabulary(ids, hf_dir, reporter)
    if ids is not None:
        reporter.info(f"reference: float32 logits of {located.describe()} on {ids.shape[1]} tokens")
        reference = _logits(hf_dir, "float32", device, ids)

    needed = _output_bytes(hf_dir, size_before, chosen)
    require_free(dst.parent, needed)
    with disk_full_is_error(dst.parent, needed), atomic_output_dir(dst, force, reporter) as tmp:
        if chosen.backend == "cast":
            from olmo_cli.quantize.cast import cast_checkpoint

            cast_checkpoint(hf_dir, tmp, compute_dtype, reporter=reporter)
            copy_side_files(hf_dir, tmp)
            quantized = _logits(tmp, compute_dtype, device, ids) if ids is not None else None
        elif chosen.name in STREAMED and streams(hf_dir):
            reporter.info(
                f"quantizing {located.describe()} to {chosen.name} ({chosen.summary}), computing in {compute_dtype}, "
                "one weight at a time"
            )
            from olmo_cli.checkpoints.writer import parse_size
            from olmo_cli.quantize.stream import quantize_streaming

            quantize_streaming(hf_dir, tmp, chosen.name, compute_dtype, parse_size(SHARD_SIZE), reporter)
            copy_side_files(hf_dir, tmp)
            quantized = _logits(tmp, compute_dtype, device, ids) if ids is not None else None
        else:
            reporter.info(
                f"quantizing {located.describe()} to {chosen.name} ({chosen.summary}), computing in {compute_dtype}"
            )
            import torch

            qconfig = quantization_config(chosen.name, compute_dtype=getattr(torch, compute_dtype))
            model = _load(hf_dir, compute_dtype, device, quantization_config=qconfig)
            reporter.info(f"writing {dst}")
            # Save before running the model: bitsandbytes' CPU backend repacks 4-bit weights in place
            # on the first inference-mode forward, and that layout would be saved and reload wrong.
            with transformers_progress_on_terminal_only():
                model.save_pretrained(tmp, max_shard_size=SHARD_SIZE)
            quantized = None
            if ids is not None:
                from olmo_cli.quantize.quality import logits_of

                quantized = logits_of(model, ids)
            del model
            free_memory()
            copy_side_files(hf_dir, tmp)
        size_after = weights_bytes(tmp)

    quality = None
    if quantized is not None:
        from olmo_cli.quantize.quality import compare

        quality = compare(reference, quantized, ids)
    return QuantizeReport(
        method=chosen.name,
        source=located.describe(),
        destination=str(dst),
        dtype=compute_dtype,
        device=device,
        size_before=size_before,
        size_after=size_after,
        ratio=size_after / size_before if size_before else float("nan"),
        max_logit_diff=quality.max_logit_diff if quality else None,
        top1_agreement=quality.top1_agreement if quality else None,
        ppl_before=quality.ppl_before if quality else None,
        ppl_after=quality.ppl_after if quality else None,
        eval_tokens=quality.tokens if quality else None,
        seconds=time.perf_counter() - start,
    )


def _output_bytes(hf_dir: Path, size_before: int, method: Method) -> int:
    """About what the output's weights take: the source's bytes scaled by the method's bits per
    weight (a lower bound for int8/4, whose embeddings and norms keep more)."""
    config = read_json_object(hf_dir / "config.json")
    source_dtype = str(config.get("dtype") or config.get("torch_dtype") or "float32")
    source_bits = {"float32": 32, "bfloat16": 16, "float16": 16}.get(source_dtype, 32)
    return size_before * method.bits // source_bits


def _ids_within_vocabulary(ids, hf_dir: Path, reporter: Reporter):
    """The sample's ids, or None (no quality check, said on stderr) when the tokenizer gives ids
    the model has no embedding row for: the quantized copy is still written."""
    rows = int(read_json_object(hf_dir / "config.json").get("vocab_size") or 0)
    if rows and int(ids.max()) >= rows:
        reporter.warn(
            f"no quality check: the tokenizer gives id {int(ids.max())} but the model's embedding has {rows} rows"
        )
        return None
    return ids


def _context_length(hf_dir: Path, cap: int = 256) -> int:
    """Evaluate on at most `cap` tokens, and never beyond what the model was built for."""
    config = read_json_object(hf_dir / "config.json")
    return min(cap, int(config.get("max_position_embeddings") or cap))


def _compute_dtype(method: Method, dtype: str) -> str:
    from olmo_cli.loading.devices import DTYPE_NAMES

    dtype = "auto" if dtype.lower() == "auto" else DTYPE_NAMES.get(dtype.lower(), dtype)
    if dtype not in DTYPES:
        raise UsageError(f"unknown dtype '{dtype}'", hint=f"use one of: {', '.join(DTYPES)}")
    if method.dtype is not None:
        if dtype not in ("auto", method.dtype):
            raise UsageError(f"--method {method.name} computes in {method.dtype}; --dtype {dtype} contradicts it")
        return method.dtype
    # bf16 by default: the unquantized tensors (embeddings, norms, scales) at half the bytes of
    # float32; this is what brings an int8 OLMo-1B under 0.30 of its float32 size.
    return "bfloat16" if dtype == "auto" else dtype


def _tokenizer_or_none(hf_dir: Path, reporter: Reporter):
    from olmo_cli.loading.model import load_tokenizer

    try:
        return load_tokenizer(hf_dir)
    except BadInputError as error:
        reporter.warn(f"no quality check: {error}")
        return None


def _load(path: Path, dtype: str, device: str, quantization_config=None):
    import torch

    from olmo_cli.loading.model import load_weights

    return load_weights(path, getattr(torch, dtype), device, quantization_config)


def _logits(path: Path, dtype: str, device: str, ids):
    """float32 logits of the checkpoint `path` computed in `dtype`: one weight in memory at a time
    on the CPU for the models whose layout olmo plans, else from the model loaded whole."""
    if device == "cpu" and streams(path):
        from olmo_cli.quantize.streamed_logits import streamed_logits

        return streamed_logits(path, dtype, ids)
    from olmo_cli.loading.model import free_memory
    from olmo_cli.quantize.quality import logits_of

    model = _load(path, dtype, device)
    logits = logits_of(model, ids)
    del model
    free_memory()
    return logits
