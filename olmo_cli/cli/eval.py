"""`olmo eval MODEL...`: loss, perplexity, bits per byte and task scores, revision by revision."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from olmo_cli.cli.options import (
    JsonOpt,
    OfflineOpt,
    RevisionsOpt,
    command_app,
    executor_options,
    selection_options,
)
from olmo_cli.revisions.select import Selection
from olmo_cli.sweeps.choose import ExecutorChoice

app = command_app()

# eval's own options. --device and --refresh say what they mean here (a scoring device; the
# revision list), so they are not options.py's DeviceOpt and RefreshOpt.
ModelsArg = Annotated[
    list[str] | None,
    typer.Argument(
        metavar="[MODEL]...",
        show_default=False,
        help="Hub repos or local checkpoint directories (one series each). "
        "May be left out when --revision names a revision of one known repo.",
    ),
]
TextOpt = Annotated[
    list[Path] | None,
    typer.Option("--text", metavar="FILE", help="A text file: one document (repeatable).", show_default=False),
]
SplitBlankLinesOpt = Annotated[
    bool, typer.Option("--split-blank-lines", help="--text files: one document per blank-line-separated block.")
]
JsonlOpt = Annotated[
    list[Path] | None,
    typer.Option(
        "--jsonl", metavar="FILE", help="A JSONL file: one document per line (repeatable).", show_default=False
    ),
]
FieldOpt = Annotated[str, typer.Option("--field", metavar="NAME", help="The JSONL field that holds the text.")]
SampleOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--sample", metavar="NAME", help="A text bundled with olmo: english (repeatable).", show_default=False
    ),
]
ContextOpt = Annotated[
    int | None,
    typer.Option(
        "--context",
        metavar="L",
        help="Tokens per window (default: the model's maximum, at most 2048).",
        show_default=False,
    ),
]
StrideOpt = Annotated[
    int | None,
    typer.Option(
        "--stride",
        metavar="S",
        help="Sliding windows: each re-reads the context and scores only its last S tokens.",
        show_default=False,
    ),
]
BatchSizeOpt = Annotated[int, typer.Option("--batch-size", metavar="B", help="Windows per forward pass.")]
MaxDocumentsOpt = Annotated[
    int | None,
    typer.Option("--max-documents", metavar="N", help="Use the first N documents of each source.", show_default=False),
]
TaskOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--task",
        metavar="NAME",
        help="An lm-evaluation-harness task (repeatable; the [eval] extra).",
        show_default=False,
    ),
]
TaskLimitOpt = Annotated[
    int | None,
    typer.Option("--task-limit", metavar="N", help="Examples per task (lm_eval's limit).", show_default=False),
]
IncludePathOpt = Annotated[
    Path | None,
    typer.Option("--include-path", metavar="DIR", help="A directory of lm_eval task YAML files.", show_default=False),
]
DTypeOpt = Annotated[
    str,
    typer.Option(
        "--dtype",
        metavar="checkpoint|float32|bfloat16|float16",
        help="checkpoint (the dtype it was saved in), float32, bfloat16, float16.",
    ),
]
ScoringDeviceOpt = Annotated[
    str,
    typer.Option(
        "--device", metavar="auto|cpu|cuda[:N]|mps", help="auto (cuda, then mps, then cpu), cpu, cuda, cuda:N, mps."
    ),
]
RevisionListRefreshOpt = Annotated[
    bool, typer.Option("--refresh", help="Ask the Hub for the revision list even if a recent answer is cached.")
]
CsvOpt = Annotated[
    Path | None,
    typer.Option("--csv", metavar="FILE", help="Also write the rows to this CSV file.", show_default=False),
]
PlotOpt = Annotated[
    str | None,
    typer.Option(
        "--plot",
        metavar="FILE.png|FILE.svg|-",
        help="Draw the curve: FILE.png, FILE.svg, or - for the terminal (stderr). "
        "Default at a terminal with more than two revisions: -.",
        show_default=False,
    ),
]
PlotMetricOpt = Annotated[
    str, typer.Option("--plot-metric", metavar="loss|bpb", help="What the plot shows: loss or bpb.")
]
ResultsOpt = Annotated[
    Path | None,
    typer.Option(
        "--results", metavar="DIR", help="The results store (default: $OLMO_CACHE_DIR/eval).", show_default=False
    ),
]
ScoredDeleteAfterOpt = Annotated[
    bool,
    typer.Option(
        "--delete-after", help="Remove each revision from the HF cache once scored (unless it was cached before)."
    ),
]


@app.command(name="eval")
@selection_options
@executor_options
def eval_(
    models: ModelsArg = None,
    revision: RevisionsOpt = None,
    selection: Selection = Selection(),
    text: TextOpt = None,
    split_blank_lines: SplitBlankLinesOpt = False,
    jsonl: JsonlOpt = None,
    field: FieldOpt = "text",
    sample: SampleOpt = None,
    context: ContextOpt = None,
    stride: StrideOpt = None,
    batch_size: BatchSizeOpt = 1,
    max_documents: MaxDocumentsOpt = None,
    task: TaskOpt = None,
    task_limit: TaskLimitOpt = None,
    include_path: IncludePathOpt = None,
    dtype: DTypeOpt = "checkpoint",
    device: ScoringDeviceOpt = "auto",
    offline: OfflineOpt = False,
    refresh: RevisionListRefreshOpt = False,
    as_json: JsonOpt = False,
    csv_file: CsvOpt = None,
    plot: PlotOpt = None,
    plot_metric: PlotMetricOpt = "loss",
    results: ResultsOpt = None,
    delete_after: ScoredDeleteAfterOpt = False,
    executor: ExecutorChoice = ExecutorChoice(),
):
    """Measure how a model changes across training, revision by revision.

    Each document is tokenized with the model's own tokenizer and cut into chunks of --context
    tokens (never across documents); every token after a chunk's first is predicted from the ones
    before it. --stride gives sliding windows instead. Reported per revision and data source:
    loss (nats per token), perplexity, bits per byte, tokens and bytes scored. Rows are kept in a
    results store keyed by the commit, the data's sha256 and the settings: a rerun computes only
    what is missing, and a killed sweep resumes. One model is in memory at a time, and the next
    revision downloads while the current one is scored. A failed revision is reported and the
    sweep goes on; the exit code is then 1. --executor ray|slurm runs each missing unit on a
    cluster worker instead (the [cluster] extra), into the same results store.

    \b
    Examples:
      olmo eval allenai/OLMo-1B-hf --log-spaced 8 --sample english
      olmo eval allenai/OLMo-7B allenai/OLMo-7B-Twin-2T -r 500B -r 1T -r 2T --text book.txt
      olmo eval ./my-checkpoint --jsonl val.jsonl --field body --context 1024 --stride 512
      olmo eval allenai/OLMo-1B-hf --every 100000 --sample english --plot curve.png --delete-after
      olmo eval allenai/OLMo-1B-hf -r main --task hellaswag --task-limit 200 --json
      olmo eval allenai/OLMo-7B --every 50000 --sample english --executor ray --gpus-per-task 1
      olmo eval allenai/OLMo-7B --every 50000 --sample english --executor slurm --slurm-dry-run --slurm-logs logs/
    """
    import sys

    from olmo_cli.cli.output import ConsoleReporter, print_json, print_table, say
    from olmo_cli.errors import OlmoError
    from olmo_cli.evaluate import evaluate, jsonl_source, sample_source, text_source
    from olmo_cli.evaluate.plot import TERMINAL, check_plot_target
    from olmo_cli.evaluate.report import check_output_file, csv_text, table, write_atomic

    if plot is not None:
        check_plot_target(plot, plot_metric)
    elif plot_metric not in ("loss", "bpb"):
        check_plot_target(TERMINAL, plot_metric)
    if csv_file is not None:
        check_output_file(csv_file, "--csv")
    sources = [text_source(p, split_blank_lines=split_blank_lines, max_documents=max_documents) for p in text or []]
    sources += [jsonl_source(p, field=field, max_documents=max_documents) for p in jsonl or []]
    sources += [sample_source(name, max_documents=max_documents) for name in sample or []]
    runner = executor.build(device)
    reporter = ConsoleReporter()
    rows = evaluate(
        models or None,
        revision or None,
        sources,
        selection=selection,
        context=context,
        stride=stride,
        batch_size=batch_size,
        tasks=task or (),
        task_limit=task_limit,
        include_path=include_path,
        dtype=dtype,
        device=device,
        offline=offline,
        refresh=refresh,
        results=results,
        delete_after=delete_after,
        executor=runner,
        reporter=reporter,
    )
    script = getattr(runner, "script", None)
    if script is not None:  # --slurm-dry-run: the path is the output
        print(script)
        return
    if as_json:
        print_json(rows)
    else:
        columns, lines = table(rows)
        print_table(columns, lines)
    if csv_file is not None:
        write_atomic(csv_file, csv_text(rows).encode("utf-8"))
    revisions = {(r["model"], r["revision"], r["commit"]) for r in rows}
    if plot is None and len(revisions) > 2 and sys.stderr.isatty() and not as_json:
        plot = TERMINAL
    if plot is not None:
        _draw(rows, plot, plot_metric)
    failed = {(r["model"], r["revision"], r["commit"]) for r in rows if r.get("error")}
    cached = sum(1 for r in rows if r.get("cached"))
    say(f"{len(revisions)} revision(s), {len(rows)} row(s): {cached} from the results store, {len(failed)} failed")
    if failed:
        raise OlmoError(
            f"{len(failed)} of {len(revisions)} revisions failed", hint="run the same command again to retry them"
        )


def _draw(rows: list[dict], plot: str, metric: str) -> None:
    import sys

    from olmo_cli.cli.output import say
    from olmo_cli.evaluate.plot import TERMINAL, draw_file, draw_terminal, series

    lines, _, left_out = series(rows, metric)
    if left_out:
        say(f"not plotted (no step or token count): {', '.join(left_out)}")
    if not lines:
        say("nothing to plot")
        return
    if plot == TERMINAL:
        sys.stderr.write(draw_terminal(rows, metric) + "\n")
    else:
        points = draw_file(rows, plot, metric)
        say(f"wrote {plot} ({points} points)")
