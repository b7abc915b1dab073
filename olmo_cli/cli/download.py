"""`olmo download REPO`: one revision or a sweep of many into the HF cache (or a plain directory)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from olmo_cli.cli.options import (
    AllFilesOpt,
    JsonOpt,
    OfflineOpt,
    RefreshOpt,
    RepoArg,
    RevisionsOpt,
    command_app,
    selection_options,
)
from olmo_cli.cli.output import ConsoleReporter, format_size, print_json, print_table, say
from olmo_cli.errors import OlmoError
from olmo_cli.hub import download as core
from olmo_cli.hub import env
from olmo_cli.hub.resolve import select_revisions
from olmo_cli.revisions.select import Selection

app = command_app()

IncludeOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--include", metavar="GLOB", help="Fetch only files matching this glob (repeatable).", show_default=False
    ),
]
ExcludeOpt = Annotated[
    list[str] | None,
    typer.Option("--exclude", metavar="GLOB", help="Skip files matching this glob (repeatable).", show_default=False),
]
LocalDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--local-dir",
        metavar="DIR",
        help="Also export plain files to DIR (DIR/<revision>/ for several revisions).",
        show_default=False,
    ),
]
DryRunOpt = Annotated[
    bool,
    typer.Option("--dry-run", help="Show the files, sizes, what is cached and the total to download; fetch nothing."),
]
MaxWorkersOpt = Annotated[int, typer.Option("--max-workers", metavar="N", min=1, help="Files downloaded in parallel.")]
RepairOpt = Annotated[
    bool,
    typer.Option(
        "--repair", help="Verify cached files first and fetch again exactly those that fail (edited, corrupt)."
    ),
]


@app.command()
@selection_options
def download(
    repo: RepoArg,
    revision: RevisionsOpt = None,
    selection: Selection = Selection(),
    include: IncludeOpt = None,
    exclude: ExcludeOpt = None,
    all_files: AllFilesOpt = False,
    local_dir: LocalDirOpt = None,
    dry_run: DryRunOpt = False,
    max_workers: MaxWorkersOpt = 8,
    refresh: RefreshOpt = False,
    repair: RepairOpt = False,
    offline: OfflineOpt = False,
    as_json: JsonOpt = False,
):
    """Download one revision or a sweep of many into the HF cache.

    By default the files a model needs: config, generation config, tokenizer files and one copy
    of the weights (safetensors when a revision has both safetensors and .bin). Files identical
    across revisions are stored and transferred once. An interrupted download continues where it
    stopped when the command is run again. Retries 5xx, 429 and dropped connections. A revision
    that fails does not stop the sweep; the exit code is then 1 (for a single revision, the code
    of its own error). Without --revision or a selection,
    `main` is fetched. Offline (--offline, HF_HUB_OFFLINE=1) nothing is fetched: cached revisions
    are reported as already present (and exported with --local-dir), the others fail; when the Hub
    cannot be reached, cached revisions are used the same way, with a warning.

    \b
    Examples:
      olmo download allenai/OLMo-1B-hf
      olmo download allenai/OLMo-7B --revision step452000-tokens2000B
      olmo download allenai/OLMo-1B-hf --from 100B --to 1T --every 50000
      olmo download allenai/OLMo-1B-hf --log-spaced 8 --dry-run
      olmo download allenai/OLMo-1B-hf -r main --local-dir ./olmo-1b
      olmo download allenai/OLMo-1B-hf -r main --include '*.json' --json
    """
    offline = env.offline(offline)
    if local_dir is not None:
        core.check_local_dir(local_dir)
    reporter = ConsoleReporter()
    queries = list(revision or [])
    if not queries and not selection.active:
        queries = ["main"]
    names = [
        r.revision
        for r in select_revisions(repo, queries, selection, offline=offline, refresh=refresh, reporter=reporter)
    ]
    say(f"{repo}: {len(names)} revision{'s' if len(names) != 1 else ''}")

    if dry_run:
        plan = core.dry_run(
            repo, names, include=include, exclude=exclude, all_files=all_files, offline=offline, reporter=reporter
        )
        if as_json:
            print_json({**plan.as_dict(), "offline": offline})
        else:
            rows = []
            for p in plan.plans:
                for f in p.files:
                    rows.append((p.revision, f.path, format_size(f.size), "yes" if f.path in p.cached else ""))
            rows += [(r, f"error: {e}", "", "") for r, e in plan.errors.items()]
            print_table(("revision", "file", "size", "cached"), rows)
        if offline:
            say("offline: only what the local cache holds is shown; the Hub was not asked")
        say(
            f"to download: {format_size(plan.to_download)} of {format_size(sum(p.size for p in plan.plans))} "
            f"in {len(plan.plans)} revision(s); files shared between revisions are fetched once"
        )
        if plan.errors:
            raise OlmoError(f"{len(plan.errors)} of {len(names)} revisions could not be listed")
        return

    result = core.download_revisions(
        repo,
        names,
        include=include,
        exclude=exclude,
        all_files=all_files,
        local_dir=local_dir,
        max_workers=max_workers,
        offline=offline,
        repair=repair,
        reporter=reporter,
    )
    summary = result.as_dict()
    if as_json:
        print_json(summary)
    else:
        outcomes = [
            (
                o.revision,
                (o.commit or "")[:10],
                o.files,
                format_size(o.bytes),
                "failed: " + o.error if o.error else ("downloaded" if o.downloaded else "already present"),
                str(o.local_dir or o.snapshot or ""),
            )
            for o in result.outcomes
        ]
        print_table(("revision", "commit", "files", "size", "status", "path"), outcomes)
    say(
        f"downloaded {summary['downloaded']}, already present {summary['already_present']}, "
        f"failed {summary['failed']}; {format_size(result.transferred)} transferred"
    )
    if len(result.outcomes) == 1 and result.failed and result.failed[0].exception is not None:
        raise result.failed[0].exception  # one revision: its own error, hint and exit code say more
    if result.failed:
        hint = (
            "run it without --offline (and without HF_HUB_OFFLINE) to fetch them"
            if offline
            else "run the same command again: finished files are kept and partial ones continue"
        )
        raise OlmoError(f"{len(result.failed)} of {len(names)} revisions failed", hint=hint)
