"""Loss (or bits per byte) against training tokens: a PNG/SVG file (matplotlib) or the terminal (plotext).

x is training tokens on a log axis; steps when some revision's name carries no token count.
One line per (model, data source), a marker per revision. Both libraries are imported only here.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

from olmo_cli.errors import UnsupportedError, UsageError
from olmo_cli.evaluate.tasks import INSTALL_HINT

FORMATS = (".png", ".svg")
METRICS = {"loss": ("loss", "loss (nats per token)"), "bpb": ("bits_per_byte", "bits per byte")}
TERMINAL = "-"


@dataclass
class Series:
    label: str
    x: list[float]
    y: list[float]
    revisions: list[str]


def check_plot_target(target: str, metric: str = "loss") -> None:
    """Before any work: a known format, an existing folder, the plotting library installed."""
    if metric not in METRICS:
        raise UsageError(f"unknown --plot-metric '{metric}'", hint="use loss or bpb")
    if target == TERMINAL:
        _require("plotext")
        return
    path = Path(target)
    if path.suffix.lower() not in FORMATS:
        raise UsageError(f"--plot {target}: unsupported format '{path.suffix or '(none)'}'", hint="use .png or .svg")
    from olmo_cli.evaluate.report import check_output_file

    check_output_file(path, "--plot")
    _require("matplotlib")


def _require(module: str) -> None:
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise UnsupportedError(f"--plot needs {module}, which is not installed", hint=INSTALL_HINT)


def series(rows: list[dict], metric: str = "loss") -> tuple[list[Series], str, list[str]]:
    """The lines to draw, the x axis' name, and the revisions left out (no step or token count)."""
    field = METRICS[metric][0]
    usable = [r for r in rows if not r.get("error") and r.get("data") and r.get(field) is not None]
    by_tokens = all(r.get("tokens") for r in usable)
    axis = "training tokens" if by_tokens else "training step"
    several_models = len({r["model"] for r in usable}) > 1
    several_data = len({r["data"]["name"] for r in usable}) > 1
    lines: dict[tuple[str, str], Series] = {}
    left_out = []
    for row in usable:
        x = row.get("tokens") if by_tokens else row.get("step")
        if not x:  # a log axis has no place for step 0 or a name without a number
            left_out.append(f"{row['model']}@{row['revision']}" if row.get("revision") else row["model"])
            continue
        parts = ([row["model"]] if several_models else []) + ([row["data"]["name"]] if several_data else [])
        label = " · ".join(parts) or row["data"]["name"]
        line = lines.setdefault((row["model"], row["data"]["name"]), Series(label, [], [], []))
        line.x.append(float(x))
        line.y.append(float(row[field]))
        line.revisions.append(row.get("revision") or "")
    for line in lines.values():
        order = sorted(range(len(line.x)), key=line.x.__getitem__)
        line.x, line.y = [line.x[i] for i in order], [line.y[i] for i in order]
        line.revisions = [line.revisions[i] for i in order]
    return list(lines.values()), axis, left_out


def draw_file(rows: list[dict], target: str, metric: str = "loss") -> int:
    """Write the chart to `target` (atomically); the number of points drawn."""
    import matplotlib

    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt

    from olmo_cli.evaluate.report import write_atomic

    lines, axis, _ = series(rows, metric)
    figure, axes = plt.subplots(figsize=(8, 5), dpi=120)
    try:
        for line in lines:
            axes.plot(line.x, line.y, marker="o", markersize=4, linewidth=1.5, label=line.label)
        axes.set_xscale("log")
        axes.set_xlabel(axis + " (log scale)")
        axes.set_ylabel(METRICS[metric][1])
        axes.grid(True, which="both", alpha=0.3)
        if lines:
            axes.legend(fontsize="small", loc="best", frameon=False)
        figure.tight_layout()
        buffer = io.BytesIO()
        figure.savefig(buffer, format=Path(target).suffix.lower().lstrip("."))
    finally:
        plt.close(figure)
    write_atomic(Path(target), buffer.getvalue())
    return sum(len(line.x) for line in lines)


def draw_terminal(rows: list[dict], metric: str = "loss", width: int | None = None) -> str:
    """The same chart as text (plotext 6's figure API), for stderr."""
    import shutil

    import plotext

    lines, axis, _ = series(rows, metric)
    figure = plotext.figure
    figure.clear()
    figure.plot_size(width or min(shutil.get_terminal_size((100, 24)).columns, 120), 20)
    for line in lines:
        signal = figure.signal(line.x, line.y)
        signal.lines(True)
        signal.label(line.label)
        figure.draw(signal)
    figure.ruler("x").scale("log")
    figure.label(axis + " (log)", axis="x")
    figure.label(METRICS[metric][1], axis="y")
    return figure.build().string()
