"""`olmo generate [MODEL]`: complete prompts with any OLMo checkpoint, or with many revisions side by side."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from olmo_cli import generate as generation  # called through the module, so tests can stand in for it
from olmo_cli.cli.options import (
    DeviceOpt,
    DType,
    JsonOpt,
    LoadQuantization,
    OfflineOpt,
    RevisionsOpt,
    command_app,
    complete_load_quantization,
    executor_options,
    selection_options,
)
from olmo_cli.cli.output import ConsoleReporter, one_line, print_json, print_table, say
from olmo_cli.errors import UsageError
from olmo_cli.hub.resolve import select_revisions
from olmo_cli.loading.devices import pick_device
from olmo_cli.quantize.methods import require_backend
from olmo_cli.revisions.select import Selection
from olmo_cli.sources import is_local_path
from olmo_cli.sweeps.choose import ExecutorChoice

app = command_app()

ModelArg = Annotated[
    str | None,
    typer.Argument(
        metavar="MODEL",
        show_default=False,
        help="Hub repo (allenai/OLMo-1B-hf, allenai/OLMo-7B ...) or local checkpoint directory in any format. "
        "May be left out when --revision names a revision of one known repo.",
    ),
]


@app.command("generate")
@selection_options
@executor_options
def generate_command(
    model: ModelArg = None,
    revision: RevisionsOpt = None,
    prompt: Annotated[
        list[str] | None,
        typer.Option(
            "--prompt",
            "-p",
            metavar="TEXT",
            help="Prompt text (repeatable; several run as one batch).",
            show_default=False,
        ),
    ] = None,
    prompts_file: Annotated[
        Path | None,
        typer.Option(
            "--prompts-file",
            "-f",
            metavar="FILE",
            help="File with one prompt per line ('-' for stdin), run as one batch.",
            show_default=False,
        ),
    ] = None,
    max_new_tokens: Annotated[
        int, typer.Option("--max-new-tokens", "-n", metavar="N", help="Tokens to generate per answer.")
    ] = 100,
    greedy: Annotated[bool, typer.Option("--greedy", help="Greedy decoding instead of sampling.")] = False,
    temperature: Annotated[
        float, typer.Option("--temperature", "-t", metavar="T", help="Sampling temperature (0 means greedy).")
    ] = 1.0,
    top_k: Annotated[
        int, typer.Option("--top-k", metavar="K", help="Sample from the K most likely tokens (0: off).")
    ] = 50,
    top_p: Annotated[
        float,
        typer.Option(
            "--top-p", metavar="P", help="Nucleus sampling: smallest set of tokens with this total probability."
        ),
    ] = 0.95,
    seed: Annotated[
        int | None,
        typer.Option("--seed", metavar="N", help="Random seed: the same seed gives the same text.", show_default=False),
    ] = None,
    num_return_sequences: Annotated[
        int, typer.Option("--num-return-sequences", metavar="N", help="Answers per prompt (sampling).")
    ] = 1,
    stop: Annotated[
        list[str] | None,
        typer.Option(
            "--stop",
            metavar="STRING",
            help="Stop when this string appears (repeatable); it is not printed.",
            show_default=False,
        ),
    ] = None,
    dtype: Annotated[
        DType,
        typer.Option(
            "--dtype",
            help="auto: bfloat16 on GPUs that support it and, for float32 checkpoints, on CPUs with native bf16; "
            "else the checkpoint's.",
        ),
    ] = DType.auto,
    device: DeviceOpt = "auto",
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
            metavar="int8|int8-dynamic|int4",
            help="Quantize at load with torchao (int4: CUDA only). Writes nothing.",
            autocompletion=complete_load_quantization,
            show_default=False,
        ),
    ] = None,
    compile_: Annotated[
        bool,
        typer.Option(
            "--compile", help="CUDA only: static KV cache + torch.compile (faster decoding after a slow first call)."
        ),
    ] = False,
    engine: Annotated[
        str,
        typer.Option(
            "--engine",
            metavar="torch|llama.cpp",
            help="llama.cpp: decode on the CPU with llama-cpp-python, on a GGUF copy made once in the cache.",
        ),
    ] = "torch",
    selection: Selection = Selection(),
    stats: Annotated[
        bool, typer.Option("--stats", help="Print load time, time to first token and tokens/s on stderr.")
    ] = False,
    offline: OfflineOpt = False,
    as_json: JsonOpt = False,
    executor: ExecutorChoice = ExecutorChoice(),
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
      olmo generate allenai/OLMo-1B-hf --engine llama.cpp --quantize int8 -p "Hi"   (llama.cpp q8_0)
    """
    params = generation.SamplingParams(
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
    revisions = list(revision or [])
    if model is None and not revisions:
        raise UsageError(
            "no model given",
            hint="name a Hub repo or a local directory (olmo generate allenai/OLMo-1B-hf -p ...), "
            "or a revision such as --revision step20000-tokens84B",
        )
    if engine != "torch":
        _check_engine(engine, dtype.value, device, quantization, compile_)
    elif compile_:
        generation.check_compile(pick_device(device))  # before any download or load
    prompts = generation.collect_prompts(prompt, prompts_file, sys.stdin)
    reporter = ConsoleReporter()
    options = dict(dtype=dtype.value, device=device, quantization=quantization, offline=offline, reporter=reporter)
    options["engine"] = engine
    if len(revisions) > 1 or selection.active:
        _sweep(model, revisions, selection, prompts, params, options, as_json, stats, executor)
    else:
        if executor.remote:
            raise UsageError("--executor ray|slurm runs sweeps", hint="give several --revision, or a selection")
        _single(model, revisions[0] if revisions else None, prompts, params, options, as_json, stats)


def _single(model, revision, prompts, params, options, as_json, stats) -> None:
    loaded = generation.load(model, revision, **options)
    streaming = not as_json and len(prompts) == 1 and params.num_return_sequences == 1
    result = generation.generate(loaded, prompts, params, on_text=_write_now if streaming else None)
    if as_json:
        print_json(_as_json(loaded, result))
    elif streaming:
        _write_now("\n")
    else:
        _print_completions(result.completions, len(prompts), params.num_return_sequences)
    if stats:
        _print_stats(result.timings)


def _sweep(model, revisions, selection, prompts, params, options, as_json, stats, executor) -> None:
    """The same prompts on each revision, in training order; one model in memory at a time (here)
    or one per worker (--executor ray|slurm)."""
    if model is not None and is_local_path(model):
        raise UsageError(
            "several revisions need a Hub repo, not a local directory",
            hint="drop the extra --revision / selection flags, or name a Hub repo",
        )
    chosen = select_revisions(
        model,
        revisions,
        selection if selection.active else None,
        offline=options["offline"],
        refresh=False,
        reporter=options["reporter"],
    )
    say(f"{len(chosen)} revision(s) of {chosen[0].repo}: {', '.join(r.revision for r in chosen)}")
    from olmo_cli.sweeps.generations import plan_generations, run_generations

    units = plan_generations(chosen, prompts, params, options)

    def on_result(unit, result) -> None:
        if stats:
            _print_stats(result.timings, prefix=f"{unit.revision}: ")

    runner = executor.build(options["device"])
    answers = run_generations(units, runner, describe=_as_json, reporter=options["reporter"], on_result=on_result)
    if getattr(runner, "script", None) is not None:  # --slurm-dry-run: the script's path is the output
        typer.echo(str(runner.script))
        return
    runs = [(resolved, answer["json"], answer["result"]) for resolved, answer in zip(chosen, answers, strict=True)]
    if as_json:
        print_json([described for _, described, _ in runs])
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


def _check_engine(engine: str, dtype: str, device: str, quantization: str | None, compile_: bool) -> None:
    """--engine llama.cpp: what cannot map to llama.cpp is refused before any download."""
    from olmo_cli import generate_llama

    if engine not in generate_llama.ENGINES:
        raise UsageError(f"unknown --engine {engine!r}", hint="use --engine torch or --engine llama.cpp")
    generate_llama.check_llama_options(device, compile_)
    generate_llama.gguf_outtype(dtype, quantization)
    generate_llama.require_llama_cpp()


def _quantization(load_in_8bit: bool, load_in_4bit: bool, quantize: str | None) -> str | None:
    """The method name for load_model; `--quantize` takes the torchao methods, bitsandbytes has its own flags."""
    chosen = [name for name, on in (("8bit", load_in_8bit), ("nf4", load_in_4bit), (quantize, quantize)) if on]
    if len(chosen) > 1:
        raise UsageError("choose one of --load-in-8bit, --load-in-4bit and --quantize")
    torchao = tuple(choice.value for choice in LoadQuantization)
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
        **result.as_dict(),
    }


def _print_completions(completions, n_prompts: int, per_prompt: int) -> None:
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
