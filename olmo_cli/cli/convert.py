"""`olmo convert SRC DST`: native OLMo, OLMo-core and transformers in any direction; hf_olmo -> any; any -> GGUF."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from olmo_cli.checkpoints.convert import convert as run_convert
from olmo_cli.cli.completion import complete_revision
from olmo_cli.cli.options import (
    DType,
    ForceOpt,
    JsonOpt,
    OfflineOpt,
    OutputsDeleteAfterOpt,
    RevisionOpt,
    SourceArg,
    TargetFormat,
    command_app,
    executor_options,
    selection_options_but_to,
)
from olmo_cli.cli.output import ConsoleReporter, format_size, print_json
from olmo_cli.errors import UsageError
from olmo_cli.revisions.select import Selection, parse_bound
from olmo_cli.sources import locate
from olmo_cli.sweeps.choose import ExecutorChoice

app = command_app()

FORMATS = tuple(target.value for target in TargetFormat)


def complete_to(ctx, incomplete: str) -> list[str]:
    """The formats first; revisions once what is typed is no format's beginning (`--to st<TAB>`)."""
    formats = [name for name in FORMATS if name.startswith(incomplete)]
    return formats or complete_revision(ctx, incomplete)


ToOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--to",
        metavar="<" + "|".join(FORMATS) + ">|REV",
        help="Target format: hf (transformers olmo/olmo2/olmo3), native (allenai/OLMo trainer), "
        "olmo-core (OLMo-core step directory, model weights only) or gguf (llama.cpp); "
        "default gguf when DST ends in .gguf, else hf. A value that is not a format name is the last "
        "revision of a sweep (2T, step200000); give --to once of each: --to gguf --to 2T.",
        autocompletion=complete_to,
        show_default=False,
    ),
]


def split_to(values: list[str]) -> tuple[str | None, str | None]:
    """--to's values -> (format, last revision). The format names are a closed vocabulary, checked
    first: no revision bound is spelled like one."""
    formats = [v for v in values if v.strip().lower() in FORMATS]
    bounds = [v for v in values if v.strip().lower() not in FORMATS]
    for kind, given in (("format", formats), ("revision", bounds)):
        if len(given) > 1:
            raise UsageError(
                f"--to names two {kind}s: {', '.join(given)}",
                hint="give --to once with a format (" + ", ".join(FORMATS) + ") and once with the last revision",
            )
    if bounds:
        try:
            parse_bound(bounds[0], "--to")
        except UsageError:
            raise UsageError(
                f"--to '{bounds[0]}' is not one of {', '.join(repr(f) for f in FORMATS)}, nor a revision",
                hint=f"formats: {', '.join(FORMATS)}; revisions: e.g. step200000, 200000, 2T, 2000B",
            ) from None
    return (formats[0].strip().lower() if formats else None), (bounds[0] if bounds else None)


DTypeOpt = Annotated[DType, typer.Option("--dtype", help="Output dtype (auto: as the source).")]
ShardSizeOpt = Annotated[
    str,
    typer.Option("--shard-size", metavar="SIZE", help="Largest safetensors shard for HF outputs (5GB, 500MB, 2GiB)."),
]
VerifyOpt = Annotated[
    bool, typer.Option("--verify", help="Compare source and output logits on a fixed prompt; exit 7 if they differ.")
]
TokenizerOpt = Annotated[
    str | None,
    typer.Option(
        "--tokenizer",
        metavar="PATH|REPO|NAME",
        help="Tokenizer to use instead of the source's: a path, a Hub repo or an OLMo tokenizer name.",
        show_default=False,
    ),
]


@app.command()
@selection_options_but_to
@executor_options
def convert(
    src: SourceArg,
    dst: Annotated[
        Path,
        typer.Argument(
            metavar="DST",
            help="Output directory, or DST.gguf file (must not exist unless --force); "
            "with a selection, the directory of one output per revision.",
            show_default=False,
        ),
    ],
    revision: RevisionOpt = None,
    to: ToOpt = None,
    outtype: Annotated[
        str | None,
        typer.Option(
            "--outtype",
            metavar="f32|f16|bf16|q8_0|q4_0",
            help="GGUF tensor type (default bf16 for bf16 sources, else f16).",
            show_default=False,
        ),
    ] = None,
    dtype: DTypeOpt = DType.auto,
    shard_size: ShardSizeOpt = "5GB",
    force: ForceOpt = False,
    delete_after: OutputsDeleteAfterOpt = False,
    verify: VerifyOpt = False,
    tokenizer: TokenizerOpt = None,
    offline: OfflineOpt = False,
    as_json: JsonOpt = False,
    selection: Selection = Selection(),
    executor: ExecutorChoice = ExecutorChoice(),
):
    """Convert between native OLMo, OLMo-core, legacy hf_olmo and transformers checkpoints, or to GGUF.

    Pairs: native or OLMo-core -> hf (transformers olmo, olmo2, or olmo3 when a layer slides or
    RoPE is scaled); hf_olmo (the original allenai/OLMo-1B and OLMo-7B repos) -> hf, without
    remote code; any -> native (config.yaml, model.pt, train.pt: a directory the OLMo trainer
    starts from with --load_path; name it ...-unsharded); OLMo 2/3 style -> olmo-core (config.json
    + model_and_optim/, loaded by OLMo-core's load_model_and_optim_state; model weights only, start
    with a fresh optimizer); any -> gguf (DST.gguf, one file for llama.cpp, Ollama, LM Studio;
    --outtype f32/f16/bf16/q8_0/q4_0). Same-format runs re-cast or re-shard. Tensors are
    streamed one at a time; the output appears only when complete (an interrupted run leaves
    nothing at DST).

    With a selection (--from, --to REV, --every ...), SRC is a Hub repo and DST a directory that
    gets one output per revision: DST/<revision>/, or DST/<revision>.gguf with --to gguf. An output
    that exists is not written again (unless --force), so a rerun does only what is missing;
    --executor ray|slurm runs each revision on a cluster worker (the [cluster] extra).

    \b
    Examples:
      olmo convert ./step1000-unsharded ./olmo-hf
      olmo convert allenai/OLMo-1B --revision step20000-tokens84B ./olmo-1b-step20000-hf
      olmo convert allenai/OLMo-1B-hf -r step20000-tokens84B ./step20000-unsharded --to native
      olmo convert ./olmo-hf ./olmo-bf16 --to hf --dtype bfloat16 --verify
      olmo convert ./ckpt ./out --shard-size 2GB --force --json
      olmo convert ./olmo-core-run/step1000 ./step1000-hf --tokenizer allenai/dolma2-tokenizer
      olmo convert allenai/Olmo-3-1025-7B ./olmo3-step-dir --to olmo-core
      olmo convert allenai/OLMo-1B -r step20000-tokens84B olmo-1b-20k.gguf --outtype q8_0
      olmo convert allenai/OLMo-7B --from 1T --to 2T --every 50000 out/
      olmo convert allenai/OLMo-7B --from 1T --to 2T --to gguf --every 50000 ggufs/ --executor slurm
    """
    import dataclasses

    target, last = split_to(to or [])
    if last is not None:
        selection = dataclasses.replace(selection, end=last)
    from olmo_cli.cli.output_sweep import sweep_if_selected

    options: dict[str, Any] = {"to": target, "dtype": dtype.value, "shard_size": shard_size}
    options |= {"tokenizer": tokenizer, "verify": verify, "outtype": outtype}
    if sweep_if_selected(
        "convert", src, selection, dst, options, executor,
        revision=revision, force=force, offline=offline, delete_after=delete_after, as_json=as_json,
        describe=_sweep_line,
    ):  # fmt: skip
        return
    reporter = ConsoleReporter()
    located = locate(src, revision, offline=offline, reporter=reporter)
    result = run_convert(
        located.path,
        dst,
        to=target,
        dtype=dtype.value,
        shard_size=shard_size,
        force=force,
        tokenizer=tokenizer,
        reporter=reporter,
        verify=verify,
        revision=located.revision,
        offline=offline,
        outtype=outtype,
        repo=located.repo,
        commit=located.commit,
    )
    if as_json:
        data = result.as_dict()
        data["source"] = located.describe()
        print_json(data)
        return
    line = (
        f"{located.describe()} ({result.source_format}) -> {result.dst} ({result.architecture}, {result.dtype}): "
        f"{result.n_tensors} tensors, {format_size(result.bytes_written)} in {len(result.files)} files"
    )
    if result.max_logit_diff is not None:
        line += f"; verified, max logit difference {result.max_logit_diff:.3g}"
    typer.echo(line)


def _sweep_line(summary: dict) -> str:
    return (
        f"{summary['source']} -> {summary['dst']} ({summary['architecture']}, {summary['dtype']}): "
        f"{summary['n_tensors']} tensors, {format_size(summary['bytes_written'])}"
    )
