"""`olmo convert SRC DST`: native OLMo, OLMo-core and transformers in any direction; hf_olmo -> any; any -> GGUF."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from olmo_cli.checkpoints.convert import convert as run_convert
from olmo_cli.cli.options import (
    DType,
    ForceOpt,
    JsonOpt,
    OfflineOpt,
    RevisionOpt,
    SourceArg,
    TargetFormat,
    command_app,
)
from olmo_cli.cli.output import ConsoleReporter, format_size, print_json
from olmo_cli.sources import locate

app = command_app()

ToOpt = Annotated[
    TargetFormat | None,
    typer.Option(
        "--to",
        help="Target format: hf (transformers olmo/olmo2/olmo3), native (allenai/OLMo trainer), "
        "olmo-core (OLMo-core step directory, model weights only) or gguf (llama.cpp); "
        "default gguf when DST ends in .gguf, else hf.",
        show_default=False,
    ),
]
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
def convert(
    src: SourceArg,
    dst: Annotated[
        Path,
        typer.Argument(
            metavar="DST",
            help="Output directory, or DST.gguf file (must not exist unless --force).",
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
    verify: VerifyOpt = False,
    tokenizer: TokenizerOpt = None,
    offline: OfflineOpt = False,
    as_json: JsonOpt = False,
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
    """
    reporter = ConsoleReporter()
    located = locate(src, revision, offline=offline, reporter=reporter)
    result = run_convert(
        located.path,
        dst,
        to=None if to is None else to.value,
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
