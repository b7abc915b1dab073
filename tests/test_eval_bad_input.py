"""`olmo eval` on bad input: one line, a documented exit code, and the results store untouched."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tiny_models import make_hf_with_tokenizer
from typer.testing import CliRunner

from olmo_cli.cli.app import app

GOOD = "The library in our town was built in the year the railway arrived, with tall windows."


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return make_hf_with_tokenizer(tmp_path_factory.mktemp("bad") / "tiny", max_position_embeddings=64)


def write(tmp_path: Path, name: str, content: bytes | str) -> Path:
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


CASES = {
    "empty text": (["--text", "{empty.txt}"], 5, "is empty"),
    "blank text": (["--text", "{blank.txt}"], 5, "is empty"),
    "binary text": (["--text", "{binary.bin}"], 5, "binary"),
    "not utf-8": (["--text", "{latin1.txt}"], 5, "not UTF-8"),
    "missing file": (["--text", "{nowhere.txt}"], 3, "no such data file"),
    "bad JSONL line": (["--jsonl", "{bad.jsonl}"], 5, "line 2 is not JSON"),
    "missing field": (["--jsonl", "{nofield.jsonl}"], 5, "line 1 has no field 'text'"),
    "other field": (["--jsonl", "{good.jsonl}", "--field", "body"], 5, "has no field 'body'"),
    "field not a string": (["--jsonl", "{number.jsonl}"], 5, "is not a string"),
    "context 1": (["--text", "{good.txt}", "--context", "1"], 2, "--context 1 is too short"),
    "stride over context": (["--text", "{good.txt}", "--context", "8", "--stride", "9"], 2, "larger than the context"),
    "stride over default": (["--text", "{good.txt}", "--stride", "100"], 2, "larger than the context (64)"),
    "context over model": (["--text", "{good.txt}", "--context", "128"], 2, "longer than the model's maximum"),
    "nothing to measure": ([], 2, "nothing to measure"),
    "unknown sample": (["--sample", "klingon"], 3, "no bundled sample 'klingon'"),
    "unknown dtype": (["--text", "{good.txt}", "--dtype", "int3"], 2, "unknown dtype"),
    "bmp plot": (["--text", "{good.txt}", "--plot", "x.bmp"], 2, "unsupported format"),
    "plot dir missing": (["--text", "{good.txt}", "--plot", "{nodir}/x.png"], 3, "does not exist"),
    "csv dir missing": (["--text", "{good.txt}", "--csv", "{nodir}/x.csv"], 3, "does not exist"),
    "bad batch size": (["--text", "{good.txt}", "--batch-size", "0"], 2, "--batch-size"),
    "include path without task": (
        ["--text", "{good.txt}", "--include-path", "{tmp}"],
        2,
        "--include-path needs --task",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_line_and_leaves_the_store_untouched(tiny, tmp_path, case):
    files = {
        "empty.txt": b"",
        "blank.txt": b"\n \n\t\n",
        "binary.bin": b"\x00\x01\x02PK\x03\x04" * 10,
        "latin1.txt": "café au lait".encode("latin-1"),
        "good.txt": GOOD,
        "bad.jsonl": json.dumps({"text": GOOD}) + "\n{not json\n",
        "nofield.jsonl": json.dumps({"body": GOOD}) + "\n",
        "good.jsonl": json.dumps({"text": GOOD}) + "\n",
        "number.jsonl": json.dumps({"text": 42}) + "\n",
    }
    for name, content in files.items():
        write(tmp_path, name, content)
    args, code, message = CASES[case]
    names = {name: str(tmp_path / name) for name in [*files, "nowhere.txt"]}
    names.update(nodir=str(tmp_path / "no-such-dir"), tmp=str(tmp_path))
    for name, path in names.items():
        args = [a.replace("{" + name + "}", path) for a in args]
    store = tmp_path / "store"
    result = CliRunner().invoke(app, ["eval", str(tiny), *args, "--results", str(store)])
    assert result.exit_code == code, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and message in errors[0], result.stderr
    assert "Traceback" not in result.stderr
    assert not list(store.rglob("*.json"))


def test_documents_shorter_than_two_tokens_are_skipped_and_counted(tiny, tmp_path):
    data = write(tmp_path, "docs.jsonl", "".join(json.dumps({"text": t}) + "\n" for t in ("a", GOOD, "b")))
    result = CliRunner().invoke(
        app, ["eval", str(tiny), "--jsonl", str(data), "--json", "--results", str(tmp_path / "store")]
    )
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.stdout)
    assert row["n_bytes"] == len(GOOD.encode()) and row["error"] is None
    assert "2 document(s) shorter than 2 tokens skipped" in result.stderr


def test_only_short_documents_is_a_failed_row_not_a_crash(tiny, tmp_path):
    data = write(tmp_path, "short.jsonl", json.dumps({"text": "a"}) + "\n")
    store = tmp_path / "store"
    result = CliRunner().invoke(app, ["eval", str(tiny), "--jsonl", str(data), "--json", "--results", str(store)])
    assert result.exit_code == 1, result.output
    (row,) = json.loads(result.stdout)
    assert "2 tokens or more" in row["error"]
    assert not list(store.rglob("*.json"))


def test_a_data_file_edited_mid_sweep_is_an_error_not_a_row_under_the_old_key(tiny, tmp_path):
    import olmo_cli
    from olmo_cli.errors import BadInputError
    from olmo_cli.evaluate import text_source

    data = write(tmp_path, "t.txt", GOOD)
    source = text_source(data)
    data.write_text(GOOD + " Edited.")
    with pytest.raises(BadInputError, match="changed"):
        source.documents()
    rows = olmo_cli.evaluate(str(tiny), data=source, results=tmp_path / "store")
    assert "changed" in rows[0]["error"] and not list((tmp_path / "store").rglob("*.json"))
