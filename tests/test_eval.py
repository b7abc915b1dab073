"""`olmo eval` scoring: the numbers equal a plain transformers computation; rows, JSON, CSV and table."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import pytest
from tiny_models import make_hf_with_tokenizer
from typer.testing import CliRunner

import olmo_cli
from olmo_cli.cli.app import app
from olmo_cli.evaluate import sample_source, text_source

# The keys of a text row as the README documents them: written out, not taken from the code
# (report.CSV_COLUMNS is the CSV's, a different list), so a dropped or renamed key fails.
ROW_KEYS = {
    "model",
    "revision",
    "step",
    "tokens",
    "commit",
    "data",
    "loss",
    "perplexity",
    "bits_per_byte",
    "n_tokens",
    "n_bytes",
    "seconds",
    "cached",
    "error",
}
DOCS = [
    "The morning market opens before the sun is fully up, and farmers back their vans against the curb. " * 3,
    "A good map is a kind of promise: walk north along the river for two miles and you will find a bridge.",
    "Short one.",
]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return make_hf_with_tokenizer(tmp_path_factory.mktemp("eval") / "tiny", max_position_embeddings=64)


@pytest.fixture
def docs_file(tmp_path) -> Path:
    path = tmp_path / "docs.txt"
    path.write_text("\n\n".join(DOCS) + "\n", encoding="utf-8")
    return path


def run(*args: str):
    return CliRunner().invoke(app, ["eval", *args])


def reference_ids(model_dir: Path) -> list[list[int]]:
    """The documents' ids from the tokenizers library itself (this tokenizer adds no BOS)."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    return [tokenizer.encode(doc.strip(), add_special_tokens=False).ids for doc in DOCS]  # blocks are stripped


def reference_model(model_dir: Path):
    import torch
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()


def plain_chunks(model, ids: list[list[int]], context: int) -> tuple[float, int]:
    """Each chunk on its own: logits of one forward pass, summed cross-entropy of tokens 1..n-1."""
    import torch
    import torch.nn.functional as F

    nll, count = 0.0, 0
    with torch.no_grad():
        for doc in ids:
            for begin in range(0, len(doc), context):
                chunk = torch.tensor([doc[begin : begin + context]])
                if chunk.shape[1] < 2:
                    continue
                logits = model(chunk).logits[0]
                nll += float(F.cross_entropy(logits[:-1], chunk[0, 1:], reduction="sum"))
                count += chunk.shape[1] - 1
    return nll, count


def perplexity_guide(model, ids: list[list[int]], context: int, stride: int) -> tuple[float, int]:
    """transformers' "Perplexity of fixed-length models" loop, per document."""
    import torch

    nll, count = 0.0, 0
    with torch.no_grad():
        for doc in ids:
            encodings = torch.tensor([doc])
            seq_len = encodings.size(1)
            prev_end_loc = 0
            for begin_loc in range(0, seq_len, stride):
                end_loc = min(begin_loc + context, seq_len)
                trg_len = end_loc - prev_end_loc
                input_ids = encodings[:, begin_loc:end_loc]
                target_ids = input_ids.clone()
                target_ids[:, :-trg_len] = -100
                valid = (target_ids[:, 1:] != -100).sum().item()
                if valid:
                    loss = model(input_ids, labels=target_ids).loss
                    nll += float(loss) * valid
                    count += valid
                prev_end_loc = end_loc
                if end_loc == seq_len:
                    break
    return nll, count


@pytest.mark.parametrize("batch_size", [1, 3])
def test_chunk_loss_equals_plain_transformers(tiny, docs_file, tmp_path, batch_size):
    rows = olmo_cli.evaluate(
        str(tiny),
        data=text_source(docs_file, split_blank_lines=True),
        context=16,
        batch_size=batch_size,
        results=tmp_path / "store",
    )
    assert len(rows) == 1 and set(rows[0]) == ROW_KEYS
    row = rows[0]
    nll, count = plain_chunks(reference_model(tiny), reference_ids(tiny), 16)
    assert row["n_tokens"] == count
    assert math.isclose(row["loss"], nll / count, rel_tol=1e-5)
    assert math.isclose(row["perplexity"], math.exp(nll / count), rel_tol=1e-5)
    assert row["n_bytes"] == sum(len(doc.strip().encode()) for doc in DOCS)
    assert math.isclose(row["bits_per_byte"], nll / math.log(2) / row["n_bytes"], rel_tol=1e-5)
    assert row["error"] is None and row["cached"] is False and row["seconds"] > 0


def stride_row_and_guide(tiny: Path, docs_file: Path, store: Path, batch_size: int) -> tuple[dict, float, int]:
    """The row `olmo eval` gives the docs at context 16, stride 5; and the perplexity guide's
    (summed nll, token count) for the same windows."""
    rows = olmo_cli.evaluate(
        str(tiny),
        data=text_source(docs_file, split_blank_lines=True),
        context=16,
        stride=5,
        batch_size=batch_size,
        results=store,
    )
    nll, count = perplexity_guide(reference_model(tiny), reference_ids(tiny), 16, 5)
    return rows[0], nll, count


def test_stride_loss_equals_the_perplexity_guide(tiny, docs_file, tmp_path):
    row, nll, count = stride_row_and_guide(tiny, docs_file, tmp_path / "store", batch_size=4)
    assert row["n_tokens"] == count == sum(len(doc) - 1 for doc in reference_ids(tiny))
    assert math.isclose(row["loss"], nll / count, rel_tol=1e-5)


def test_default_context_is_the_models_maximum(tiny, docs_file, tmp_path):
    """64 positions: the same numbers as --context 64, under another key (the settings differ)."""
    store = tmp_path / "store"
    default = olmo_cli.evaluate(str(tiny), data=docs_file, results=store)[0]
    explicit = olmo_cli.evaluate(str(tiny), data=docs_file, context=64, results=store)[0]
    assert explicit["cached"] is False
    assert math.isclose(default["loss"], explicit["loss"], rel_tol=1e-9)
    from tokenizers import Tokenizer

    whole = (
        Tokenizer.from_file(str(tiny / "tokenizer.json")).encode(docs_file.read_text(), add_special_tokens=False).ids
    )
    nll, count = plain_chunks(reference_model(tiny), [whole], 64)
    assert default["n_tokens"] == count and math.isclose(default["loss"], nll / count, rel_tol=1e-5)
    assert default["n_bytes"] == len(docs_file.read_bytes())


def test_a_bos_adding_tokenizer_keeps_its_bos_and_never_gets_an_eos(tiny):
    from olmo_cli.evaluate.scoring import document_ids

    class Tokenizer:  # adds BOS 7 and EOS 9 by default, like Llama-style post-processors
        def __call__(self, texts, add_special_tokens=True, verbose=True):
            one = isinstance(texts, str)
            encoded = [[ord(c) for c in text] for text in ([texts] if one else texts)]
            if add_special_tokens:
                encoded = [[7, *ids, 9] for ids in encoded]
            return {"input_ids": encoded[0] if one else encoded}

    assert document_ids(Tokenizer(), ["ab", "c"]) == [[7, 97, 98], [7, 99]]


def test_json_is_a_bare_list_with_the_issue_keys_table_and_csv(tiny, docs_file, tmp_path):
    store = str(tmp_path / "store")
    out = tmp_path / "rows.csv"
    result = run(
        str(tiny),
        "--text",
        str(docs_file),
        "--sample",
        "english",
        "--context",
        "32",
        "--json",
        "--csv",
        str(out),
        "--results",
        store,
    )
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert isinstance(rows, list) and len(rows) == 2
    assert all(set(row) == ROW_KEYS for row in rows)
    assert [row["data"]["name"] for row in rows] == ["docs.txt", "sample:english"]
    import hashlib

    assert rows[0]["data"]["sha256"] == hashlib.sha256(docs_file.read_bytes()).hexdigest()
    assert rows[1]["data"]["sha256"] == sample_source().sha256
    written = list(csv.DictReader(io.StringIO(out.read_text())))
    assert [r["data"] for r in written] == ["docs.txt", "sample:english"]
    assert float(written[0]["loss"]) == pytest.approx(rows[0]["loss"])
    table = run(str(tiny), "--text", str(docs_file), "--sample", "english", "--context", "32", "--results", store)
    assert table.exit_code == 0, table.output
    header = table.stdout.splitlines()[0].split()
    assert header[:2] == ["revision", "tokens"]
    assert "docs.txt" in table.stdout and "sample:english" in table.stdout and "bpb" in table.stdout
    assert f"{rows[0]['loss']:.4f}" in table.stdout
    assert "2 from the results store" in table.stderr


def test_default_dtype_is_the_checkpoints_own(tmp_path, docs_file):
    import torch

    bf16 = make_hf_with_tokenizer(tmp_path / "bf16", max_position_embeddings=64)
    config = json.loads((bf16 / "config.json").read_text())
    config["dtype"] = "bfloat16"
    (bf16 / "config.json").write_text(json.dumps(config))
    from olmo_cli.evaluate.store import ResultsStore

    store = ResultsStore(tmp_path / "store")
    row = olmo_cli.evaluate(str(bf16), data=docs_file, results=store.root)[0]
    record = json.loads(next(store.root.rglob("*.json")).read_text())
    assert record["resolved"]["dtype"] == "bfloat16" and record["settings"]["dtype"] == "checkpoint"
    as_fp32 = olmo_cli.evaluate(str(bf16), data=docs_file, dtype="float32", results=store.root)[0]
    assert as_fp32["cached"] is False and as_fp32["loss"] != row["loss"]
    assert torch.bfloat16  # the dtype exists on this torch


def test_eval_help_imports_no_torch(tmp_path):
    from test_startup_imports import HEAVY, modules_after

    modules, _ = modules_after(tmp_path, ["eval", "--help"], {})
    assert not [name for name in modules if name.split(".")[0] in HEAVY]


def test_the_cross_entropy_in_slices_sums_to_the_same(tiny, docs_file, tmp_path, monkeypatch):
    import olmo_cli.evaluate.scoring as scoring

    monkeypatch.setattr(scoring, "_CE_ROWS", 7)  # many slices per batch, one ending mid-row
    row, nll, count = stride_row_and_guide(tiny, docs_file, tmp_path / "store", batch_size=3)
    assert row["n_tokens"] == count and math.isclose(row["loss"], nll / count, rel_tol=1e-5)
