"""`olmo convert SRC DST`: native OLMo <-> transformers, legacy hf_olmo -> transformers, any -> GGUF."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from olmo_cli.cli.options import ForceOpt, JsonOpt, OfflineOpt, RevisionOpt, command_app

app = command_app()


@app.command()
def convert(
    src: Annotated[
        str,
        typer.Argument(
            metavar="SRC",
            help="Checkpoint directory (native, hf_olmo or transformers) or Hub repo id.",
            show_default=False,
        ),
    ],
    dst: Annotated[
        Path,
        typer.Argument(
            metavar="DST",
            help="Output directory, or DST.gguf file (must not exist unless --force).",
            show_default=False,
        ),
    ],
    revision: RevisionOpt = None,
    to: Annotated[
        str | None,
        typer.Option(
            "--to",
            help="Target format: hf (transformers olmo/olmo2), native (OLMo trainer) or gguf (llama.cpp); "
            "default gguf when DST ends in .gguf, else hf.",
            show_default=False,
        ),
    ] = None,
    outtype: Annotated[
        str | None,
        typer.Option(
            "--outtype",
            help="GGUF tensor type: f32, f16, bf16, q8_0 or q4_0 (default bf16 for bf16 sources, else f16).",
            show_default=False,
        ),
    ] = None,
    dtype: Annotated[
        str, typer.Option("--dtype", help="Output dtype: auto (as the source), float32, bfloat16, float16.")
    ] = "auto",
    shard_size: Annotated[
        str, typer.Option("--shard-size", help="Largest safetensors shard for HF outputs (5GB, 500MB, 2GiB).")
    ] = "5GB",
    force: ForceOpt = False,
    verify: Annotated[
        bool,
        typer.Option("--verify", help="Compare source and output logits on a fixed prompt; exit 7 if they differ."),
    ] = False,
    tokenizer: Annotated[
        str | None,
        typer.Option(
            "--tokenizer",
            help="Tokenizer to use instead of the source's: a path, a Hub repo or an OLMo tokenizer name.",
            show_default=False,
        ),
    ] = None,
    offline: OfflineOpt = False,
    as_json: JsonOpt = False,
):
    """Convert between native OLMo, legacy hf_olmo and transformers checkpoints, or to GGUF.

    Pairs: native -> hf (transformers olmo, or olmo2 for OLMo-2-style models); hf_olmo (the
    original allenai/OLMo-1B and OLMo-7B repos) -> hf, without remote code; hf or hf_olmo ->
    native (config.yaml, model.pt, train.pt: a directory the OLMo trainer starts from with
    --load_path; name it ...-unsharded). Same-format runs re-cast or re-shard. Any source -> gguf
    (DST.gguf, one file for llama.cpp, Ollama, LM Studio; --outtype f32/f16/bf16/q8_0/q4_0). Tensors are
    streamed one at a time; the output appears only when complete (an interrupted run leaves
    nothing at DST).

    \b
    Examples:
      olmo convert ./step1000-unsharded ./olmo-hf
      olmo convert allenai/OLMo-1B --revision step20000-tokens84B ./olmo-1b-step20000-hf
      olmo convert allenai/OLMo-1B-hf -r step20000-tokens84B ./step20000-unsharded --to native
      olmo convert ./olmo-hf ./olmo-bf16 --to hf --dtype bfloat16 --verify
      olmo convert ./ckpt ./out --shard-size 2GB --force --json
      olmo convert allenai/OLMo-1B -r step20000-tokens84B olmo-1b-20k.gguf --outtype q8_0
    """
    from olmo_cli.checkpoints.convert import convert as run_convert
    from olmo_cli.cli.output import ConsoleReporter, format_size, print_json
    from olmo_cli.sources import locate

    reporter = ConsoleReporter()
    located = locate(src, revision, offline=offline, reporter=reporter)
    result = run_convert(
        located.path,
        dst,
        to=to,
        dtype=dtype,
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
        data = result.to_dict()
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
