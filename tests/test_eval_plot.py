"""`olmo eval --plot`: a PNG/SVG of loss against training tokens (matplotlib), or the terminal (plotext)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from olmo_cli.cli.app import app
from olmo_cli.evaluate.plot import draw_file, draw_terminal, series


def row(model, revision, step, tokens, loss, data="text.txt", bpb=None, error=None):
    return {
        "model": model,
        "revision": revision,
        "step": step,
        "tokens": tokens,
        "commit": "c" * 40,
        "data": {"name": data, "sha256": "0" * 64},
        "loss": loss,
        "bits_per_byte": bpb if bpb is not None else (loss / 2 if loss is not None else None),
        "error": error,
    }


ROWS = [
    row("allenai/OLMo-7B", "step1000-tokens4B", 1000, 4_000_000_000, 4.0),
    row("allenai/OLMo-7B", "step10000-tokens42B", 10000, 42_000_000_000, 3.2),
    row("allenai/OLMo-7B", "step100000-tokens419B", 100000, 419_000_000_000, 2.7),
    row("allenai/OLMo-7B-Twin-2T", "step1000-tokens4B", 1000, 4_000_000_000, 4.1),
    row("allenai/OLMo-7B-Twin-2T", "step10000-tokens42B", 10000, 42_000_000_000, 3.3),
    row("allenai/OLMo-7B-Twin-2T", "step20000-tokens84B", 20000, 84_000_000_000, None, error="corrupt"),
]


def test_one_line_per_model_and_data_source_on_a_token_axis():
    lines, axis, left_out = series(ROWS)
    assert axis == "training tokens" and left_out == []
    assert [line.label for line in lines] == ["allenai/OLMo-7B", "allenai/OLMo-7B-Twin-2T"]
    assert lines[0].x == [4e9, 42e9, 419e9] and lines[0].y == [4.0, 3.2, 2.7]
    assert len(lines[1].x) == 2  # the failed revision has no point
    bpb, _, _ = series(ROWS, "bpb")
    assert bpb[0].y == [2.0, 1.6, 1.35]


def test_steps_when_a_name_carries_no_token_count():
    rows = [
        row("m", "stage1-step100", 100, None, 3.0),
        row("m", "stage1-step1000", 1000, None, 2.5),
        row("m", "main", None, None, 2.4),
    ]
    lines, axis, left_out = series(rows)
    assert axis == "training step" and lines[0].x == [100.0, 1000.0] and left_out == ["m@main"]


def test_png_has_the_size_asked_for_and_is_not_blank(tmp_path):
    import numpy as np
    from PIL import Image

    out = tmp_path / "curve.png"
    assert draw_file(ROWS, str(out)) == 5
    with Image.open(out) as image:
        assert image.format == "PNG" and image.size == (960, 600)
        pixels = np.asarray(image.convert("RGB")).astype(float)
    assert pixels.std() > 10  # lines, labels, ticks: not a blank canvas
    white = (pixels > 250).all(axis=2).mean()
    assert 0.5 < white < 0.995
    coloured = (pixels.max(axis=2) - pixels.min(axis=2) > 60).mean()
    assert coloured > 0.001  # the lines are drawn in colour


def test_svg_and_terminal(tmp_path):
    out = tmp_path / "curve.svg"
    draw_file(ROWS, str(out), "bpb")
    text = out.read_text()
    assert text.lstrip().startswith("<?xml") and "<svg" in text and "bits per byte" in text
    chart = draw_terminal(ROWS, width=100)
    assert "training tokens" in chart and "OLMo-7B-Twin-2T" in chart and len(chart.splitlines()) >= 15


@pytest.mark.parametrize(
    "target, code, message",
    [("x.bmp", 2, "unsupported format"), ("missing-dir/x.png", 3, "does not exist"), ("x", 2, "unsupported format")],
)
def test_bad_plot_targets_fail_before_any_work(tmp_path, target, code, message, monkeypatch):
    monkeypatch.chdir(tmp_path)
    text = tmp_path / "t.txt"
    text.write_text("some text to score")
    store = tmp_path / "store"
    result = CliRunner().invoke(
        app, ["eval", "./nowhere", "--text", str(text), "--plot", target, "--results", str(store)]
    )
    assert result.exit_code == code, result.output
    assert result.stderr.startswith("error: ") and message in result.stderr
    assert not store.exists() and not Path(target).exists()


def test_a_local_directory_has_no_place_on_the_axis(tmp_path):
    from tiny_models import make_hf_with_tokenizer

    model = make_hf_with_tokenizer(tmp_path / "m", max_position_embeddings=64)
    text = tmp_path / "t.txt"
    text.write_text("The first rule of keeping bees is to move slowly.")
    out = tmp_path / "curve.png"
    result = CliRunner().invoke(
        app, ["eval", str(model), "--text", str(text), "--plot", str(out), "--results", str(tmp_path / "store")]
    )
    assert result.exit_code == 0, result.output
    assert "not plotted (no step or token count)" in result.stderr  # a local directory has no place on the axis
    assert "nothing to plot" in result.stderr and not out.exists()
