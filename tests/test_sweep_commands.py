"""`--executor` on the other sweep commands (convert, quantize, generate over several revisions),
--delete-after on a shared cache with concurrent workers, and re-attaching to SLURM jobs in flight."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import revision_branches
from helpers import InProcessExecutor
from typer.testing import CliRunner

from olmo_cli.cli.app import app
from olmo_cli.sweeps.outputs import plan_outputs, run_outputs
from olmo_cli.sweeps.ray_executor import RayExecutor
from olmo_cli.sweeps.slurm_executor import SlurmExecutor, SlurmOptions

REPO = "someone/tiny-sweep"
TWO = ["--from", "1000", "--to", "2000"]


@pytest.fixture
def hub(fake_hub, sweep_checkpoints):
    fake_hub.add_repo(REPO, branches=revision_branches(sweep_checkpoints))
    return fake_hub


def olmo(*args: str):
    return CliRunner().invoke(app, [str(a) for a in args])


def tree(root: Path) -> dict[str, bytes]:
    """Every file under root (relative path -> bytes), temporary siblings included if any were left."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def submitit_local(tmp_path: Path) -> SlurmExecutor:
    pytest.importorskip("submitit")
    return SlurmExecutor(SlurmOptions(logs=tmp_path / "logs", time="10"), cluster="local")


# ----- convert and quantize: one output per revision -----


def test_convert_sweep_takes_the_issues_spelling_and_writes_one_output_per_revision(hub, tmp_path):
    out = tmp_path / "out"
    result = olmo("convert", REPO, *TWO, out, "--json")
    assert result.exit_code == 0, result.output
    outcomes = json.loads(result.stdout)
    assert [o["revision"] for o in outcomes] == ["step1000-tokens4B", "step2000-tokens8B"]
    assert {o["status"] for o in outcomes} == {"written"}
    assert sorted(p.name for p in out.iterdir()) == ["step1000-tokens4B", "step2000-tokens8B"]
    assert (out / "step1000-tokens4B" / "model.safetensors").is_file()
    again = olmo("convert", REPO, *TWO, out, "--json")
    assert [o["status"] for o in json.loads(again.stdout)] == ["exists", "exists"]


def test_convert_to_takes_a_format_and_a_revision_once_each(hub, tmp_path):
    result = olmo("convert", REPO, "--from", "1000", "--to", "native", "--to", "2000", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["step1000-tokens4B", "step2000-tokens8B"]
    assert (tmp_path / "out" / "step2000-tokens8B" / "model.pt").is_file()  # native, not hf
    for args, message in [
        (["--to", "hf", "--to", "gguf"], "--to names two formats: hf, gguf"),
        (["--to", "2000", "--to", "3000"], "--to names two revisions: 2000, 3000"),
        (["--to", "parquet"], "--to 'parquet' is not one of 'hf', 'native', 'olmo-core', 'gguf', nor a revision"),
    ]:
        bad = olmo("convert", REPO, *args, tmp_path / "bad")
        assert bad.exit_code == 2 and message in bad.output, bad.output
    assert not (tmp_path / "bad").exists()


def test_convert_sweep_on_ray_and_submitit_writes_the_bytes_local_writes(ray_session, hub, tmp_path):
    assert olmo("convert", REPO, *TWO, tmp_path / "local").exit_code == 0
    result = olmo("convert", REPO, *TWO, tmp_path / "ray", "--executor", "ray")
    assert result.exit_code == 0, result.output
    units = plan_outputs("convert", REPO, [], _selection(), tmp_path / "submitit", {"to": None})
    outcomes = run_outputs(units, submitit_local(tmp_path), outdir=tmp_path / "submitit")
    assert [o.status for o in outcomes] == ["written", "written"]
    local = tree(tmp_path / "local")
    assert local and tree(tmp_path / "ray") == local
    assert {k: v for k, v in tree(tmp_path / "submitit").items() if "olmo-slurm" not in k} == local
    rerun = InProcessExecutor()  # every output exists: nothing is scheduled
    outcomes = run_outputs(units, rerun, outdir=tmp_path / "submitit")
    assert rerun.given == [] and [o.status for o in outcomes] == ["exists", "exists"]


def test_gguf_sweep_names_each_file_by_its_revision(ray_session, hub, tmp_path):
    local = olmo("convert", REPO, "--to", "gguf", "--to", "2000", "--from", "2000", tmp_path / "local")
    assert local.exit_code == 0, local.output
    on_ray = olmo(
        "convert", REPO, "--to", "gguf", "--to", "2000", "--from", "2000", tmp_path / "ray", "--executor", "ray"
    )
    assert on_ray.exit_code == 0, on_ray.output
    assert list(tree(tmp_path / "local")) == ["step2000-tokens8B.gguf"]
    assert tree(tmp_path / "ray") == tree(tmp_path / "local")


def test_quantize_sweep_on_ray_and_submitit_writes_the_bytes_local_writes(ray_session, hub, tmp_path):
    args = ["--method", "bf16", "--no-check"]
    assert olmo("quantize", REPO, *TWO, tmp_path / "local", *args).exit_code == 0
    result = olmo("quantize", REPO, *TWO, tmp_path / "ray", *args, "--executor", "ray", "--json")
    assert result.exit_code == 0, result.output
    assert [o["status"] for o in json.loads(result.stdout)] == ["written", "written"]
    options = {"method": "bf16", "dtype": "auto", "check": False}
    units = plan_outputs("quantize", REPO, [], _selection(), tmp_path / "submitit", options)
    run_outputs(units, submitit_local(tmp_path), outdir=tmp_path / "submitit")
    local = tree(tmp_path / "local")
    assert sorted({k.split("/")[0] for k in local}) == ["step1000-tokens4B", "step2000-tokens8B"]
    assert tree(tmp_path / "ray") == local
    assert {k: v for k, v in tree(tmp_path / "submitit").items() if "olmo-slurm" not in k} == local
    again = olmo("quantize", REPO, *TWO, tmp_path / "ray", *args, "--executor", "ray", "--json")
    assert [o["status"] for o in json.loads(again.stdout)] == ["exists", "exists"]


def _selection():
    from olmo_cli.revisions.select import Selection

    return Selection(start="1000", end="2000")


# ----- generate over several revisions -----

GENERATE = ["generate", REPO, "-r", "step1000", "-r", "step3000", "-r", "step2000", "-p", "Hello", "--greedy"]


def answers(stdout: str) -> list[tuple]:
    return [(r["revision"], r["commit"], r["completions"]) for r in json.loads(stdout)]


def test_generate_sweep_on_ray_and_submitit_gives_the_local_answers_in_training_order(ray_session, hub, tmp_path):
    from olmo_cli.cli.generate import _as_json
    from olmo_cli.generate import SamplingParams
    from olmo_cli.hub.resolve import select_revisions
    from olmo_cli.sweeps.generations import plan_generations, run_generations

    local = olmo(*GENERATE, "-n", "4", "--json")
    assert local.exit_code == 0, local.output
    on_ray = olmo(*GENERATE, "-n", "4", "--json", "--executor", "ray")
    assert on_ray.exit_code == 0, on_ray.output
    expected = answers(local.stdout)
    assert [a[0] for a in expected] == ["step1000-tokens4B", "step2000-tokens8B", "step3000-tokens12B"]
    assert answers(on_ray.stdout) == expected
    chosen = select_revisions(REPO, ["step1000", "step3000", "step2000"])
    params = SamplingParams(max_new_tokens=4, greedy=True).validate()
    options = {"dtype": "auto", "device": "auto", "quantization": None, "offline": False}
    units = plan_generations(chosen, ["Hello"], params, options)
    assert [u.commit for u in units] == [hub.commit(REPO, r.revision) for r in chosen]
    got = run_generations(units, submitit_local(tmp_path), describe=_as_json)
    assert [(g["json"]["revision"], g["json"]["commit"], g["json"]["completions"]) for g in got] == expected
    table = olmo(*GENERATE, "-n", "4", "--executor", "ray")
    assert table.exit_code == 0
    lines = [line for line in table.stdout.splitlines() if line.startswith("step")]
    assert [line.split()[0] for line in lines] == [a[0] for a in expected]  # side by side, in training order


def test_one_revision_is_no_sweep_for_a_cluster_executor(hub):
    result = olmo("generate", REPO, "-r", "step1000", "-p", "Hi", "--executor", "ray")
    assert result.exit_code == 2 and "--executor ray|slurm runs sweeps" in result.output


# ----- --delete-after on a shared cache -----

TEXT = "A good map is a kind of promise.\n\nLearning to ride a bicycle is mostly a matter of trusting speed."
FOUR = ["step1000", "step2000", "step3000", "step4000"]


def timeless(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "seconds"} for row in rows]


def test_delete_after_with_four_concurrent_ray_workers_leaves_complete_rows_and_an_empty_cache(
    ray_session, hub, sweep_checkpoints, tmp_path, monkeypatch
):
    import olmo_cli
    from olmo_cli.evaluate import text_source
    from olmo_cli.hub.cache import RepoCache

    data = tmp_path / "text.txt"
    data.write_text(TEXT, encoding="utf-8")
    local = olmo_cli.evaluate(REPO, FOUR, text_source(data), results=tmp_path / "local", context=32)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "shared-cache"))  # nothing of the sweep cached before
    hub.throttle("tokenizer.json", 2_000_000)  # the workers overlap on the shared files
    hub.clear_log()
    executor = RayExecutor(cpus_per_task=0.5)  # four workers at once on two CPUs
    rows = olmo_cli.evaluate(
        REPO, FOUR, text_source(data), results=tmp_path / "ray", context=32, executor=executor, delete_after=True
    )
    assert not any(r["error"] for r in rows)  # no worker lost a file it needed
    assert timeless(rows) == timeless(local)
    cache = RepoCache.of(REPO)
    assert not cache.dir.exists() or not [p for p in cache.dir.rglob("*") if p.is_file() or p.is_symlink()]
    tokenizer = (sweep_checkpoints / "step1000-tokens4B" / "tokenizer.json").read_bytes()
    assert hub.bytes_sent("/tokenizer.json") == len(tokenizer)  # shared: kept until the sweep ended


HOLD = """import sys
from olmo_cli.sweeps.cache_release import using
with using(sys.argv[1], sys.argv[2]):
    print("held", flush=True)
    sys.stdin.read()
"""


def test_a_worker_removes_only_its_own_files_and_none_while_another_uses_its_commit(hub):
    import hashlib
    import subprocess
    import sys

    from olmo_cli.hub.cache import RepoCache
    from olmo_cli.hub.download import fetch_revision
    from olmo_cli.sweeps.cache_release import finish, release, shared_blobs, unit_blobs

    first, second = "step1000-tokens4B", "step2000-tokens8B"
    for name in (first, second):
        fetch_revision(REPO, name)
    c1, c2 = hub.commit(REPO, first), hub.commit(REPO, second)
    keep = shared_blobs([unit_blobs(REPO, c1), unit_blobs(REPO, c2)])
    own = set(unit_blobs(REPO, c1)) - keep
    assert keep and own  # the tokenizer and config are shared, the weights are not
    cache = RepoCache.of(REPO)
    holder = subprocess.Popen([sys.executable, "-c", HOLD, REPO, c1], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == b"held"
        assert release(REPO, first, c1, keep) == 0  # another worker is using step1000: nothing goes
        assert cache.snapshot(c1).is_dir() and all(cache.blob(e).is_file() for e in own)
    finally:
        holder.communicate(b"", timeout=30)
    freed = release(REPO, first, c1, keep)
    assert freed == sum(f.size for f in _files(REPO, c1) if f.etag in own)
    assert not cache.snapshot(c1).exists() and not any(cache.blob(e).exists() for e in own)
    assert all(cache.blob(e).is_file() for e in keep)  # shared files stay for the other units
    for path, blob in cache.snapshot_files(c2).items():  # the other revision lost nothing
        assert hashlib.sha256(blob.read_bytes()).hexdigest() == hub.sha256(REPO, second, path)
    finish(REPO, [c2], keep)
    assert not cache.dir.exists()


def _files(repo: str, commit: str):
    from olmo_cli.hub.download import plan_revision

    return plan_revision(repo, commit).files


# ----- re-attaching to SLURM jobs in flight -----

SACCT = """#!/bin/sh
echo called >> "{calls}"
printf 'JobID|State|NodeList\\n4242_0|RUNNING|node1\\n4242_1|FAILED|node2\\n'
"""


class SpySlurm(SlurmExecutor):
    """submitit's LocalExecutor for new jobs; records what each submission held."""

    sent: list

    def _executor(self):
        executor = super()._executor()
        submit = executor.map_array

        def spy(fn, items):
            self.sent = list(items)
            return submit(fn, items)

        executor.map_array = spy
        return executor


def test_a_rerun_waits_on_the_slurm_jobs_in_flight_and_submits_only_the_rest(hub, tmp_path, monkeypatch):
    """The real re-attaching path: submitit's SlurmJob re-created from the folder and id asks `sacct`
    (a stand-in on the PATH: the scheduler's state is all that is faked) and reads the job's result
    pickle, which this test writes as the compute node would, with what eval_worker returns."""
    import os
    import threading
    import time

    import olmo_cli
    from olmo_cli.evaluate import text_source
    from olmo_cli.evaluate.remote import STATE_FILE, eval_worker, job_name, run_remote
    from olmo_cli.evaluate.run import missing
    from olmo_cli.evaluate.store import ResultsStore
    from olmo_cli.evaluate.sweep import plan
    from olmo_cli.evaluate.units import Settings
    from olmo_cli.sweeps.base import worker_environment
    from olmo_cli.sweeps.slurm_executor import JobJournal

    submitit = pytest.importorskip("submitit")
    data = tmp_path / "text.txt"
    data.write_text(TEXT, encoding="utf-8")
    store = ResultsStore(tmp_path / "store")
    planned = plan([REPO], FOUR[:3], None, Settings(context=32), (text_source(data),), (), store=store)
    names = [job_name(frozenset(u.key(m) for m in missing(u, store))) for u in planned]
    logs = tmp_path / "logs"
    folder = str(logs.absolute() / "%j")
    # What the first driver recorded before it died: step1000 is still running, step2000 failed.
    JobJournal(store.root / STATE_FILE).update(
        {names[0]: {"job_id": "4242_0", "folder": folder, "cluster": "slurm"},
         names[1]: {"job_id": "4242_1", "folder": folder, "cluster": "slurm"}}
    )  # fmt: skip
    calls = tmp_path / "sacct-calls"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sacct").write_text(SACCT.format(calls=calls))
    (bin_dir / "sacct").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")

    def compute_node() -> None:  # job 4242_0 ends once the new driver is watching it
        deadline = time.monotonic() + 60
        while not calls.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        result = eval_worker(
            planned[0], results=str(store.root.absolute()), offline=False, environment=worker_environment()
        )
        job = submitit.SlurmJob(folder=folder, job_id="4242_0")
        job.paths.result_pickle.parent.mkdir(parents=True, exist_ok=True)
        submitit.core.utils.cloudpickle_dump(("success", result), job.paths.result_pickle)

    node = threading.Thread(target=compute_node)
    node.start()
    executor = SpySlurm(SlurmOptions(logs=logs, time="10"), cluster="local")
    try:
        rows = run_remote(planned, store, executor)
    finally:
        node.join(timeout=120)
    assert executor.attached == 1  # step1000: waited on, not submitted again
    assert [u.revision for u in executor.sent] == ["step2000-tokens8B", "step3000-tokens12B"]
    local = olmo_cli.evaluate(REPO, FOUR[:3], text_source(data), results=tmp_path / "local", context=32)
    assert timeless(rows) == timeless(local)
    assert not (store.root / STATE_FILE).exists()  # nothing in flight any more


def test_tab_after_convert_to_offers_formats_then_revisions():
    def complete(words: str) -> list[str]:
        env = {"_OLMO_COMPLETE": "complete_bash", "COMP_WORDS": words, "COMP_CWORD": str(len(words.split(" ")) - 1)}
        result = CliRunner().invoke(app, [], env=env, prog_name="olmo")
        assert result.exit_code == 0
        return result.stdout.split()

    assert complete("olmo convert allenai/OLMo-1B out --to ") == ["hf", "native", "olmo-core", "gguf"]
    assert complete("olmo convert allenai/OLMo-1B out --to g") == ["gguf"]
    revisions = complete("olmo convert allenai/OLMo-1B out --to step2")
    assert revisions and all(r.startswith("step2") for r in revisions)


def test_a_convert_sweep_dry_run_writes_one_array_of_the_missing_outputs(hub, tmp_path):
    pytest.importorskip("submitit")
    out = tmp_path / "out"
    assert olmo("convert", REPO, "--from", "1000", "--to", "1000", out).exit_code == 0  # one output exists
    args = ["convert", REPO, "--from", "1000", "--to", "3000", out, "--executor", "slurm", "--slurm-dry-run"]
    result = olmo(*args, "--slurm-logs", tmp_path / "logs", "--slurm-mem", "16G")
    assert result.exit_code == 0, result.output
    script = Path(result.stdout.strip().splitlines()[-1]).read_text()
    assert any(line.startswith("#SBATCH --array=0-1%") for line in script.splitlines())  # step2000, step3000
    assert "#SBATCH --mem=16GB" in script.splitlines()
    assert sorted(p.name for p in out.iterdir()) == ["step1000-tokens4B"]  # nothing ran


def test_a_generate_sweep_dry_run_prints_the_script_and_submits_nothing(hub, tmp_path):
    pytest.importorskip("submitit")
    args = [*GENERATE, "--executor", "slurm", "--slurm-dry-run", "--slurm-logs", tmp_path / "logs"]
    result = olmo(*args, "--slurm-gpus-per-task", "1")
    assert result.exit_code == 0, result.output
    script = Path(result.stdout.strip().splitlines()[-1]).read_text().splitlines()
    assert any(line.startswith("#SBATCH --array=0-2%") for line in script)  # the three revisions
    assert "#SBATCH --gpus-per-task=1" in script


# ----- --delete-after on output sweeps, and revisions cached before a sweep -----


@pytest.mark.parametrize("executor", ["local", "ray"])
def test_a_convert_sweep_with_delete_after_frees_what_it_downloaded_and_keeps_what_was_cached(
    request, executor, hub, tmp_path, monkeypatch
):
    from olmo_cli.hub.cache import RepoCache

    if executor == "ray":
        request.getfixturevalue("ray_session")
    assert olmo("convert", REPO, *TWO, tmp_path / "kept").exit_code == 0  # the outputs, source kept
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "fresh-cache"))
    cached = olmo("download", REPO, "-r", "step1000-tokens4B")  # a revision the user had before
    assert cached.exit_code == 0, cached.output
    cache = RepoCache.of(REPO)
    before = {p.name: p.read_bytes() for p in cache.snapshot_files(cache.commits()[0]).values()}
    result = olmo("convert", REPO, *TWO, tmp_path / "out", "--delete-after", "--executor", executor)
    assert result.exit_code == 0, result.output
    assert tree(tmp_path / "out") == tree(tmp_path / "kept")
    (left,) = cache.commits()  # step2000's snapshot is gone, step1000's stays whole
    assert {p.name: p.read_bytes() for p in cache.snapshot_files(left).values()} == before
    blobs = {p.name for p in (cache.dir / "blobs").iterdir()}
    assert blobs == {p.resolve().name for p in cache.snapshot_files(left).values()}  # no orphan of step2000


def test_an_eval_sweep_on_a_cluster_executor_keeps_revisions_cached_before_it(hub, tmp_path, monkeypatch):
    import olmo_cli
    from olmo_cli.evaluate import text_source
    from olmo_cli.hub.cache import RepoCache

    data = tmp_path / "text.txt"
    data.write_text(TEXT, encoding="utf-8")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "fresh-cache"))
    assert olmo("download", REPO, "-r", "step1000-tokens4B").exit_code == 0
    cache = RepoCache.of(REPO)
    (had,) = cache.commits()
    rows = olmo_cli.evaluate(
        REPO, ["step1000", "step2000"], text_source(data), results=tmp_path / "r", context=32,
        executor=InProcessExecutor(), delete_after=True,
    )  # fmt: skip
    assert not any(r["error"] for r in rows) and len(rows) == 2
    assert cache.commits() == [had]
    assert all(p.is_file() for p in cache.snapshot_files(had).values())


def test_delete_after_needs_a_sweep(hub, tmp_path):
    for command in (["convert", REPO, tmp_path / "one"], ["quantize", REPO, tmp_path / "one"]):
        result = olmo(*command, "--delete-after")
        assert result.exit_code == 2 and "--delete-after runs with sweeps" in result.output, result.output
    assert not (tmp_path / "one").exists()
