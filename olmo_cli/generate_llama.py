"""`olmo generate --engine llama.cpp`: the same prompts and sampling options, decoded by llama.cpp.

The checkpoint (any revision, any format) is written once as a GGUF file by olmo's own GGUF writer
into the cache (`loading.converted.gguf_checkpoint_file`), then run through llama-cpp-python on
the CPU. llama.cpp's decode kernels read the weights at close to the memory bandwidth, which
torch's CPU path does not reach at 8 and 16 bits.

Options map as follows: --dtype float32/bfloat16/float16 -> GGUF f32/bf16/f16, --quantize int8 ->
q8_0, auto -> f16 (llama.cpp's own default, and faster than its bf16 on an AVX512-BF16 EPYC);
greedy -> llama.cpp's greedy sampler; sampling -> top-k, top-p, temperature and the seed
(llama.cpp applies the temperature after top-k/top-p, so sampled text differs from the torch
path's for the same seed). Several prompts or sequences run one after another. What has no
llama.cpp counterpart (other quantizations, --compile, a CUDA device) is refused with exit 8.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from olmo_cli.errors import BadInputError, UnsupportedError, UsageError, first_line
from olmo_cli.generate import (
    MAX_SEED,
    Completion,
    GenerationResult,
    SamplingParams,
    StopStreamer,
    Timings,
    check_prompts,
    cut_at_stop,
    fit_context,
    tokens_through_stop,
)
from olmo_cli.loading.converted import gguf_checkpoint_file
from olmo_cli.loading.devices import DTYPE_NAMES, physical_cores
from olmo_cli.quantize.methods import saved_quantization
from olmo_cli.reporting import NULL_REPORTER, Reporter
from olmo_cli.sources import Located, locate

ENGINES = ("torch", "llama.cpp")
INSTALL_HINT = "pip install llama-cpp-python (or use --engine torch)"
OUTTYPE_OF_DTYPE = {"float32": "f32", "bfloat16": "bf16", "float16": "f16"}
OUTTYPE_OF_QUANTIZATION = {"int8": "q8_0"}
# KV cache tokens allocated at load (a longer prompt + answer reopens with more): the model's full
# context would cost gigabytes for long-context models.
DEFAULT_CONTEXT = 2048


def require_llama_cpp():
    """llama_cpp, or one line and exit 8 when llama-cpp-python is not installed."""
    try:
        import llama_cpp
    except ImportError:
        raise UnsupportedError("--engine llama.cpp needs llama-cpp-python", hint=INSTALL_HINT) from None
    return llama_cpp


def gguf_outtype(dtype: str, quantization: str | None) -> str:
    """The GGUF tensor type for `--dtype` and `--quantize` (see the module's docstring)."""
    if quantization is not None:
        outtype = OUTTYPE_OF_QUANTIZATION.get(quantization.lower())
        if outtype is None:
            raise UnsupportedError(
                f"--engine llama.cpp cannot run {quantization} quantization",
                hint="use --quantize int8 (llama.cpp q8_0), or --engine torch",
            )
        return outtype
    if dtype == "auto":
        return "f16"  # llama.cpp's own default; its f16 decoded faster than its bf16 even with native bf16
    name = DTYPE_NAMES.get(str(dtype).lower())
    if name is None:
        raise UsageError(f"unknown dtype '{dtype}'", hint="use auto, float32, bfloat16 or float16")
    return OUTTYPE_OF_DTYPE[name]


def check_llama_options(device: str, compile_: bool) -> None:
    """What llama-cpp-python's CPU decoding has no counterpart for: refused before any download."""
    if compile_:
        raise UnsupportedError("--compile is for --engine torch", hint="llama.cpp needs no compilation; drop it")
    if device not in ("auto", "cpu"):
        raise UnsupportedError(f"--engine llama.cpp runs on the CPU here, not on '{device}'", hint="use --device cpu")


@dataclass
class LlamaLoaded:
    """A llama.cpp model on a cached GGUF file, with what `olmo generate` reports about a load."""

    llm: Any
    path: Path
    located: Located
    outtype: str
    load_seconds: float
    threads: int
    engine: str = "llama.cpp"

    def open(self, context: int) -> None:
        """(Re)open the GGUF with a KV cache of `context` tokens (llama.cpp allocates it whole)."""
        llama_cpp = require_llama_cpp()
        self.release()
        try:
            self.llm = llama_cpp.Llama(
                str(self.path),
                n_ctx=context,
                n_batch=min(512, context),
                n_threads=self.threads,
                n_threads_batch=self.threads,
                verbose=False,
            )
        except ValueError as error:  # llama-cpp-python's word for a file llama.cpp could not load
            raise BadInputError(
                f"llama.cpp cannot load {self.path}: {first_line(error)}",
                hint="delete the file to convert again, or use --engine torch",
            ) from None

    @property
    def context_length(self) -> int:
        """The model's trained context (what the torch path checks prompts against)."""
        return int(require_llama_cpp().llama_model_n_ctx_train(self.llm.model))

    def fit(self, needed: int) -> None:
        """A KV cache of at least `needed` tokens (checked against the model's context before)."""
        if needed > self.llm.n_ctx():
            self.open(needed)

    @property
    def device(self) -> str:
        return "cpu"

    @property
    def dtype(self) -> str:
        return self.outtype

    @property
    def quantization(self) -> str | None:
        return "q8_0" if self.outtype == "q8_0" else None

    def release(self) -> None:
        if self.llm is not None:
            self.llm.close()
        self.llm = None


def load_llama_model(
    source: str | None,
    revision: str | None = None,
    dtype: str = "auto",
    device: str = "auto",
    quantization: str | None = None,
    *,
    offline: bool = False,
    reporter: Reporter = NULL_REPORTER,
) -> LlamaLoaded:
    """`source` at `revision` as a llama.cpp model, through a GGUF file made once and cached."""
    start = time.perf_counter()
    require_llama_cpp()  # before any download or conversion
    check_llama_options(device, compile_=False)
    outtype = gguf_outtype(dtype, quantization)
    located = locate(source, revision, offline=offline, reporter=reporter)
    saved = saved_quantization(located.path)
    if saved is not None:
        raise UnsupportedError(
            f"{located.describe()} is saved quantized ({saved}); llama.cpp needs full-precision weights",
            hint="run its full-precision source with --engine llama.cpp --quantize int8, or use --engine torch",
        )
    path = gguf_checkpoint_file(located, outtype, offline=offline, reporter=reporter)
    threads = _threads()
    reporter.info(f"loading {located.describe()} in llama.cpp, {outtype}, {threads} threads")
    loaded = LlamaLoaded(None, path, located, outtype, 0.0, threads)
    loaded.open(DEFAULT_CONTEXT)
    loaded.load_seconds = time.perf_counter() - start
    return loaded


def _threads() -> int:
    """OMP_NUM_THREADS when set (as torch reads it), else the physical cores: llama-cpp-python's
    own default is half the logical CPUs, one thread on a 2-core machine."""
    configured = os.environ.get("OMP_NUM_THREADS", "")
    return int(configured) if configured.isdigit() and int(configured) > 0 else physical_cores()


class _Detokenizer:
    """The `decode` the stop-string and streaming helpers call, by llama.cpp's own vocabulary."""

    def __init__(self, llm):
        self.llm = llm

    def decode(self, ids, skip_special_tokens: bool = True) -> str:
        # special=False renders control tokens (EOS, padding) as nothing, like skip_special_tokens.
        return self.llm.detokenize(list(ids), special=not skip_special_tokens).decode("utf-8", errors="replace")


def generate_llama(
    loaded: LlamaLoaded, prompts: list[str], params: SamplingParams, *, on_text=None
) -> GenerationResult:
    """Complete every prompt (one after another) with llama.cpp; timings as the torch path's."""
    params.validate()
    check_prompts(prompts)
    tokenized = [loaded.llm.tokenize(prompt.encode("utf-8"), add_bos=True, special=False) for prompt in prompts]
    for ids in tokenized:
        fit_context(len(ids), params.max_new_tokens, loaded.context_length)
    loaded.fit(max(len(ids) for ids in tokenized) + params.max_new_tokens)
    stream = len(prompts) == 1 and params.num_return_sequences == 1 and on_text is not None
    completions: list[Completion] = []
    clock = _Clock()
    for index, (prompt, ids) in enumerate(zip(prompts, tokenized, strict=True)):
        for sequence in range(params.num_return_sequences):
            if params.seed is not None:  # one seed per answer: the sampler is seeded anew for each
                loaded.llm.set_seed((params.seed + index * params.num_return_sequences + sequence) % (MAX_SEED + 1))
            text, count, finish = _answer(loaded.llm, ids, params, on_text if stream else None, clock)
            completions.append(Completion(prompt, text, index, sequence, len(ids), count, finish))
    elapsed = time.perf_counter() - clock.start
    first = clock.first_at - clock.start if clock.first_at is not None else None
    decode = None
    if len(completions) == 1 and first is not None and clock.steps > 1 and elapsed > first:
        decode = (clock.steps - 1) / (elapsed - first)
    new_tokens = sum(c.completion_tokens for c in completions)
    timings = Timings(
        load_seconds=loaded.load_seconds,
        first_token_seconds=first,
        generate_seconds=elapsed,
        new_tokens=new_tokens,
        tokens_per_second=new_tokens / elapsed if elapsed > 0 else 0.0,
        decode_tokens_per_second=decode,
    )
    return GenerationResult(completions, timings, extra={"engine": "llama.cpp", "gguf": str(loaded.path)})


class _Clock:
    """When generation started and when its first token came; tokens decoded so far."""

    def __init__(self):
        self.start = time.perf_counter()
        self.first_at: float | None = None
        self.steps = 0


def _answer(llm, ids: list[int], params: SamplingParams, on_text, clock: _Clock) -> tuple[str, int, str]:
    """One completion of `ids`: (text cut at a stop string, tokens generated, finish reason)."""
    detokenizer = _Detokenizer(llm)
    eos = {llm.token_eos()}
    streamer = StopStreamer(detokenizer, params.stop, on_text)
    streamer.put(None)  # the prompt, which transformers hands its streamer first
    tail = max((len(stop) for stop in params.stop), default=0) + 4  # tokens that can hold a stop string
    new: list[int] = []
    finish = "length"
    for token in llm.generate(ids, reset=True, **_sampler(params)):
        clock.first_at = clock.first_at or time.perf_counter()
        clock.steps += 1
        new.append(token)
        if token in eos:
            finish = "eos"
            break
        streamer.put(_Token(token))
        if len(new) >= params.max_new_tokens or (
            params.stop and cut_at_stop(detokenizer.decode(new[-tail:]), params.stop) is not None
        ):
            break
    text, count = detokenizer.decode(new), len(new)
    cut = cut_at_stop(text, params.stop)
    if cut is not None:
        text, finish, count = cut, "stop", tokens_through_stop(detokenizer, new, params.stop)
    streamer.finish(text if on_text is not None else None)
    return text, count, finish


class _Token:
    """One token id in the shape the streamer reads (`.reshape(-1).tolist()`)."""

    def __init__(self, token: int):
        self.token = token

    def reshape(self, *_shape) -> _Token:
        return self

    def tolist(self) -> list[int]:
        return [self.token]


def _sampler(params: SamplingParams) -> dict:
    """llama-cpp-python's sampler settings for `params`: neutral penalties and no min-p (transformers
    applies neither), temperature 0 for greedy."""
    neutral = dict(repeat_penalty=1.0, frequency_penalty=0.0, presence_penalty=0.0, min_p=0.0, typical_p=1.0)
    if not params.sampling:
        return dict(neutral, temp=0.0, top_k=0, top_p=1.0)
    return dict(neutral, temp=params.temperature, top_k=params.top_k, top_p=params.top_p)
