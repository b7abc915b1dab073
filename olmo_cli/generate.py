"""Text generation on a loaded model: validated sampling settings, streaming, batches, stop strings, timings.

`generate(loaded, prompts, params, on_text=...)` runs one batch (left padded) and returns the
completions with token counts and timings. With one prompt and one sequence, `on_text` receives the
completion as it is produced, already cut at a stop string, so what streams equals what is returned.
Nothing here prints.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TextIO

from olmo_cli.errors import BadInputError, NotFoundError, UnsupportedError, UsageError

# The OLMo model card's inference defaults.
DEFAULT_MAX_NEW_TOKENS = 100
DEFAULT_TOP_K = 50
DEFAULT_TOP_P = 0.95
MAX_SEED = 2**32 - 1  # what numpy's and torch's seeding accept (transformers.set_seed seeds both)
MAX_NEW_TOKENS_LIMIT = 1 << 20  # more than any OLMo context: larger asks would run for hours, then fail


@dataclass(frozen=True)
class SamplingParams:
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS
    greedy: bool = False
    temperature: float = 1.0
    top_k: int = DEFAULT_TOP_K
    top_p: float = DEFAULT_TOP_P
    num_return_sequences: int = 1
    seed: int | None = None
    stop: tuple[str, ...] = ()
    compile: bool = False

    def validate(self) -> SamplingParams:
        """Reject values the model cannot use, each with a one-line UsageError."""
        if self.max_new_tokens < 1:
            raise UsageError(f"--max-new-tokens must be at least 1 (got {self.max_new_tokens})")
        if self.max_new_tokens > MAX_NEW_TOKENS_LIMIT:
            raise UsageError(
                f"--max-new-tokens {self.max_new_tokens} is beyond any OLMo context (at most {MAX_NEW_TOKENS_LIMIT})"
            )
        if not math.isfinite(self.temperature):
            raise UsageError(f"--temperature must be a finite number (got {self.temperature})")
        if not (0.0 < self.top_p <= 1.0):
            raise UsageError(f"--top-p must be in (0, 1] (got {self.top_p})", hint="0.95 is the model card's value")
        if self.top_k < 0:
            raise UsageError(f"--top-k must be 0 (off) or more (got {self.top_k})")
        if self.temperature < 0:
            raise UsageError(f"--temperature must be 0 or more (got {self.temperature})")
        if self.num_return_sequences < 1:
            raise UsageError(f"--num-return-sequences must be at least 1 (got {self.num_return_sequences})")
        if self.sampling is False and self.num_return_sequences > 1:
            raise UsageError(
                "greedy decoding gives one answer per prompt; --num-return-sequences needs sampling",
                hint="drop --greedy (and --temperature 0)",
            )
        if any(stop == "" for stop in self.stop):
            raise UsageError("--stop needs a non-empty string")
        if self.seed is not None and not (0 <= self.seed <= MAX_SEED):
            raise UsageError(f"--seed must be between 0 and {MAX_SEED} (got {self.seed})")
        if self.num_return_sequences > MAX_NEW_TOKENS_LIMIT:
            raise UsageError(f"--num-return-sequences {self.num_return_sequences} is too many")
        return self

    @property
    def sampling(self) -> bool:
        return not self.greedy and self.temperature > 0

    def generate_kwargs(self) -> dict:
        kwargs: dict = {
            "max_new_tokens": self.max_new_tokens,
            "do_sample": self.sampling,
            "num_return_sequences": self.num_return_sequences,
        }
        if self.sampling:
            kwargs.update(temperature=self.temperature, top_k=self.top_k, top_p=self.top_p)
        else:
            # Explicit neutral values: the checkpoint's generation_config must not switch sampling back on.
            kwargs.update(temperature=None, top_k=None, top_p=None)
        return kwargs


@dataclass
class Completion:
    prompt: str
    completion: str
    prompt_index: int
    sequence: int
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str  # "eos", "stop" (a stop string) or "length"


@dataclass
class Timings:
    load_seconds: float | None
    first_token_seconds: float | None  # from the start of generation to the first new token
    generate_seconds: float
    new_tokens: int
    tokens_per_second: float  # new tokens (all sequences) / generate_seconds
    decode_tokens_per_second: float | None  # per sequence, after the first token


@dataclass
class GenerationResult:
    completions: list[Completion]
    timings: Timings
    extra: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"completions": [asdict(c) for c in self.completions], "timings": asdict(self.timings), **self.extra}


def read_prompts(text: str, *, one_per_line: bool) -> list[str]:
    """Prompts from a file's or stdin's text: one per non-blank line, or the whole text as one prompt."""
    if one_per_line:
        return [line for line in text.splitlines() if line.strip()]
    return [text[:-1] if text.endswith("\n") else text]


def collect_prompts(texts: Sequence[str] | None, prompts_file: Path | None, stdin: TextIO | None) -> list[str]:
    """The prompts of a run: the texts given, a file of one prompt per line ('-': stdin), or else
    all of stdin as one prompt (unless stdin is a terminal). Checked as generate() checks them."""
    if texts and prompts_file is not None:
        raise UsageError("give prompts with --prompt or --prompts-file, not both")
    if texts:
        prompts = list(texts)
    elif prompts_file is not None:
        prompts = read_prompts(_read_prompts_file(prompts_file, stdin), one_per_line=True)
        if not prompts:
            raise BadInputError(f"no prompts in {prompts_file}", hint="write one prompt per line")
    else:
        if stdin is None or stdin.isatty():
            raise UsageError("no prompt given", hint="use --prompt TEXT, --prompts-file FILE, or pipe text on stdin")
        prompts = read_prompts(_read_stdin(stdin), one_per_line=False)
    check_prompts(prompts)
    return prompts


def _read_prompts_file(path: Path, stdin: TextIO | None) -> str:
    if str(path) == "-":
        return _read_stdin(stdin) if stdin is not None else ""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise NotFoundError(f"no such prompts file: {path}") from None
    except (OSError, UnicodeDecodeError) as error:
        raise BadInputError(f"cannot read {path}: {error}") from None


def _read_stdin(stdin: TextIO) -> str:
    """stdin as UTF-8 text; other bytes (a binary file piped in, another encoding) are bad input."""
    buffer = getattr(stdin, "buffer", None)
    data = buffer.read() if buffer is not None else stdin.read().encode()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise BadInputError(
            f"stdin is not UTF-8 text (byte {error.start} is {data[error.start : error.start + 1]!r})",
            hint="pipe in text, or pass --prompt",
        ) from None


def check_prompts(prompts: Sequence[str]) -> None:
    """At least one prompt, and none blank: a model given nothing to continue only rambles."""
    if not prompts:
        raise BadInputError("no prompt given", hint="use --prompt TEXT, --prompts-file FILE, or pipe text on stdin")
    for prompt in prompts:
        if not prompt.strip():
            raise BadInputError("empty prompt", hint="give some text for the model to continue")


def check_compile(device) -> None:
    """--compile (static KV cache + torch.compile) pays off on CUDA only; on a CPU it only adds compile time."""
    if device.type != "cuda":
        raise UnsupportedError(
            "--compile needs a CUDA GPU (static KV cache + torch.compile)",
            hint="drop --compile on the CPU; it speeds up decoding on CUDA only",
        )


def load(source, revision, *, engine: str = "torch", **options):
    """The model to generate with: transformers through loading.load_model, or with
    engine="llama.cpp" a GGUF of it run by llama-cpp-python (options are load_model's)."""
    if engine == "llama.cpp":
        from olmo_cli.generate_llama import load_llama_model

        return load_llama_model(source, revision, **options)
    from olmo_cli import loading

    return loading.load_model(source, revision, **options)


def generate(
    loaded, prompts: list[str], params: SamplingParams, *, on_text: Callable[[str], None] | None = None
) -> GenerationResult:
    """Complete every prompt (one left-padded batch) with `loaded` (a LoadedModel, or a
    generate_llama.LlamaLoaded, which llama.cpp completes)."""
    if getattr(loaded, "engine", "torch") == "llama.cpp":
        from olmo_cli.generate_llama import generate_llama

        return generate_llama(loaded, prompts, params, on_text=on_text)
    import torch

    params.validate()
    check_prompts(prompts)
    if params.compile:
        check_compile(loaded.model.device)
    tokenizer, model = loaded.tokenizer, loaded.model
    inputs = loaded.to_inputs(prompts)
    prompt_lengths = inputs["attention_mask"].sum(dim=1).tolist()
    max_new_tokens = fit_context(max(prompt_lengths), params.max_new_tokens, loaded.context_length)

    kwargs = params.generate_kwargs()
    kwargs["max_new_tokens"] = max_new_tokens
    if params.compile:
        kwargs["cache_implementation"] = "static"  # transformers compiles the forward for static caches on CUDA
    width = inputs["input_ids"].shape[1]
    if params.stop:
        kwargs["stopping_criteria"] = _stop_criteria(tokenizer, params.stop, width)
    stream = len(prompts) == 1 and params.num_return_sequences == 1 and on_text is not None
    streamer = StopStreamer(tokenizer, params.stop, on_text if stream else None)
    if params.seed is not None:
        from transformers import set_seed

        set_seed(params.seed)
    start = time.perf_counter()
    with torch.inference_mode():
        output = model.generate(
            **inputs,
            **kwargs,
            streamer=streamer,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=_eos_ids(model, tokenizer),
        )
    if output.device.type == "cuda":
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - start

    completions = _completions(tokenizer, model, prompts, prompt_lengths, output[:, width:], params)
    streamer.finish(completions[0].completion if stream else None)
    new_tokens = sum(c.completion_tokens for c in completions)
    first = streamer.first_token_at - start if streamer.first_token_at else None
    decode = None
    if first is not None and streamer.steps > 1 and elapsed > first:
        decode = (streamer.steps - 1) / (elapsed - first)
    timings = Timings(
        load_seconds=getattr(loaded, "load_seconds", None),
        first_token_seconds=first,
        generate_seconds=elapsed,
        new_tokens=new_tokens,
        tokens_per_second=new_tokens / elapsed if elapsed > 0 else 0.0,
        decode_tokens_per_second=decode,
    )
    return GenerationResult(completions, timings)


def fit_context(prompt_tokens: int, max_new_tokens: int, context: int | None) -> int:
    if not context:
        return max_new_tokens
    if prompt_tokens >= context:
        raise BadInputError(
            f"the prompt is {prompt_tokens} tokens, longer than the model's context of {context}",
            hint="shorten the prompt",
        )
    if prompt_tokens + max_new_tokens > context:
        raise BadInputError(
            f"{prompt_tokens} prompt tokens + {max_new_tokens} new tokens exceed the model's context of {context}",
            hint=f"use --max-new-tokens {context - prompt_tokens} or less",
        )
    return max_new_tokens


def _eos_ids(model, tokenizer) -> list[int] | None:
    ids = model.generation_config.eos_token_id
    if ids is None:
        ids = tokenizer.eos_token_id
    if ids is None:
        return None
    return list(ids) if isinstance(ids, (list, tuple)) else [ids]


def _completions(tokenizer, model, prompts, prompt_lengths, new_ids, params) -> list[Completion]:
    eos = set(_eos_ids(model, tokenizer) or [])
    pad = tokenizer.pad_token_id
    results = []
    per_prompt = params.num_return_sequences
    for row, ids in enumerate(new_ids.tolist()):
        index, sequence = divmod(row, per_prompt)
        count, finish = _count(ids, eos, pad)
        text = tokenizer.decode(ids[:count], skip_special_tokens=True)
        cut = cut_at_stop(text, params.stop)
        if cut is not None:
            # In a batch a stopped row is filled up with padding, which may be the EOS token.
            text, finish, count = cut, "stop", tokens_through_stop(tokenizer, ids[:count], params.stop)
        results.append(
            Completion(
                prompt=prompts[index],
                completion=text,
                prompt_index=index,
                sequence=sequence,
                prompt_tokens=int(prompt_lengths[index]),
                completion_tokens=count,
                finish_reason=finish,
            )
        )
    return results


def _count(ids: list[int], eos: set[int], pad: int | None) -> tuple[int, str]:
    """How many of `ids` were really generated (through the first EOS; padding after a stop excluded)."""
    for position, token in enumerate(ids):
        if token in eos:
            return position + 1, "eos"
    count = len(ids)
    while count and pad is not None and ids[count - 1] == pad:
        count -= 1
    return count, "length"


def tokens_through_stop(tokenizer, ids: list[int], stops) -> int:
    """The fewest leading `ids` whose text holds a stop string (the tokens really generated)."""
    low, high = 1, len(ids)
    while low < high:
        middle = (low + high) // 2
        if cut_at_stop(tokenizer.decode(ids[:middle], skip_special_tokens=True), stops) is None:
            low = middle + 1
        else:
            high = middle
    return high


def cut_at_stop(text: str, stops) -> str | None:
    positions = [text.find(stop) for stop in stops if stop in text]
    return text[: min(positions)] if positions else None


def _stop_criteria(tokenizer, stops, width):
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    longest = max(len(s) for s in stops)

    class StopOnStrings(StoppingCriteria):
        """Finished rows: those whose generated text contains a stop string (checked on its tail)."""

        def __call__(self, input_ids, scores, **kwargs):
            done = []
            for row in input_ids[:, width:].tolist():
                # A stop string spans at most `longest` tokens; a few more cover multi-byte characters.
                tail = tokenizer.decode(row[-(longest + 4) :], skip_special_tokens=True)
                done.append(any(stop in tail for stop in stops))
            return torch.tensor(done, dtype=torch.bool, device=input_ids.device)

    return StoppingCriteriaList([StopOnStrings()])


class StopStreamer:
    """A transformers streamer: times the first new token and, for one sequence, hands out text as it grows.

    Text that could be the start of a stop string, or that ends in half a UTF-8 character, is held
    back until the next token settles it.
    """

    def __init__(self, tokenizer, stops, on_text):
        self.tokenizer, self.stops, self.on_text = tokenizer, tuple(stops), on_text
        self.first_token_at: float | None = None
        self.steps = 0
        self._seen_prompt = False
        self._ids: list[int] = []
        self._sent = 0
        self._stopped = False

    def put(self, value) -> None:
        if not self._seen_prompt:  # generate hands over the prompt first
            self._seen_prompt = True
            return
        if self.first_token_at is None:
            self.first_token_at = time.perf_counter()
        self.steps += 1
        if self.on_text is None or self._stopped:
            return
        self._ids.extend(int(token) for token in value.reshape(-1).tolist())
        text = self.tokenizer.decode(self._ids, skip_special_tokens=True)
        cut = cut_at_stop(text, self.stops)
        if cut is not None:
            self._stopped = True
            self._send(cut, len(cut))
            return
        self._send(text, self._safe_end(text))

    def end(self) -> None:
        pass  # `finish` sends the rest, once the final text (after stop and EOS handling) is known

    def finish(self, final_text: str | None) -> None:
        if self.on_text is not None and final_text is not None:
            self._send(final_text, len(final_text))

    def _safe_end(self, text: str) -> int:
        end = len(text)
        if text.endswith("\ufffd"):
            end -= 1
        for stop in self.stops:
            for size in range(min(len(stop) - 1, end), 0, -1):
                if text[:end].endswith(stop[:size]):
                    end = min(end, len(text[:end]) - size)
                    break
        return end

    def _send(self, text: str, end: int) -> None:
        if end > self._sent:
            self.on_text(text[self._sent : end])
            self._sent = end
