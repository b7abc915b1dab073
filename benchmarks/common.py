"""Shared pieces for the benchmarks: a synthetic OLMo-1B-shaped checkpoint, memory sampling, medians,
the loopback Hub in a process of its own.

The checkpoint has random weights (the benchmarks measure speed and memory, not quality) and is
written shard by shard so that creating it never holds the whole model in memory.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOKENIZER_DIRS = (
    ROOT / "olmo_cli" / "data" / "tokenizers" / "gpt-neox-olmo-dolma-v1_5",
    ROOT / "tests" / "data" / "tokenizers" / "gpt-neox-olmo-dolma-v1_5",
)

# OLMo-1B as transformers describes it (docs/REFERENCE.md section 1 and 3.3).
OLMO_1B = dict(
    vocab_size=50304,
    hidden_size=2048,
    num_hidden_layers=16,
    num_attention_heads=16,
    num_key_value_heads=16,
    intermediate_size=8192,
    max_position_embeddings=2048,
    tie_word_embeddings=True,
    eos_token_id=50279,
    pad_token_id=1,
    bos_token_id=None,
)
# A small model with the same shape rules, for --quick runs and tests of the benchmarks.
QUICK = dict(
    OLMO_1B, hidden_size=256, num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=4, intermediate_size=1024
)

_DONE_MARKER = ".synthetic-complete"


def synthetic_hf_1b(path: str | Path, dtype: str = "float32", *, shape: dict | None = None, seed: int = 0) -> Path:
    """An OLMo-1B-shaped transformers checkpoint with random weights at `path` (reused if complete)."""
    path = Path(path)
    shape = dict(shape or OLMO_1B)
    marker = path / _DONE_MARKER
    wanted = json.dumps({"shape": shape, "dtype": dtype, "seed": seed}, sort_keys=True)
    if marker.exists() and marker.read_text() == wanted:
        return path
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)

    import torch
    from safetensors.torch import save_file
    from transformers import OlmoConfig, OlmoForCausalLM

    config = OlmoConfig(rope_theta=10000.0, dtype=dtype, **shape)
    with torch.device("meta"):
        skeleton = OlmoForCausalLM(config)
    shapes = {name: tuple(t.shape) for name, t in skeleton.state_dict().items()}
    if config.tie_word_embeddings:
        shapes.pop("lm_head.weight", None)
    torch_dtype = getattr(torch, dtype)
    generator = torch.Generator().manual_seed(seed)

    # One shard per layer keeps peak memory at one layer's tensors.
    groups: dict[str, list[str]] = {}
    for name in shapes:
        parts = name.split(".")
        key = f"layer{int(parts[2]):03d}" if parts[:2] == ["model", "layers"] else "other"
        groups.setdefault(key, []).append(name)
    weight_map, total = {}, 0
    for index, (_key, names) in enumerate(sorted(groups.items()), start=1):
        filename = f"model-{index:05d}-of-{len(groups):05d}.safetensors"
        tensors = {}
        for name in names:
            tensor = torch.empty(shapes[name], dtype=torch.float32)
            tensor.normal_(0.0, config.initializer_range, generator=generator)
            tensors[name] = tensor.to(torch_dtype)
            total += tensors[name].numel() * tensors[name].element_size()
            weight_map[name] = filename
        save_file(tensors, str(path / filename), metadata={"format": "pt"})
        del tensors
    (path / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2)
    )
    config.save_pretrained(path)
    (path / "generation_config.json").write_text(
        json.dumps({"eos_token_id": shape["eos_token_id"], "pad_token_id": shape["pad_token_id"]}, indent=2)
    )
    _copy_tokenizer(path)
    marker.write_text(wanted)
    return path


def _copy_tokenizer(dst: Path) -> None:
    for source in TOKENIZER_DIRS:
        if (source / "tokenizer.json").exists():
            for file in source.iterdir():
                if file.is_file():
                    shutil.copy2(file, dst / file.name)
            return
    raise FileNotFoundError("no bundled gpt-neox-olmo-dolma-v1_5 tokenizer found")


def rss_anon_kib(pid: int | str = "self") -> int:
    """Anonymous resident memory of a process, in KiB (0 when the process is gone)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class PeakAnonMemory:
    """Samples a process's RssAnon in a background thread; `.peak_bytes` after the `with` block.

    RssAnon (not RSS) because mmapped safetensors pages are file-backed and can be dropped, while
    anonymous memory is what a load really costs.
    """

    def __init__(self, pid: int | str = "self", interval: float = 0.01):
        self.pid, self.interval = pid, interval
        self.peak_kib = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> PeakAnonMemory:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> int:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.peak_kib = max(self.peak_kib, rss_anon_kib(self.pid))
        return self.peak_bytes

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_kib = max(self.peak_kib, rss_anon_kib(self.pid))
            time.sleep(self.interval)

    @property
    def peak_bytes(self) -> int:
        return self.peak_kib * 1024

    def __enter__(self) -> PeakAnonMemory:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def median(values) -> float:
    values = list(values)
    return statistics.median(values) if values else float("nan")


def env_for_benchmark(threads: int | None = None) -> dict[str, str]:
    """The environment benchmark subprocesses run in (same thread count for every contender)."""
    env = dict(os.environ)
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    return env


class HubProcess:
    """The loopback Hub (tests/fakehub.py) in a process of its own, serving each folder of `directory`
    as a branch of `repo`: `latency` seconds on every request, weights (.safetensors) capped at `rate`
    bytes/s per connection. Another process so the benchmark's own stays free for the work it
    measures, as a real Hub's would. Points HF_ENDPOINT at it while open; `bytes_sent` once closed.
    """

    def __init__(self, repo: str, directory: Path, latency: float, rate: float):
        self.args = [sys.executable, __file__, repo, str(directory), str(latency), str(rate)]
        self.bytes_sent = 0

    def __enter__(self) -> HubProcess:
        self.server = subprocess.Popen(self.args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        os.environ["HF_ENDPOINT"] = self.server.stdout.readline().strip()  # type: ignore[union-attr]
        return self

    def __exit__(self, exc_type, *exc) -> None:
        out, _ = self.server.communicate("", timeout=60)
        if exc_type is None:  # else the run's own error is the one to see
            self.bytes_sent = json.loads(out.strip().splitlines()[-1])["bytes_sent"]


def _serve(repo: str, directory: Path, latency: float, rate: float) -> None:
    """HubProcess's side: the URL on stdout, serve until stdin closes, then the bytes sent as JSON."""
    sys.path.insert(0, str(ROOT / "tests"))
    from fakehub import FakeHub

    hub = FakeHub()
    branches = {}
    for revision in sorted(p for p in directory.iterdir() if p.is_dir()):
        branches[revision.name] = {
            f.name: f.read_bytes() for f in revision.iterdir() if f.is_file() and not f.name.startswith(".")
        }
    hub.add_repo(repo, branches=branches)
    hub.latency = latency
    hub.throttle(".safetensors", rate)  # model.safetensors and model-0000N-of-0000M shards
    hub.start()
    print(hub.url, flush=True)
    sys.stdin.read()
    print(json.dumps({"bytes_sent": hub.bytes_sent()}), flush=True)
    hub.stop()


if __name__ == "__main__":  # HubProcess's server: common.py REPO DIRECTORY LATENCY RATE
    _serve(sys.argv[1], Path(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]))
