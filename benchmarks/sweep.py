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
  no --delete-after;
- ray-delete: the same with --delete-after (each worker removes its revision, the shared files
  stay until the driver removes them at the end);
- convert-local, convert-ray: `olmo convert REPO <the 16 revisions> OUTDIR/` (to hf), then the same
  again, which must schedule nothing; both executors' outputs must be byte-identical.

Reported: wall time, the bytes the Hub sent (against the unique bytes: each revision's weights plus
the shared files once), and the peak size of the HF cache (sampled every 0.1 s) and what it holds
after the sweep. All eval runs' rows must be equal except for timings.

    flock /tmp/bench.lock python benchmarks/sweep.py [--quick] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from common import QUICK, HubProcess, synthetic_hf_1b  # noqa: E402

REPO = "bench/olmo-sweep"
SHAPE = dict(
    QUICK, hidden_size=64, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2, intermediate_size=256
)


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


class Served:
    """A fresh loopback Hub process, HF cache and olmo cache for one run; `bytes_sent` once closed."""

    def __init__(self, mode: str, root: Path, work: Path, latency: float, rate: float):
        self.hub = HubProcess(REPO, root, latency, rate)
        self.run_dir = Path(tempfile.mkdtemp(dir=work, prefix=mode))
        self.bytes_sent = 0

    def __enter__(self) -> Served:
        self.hub.__enter__()
        os.environ["HF_HUB_CACHE"] = str(self.run_dir / "hf")
        os.environ["OLMO_CACHE_DIR"] = str(self.run_dir / "olmo")
        (self.run_dir / "hf").mkdir()
        return self

    def __exit__(self, *exc) -> None:
        self.hub.__exit__(*exc)
        self.bytes_sent = self.hub.bytes_sent


def ray_executor():
    import ray

    from olmo_cli.sweeps.ray_executor import RayExecutor

    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    return RayExecutor(cpus_per_task=1, gpus_per_task=0)


def shutdown_ray() -> None:
    if "ray" in sys.modules:
        sys.modules["ray"].shutdown()


def run(mode: str, root: Path, work: Path, revisions: list[str], data: Path, latency: float, rate: float) -> dict:
    """mode: local (with --delete-after), ray (keeps the cache), ray-delete (ray with --delete-after)."""
    import olmo_cli
    from olmo_cli.evaluate import text_source

    with Served(mode, root, work, latency, rate) as served:
        options: dict = {"delete_after": mode in ("local", "ray-delete")}
        if mode.startswith("ray"):
            options["executor"] = ray_executor()
        with PeakDisk(served.run_dir / "hf") as disk:
            start = time.perf_counter()
            rows = olmo_cli.evaluate(
                REPO, revisions, text_source(data, split_blank_lines=True), context=512, device="cpu", **options
            )
            wall = time.perf_counter() - start
    shutdown_ray()  # each Ray run starts cold, as the first one did
    assert all(r["error"] is None and not r["cached"] for r in rows), rows
    left = sum(f.stat().st_size for f in (served.run_dir / "hf").rglob("*") if f.is_file() and not f.is_symlink())
    return {
        "wall_s": round(wall, 2),
        "bytes_sent": served.bytes_sent,
        "peak_hf_cache_bytes": disk.peak,
        "hf_cache_bytes_after": left,
        "score_s_sum": round(sum(r["seconds"] for r in rows), 2),
        "rows": [{k: v for k, v in r.items() if k != "seconds"} for r in rows],
    }


def run_convert(mode: str, root: Path, work: Path, revisions: list[str], latency: float, rate: float) -> dict:
    """`olmo convert REPO <revisions> OUTDIR/` (to hf), here or on Ray; then a rerun, which must schedule nothing."""
    import hashlib

    from olmo_cli.revisions.select import Selection
    from olmo_cli.sweeps.base import LocalExecutor
    from olmo_cli.sweeps.outputs import plan_outputs, run_outputs

    with Served(f"convert-{mode}", root, work, latency, rate) as served:
        outdir = served.run_dir / "out"
        executor = ray_executor() if mode == "ray" else LocalExecutor()
        units = plan_outputs("convert", REPO, revisions, Selection(), outdir, {"to": None})
        start = time.perf_counter()
        outcomes = run_outputs(units, executor, outdir=outdir)
        wall = time.perf_counter() - start
        start = time.perf_counter()
        again = run_outputs(units, executor, outdir=outdir)
        rerun = time.perf_counter() - start
    shutdown_ray()
    assert [o.status for o in outcomes] == ["written"] * len(units), [o.error for o in outcomes]
    assert [o.status for o in again] == ["exists"] * len(units)
    digest = hashlib.sha256()
    for path in sorted(p for p in outdir.rglob("*") if p.is_file()):
        digest.update(path.relative_to(outdir).as_posix().encode() + path.read_bytes())
    return {"wall_s": round(wall, 2), "rerun_s": round(rerun, 3), "bytes_sent": served.bytes_sent,
            "outputs_sha256": digest.hexdigest()}  # fmt: skip


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
    for mode in ("local", "ray", "ray-delete"):
        report[mode] = run(mode, root, work, revisions, data, latency, rate)
    rows = report["local"].pop("rows")
    assert report["ray"].pop("rows") == rows and report["ray-delete"].pop("rows") == rows, "the executors' rows differ"
    report["ray_wall_vs_local"] = round(report["ray"]["wall_s"] / report["local"]["wall_s"], 3)
    for mode in ("local", "ray"):
        report[f"convert-{mode}"] = run_convert(mode, root, work, revisions, latency, rate)
    assert report["convert-local"]["outputs_sha256"] == report["convert-ray"]["outputs_sha256"], "outputs differ"
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "olmo-bench-sweep")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    report = bench(args.work, args.quick, args.latency, args.threads)
    if args.json:
        print(json.dumps(report, indent=2))
        return
    for key, value in report.items():
        print(f"  {key:40} {value}")


if __name__ == "__main__":
    main()
