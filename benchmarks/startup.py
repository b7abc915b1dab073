"""Startup time: `olmo --help` and `olmo parse-revision ...` against `hf --help`, in the same run.

    python benchmarks/startup.py            # 15 runs each (after one warm-up), median
    python benchmarks/startup.py --quick    # 5 runs each
    python benchmarks/startup.py --runs 30 --json

Goal (issue 2): `olmo --help` at most 0.15 s median and at least 3x faster than `hf --help`.
Each run is a fresh process, timed from spawn to exit, output discarded.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

GOAL_SECONDS = 0.15
GOAL_SPEEDUP = 3.0


def program(name: str, module: str | None) -> list[str]:
    """The console script next to this interpreter (not a pyenv/asdf shim, which adds its own
    startup), else the one on PATH, else `python -m module` (what `olmo` runs anyway)."""
    beside = Path(sysconfig.get_path("scripts")) / name
    if beside.is_file():
        return [str(beside)]
    found = shutil.which(name)
    if found:
        return [found]
    if module:
        return [sys.executable, "-m", module]
    raise SystemExit(f"'{name}' is not installed")


def time_runs(argv: list[str], runs: int) -> tuple[list[float], list[float]]:
    """Wall seconds and CPU seconds (user + system of the child) of each run. CPU time barely
    moves when other work shares the machine, so it keeps the comparison honest under load."""
    env = {**os.environ, "HF_HUB_DISABLE_TELEMETRY": "1"}
    subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)  # warm-up
    walls, cpus = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        walls.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return walls, cpus


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--quick", action="store_true", help="5 runs each")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    runs = 5 if args.quick else args.runs

    olmo, hf = program("olmo", "olmo_cli"), program("hf", None)
    cases = [
        ("olmo --help", [*olmo, "--help"]),
        ("olmo parse-revision step452000-tokens2000B", [*olmo, "parse-revision", "step452000-tokens2000B"]),
        ("hf --help", [*hf, "--help"]),
    ]
    results = {}
    for label, command in cases:
        times, cpus = time_runs(command, runs)
        results[label] = {
            "median_s": statistics.median(times),
            "min_s": min(times),
            "max_s": max(times),
            "cpu_median_s": statistics.median(cpus),
            "runs": runs,
        }
    hf_median = results["hf --help"]["median_s"]
    for figures in results.values():
        figures["vs_hf"] = hf_median / figures["median_s"]
    help_median = results["olmo --help"]["median_s"]
    verdict = {
        "olmo_help_median_s": help_median,
        "goal_s": GOAL_SECONDS,
        "speedup_vs_hf": hf_median / help_median,
        "goal_speedup": GOAL_SPEEDUP,
        "met": help_median <= GOAL_SECONDS and hf_median / help_median >= GOAL_SPEEDUP,
    }

    if args.json:
        print(json.dumps({"results": results, "goal": verdict}, indent=2))
    else:
        width = max(len(label) for label in results)
        print(f"{'command':<{width}}  {'median':>8}  {'min':>8}  {'max':>8}  {'cpu':>8}  {'hf/this':>7}")
        for label, f in results.items():
            print(
                f"{label:<{width}}  {f['median_s']:>7.3f}s  {f['min_s']:>7.3f}s  {f['max_s']:>7.3f}s"
                f"  {f['cpu_median_s']:>7.3f}s  {f['vs_hf']:>6.1f}x"
            )
        load = os.getloadavg()[0] / (os.cpu_count() or 1)
        print(f"\n{runs} runs each, median wall time (cpu: median user+system). Load per core at the end: {load:.2f}.")
        print(
            f"Goal: olmo --help <= {GOAL_SECONDS} s and >= {GOAL_SPEEDUP:.0f}x faster "
            f"than hf --help: {'met' if verdict['met'] else 'NOT met'} "
            f"({help_median:.3f} s, {verdict['speedup_vs_hf']:.1f}x)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
