"""`olmo cache ls|rm`: the local HF cache by revision name, in training order."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from olmo_cli.cli.completion import complete_repo
from olmo_cli.cli.options import JsonOpt, RepoArg, RevisionsOpt, command_app, selection_options
from olmo_cli.cli.output import format_size, print_json, print_table, say
from olmo_cli.errors import UsageError
from olmo_cli.hub.cache import RepoCache, cached_repos, scan_repo, usable_cache_root
from olmo_cli.hub.cleanup import apply_removal, plan_removal, removal_targets
from olmo_cli.hub.repo_id import check_repo_id
from olmo_cli.revisions.names import format_tokens, parse_revision
from olmo_cli.revisions.select import Selection

app = command_app(no_args_is_help=True, help="List or remove cached revisions by name or range.")

OnlyRepoArg = Annotated[
    str | None,
    typer.Argument(metavar="REPO", help="Only this repo.", autocompletion=complete_repo, show_default=False),
]
KeepEveryOpt = Annotated[
    int | None,
    typer.Option(
        "--keep-every",
        metavar="N",
        min=1,
        help="Remove checkpoints whose step is not a multiple of N (within the selection, if any).",
        show_default=False,
    ),
]
DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="Show what would be removed and freed; remove nothing.")]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask before deleting.")]


@app.command("ls")
def ls(
    repo: OnlyRepoArg = None,
    as_json: JsonOpt = False,
):
    """List cached repos and revisions with step, tokens and size, in training order.

    \b
    Examples:
      olmo cache ls
      olmo cache ls allenai/OLMo-1B-hf
      olmo cache ls allenai/OLMo-1B-hf --json
    """
    root = usable_cache_root()
    repos = [check_repo_id(repo)] if repo else cached_repos()
    if not repos:
        say(f"nothing is cached in {root}" + ("" if root.exists() else " (it does not exist yet)"))
    rows, records = [], []
    for name in repos:
        revisions = sorted(scan_repo(name), key=lambda r: parse_revision(r.name).sort_key)
        on_disk = sum(RepoCache.of(name).blobs().values())
        for r in revisions:
            parsed = parse_revision(r.name)
            records.append(
                {
                    "repo": name,
                    "revision": r.name,
                    "commit": r.commit,
                    "step": parsed.step,
                    "tokens": parsed.tokens,
                    "stage": parsed.stage,
                    "ingredient": parsed.ingredient,
                    "files": r.files,
                    "size": r.size,
                }
            )
            rows.append(
                (name, r.name, parsed.step, format_tokens(parsed.tokens), r.files, format_size(r.size), r.commit[:10])
            )
        if revisions and not as_json:
            say(f"{name}: {len(revisions)} revision(s), {format_size(on_disk)} on disk")
    if repo and not records:
        say(f"nothing of {repo} is cached in {root}")
    if as_json:
        print_json(records)
    elif rows:
        print_table(("repo", "revision", "step", "tokens", "files", "size", "commit"), rows)


@app.command("rm")
@selection_options
def rm(
    repo: RepoArg,
    revision: RevisionsOpt = None,
    selection: Selection = Selection(),
    keep_every: KeepEveryOpt = None,
    dry_run: DryRunOpt = False,
    yes: YesOpt = False,
    as_json: JsonOpt = False,
):
    """Remove cached revisions by name or range; free blobs no other revision uses.

    Files shared with revisions that stay (a tokenizer, a config) are kept. Shows what it will free
    and asks first, unless --yes (required when not at a terminal).

    \b
    Examples:
      olmo cache rm allenai/OLMo-1B-hf --revision step20000-tokens84B
      olmo cache rm allenai/OLMo-1B-hf --keep-every 100000 --dry-run
      olmo cache rm allenai/OLMo-1B-hf --to 100B --yes
    """
    check_repo_id(repo)
    if not revision and not selection.active and keep_every is None:
        raise UsageError(
            "say which revisions to remove",
            hint="use --revision NAME, a range (--from/--to, --every...) or --keep-every N",
        )
    names = removal_targets(repo, list(revision or []), selection, keep_every)
    plan = plan_removal(repo, names)
    if as_json:
        print_json({**plan.as_dict(), "dry_run": dry_run})
    else:
        print_table(
            ("revision", "commit", "files", "size"),
            [(r.name, r.commit[:10], r.files, format_size(r.size)) for r in plan.revisions],
        )
    say(
        f"{len(plan.revisions)} revision(s) of {repo}; frees {format_size(plan.bytes_freed)} "
        f"({len(plan.blobs)} files no other revision uses)"
    )
    if dry_run:
        return
    if not yes:
        if not sys.stdin.isatty():
            raise UsageError("not deleting without confirmation", hint="pass --yes to delete when not at a terminal")
        if not typer.confirm("Delete them?", default=False, err=True):
            raise typer.Exit(1)
    apply_removal(plan)
    say(f"removed {len(plan.revisions)} revision(s), freed {format_size(plan.bytes_freed)}")
