"""Sweeps on the cluster executors, without a cluster: Ray started locally, submitit's LocalExecutor
(which runs the pickled unit function an sbatch array would), the --slurm-dry-run script, and several
processes downloading into one HF cache."""

from __future__ import annotations

import functools
import hashlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import revision_branches
from helpers import InProcessExecutor
from typer.testing import CliRunner

import olmo_cli
from olmo_cli.cli.app import app
from olmo_cli.evaluate import text_source
from olmo_cli.evaluate.remote import eval_worker
from olmo_cli.evaluate.store import ResultsStore
from olmo_cli.evaluate.sweep import plan
from olmo_cli.evaluate.units import Settings
from olmo_cli.sweeps.ray_executor import RayExecutor
from olmo_cli.sweeps.slurm_executor import SlurmExecutor, SlurmOptions

REPO = "someone/tiny-sweep"
TEXT = "A good map is a kind of promise.\n\nLearning to ride a bicycle is mostly a matter of trusting speed."


@pytest.fixture
def checkpoints(sweep_checkpoints) -> Path:
    return sweep_checkpoints


@pytest.fixture
def hub(fake_hub, checkpoints):
    fake_hub.add_repo(REPO, branches=revision_branches(checkpoints))
    return fake_hub


@pytest.fixture
def data(tmp_path) -> Path:
    path = tmp_path / "text.txt"
    path.write_text(TEXT, encoding="utf-8")
    return path


@pytest.fixture
def ray_local(ray_session):
    # Test-module functions reach the workers by value (the workers cannot import tests/).
    ray_session.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    return ray_session


def sweep(data: Path, store: Path, revisions, **options) -> list[dict]:
    return olmo_cli.evaluate(REPO, list(revisions), text_source(data), results=store, context=32, **options)


def timeless(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "seconds"} for row in rows]


def stored_keys(store: Path) -> list[str]:
    return sorted(p.name for p in store.rglob("*") if p.is_file())


def test_ray_sweep_gives_exactly_the_local_executors_rows(ray_local, hub, data, tmp_path):
    revisions = ["step1000", "step2000", "step3000", "step4000"]
    local = sweep(data, tmp_path / "local", revisions)
    on_ray = sweep(data, tmp_path / "ray", revisions, executor=RayExecutor(cpus_per_task=1))
    assert len(on_ray) == 4 and not any(r["error"] for r in on_ray)
    assert timeless(on_ray) == timeless(local)
    assert stored_keys(tmp_path / "ray") == stored_keys(tmp_path / "local")  # same keys, no stray files
    again = sweep(data, tmp_path / "ray", revisions, executor=RayExecutor())  # all stored: nothing submitted
    assert all(r["cached"] for r in again)


def _dies_once(unit, *, markers: str, **worker_options):
    """eval_worker, whose process is SIGKILLed the first time each unit starts scoring."""
    import olmo_cli.evaluate.remote as remote

    marker = Path(markers) / unit.commit

    def phase(name: str) -> None:
        if name.startswith("score") and not marker.exists():
            marker.write_text(str(os.getpid()))
            os.kill(os.getpid(), signal.SIGKILL)

    real_run_unit = remote.run_unit
    remote.run_unit = functools.partial(real_run_unit, phase=phase)  # type: ignore[assignment]
    try:
        return eval_worker(unit, **worker_options)
    finally:
        remote.run_unit = real_run_unit  # type: ignore[assignment]


def test_a_worker_killed_mid_unit_is_retried_and_no_row_is_missing_or_doubled(ray_local, hub, data, tmp_path):
    from olmo_cli.evaluate.remote import run_remote

    store = ResultsStore(tmp_path / "store")
    settings = Settings(context=32)
    planned = plan([REPO], ["step1000", "step2000"], None, settings, (text_source(data),), (), store=store)
    markers = tmp_path / "markers"
    markers.mkdir()
    worker = functools.partial(_dies_once, markers=str(markers))
    rows = run_remote(planned, store, RayExecutor(cpus_per_task=1, max_retries=2), worker=worker)
    assert len(list(markers.iterdir())) == 2  # each unit's first worker really died mid-unit
    assert [r["revision"] for r in rows] == ["step1000-tokens4B", "step2000-tokens8B"]
    assert not any(r["error"] for r in rows)
    assert len(stored_keys(store.root)) == 2  # one row per unit, no temporary leftovers
    local = sweep(data, tmp_path / "local", ["step1000", "step2000"])
    assert timeless(rows) == timeless(local)


def test_a_unit_whose_worker_always_dies_is_a_failed_row_after_the_retries(ray_local, hub, data, tmp_path):
    from olmo_cli.evaluate.remote import run_remote

    store = ResultsStore(tmp_path / "store")
    planned = plan([REPO], ["step1000"], None, Settings(context=32), (text_source(data),), (), store=store)
    tries = tmp_path / "tries"
    worker = functools.partial(_always_dies, tries=str(tries))
    rows = run_remote(planned, store, RayExecutor(cpus_per_task=1, max_retries=1), worker=worker)
    assert tries.read_text().count("try") == 2  # the first run and one retry
    assert rows[0]["error"] and "Ray task failed" in rows[0]["error"]
    assert stored_keys(store.root) == []


def _always_dies(unit, *, tries: str, **worker_options):
    with open(tries, "a") as handle:
        handle.write("try\n")
    os.kill(os.getpid(), signal.SIGKILL)


def test_submitit_local_executor_runs_the_pickled_unit_function_like_local(hub, data, tmp_path):
    pytest.importorskip("submitit")
    revisions = ["step1000", "step2000"]
    local = sweep(data, tmp_path / "local", revisions)
    executor = SlurmExecutor(SlurmOptions(logs=tmp_path / "logs", time="10"), cluster="local")
    on_submitit = sweep(data, tmp_path / "submitit", revisions, executor=executor)
    assert timeless(on_submitit) == timeless(local)
    assert stored_keys(tmp_path / "submitit") == stored_keys(tmp_path / "local")
    assert list((tmp_path / "logs").rglob("*_result.pkl"))  # the rows came back through submitit's pickles


def test_slurm_dry_run_writes_an_sbatch_script_with_the_requested_resources(hub, data, tmp_path):
    pytest.importorskip("submitit")
    logs = tmp_path / "logs"
    args = [
        "eval", REPO, "-r", "step1000", "-r", "step2000", "-r", "step3000", "--text", str(data),
        "--results", str(tmp_path / "store"), "--executor", "slurm", "--slurm-dry-run",
        "--slurm-partition", "gpu", "--slurm-gpus-per-task", "1", "--slurm-cpus-per-task", "8",
        "--slurm-mem", "64G", "--slurm-time", "2:00:00", "--slurm-array-parallelism", "2",
        "--slurm-account", "lab", "--slurm-qos", "high", "--slurm-setup", "module load cuda",
        "--slurm-setup", "source ~/venv/bin/activate", "--slurm-logs", str(logs),
    ]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    script = Path(result.stdout.strip().splitlines()[-1])
    assert script.parent == logs and script.suffix == ".sbatch"
    text = script.read_text()
    for line in [
        "#SBATCH --partition=gpu",
        "#SBATCH --gpus-per-task=1",
        "#SBATCH --cpus-per-task=8",
        "#SBATCH --mem=64GB",
        "#SBATCH --time=120",
        "#SBATCH --array=0-2%2",  # one array of the 3 missing units, 2 at a time
        "#SBATCH --account=lab",
        "#SBATCH --qos=high",
        "module load cuda",
        "source ~/venv/bin/activate",
    ]:
        assert line in text.splitlines(), line
    assert "-m submitit.core._submit" in text and str(logs.absolute()) in text
    assert not (tmp_path / "store").exists() or stored_keys(tmp_path / "store") == []  # nothing ran


def test_a_missing_cluster_extra_is_a_one_line_hint(hub, data, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    result = CliRunner().invoke(
        app, ["eval", REPO, "-r", "step1000", "--text", str(data), "--results", str(tmp_path), "--executor", "ray"]
    )
    assert result.exit_code == 8
    assert "olmo-cli[cluster]" in result.output and "Traceback" not in result.output


FETCH = "import sys; from olmo_cli.hub.download import fetch_revision; fetch_revision(sys.argv[1], sys.argv[2])"


def test_concurrent_workers_on_one_hf_cache_transfer_each_shared_file_once(hub, checkpoints):
    shared = ["tokenizer.json", "config.json", "tokenizer_config.json"]
    hub.throttle("tokenizer.json", 2_000_000)  # slow enough that the three processes overlap on it
    hub.clear_log()
    revisions = ["step1000-tokens4B", "step2000-tokens8B", "step3000-tokens12B"]
    processes = [subprocess.Popen([sys.executable, "-c", FETCH, REPO, r], stderr=subprocess.PIPE) for r in revisions]
    for process in processes:
        _, err = process.communicate(timeout=120)
        assert process.returncode == 0, err.decode()[-2000:]
    from olmo_cli.hub.cache import RepoCache

    cache = RepoCache.of(REPO)
    for name in shared:
        size = len((checkpoints / revisions[0] / name).read_bytes())
        assert hub.bytes_sent(f"/{name}") == size, name  # one transfer, though three processes need it
    for revision in revisions:
        snapshot = cache.snapshot(hub.commit(REPO, revision))
        for path in (checkpoints / revision).iterdir():
            digest = hashlib.sha256((snapshot / path.name).read_bytes()).hexdigest()
            assert digest == hub.sha256(REPO, revision, path.name), (revision, path.name)


def _second_hangs(unit, **worker_options):
    if unit.revision.startswith("step2000"):
        import time

        time.sleep(300)  # cancelled long before
    return eval_worker(unit, **worker_options)


class _InterruptAfterFirst:
    """A reporter whose progress bar raises KeyboardInterrupt (Ctrl-C) when the first unit is done."""

    def info(self, message: str) -> None: ...

    def warn(self, message: str) -> None: ...

    def progress(self, description: str, total=None, unit: str = ""):
        import contextlib

        class Bar:
            def __init__(self):
                self.started = False

            def describe(self, text: str) -> None: ...

            def advance(self, amount: float = 1) -> None:
                if self.started:
                    raise KeyboardInterrupt
                self.started = True  # the first advance counts the stored units

        return contextlib.nullcontext(Bar())


def test_ctrl_c_cancels_the_outstanding_ray_tasks_and_keeps_the_finished_rows(ray_local, hub, data, tmp_path):
    import time

    from olmo_cli.evaluate.remote import run_remote

    store = ResultsStore(tmp_path / "store")
    planned = plan([REPO], ["step1000", "step2000"], None, Settings(context=32), (text_source(data),), (), store=store)
    with pytest.raises(KeyboardInterrupt):
        run_remote(planned, store, RayExecutor(cpus_per_task=1), reporter=_InterruptAfterFirst(), worker=_second_hangs)  # type: ignore[arg-type]
    assert len(stored_keys(store.root)) == 1  # step1000's row
    deadline = time.monotonic() + 20
    while ray_local.available_resources().get("CPU", 0) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert ray_local.available_resources().get("CPU", 0) == 2  # the hanging task was cancelled


def test_two_names_of_one_commit_are_one_task(hub, data, tmp_path):
    import dataclasses

    from olmo_cli.evaluate.remote import run_remote

    store = ResultsStore(tmp_path / "store")
    (unit,) = plan([REPO], ["step1000"], None, Settings(context=32), (text_source(data),), (), store=store)
    twin = dataclasses.replace(unit, revision="main")  # main pointing at step1000's commit
    executor = InProcessExecutor()
    rows = run_remote([unit, twin], store, executor)
    assert executor.given == [unit]
    assert [r["revision"] for r in rows] == ["step1000-tokens4B", "main"]
    assert rows[1]["loss"] == rows[0]["loss"] and rows[1]["cached"] and not rows[0]["cached"]


@pytest.mark.parametrize("executor", ["ray", "slurm"])
def test_a_results_store_workers_cannot_write_is_one_line_naming_it(hub, data, tmp_path, executor):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    args = ["eval", REPO, "-r", "step1000", "--text", str(data), "--results", str(blocker / "store")]
    result = CliRunner().invoke(app, [*args, "--executor", executor, "--slurm-logs", str(tmp_path / "logs")])
    assert result.exit_code == 5, result.output
    assert f"results store {blocker / 'store'} is not writable" in result.output
    assert "Traceback" not in result.output
