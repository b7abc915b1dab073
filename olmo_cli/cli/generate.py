"""`olmo generate [MODEL]`: complete prompts with any OLMo checkpoint, or with many revisions side by side."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from olmo_cli.cli.options import (
    EveryOpt,
    FromOpt,
    JsonOpt,
    LimitOpt,
    LogSpacedOpt,
    OfflineOpt,
    RevisionsOpt,
    StageOpt,
    ToOpt,
    command_app,
)
from olmo_cli.errors import BadInputError, UsageError

app = command_app()

ModelArg = Annotated[
    str | None,
    typer.Argument(
        show_default=False,
        help="Hub repo (allenai/OLMo-1B-hf, allenai/OLMo-7B ...) or local checkpoint directory in any format. "
        "May be left out when --revision names a revision of one known repo.",
    ),
]


@app.command()
def generate(
    model: ModelArg = None,
    revision: RevisionsOpt = None,
    prompt: Annotated[
        list[str] | None,
        typer.Option("--prompt", "-p", help="Prompt text (repeatable; several run as one batch).", show_default=False),
    ] = None,
    prompts_file: Annotated[
        Path | None,
        typer.Option(
            "--prompts-file",
            "-f",
            help="File with one prompt per line ('-' for stdin), run as one batch.",
            show_default=False,
        ),
    ] = None,
    max_new_tokens: Annotated[int, typer.Option("--max-new-tokens", "-n", help="Tokens to generate per answer.")] = 100,
    greedy: Annotated[bool, typer.Option("--greedy", help="Greedy decoding instead of sampling.")] = False,
    temperature: Annotated[
        float, typer.Option("--temperature", "-t", help="Sampling temperature (0 means greedy).")
    ] = 1.0,
    top_k: Annotated[int, typer.Option("--top-k", help="Sample from the K most likely tokens (0: off).")] = 50,
    top_p: Annotated[
        float, typer.Option("--top-p", help="Nucleus sampling: smallest set of tokens with this total probability.")
    ] = 0.95,
    seed: Annotated[
        int | None, typer.Option("--seed", help="Random seed: the same seed gives the same text.", show_default=False)
    ] = None,
    num_return_sequences: Annotated[
        int, typer.Option("--num-return-sequences", help="Answers per prompt (sampling).")
    ] = 1,
    stop: Annotated[
        list[str] | None,
        typer.Option(
            "--stop", help="Stop when this string appears (repeatable); it is not printed.", show_default=False
        ),
    ] = None,
    dtype: Annotated[
        str,
        typer.Option(
            "--dtype", help="auto (bf16 on GPUs that support it, else the checkpoint's), float32, bfloat16, float16."
        ),
    ] = "auto",
    device: Annotated[
        str, typer.Option("--device", help="auto (cuda, then mps, then cpu), cpu, cuda, cuda:N, mps.")
    ] = "auto",
    load_in_8bit: Annotated[
        bool, typer.Option("--load-in-8bit", help="Quantize to 8 bits at load with bitsandbytes.")
    ] = False,
    load_in_4bit: Annotated[
        bool, typer.Option("--load-in-4bit", help="Quantize to 4 bits (nf4) at load with bitsandbytes.")
    ] = False,
    quantize: Annotated[
        str | None,
        typer.Option(
            "--quantize",
            help="Quantize at load with torchao: int8, int8-dynamic, int4 (CUDA). Writes nothing.",
            show_default=False,
        ),
    ] = None,
    compile_: Annotated[
        bool,
        typer.Option(
            "--compile", help="CUDA only: static KV cache + torch.compile (faster decoding after a slow first call)."
        ),
    ] = False,
    start: FromOpt = None,
    end: ToOpt = None,
    every: EveryOpt = None,
    log_spaced: LogSpacedOpt = None,
    stage: StageOpt = None,
    limit: LimitOpt = None,
    stats: Annotated[
        bool, typer.Option("--stats", help="Print load time, time to first token and tokens/s on stderr.")
    ] = False,
    offline: OfflineOpt = False,
    as_json: JsonOpt = False,
):
    """Generate text from any revision or local checkpoint.

    The prompt comes from --prompt, --prompts-file (one prompt per line) or stdin (all of it, one
    prompt). One prompt streams to the terminal as tokens arrive; several run as one batch.
    Defaults are the OLMo model card's: 100 new tokens, sampling with top-k 50 and top-p 0.95.
    Legacy hf_olmo and native checkpoints are converted once into olmo's cache, never run as
    remote code. Several --revision, or the selection flags, run the same prompt on each
    checkpoint in training order (one model in memory at a time) and show the answers side by side.

    \b
    Examples:
      olmo generate allenai/OLMo-1B-hf --prompt "Language modeling is"
      olmo generate allenai/OLMo-7B --revision 2T --greedy -n 40 -p "The capital of France is"
      olmo generate --revision step452000-tokens2000B -p "Hello" --seed 1
      echo "Once upon a time" | olmo generate ./my-checkpoint --stats
      olmo generate allenai/OLMo-1B-hf -f prompts.txt --json
      olmo generate allenai/OLMo-1B -r step20000 -r step100000 -r main --greedy -p "2 + 2 ="
      olmo generate allenai/OLMo-1B --log-spaced 5 --greedy -p "The sky is"
      olmo generate allenai/OLMo-7B --quantize int8 -p "Hi"          (torchao, CPU or GPU)
    """
    from olmo_cli.cli.output import ConsoleReporter
    from olmo_cli.generate import SamplingParams
    from olmo_cli.revisions.select import Selection

    params = SamplingParams(
        max_new_tokens=max_new_tokens,
        greedy=greedy,
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        num_return_sequences=num_return_sequences,
        seed=seed,
        stop=tuple(stop or ()),
        compile=compile_,
    ).validate()
    quantization = _quantization(load_in_8bit, load_in_4bit, quantize)
    selection = Selection(start, end, every, log_spaced, stage, limit)
    revisions = list(revision or [])
    if model is None and not revisions:
        raise UsageError(
            "no model given",
            hint="name a Hub repo or a local directory (olmo generate allenai/OLMo-1B-hf -p ...), "
            "or a revision such as --revision step20000-tokens84B",
        )
    if compile_:
        from olmo_cli.loading.devices import pick_device

        if pick_device(device).type != "cuda":  # before any download or load
            from olmo_cli.errors import UnsupportedError

            raise UnsupportedError(
                "--compile needs a CUDA GPU (static KV cache + torch.compile)",
                hint="drop --compile; on the CPU it would only add compilation time",
            )
    prompts = _read_prompts(prompt, prompts_file)
    reporter = ConsoleReporter()
    options = dict(dtype=dtype, device=device, quantization=quantization, offline=offline, reporter=reporter)
    if len(revisions) > 1 or selection.active:
        _sweep(model, revisions, selection, prompts, params, options, as_json, stats)
    else:
        _single(model, revisions[0] if revisions else None, prompts, params, options, as_json, stats)


def _single(model, revision, prompts, params, options, as_json, stats) -> None:
    from olmo_cli.cli.output import print_json
    from olmo_cli.generate import generate
    from olmo_cli.loading import load_model

    loaded = load_model(model, revision, **options)
    streaming = not as_json and len(prompts) == 1 and params.num_return_sequences == 1
    result = generate(loaded, prompts, params, on_text=_write_now if streaming else None)
    if as_json:
        print_json(_as_json(loaded, result))
    elif streaming:
        _write_now("\n")
    else:
        _print_completions(result.completions, len(prompts), params.num_return_sequences)
    if stats:
        _print_stats(result.timings)


def _sweep(model, revisions, selection, prompts, params, options, as_json, stats) -> None:
    """The same prompts on each revision, in training order; one model in memory at a time."""
    from olmo_cli.cli.output import one_line, print_json, print_table, say
    from olmo_cli.generate import generate
    from olmo_cli.loading import load_model
    from olmo_cli.sources import is_local_path

    if model is not None and is_local_path(model):
        raise UsageError(
            "several revisions need a Hub repo, not a local directory",
            hint="drop the extra --revision / selection flags, or name a Hub repo",
        )
    from olmo_cli.revisions.resolve import select_revisions

    chosen = select_revisions(
        model,
        revisions,
        selection if selection.active else None,
        offline=options["offline"],
        refresh=False,
        reporter=options["reporter"],
    )
    say(f"{len(chosen)} revision(s) of {chosen[0].repo}: {', '.join(r.revision for r in chosen)}")
    runs = []
    for index, resolved in enumerate(chosen, start=1):
        say(f"[{index}/{len(chosen)}] {resolved.revision}")
        loaded = load_model(resolved.repo, resolved.revision, **options)
        try:
            result = generate(loaded, prompts, params)
        finally:
            loaded.release()
        runs.append((resolved, loaded, result))
        if stats:
            _print_stats(result.timings, prefix=f"{resolved.revision}: ")
    if as_json:
        print_json([_as_json(loaded, result) for _, loaded, result in runs])
        return
    many = len(prompts) > 1 or params.num_return_sequences > 1
    if not many:
        say(f"prompt: {prompts[0]}")
    columns = ("revision", "prompt", "completion") if many else ("revision", "completion")
    rows = []
    for resolved, _, result in runs:
        for completion in result.completions:
            text = one_line(completion.completion)
            rows.append((resolved.revision, one_line(completion.prompt), text) if many else (resolved.revision, text))
    print_table(columns, rows)


def _read_prompts(prompt: list[str] | None, prompts_file: Path | None) -> list[str]:
    from olmo_cli.generate import read_prompts

    if prompt and prompts_file is not None:
        raise UsageError("give prompts with --prompt or --prompts-file, not both")
    if prompt:
        prompts = list(prompt)
    elif prompts_file is not None:
        if str(prompts_file) == "-":
            text = sys.stdin.read()
        else:
            try:
                text = prompts_file.read_text(encoding="utf-8")
            except FileNotFoundError:
                from olmo_cli.errors import NotFoundError

                raise NotFoundError(f"no such prompts file: {prompts_file}") from None
            except (OSError, UnicodeDecodeError) as error:
                raise BadInputError(f"cannot read {prompts_file}: {error}") from None
        prompts = read_prompts(text, one_per_line=True)
        if not prompts:
            raise BadInputError(f"no prompts in {prompts_file}", hint="write one prompt per line")
    else:
        if sys.stdin is None or sys.stdin.isatty():
            raise UsageError("no prompt given", hint="use --prompt TEXT, --prompts-file FILE, or pipe text on stdin")
        prompts = read_prompts(sys.stdin.read(), one_per_line=False)
    for text in prompts:
        if not text.strip():
            raise BadInputError("empty prompt", hint="give some text for the model to continue")
    return prompts


def _quantization(load_in_8bit: bool, load_in_4bit: bool, quantize: str | None) -> str | None:
    """The method name for load_model; `--quantize` takes the torchao methods, bitsandbytes has its own flags."""
    from olmo_cli.quantize.methods import METHODS, require_backend

    chosen = [name for name, on in (("8bit", load_in_8bit), ("nf4", load_in_4bit), (quantize, quantize)) if on]
    if len(chosen) > 1:
        raise UsageError("choose one of --load-in-8bit, --load-in-4bit and --quantize")
    torchao = tuple(name for name, method in METHODS.items() if method.backend == "torchao")
    if quantize is not None and quantize.lower() not in torchao:
        raise UsageError(
            f"--quantize {quantize} is not available at load time",
            hint=f"use --quantize {', '.join(torchao)}, --load-in-8bit or --load-in-4bit",
        )
    if not chosen:
        return None
    method = require_backend(chosen[0])  # before anything is downloaded
    return method.name if method is not None else None


def _as_json(loaded, result) -> dict:
    located = loaded.located
    return {
        "model": located.describe() if located else str(loaded.path),
        "repo": located.repo if located else None,
        "revision": located.revision if located else None,
        "commit": located.commit if located else None,
        "path": str(loaded.path),
        "device": str(loaded.device),
        "dtype": str(loaded.dtype).replace("torch.", ""),
        "quantization": loaded.quantization,
        **result.to_json(),
    }


def _print_completions(completions, n_prompts: int, per_prompt: int) -> None:
    from olmo_cli.cli.output import one_line

    out = []
    for completion in completions:
        if n_prompts > 1 and completion.sequence == 0:
            out.append(f"==> {one_line(completion.prompt)} <==")
        if per_prompt > 1:
            out.append(f"--- {completion.sequence + 1} ---")
        out.append(completion.completion)
        out.append("")
    sys.stdout.write("\n".join(out))
    sys.stdout.flush()


def _print_stats(timings, prefix: str = "") -> None:
    from olmo_cli.cli.output import say

    parts = []
    if timings.load_seconds is not None:
        parts.append(f"load {timings.load_seconds:.2f} s")
    if timings.first_token_seconds is not None:
        parts.append(f"first token {timings.first_token_seconds:.3f} s")
    parts.append(
        f"{timings.new_tokens} tokens in {timings.generate_seconds:.2f} s ({timings.tokens_per_second:.1f} tokens/s)"
    )
    if timings.decode_tokens_per_second is not None:
        parts.append(f"decode {timings.decode_tokens_per_second:.1f} tokens/s")
    say(prefix + " · ".join(parts))


def _write_now(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()
