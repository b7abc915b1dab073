"""Benchmark: a 16-revision `olmo eval` sweep, local executor against Ray with 2 workers.

16 revisions of a small model (2 layers, d_model 64, the real 50304-row vocabulary, the OLMo-1
tokenizer files shared by all) are served by the loopback Hub (tests/fakehub.py) in another
process, with latency on every request and a per-connection bandwidth cap on the weights chosen
so that one revision's download takes about as long as loading and scoring it. Each run starts
from an empty HF cache and results store and a fresh Hub process:

- local: the default executor with --delete-after (prefetch of the next revision while this one
  is scored; each revision removed once scored);
  The driver's torch runs on --threads threads (default 1, what Ray gives a 1-CPU task), so the
  comparison is one worker against two, not thread counts;
- ray: RayExecutor on a local Ray instance with 2 CPUs, 1 CPU per task (2 units at a time),
  no --delete-after (it is local-only: on a shared cache a deletion could pull files from under
  another worker).

Reported: wall time, the bytes the Hub sent (against the unique bytes: each revision's weights plus
the shared files once), and the peak size of the HF cache (sampled every 0.1 s). Both runs' rows
must be equal except for timings.

    flock /tmp/olmo-heavy.lock python benchmarks/sweep.py [--quick] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from common import QUICK, synthetic_hf_1b  # noqa: E402

REPO = "bench/olmo-sweep"
SHAPE = dict(
    QUICK, hidden_size=64, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2, intermediate_size=256
)


def serve(directory: Path, latency: float, rate: float) -> None:
    """--serve: the loopback Hub until stdin closes; then the bytes it sent, as JSON on stdout."""
    from fakehub import FakeHub

    hub = FakeHub()
    branches = {}
    for revision in sorted(p for p in directory.iterdir() if p.is_dir()):
        branches[revision.name] = {
            f.name: f.read_bytes() for f in revision.iterdir() if f.is_file() and not f.name.startswith(".")
        }
    hub.add_repo(REPO, branches=branches)
    hub.latency = latency
    hub.throttle(".safetensors", rate)
    hub.start()
    print(hub.url, flush=True)
    sys.stdin.read()
    print(json.dumps({"bytes_sent": hub.bytes_sent()}), flush=True)
    hub.stop()


class PeakDisk:
    """The largest size the directory reached (sum of its regular files), sampled in a thread."""

    def __init__(self, path: Path, interval: float = 0.1):
        self.path, self.interval, self.peak = path, interval, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _size(self) -> int:
        total = 0
        for root, _, files in os.walk(self.path):
            for name in files:
                try:
                    path = os.path.join(root, name)
                    if not os.path.islink(path):
                        total += os.stat(path).st_size
                except OSError:
                    pass
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._size())
            time.sleep(self.interval)

    def __enter__(self) -> PeakDisk:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._size())


def run(mode: str, root: Path, work: Path, revisions: list[str], data: Path, latency: float, rate: float) -> dict:
    import olmo_cli
    from olmo_cli.evaluate import text_source

    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(root), "--latency", str(latency), "--rate", str(rate)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    run_dir = Path(tempfile.mkdtemp(dir=work, prefix=mode))
    try:
        os.environ["HF_ENDPOINT"] = server.stdout.readline().strip()  # type: ignore[union-attr]
        os.environ["HF_HUB_CACHE"] = str(run_dir / "hf")
        os.environ["OLMO_CACHE_DIR"] = str(run_dir / "olmo")
        (run_dir / "hf").mkdir()
        options: dict = {"delete_after": True} if mode == "local" else {}
        if mode == "ray":
            import ray

            from olmo_cli.sweeps.ray_executor import RayExecutor

            ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
            options["executor"] = RayExecutor(cpus_per_task=1, gpus_per_task=0)
        with PeakDisk(run_dir / "hf") as disk:
            start = time.perf_counter()
            rows = olmo_cli.evaluate(
                REPO, revisions, text_source(data, split_blank_lines=True), context=512, device="cpu", **options
            )
            wall = time.perf_counter() - start
        if mode == "ray":
            import ray

            ray.shutdown()
    finally:
        out, _ = server.communicate("", timeout=60)
    assert all(r["error"] is None and not r["cached"] for r in rows), rows
    return {
        "wall_s": round(wall, 2),
        "bytes_sent": json.loads(out.strip().splitlines()[-1])["bytes_sent"],
        "peak_hf_cache_bytes": disk.peak,
        "score_s_sum": round(sum(r["seconds"] for r in rows), 2),
        "rows": [{k: v for k, v in r.items() if k != "seconds"} for r in rows],
    }


def bench(work: Path, quick: bool, latency: float, threads: int) -> dict:
    import torch

    import olmo_cli
    from olmo_cli.evaluate import sample_source, text_source

    torch.set_num_threads(threads)

    count = 4 if quick else 16
    revisions = [f"step{1000 * (i + 1)}-tokens{4 * (i + 1)}B" for i in range(count)]
    root = work / "revisions"
    for seed, name in enumerate(revisions):
        synthetic_hf_1b(root / name, shape=SHAPE, seed=seed)
    files = [f for f in (root / revisions[0]).iterdir() if f.is_file() and not f.name.startswith(".")]
    weights = sum(f.stat().st_size for f in files if f.suffix == ".safetensors")
    shared = sum(f.stat().st_size for f in files if f.suffix != ".safetensors")
    data = work / "text.txt"
    data.write_text("\n\n".join(sample_source().documents()), encoding="utf-8")
    calibrate = olmo_cli.evaluate(
        str(root / revisions[0]),
        data=text_source(data, split_blank_lines=True),
        context=512,
        results=work / "calibrate",
        device="cpu",
    )[0]
    rate = weights / max(calibrate["seconds"], 0.2)
    report: dict = {
        "revisions": count,
        "weights_bytes_per_revision": weights,
        "shared_bytes": shared,
        "unique_bytes": count * weights + shared,
        "latency_s": latency,
        "driver_threads": threads,
        "bandwidth_bytes_per_s_per_connection": int(rate),
        "score_s_one_revision": round(calibrate["seconds"], 2),
    }
    for mode in ("local", "ray"):
        report[mode] = run(mode, root, work, revisions, data, latency, rate)
    assert report["local"].pop("rows") == report["ray"].pop("rows"), "the executors' rows differ"
    report["ray_wall_vs_local"] = round(report["ray"]["wall_s"] / report["local"]["wall_s"], 3)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "olmo-bench-sweep")
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--rate", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.latency, args.rate)
        return
    args.work.mkdir(parents=True, exist_ok=True)
    report = bench(args.work, args.quick, args.latency, args.threads)
    if args.json:
        print(json.dumps(report, indent=2))
        return
    for key, value in report.items():
        print(f"  {key:40} {value}")


if __name__ == "__main__":
    main()
