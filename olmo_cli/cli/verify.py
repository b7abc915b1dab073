"""`olmo verify REPO`: cached files against the Hub's hashes and sizes."""

from __future__ import annotations

from olmo_cli.cli.options import AllFilesOpt, JsonOpt, OfflineOpt, RepoArg, RevisionsOpt, command_app, selection_options
from olmo_cli.cli.output import ConsoleReporter, print_json, print_table, say
from olmo_cli.errors import MismatchError, NotFoundError
from olmo_cli.hub import env
from olmo_cli.hub.cache import scan_repo
from olmo_cli.hub.repo_id import check_repo_id
from olmo_cli.hub.resolve import select_revisions
from olmo_cli.hub.verify import verify_revisions
from olmo_cli.revisions.names import parse_revision, training_order
from olmo_cli.revisions.select import Selection

app = command_app()


@app.command()
@selection_options
def verify(
    repo: RepoArg,
    revision: RevisionsOpt = None,
    selection: Selection = Selection(),
    all_files: AllFilesOpt = False,
    offline: OfflineOpt = False,
    as_json: JsonOpt = False,
):
    """Check cached files against the Hub's hashes and sizes.

    For each revision: files a model needs that are missing, files whose size or hash (sha256
    for LFS files, git sha1 for small ones) differs from the Hub's, and extra files the Hub does
    not have. Without --revision or a selection, every cached revision of REPO is checked.
    Offline (or when the Hub cannot answer, with a warning), each file is checked against its
    blob name (which is its hash). Exit code 7 when
    anything is missing, corrupt or extra.

    \b
    Examples:
      olmo verify allenai/OLMo-1B-hf
      olmo verify allenai/OLMo-1B-hf --revision step20000-tokens84B
      olmo verify allenai/OLMo-1B-hf --from 100B --to 1T
      olmo verify allenai/OLMo-7B --from 1T --to 2T --json
      olmo verify allenai/OLMo-1B-hf --offline
    """
    check_repo_id(repo)
    offline = env.offline(offline)
    if revision or selection.active:
        names = [
            r.revision
            for r in select_revisions(
                repo, list(revision or []), selection, offline=offline, reporter=ConsoleReporter()
            )
        ]
    else:
        cached = [r.name for r in scan_repo(repo)]
        if not cached:
            raise NotFoundError(f"nothing of {repo} is in the local cache", hint=f"run 'olmo download {repo}' first")
        names = [r.name for r in training_order(parse_revision(n) for n in cached)]

    reports = verify_revisions(repo, names, offline=offline, all_files=all_files, reporter=ConsoleReporter())

    if as_json:
        print_json({"repo": repo, "ok": all(r.ok for r in reports), "revisions": [r.as_dict() for r in reports]})
    else:
        rows = [
            (
                r.revision,
                (r.commit or "")[:10],
                r.checked,
                len(r.missing),
                len(r.corrupt),
                len(r.extra),
                "ok" if r.ok else (r.note or "MISMATCH"),
            )
            for r in reports
        ]
        print_table(("revision", "commit", "checked", "missing", "corrupt", "extra", "status"), rows)
        for r in reports:
            for path in r.missing:
                say(f"missing  {r.revision}/{path}")
            for item in r.corrupt:
                say(f"corrupt  {r.revision}/{item['path']}: {item['reason']}")
            for path in r.extra:
                say(f"extra    {r.revision}/{path}")
    bad = [r for r in reports if not r.ok]
    if bad and all(r.commit is None for r in bad):
        raise NotFoundError(
            f"{len(bad)} of {len(reports)} revisions of {repo} are not in the local cache",
            hint=f"run 'olmo download {repo} --revision REV' first",
        )
    if bad:
        raise MismatchError(
            f"{len(bad)} of {len(reports)} revisions of {repo} do not match the Hub",
            hint=f"run 'olmo download {repo} --revision REV --repair' to fetch the missing and corrupt files again",
        )
    say(f"{len(reports)} revision(s) of {repo} match the Hub")
