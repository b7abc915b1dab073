"""`olmo quantize SRC DST`: write a smaller checkpoint and report its size and quality."""

from __future__ import annotations

from typing import Annotated

import typer

from olmo_cli.cli.options import (
    DType,
    ForceOpt,
    JsonOpt,
    OfflineOpt,
    OutputArg,
    OutputsDeleteAfterOpt,
    QuantizeMethod,
    RevisionOpt,
    SourceArg,
    command_app,
    executor_options,
    selection_options,
)
from olmo_cli.cli.output import ConsoleReporter, format_size, print_json, print_lines
from olmo_cli.quantize.run import quantize as run_quantize
from olmo_cli.revisions.select import Selection
from olmo_cli.sweeps.choose import ExecutorChoice

app = command_app()

MethodOpt = Annotated[
    QuantizeMethod,
    typer.Option("--method", "-m", help="int4 needs CUDA, nf4 bitsandbytes; fp16 and bf16 are plain casts."),
]
DTypeOpt = Annotated[
    DType,
    typer.Option("--dtype", help="What the output computes in and keeps unquantized tensors in (auto: bfloat16)."),
]
CheckOpt = Annotated[
    bool,
    typer.Option(
        "--check/--no-check",
        help="Compare against the float32 model (max logit difference, top-1 agreement, perplexity).",
    ),
]


@app.command()
@selection_options
@executor_options
def quantize(
    src: SourceArg,
    dst: OutputArg,
    revision: RevisionOpt = None,
    method: MethodOpt = QuantizeMethod.int8,
    dtype: DTypeOpt = DType.auto,
    check: CheckOpt = True,
    force: ForceOpt = False,
    delete_after: OutputsDeleteAfterOpt = False,
    offline: OfflineOpt = False,
    as_json: JsonOpt = False,
    selection: Selection = Selection(),
    executor: ExecutorChoice = ExecutorChoice(),
):
    """Write a smaller checkpoint (int8, int4, nf4, fp16, bf16).

    int8 keeps int8 weights with one scale per output channel (torchao), embeddings and norms in
    --dtype; the output is safetensors that 'olmo generate DST' and transformers' from_pretrained
    (with torchao installed) load directly. Reports the weight bytes before and after and, unless
    --no-check, how far the quantized model's logits are from the float32 model's on a short
    built-in English text. The output is written to a temporary directory next to DST and renamed
    when complete.

    With a selection (--from, --to, --every ...), SRC is a Hub repo and DST a directory that gets
    one output per revision, DST/<revision>/; an output that exists is not written again (unless
    --force), and --executor ray|slurm runs each revision on a cluster worker.

    \b
    Examples:
      olmo quantize allenai/OLMo-1B-hf olmo-1b-int8
      olmo quantize allenai/OLMo-1B-hf olmo-1b-int8 --revision step20000-tokens84B
      olmo quantize ./step1000-unsharded out-bf16 --method bf16
      olmo quantize allenai/OLMo-7B-0724-hf olmo-7b-int4 --method int4     # CUDA only
      olmo quantize olmo-1b-hf olmo-1b-int8 --force --json
      olmo quantize allenai/OLMo-1B-hf --every 100000 int8/ --executor ray
    """
    from olmo_cli.cli.output_sweep import sweep_if_selected

    options = {"method": method.value, "dtype": dtype.value, "check": check}
    if sweep_if_selected(
        "quantize", src, selection, dst, options, executor,
        revision=revision, force=force, offline=offline, delete_after=delete_after, as_json=as_json,
        describe=_sweep_line,
    ):  # fmt: skip
        return
    report = run_quantize(
        src,
        dst,
        method=method.value,
        revision=revision,
        dtype=dtype.value,
        force=force,
        offline=offline,
        check=check,
        reporter=ConsoleReporter(quiet=as_json),
    )
    if as_json:
        print_json(report.as_dict())
        return
    _print_report(report)


def _print_report(report) -> None:
    def number(value: float | None, fmt: str) -> str:
        return "-" if value is None else format(value, fmt)

    rows = [
        ("method", report.method),
        ("source", report.source),
        ("output", report.destination),
        ("dtype", report.dtype),
        ("size before", format_size(report.size_before)),
        ("size after", f"{format_size(report.size_after)}  ({report.ratio:.3f} of before)"),
        ("max logit diff", number(report.max_logit_diff, ".4g")),
        ("top-1 agreement", number(report.top1_agreement, ".1%")),
        ("perplexity before", number(report.ppl_before, ".3f")),
        ("perplexity after", number(report.ppl_after, ".3f")),
        ("eval tokens", "-" if report.eval_tokens is None else str(report.eval_tokens)),
        ("time", f"{report.seconds:.1f} s"),
    ]
    width = max(len(label) for label, _ in rows)
    print_lines(f"{label:<{width}}  {value}" for label, value in rows)


def _sweep_line(summary: dict) -> str:
    ratio = summary["size_after"] / summary["size_before"] if summary.get("size_before") else float("nan")
    diff = summary.get("max_logit_diff")
    quality = "" if diff is None else f", max logit diff {diff:.4g}"
    return f"{summary['source']} -> {summary['destination']} ({summary['method']}): {ratio:.3f} of before{quality}"
