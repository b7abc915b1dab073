"""`olmo eval --task`: lm_eval tasks on the loaded model, offline, from a local task definition."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from tiny_models import make_hf_with_tokenizer
from typer.testing import CliRunner

from olmo_cli.cli.app import app

TASK_YAML = """\
task: olmo_tiny_mc
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: multiple_choice
doc_to_text: "{{{{question}}}}"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: "{{{{answer}}}}"
metric_list:
  - metric: acc
"""
NETWORK_YAML = TASK_YAML.replace("dataset_path: json", "dataset_path: someone/a-hub-dataset").replace(
    "olmo_tiny_mc", "olmo_net_mc"
)


@pytest.fixture(scope="module")
def tasks_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tasks")
    data = root / "tiny_mc.jsonl"
    rows = [
        {"question": f"Question {i}: the colour of the sky is", "choices": ["blue", "green", "red"], "answer": i % 3}
        for i in range(8)
    ]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    (root / "tiny_mc.yaml").write_text(TASK_YAML.format(data=data))
    (root / "net_mc.yaml").write_text(NETWORK_YAML.format(data=data))
    return root


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return make_hf_with_tokenizer(tmp_path_factory.mktemp("model") / "tiny", max_position_embeddings=64)


@pytest.fixture(autouse=True)
def offline_datasets(monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def run(*args):
    return CliRunner().invoke(app, ["eval", *args])


def test_task_metrics_join_the_row_and_equal_lm_evals_own_run(tiny, tasks_dir, tmp_path):
    import lm_eval
    from lm_eval.models.huggingface import HFLM

    from olmo_cli.evaluate.tasks import task_manager

    args = (str(tiny), "--task", "olmo_tiny_mc", "--task-limit", "5", "--include-path", str(tasks_dir))
    result = run(*args, "--json", "--results", str(tmp_path / "store"))
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.stdout)
    assert row["task"] == "olmo_tiny_mc" and row["loss"] is None and row["error"] is None
    own = lm_eval.simple_evaluate(
        model=HFLM(pretrained=str(tiny), device="cpu", dtype="float32"),
        tasks=["olmo_tiny_mc"],
        limit=5,
        task_manager=task_manager(str(tasks_dir)),
        bootstrap_iters=0,
    )
    assert row["metrics"] == {"acc": own["results"]["olmo_tiny_mc"]["acc,none"]}
    table = run(*args, "--results", str(tmp_path / "store"))
    assert table.exit_code == 0, table.output
    assert "olmo_tiny_mc acc" in table.stdout and "1 from the results store" in table.stderr


def test_a_task_and_a_data_source_in_one_sweep(tiny, tasks_dir, tmp_path):
    text = tmp_path / "t.txt"
    text.write_text("The library in our town was built in the year the railway arrived.")
    result = run(
        str(tiny),
        "--text",
        str(text),
        "--task",
        "olmo_tiny_mc",
        "--task-limit",
        "2",
        "--include-path",
        str(tasks_dir),
        "--json",
        "--results",
        str(tmp_path / "store"),
    )
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [r.get("task") for r in rows] == [None, "olmo_tiny_mc"]
    assert rows[0]["loss"] > 0 and "task" not in rows[0]


def test_unknown_task_is_one_line_before_any_work(tiny, tasks_dir, tmp_path):
    store = tmp_path / "store"
    result = run(str(tiny), "--task", "olmo_tiny_mcq", "--include-path", str(tasks_dir), "--results", str(store))
    assert result.exit_code == 3, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == ["error: unknown task 'olmo_tiny_mcq'"] and "olmo_tiny_mc" in result.stderr
    assert not store.exists()


def test_a_task_that_needs_the_network_fails_offline_in_one_line(tiny, tasks_dir, tmp_path):
    result = run(
        str(tiny),
        "--task",
        "olmo_net_mc",
        "--include-path",
        str(tasks_dir),
        "--json",
        "--results",
        str(tmp_path / "store"),
    )
    assert result.exit_code == 1, result.output
    (row,) = json.loads(result.stdout)
    assert "needs data from the network" in row["error"] and "\n" not in row["error"]
    assert "Traceback" not in result.stderr
    assert not list((tmp_path / "store").rglob("*.json"))


def test_missing_lm_eval_gets_a_hint_naming_the_extra(tiny, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "lm_eval", None)  # import lm_eval raises ImportError
    result = run(str(tiny), "--task", "hellaswag", "--results", str(tmp_path / "store"))
    assert result.exit_code == 8, result.output
    assert "lm-evaluation-harness" in result.stderr and "olmo-cli[eval]" in result.stderr
