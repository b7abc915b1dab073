"""Benchmark: a sweep of 10 revisions from the loopback Hub, `olmo download` vs huggingface_hub.

The fake Hub (tests/fakehub.py) serves 10 step branches that share config and tokenizer files and
have distinct weights. In the same run, each contender starts from an empty cache:

  olmo   one `olmo download REPO --from 0` process (one listing per revision, distinct blobs once,
         parallel files)
  hf     one process calling huggingface_hub.snapshot_download once per revision, serially,
         restricted to the same files (allow_patterns)

Reported: bytes over the wire vs the unique bytes of the sweep, HTTP requests, and wall time
(median of --repeat runs). `--quick` uses small files.

    python benchmarks/download.py --quick
    flock /tmp/olmo-heavy.lock python benchmarks/download.py
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from fakehub import FakeHub, checkpoint_repo  # noqa: E402

REPO = "allenai/OLMo-bench"
FILES = ["config.json", "tokenizer.json", "tokenizer_config.json", "model.safetensors"]

HF_SWEEP = f"""
import sys
from huggingface_hub import snapshot_download
endpoint, cache, repo, *revisions = sys.argv[1:]
for revision in revisions:
    snapshot_download(repo, revision=revision, cache_dir=cache, endpoint=endpoint,
                      allow_patterns={FILES!r})
"""


def run(hub: FakeHub, command: list[str], cache: Path) -> tuple[float, int, int]:
    """(wall seconds, body bytes sent, requests) for one command against an empty cache."""
    shutil.rmtree(cache, ignore_errors=True)
    hub.clear_log()
    env = dict(
        os.environ,
        HF_ENDPOINT=hub.url,
        HF_HUB_CACHE=str(cache),
        HF_HUB_DISABLE_PROGRESS_BARS="1",
        HF_HUB_DISABLE_TELEMETRY="1",
        OLMO_CACHE_DIR=str(cache.parent / "olmo-cache"),
    )
    env.pop("HF_TOKEN", None)
    start = time.perf_counter()
    done = subprocess.run(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{command[:4]} failed:\n{done.stderr[-2000:]}")
    return seconds, hub.bytes_sent(), len(hub.requests)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small files (for CI and development)")
    parser.add_argument("--revisions", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=None, help="runs per contender (median reported)")
    parser.add_argument(
        "--latency-ms",
        type=float,
        nargs="*",
        default=None,
        help="per-request latencies to simulate (default: 0 and 50, a far-away Hub)",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    weight_bytes = 256 * 1024 if args.quick else 4 * 1024 * 1024
    tokenizer_bytes = 256 * 1024 if args.quick else 2 * 1024 * 1024  # OLMo's tokenizer.json is ~2 MB
    repeat = args.repeat or 3

    hub = FakeHub().start()
    steps = [1000 * (i + 1) for i in range(args.revisions)]
    branches = checkpoint_repo(hub, REPO, steps, weight_bytes=weight_bytes, tokenizer_bytes=tokenizer_bytes, main=False)
    names = list(branches)
    unique = {hub.etag(REPO, n, f): len(branches[n][f]) for n in names for f in FILES}
    total = sum(len(branches[n][f]) for n in names for f in FILES)
    work = Path(tempfile.mkdtemp(prefix="olmo-bench-download-"))
    contenders = {
        "olmo download": [sys.executable, "-m", "olmo_cli", "download", REPO, "--from", "0"],
        f"snapshot_download x{len(names)}": [
            sys.executable,
            "-c",
            HF_SWEEP,
            hub.url,
            str(work / "cache"),
            REPO,
            *names,
        ],
    }
    latencies = args.latency_ms if args.latency_ms is not None else [0.0, 50.0]
    results: dict[float, dict[str, list]] = {}
    try:
        for command in contenders.values():  # warm-up: imports and .pyc files, not counted
            run(hub, command, work / "cache")
        for latency in latencies:
            hub.latency = latency / 1000
            for _ in range(repeat):
                for label, command in contenders.items():  # alternate, so drift hits both
                    results.setdefault(latency, {}).setdefault(label, []).append(run(hub, command, work / "cache"))
    finally:
        hub.stop()
        shutil.rmtree(work, ignore_errors=True)

    summary = {
        "revisions": len(names),
        "files_per_revision": len(FILES),
        "sum_of_file_bytes": total,
        "unique_bytes": sum(unique.values()),
        "repeat": repeat,
        "quick": args.quick,
        "runs": [
            {
                "latency_ms": latency,
                "contenders": {
                    label: {
                        "wall_s_median": round(statistics.median(r[0] for r in runs), 3),
                        "wall_s_runs": [round(r[0], 3) for r in runs],
                        "bytes_sent": runs[-1][1],
                        "requests": runs[-1][2],
                    }
                    for label, runs in by_label.items()
                },
            }
            for latency, by_label in results.items()
        ],
    }
    if args.json:
        print(json.dumps(summary, indent=2))
        return
    print(
        f"{len(names)} revisions x {len(FILES)} files; sum of file sizes {total / 2**20:.2f} MiB, "
        f"unique {summary['unique_bytes'] / 2**20:.2f} MiB (config/tokenizer shared); median of {repeat} run(s)"
    )
    print(f"{'latency':>8}  {'contender':<24}{'wall s':>9}{'MiB sent':>11}{'x unique':>10}{'requests':>10}")
    for entry in summary["runs"]:
        for label, row in entry["contenders"].items():
            print(
                f"{entry['latency_ms']:>6.0f}ms  {label:<24}{row['wall_s_median']:>9.2f}"
                f"{row['bytes_sent'] / 2**20:>11.2f}"
                f"{row['bytes_sent'] / summary['unique_bytes']:>10.2f}{row['requests']:>10}"
            )


if __name__ == "__main__":
    main()
