"""`olmo eval` sweeps from the loopback Hub: the results store, resuming, failures, prefetch, --delete-after."""

from __future__ import annotations

import json
import math
import threading
import time
from pathlib import Path

import pytest
from conftest import SWEEP_STEPS as STEPS
from conftest import revision_branches
from helpers import watch_loaded_models
from typer.testing import CliRunner

import olmo_cli
from olmo_cli.cli.app import app
from olmo_cli.evaluate import text_source
from olmo_cli.evaluate.store import ResultsStore

REPO = "someone/tiny-olmo"
TEXT = (
    "A good map is a kind of promise. It says that if you walk north along the river for two miles, "
    "you will find a bridge.\n\nLearning to ride a bicycle is mostly a matter of trusting speed."
)


def _files(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in directory.iterdir() if p.is_file()}


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


def sweep(data: Path, store: Path, revisions=("step1000", "step2000", "step3000"), **options):
    return olmo_cli.evaluate(REPO, list(revisions), text_source(data), results=store, context=32, **options)


def eval_args(data: Path, store: Path, *revisions: str, models=(REPO,)) -> list[str]:
    """`olmo eval MODELS... -r REVISION... --text DATA --context 32 --results STORE`, as argv."""
    picks = [arg for revision in revisions for arg in ("-r", revision)]
    return ["eval", *models, *picks, "--text", str(data), "--context", "32", "--results", str(store)]


def interrupt_the_second_score(monkeypatch):
    """The sweep's scoring raises KeyboardInterrupt (Ctrl-C) on its second call; the real score."""
    import olmo_cli.evaluate.run as run_module

    real = run_module.score
    calls = []

    def interrupted_at_the_second(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(run_module, "score", interrupted_at_the_second)
    return real


def test_a_sweep_in_training_order_equals_each_revision_scored_locally(hub, checkpoints, data, tmp_path):
    rows = sweep(data, tmp_path / "store", revisions=("step3000", "step1000", "main"))
    assert [r["revision"] for r in rows] == ["step1000-tokens4B", "step3000-tokens12B", "main"]
    assert [r["step"] for r in rows] == [1000, 3000, None]
    assert [r["tokens"] for r in rows] == [4_000_000_000, 12_000_000_000, None]
    assert rows[0]["commit"] == hub.commit(REPO, "step1000-tokens4B")
    for row in rows[:2]:
        local = olmo_cli.evaluate(
            str(checkpoints / row["revision"]), data=text_source(data), context=32, results=tmp_path / "local"
        )[0]
        assert math.isclose(row["loss"], local["loss"], rel_tol=1e-6)
    assert rows[0]["loss"] != rows[1]["loss"]


def test_a_rerun_with_every_row_stored_downloads_and_loads_nothing(hub, data, tmp_path, monkeypatch):
    store = tmp_path / "store"
    first = sweep(data, store)
    import olmo_cli.loading

    monkeypatch.setattr(olmo_cli.loading, "load_model", lambda *a, **k: pytest.fail("loaded weights"))
    monkeypatch.setattr(olmo_cli.loading, "locate_hf_checkpoint", lambda *a, **k: pytest.fail("fetched a revision"))
    hub.clear_log()
    again = sweep(data, store)
    assert all(r["cached"] for r in again)
    assert [r["loss"] for r in again] == [r["loss"] for r in first]
    assert not [r.path for r in hub.requests if "/resolve/" in r.path or "/revision/" in r.path]
    hub.stop()  # offline: the commits come from the HF cache's refs
    offline = sweep(data, store, offline=True)
    assert [r["commit"] for r in offline] == [r["commit"] for r in first] and all(r["cached"] for r in offline)


def test_new_context_or_new_data_means_new_rows_never_stale_ones(hub, data, tmp_path):
    store = tmp_path / "store"
    first = sweep(data, store, revisions=("step1000",))[0]
    other_context = olmo_cli.evaluate(REPO, ["step1000"], text_source(data), results=store, context=16)[0]
    assert other_context["cached"] is False and other_context["loss"] != first["loss"]
    data.write_text(TEXT + " And one more sentence at the end.", encoding="utf-8")
    other_data = sweep(data, store, revisions=("step1000",))[0]
    assert other_data["cached"] is False and other_data["data"]["sha256"] != first["data"]["sha256"]
    assert len(list(store.rglob("*.json"))) == 3


def test_a_killed_sweep_resumes_where_it_stopped(hub, data, tmp_path, monkeypatch):
    import olmo_cli.evaluate.run as run_module

    store = tmp_path / "store"
    real = interrupt_the_second_score(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        sweep(data, store)
    assert len(list(store.rglob("*.json"))) == 1
    assert not [p for p in store.rglob("*") if p.name.endswith(".tmp")]
    monkeypatch.setattr(run_module, "score", real)
    rows = sweep(data, store)
    assert [r["cached"] for r in rows] == [True, False, False]


def test_ctrl_c_while_a_row_is_written_leaves_no_half_row(tmp_path, monkeypatch):
    store = ResultsStore(tmp_path / "store")
    store.put("m", "a" * 64, {"row": {"loss": 1.0}})

    def dump_half(value, handle, **kwargs):
        handle.write('{"row": {"lo')
        raise KeyboardInterrupt

    monkeypatch.setattr(json, "dump", dump_half)
    with pytest.raises(KeyboardInterrupt):
        store.put("m", "b" * 64, {"row": {"loss": 2.0}})
    assert [p.name for p in (tmp_path / "store" / "m").iterdir()] == ["a" * 64 + ".json"]


def test_a_failed_revision_is_recorded_the_sweep_goes_on_and_exits_1(fake_hub, checkpoints, data, tmp_path):
    branches = {name: _files(checkpoints / name) for name in STEPS}
    weights = branches["step2000-tokens8B"]["model.safetensors"]
    branches["step2000-tokens8B"]["model.safetensors"] = weights[: len(weights) // 2]  # truncated
    fake_hub.add_repo(REPO, branches=branches)
    store = tmp_path / "store"
    args = [*eval_args(data, store, "step1000", "step2000", "step3000"), "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1, result.output
    rows = json.loads(result.stdout)
    assert [r["error"] is None for r in rows] == [True, False, True]
    assert "step2000" in result.stderr and "1 of 3 revisions failed" in result.stderr
    assert rows[1]["loss"] is None and rows[1]["commit"] == fake_hub.commit(REPO, "step2000-tokens8B")
    assert len(list(store.rglob("*.json"))) == 2  # failures are not stored: a rerun tries them again
    again = json.loads(CliRunner().invoke(app, args).stdout)
    assert [r["cached"] for r in again] == [True, False, True] and again[1]["error"]


def test_the_next_revision_downloads_while_this_one_is_scored(hub, data, tmp_path, monkeypatch):
    import olmo_cli.evaluate.run as run_module
    import olmo_cli.hub.download as download

    events = []
    real_fetch, real_score = download.fetch_revision, run_module.score

    def fetch(repo, revision, **kwargs):
        events.append(("fetch start", revision, threading.current_thread().name, time.perf_counter()))
        return real_fetch(repo, revision, **kwargs)

    def slow_score(*args, **kwargs):
        events.append(("score start", None, None, time.perf_counter()))
        time.sleep(0.5)  # long enough for the next download to begin meanwhile
        result = real_score(*args, **kwargs)
        events.append(("score end", None, None, time.perf_counter()))
        return result

    monkeypatch.setattr(download, "fetch_revision", fetch)
    monkeypatch.setattr(run_module, "score", slow_score)
    sweep(data, tmp_path / "store")
    prefetched = [e for e in events if e[0] == "fetch start" and e[2].startswith("prefetch")]
    assert [e[1] for e in prefetched] == ["step2000-tokens8B", "step3000-tokens12B"]
    score_ends = [e[3] for e in events if e[0] == "score end"]
    assert prefetched[0][3] < score_ends[0] and prefetched[1][3] < score_ends[1]


def test_delete_after_keeps_at_most_two_revisions_and_what_was_cached_before(hub, data, tmp_path, monkeypatch):
    import olmo_cli.evaluate.run as run_module
    from olmo_cli.hub.cache import RepoCache
    from olmo_cli.hub.download import fetch_revision

    fetch_revision(REPO, "step2000-tokens8B")  # cached before the sweep: stays
    cache = RepoCache.of(REPO)
    real = run_module.score
    on_disk = []

    def counting(*args, **kwargs):
        on_disk.append(len(cache.commits()))
        return real(*args, **kwargs)

    monkeypatch.setattr(run_module, "score", counting)
    revisions = ("step1000", "step2000", "step3000", "step4000")
    rows = sweep(data, tmp_path / "store", revisions=revisions, delete_after=True)
    assert all(r["error"] is None for r in rows)
    assert max(on_disk) <= 3  # two of the sweep's revisions, plus the one cached before
    assert set(cache.refs()) == {"step2000-tokens8B"}
    assert set(cache.commits()) == {hub.commit(REPO, "step2000-tokens8B")}
    blobs = {p.name for p in cache.blobs()}
    linked = {Path(p).name for p in cache.snapshot_files(hub.commit(REPO, "step2000-tokens8B")).values()}
    assert linked <= blobs  # the shared tokenizer and config survived the removals


def test_one_model_in_memory_at_a_time(hub, data, tmp_path, monkeypatch):
    models = watch_loaded_models(monkeypatch)
    sweep(data, tmp_path / "store")
    assert len(models) == 3


def test_several_models_give_one_series_each_and_no_model_needs_a_known_revision(hub, checkpoints, data, tmp_path):
    local = str(checkpoints / "step1000-tokens4B")
    store = tmp_path / "store"
    result = CliRunner().invoke(app, [*eval_args(data, store, "step1000", "step2000", models=(REPO, local)), "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [(r["model"], r["revision"]) for r in rows] == [
        (REPO, "step1000-tokens4B"),
        (REPO, "step2000-tokens8B"),
        (str(Path(local).resolve()), None),
    ]
    assert math.isclose(rows[0]["loss"], rows[2]["loss"], rel_tol=1e-6)  # the same weights
    assert rows[2]["commit"].startswith("local:")
    table = CliRunner().invoke(app, eval_args(data, store, "step1000", models=(REPO, local)))
    assert table.exit_code == 0 and table.stdout.splitlines()[0].split()[0] == "model"


def test_the_cli_plots_a_sweep_to_png_and_to_the_terminal(hub, data, tmp_path):
    from PIL import Image

    out = tmp_path / "curve.png"
    args = eval_args(data, tmp_path / "store", "step1000", "step2000", "step3000")
    result = CliRunner().invoke(app, [*args, "--plot", str(out), "--plot-metric", "bpb"])
    assert result.exit_code == 0, result.output
    assert "wrote" in result.stderr and "(3 points)" in result.stderr
    with Image.open(out) as image:
        assert image.size == (960, 600)
    terminal = CliRunner().invoke(app, [*args, "--plot", "-"])
    assert terminal.exit_code == 0 and "training tokens" in terminal.stderr and "bits per byte" not in terminal.stderr


def test_a_unit_is_plain_picklable_data_and_runs_from_its_pickle(hub, data, tmp_path):
    """What a cluster executor would ship: the unit and the store, pickled; the same rows come back."""
    import pickle

    from olmo_cli.evaluate.run import run_unit
    from olmo_cli.evaluate.sweep import plan
    from olmo_cli.evaluate.units import Settings

    store = ResultsStore(tmp_path / "store")
    (unit,) = plan([REPO], ["step2000"], None, Settings(context=32), (text_source(data),), (), store=store)
    copy = pickle.loads(pickle.dumps(unit))
    assert copy == unit and copy.key(copy.data[0]) == unit.key(unit.data[0])
    assert unit.commit == hub.commit(REPO, "step2000-tokens8B")
    (computed,) = run_unit(pickle.loads(pickle.dumps(unit)), pickle.loads(pickle.dumps(store)))
    (stored,) = run_unit(copy, store)
    assert stored["cached"] and stored["loss"] == computed["loss"] and not computed["cached"]
    expected = sweep(data, store.root, revisions=("step2000",))[0]
    assert expected["cached"] and expected["loss"] == computed["loss"]


def test_progress_shows_revisions_done_and_the_phase(hub, data, tmp_path):
    from contextlib import contextmanager

    from olmo_cli.reporting import Reporter

    class Recording(Reporter):
        def __init__(self):
            self.descriptions, self.done, self.totals = [], 0, []

        @contextmanager
        def progress(self, description, total=None, unit=""):
            recording = self
            self.totals.append(total)

            class Bar:
                def advance(self, amount=1):
                    recording.done += amount

                def describe(self, text):
                    recording.descriptions.append(text)

            yield Bar()

    reporter = Recording()
    sweep(data, tmp_path / "store", revisions=("step1000", "step2000"), reporter=reporter)
    assert reporter.totals == [2] and reporter.done == 2  # one bar: the revisions; the loads draw none
    first = f"[1/2] {REPO}@step1000-tokens4B"
    for phase in ("download", "load", "score text.txt"):
        assert f"{first}: {phase}" in reporter.descriptions
    assert f"[2/2] {REPO}@step2000-tokens8B: score text.txt" in reporter.descriptions


def test_offline_after_delete_after_the_store_knows_each_revisions_commit(
    fake_hub, checkpoints, data, tmp_path, monkeypatch
):
    """--delete-after leaves no refs in the HF cache; offline, the commits come from the stored rows."""
    import olmo_cli.loading
    from olmo_cli.hub.cache import RepoCache

    repo = "allenai/OLMo-1B"  # in the bundled index, so its revision names resolve offline
    names = ["step20000-tokens84B", "step30000-tokens126B"]
    fake_hub.add_repo(
        repo,
        branches={name: _files(checkpoints / f"step{i + 1}000-tokens{4 * (i + 1)}B") for i, name in enumerate(names)},
    )
    store = tmp_path / "store"
    first = olmo_cli.evaluate(repo, names, text_source(data), results=store, context=32, delete_after=True)
    assert all(r["error"] is None for r in first) and not RepoCache.of(repo).refs()
    monkeypatch.setattr(olmo_cli.loading, "load_model", lambda *a, **k: pytest.fail("loaded weights"))
    again = olmo_cli.evaluate(repo, names, text_source(data), results=store, context=32, offline=True)
    assert [r["commit"] for r in again] == [fake_hub.commit(repo, n) for n in names]
    assert all(r["cached"] for r in again) and [r["loss"] for r in again] == [r["loss"] for r in first]


def test_ctrl_c_exits_130_and_keeps_the_finished_rows(hub, data, tmp_path, monkeypatch):
    interrupt_the_second_score(monkeypatch)
    store = tmp_path / "store"
    result = CliRunner().invoke(app, eval_args(data, store, "step1000", "step2000"))
    assert result.exit_code == 130 and "interrupted" in result.stderr
    (row,) = [json.loads(p.read_text()) for p in store.rglob("*.json")]
    assert row["row"]["revision"] == "step1000-tokens4B" and row["row"]["loss"] > 0


def test_no_model_the_revision_names_the_repo(fake_hub, checkpoints, data, tmp_path):
    fake_hub.add_repo("allenai/OLMo-7B", branches={"step452000-tokens2000B": _files(checkpoints / "step1000-tokens4B")})
    args = eval_args(data, tmp_path / "store", "step452000-tokens2000B", models=())
    result = CliRunner().invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.stdout)
    assert (row["model"], row["step"], row["tokens"]) == ("allenai/OLMo-7B", 452000, 2_000_000_000_000)


def test_delete_after_also_drops_the_converted_copy_of_a_legacy_checkpoint(fake_hub, data, tmp_path):
    from tiny_models import make_hf_olmo

    from olmo_cli.hub.cache import RepoCache
    from olmo_cli.loading.converted import converted_cache_dir

    branches = {f"step{i}000-tokens{4 * i}B": _files(make_hf_olmo(tmp_path / f"legacy{i}", seed=i)) for i in (1, 2)}
    fake_hub.add_repo("someone/legacy-olmo", branches=branches)
    rows = olmo_cli.evaluate(
        "someone/legacy-olmo",
        list(branches),
        text_source(data),
        results=tmp_path / "store",
        context=32,
        delete_after=True,
    )
    assert all(r["error"] is None and r["loss"] > 0 for r in rows)
    assert not RepoCache.of("someone/legacy-olmo").commits()
    assert not [p for p in converted_cache_dir().iterdir() if "legacy-olmo" in p.name]
