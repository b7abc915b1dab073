"""Benchmark: `olmo eval` scoring throughput, and a 6-revision sweep with and without prefetch.

1. Scoring throughput on the CPU: `olmo_cli.evaluate.scoring.score` against a plain transformers
   loop over the same chunks, batch size and dtype (fp32), alternated in the same process, median
   of --repeat runs each. Goal (issue 12): >= 0.95x the plain loop's tokens/s.
2. A sweep of 6 revisions of a small model from the loopback Hub, served by another process
   (tests/fakehub.py) with latency on every request and a bandwidth cap chosen so that one
   revision's download takes about as long as its scoring. Each run starts from an empty HF
   cache and results store: `prefetch=False` (download, load, score one after another: the
   serial sum) against the default (the next revision downloads while this one is scored).
   Goal: prefetch wall <= 0.7x the serial sum. Peak anonymous memory is reported for both.

    flock /tmp/olmo-heavy.lock python benchmarks/eval.py [--quick] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from common import QUICK, HubProcess, PeakAnonMemory, median, synthetic_hf_1b  # noqa: E402

REPO = "bench/olmo-eval"
SCORE_SHAPE = dict(QUICK)  # 4 layers, d_model 256, the real 50304-row vocabulary
SWEEP_SHAPE = dict(
    QUICK, hidden_size=128, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2, intermediate_size=512
)


def documents(repeat: int) -> list[str]:
    from olmo_cli.evaluate import sample_source

    return sample_source().documents() * repeat


def plain_loop(model, tokenizer, docs: list[str], context: int, batch_size: int) -> tuple[float, int]:
    """What a user would write: tokenize, cut chunks, stack equal lengths, logits, cross-entropy."""
    import torch
    import torch.nn.functional as F

    chunks = []
    for doc in docs:
        ids = tokenizer(doc, add_special_tokens=False)["input_ids"]
        chunks += [ids[i : i + context] for i in range(0, len(ids), context) if len(ids[i : i + context]) >= 2]
    chunks.sort(key=len, reverse=True)
    nll, count = 0.0, 0
    with torch.no_grad():
        i = 0
        while i < len(chunks):
            batch = [chunks[i]]
            while (
                len(batch) < batch_size
                and i + len(batch) < len(chunks)
                and len(chunks[i + len(batch)]) == len(batch[0])
            ):
                batch.append(chunks[i + len(batch)])
            i += len(batch)
            ids = torch.tensor(batch)
            logits = model(input_ids=ids).logits
            nll += float(
                F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1), reduction="sum")
            )
            count += ids[:, 1:].numel()
    return nll, count


def bench_scoring(work: Path, repeat: int, quick: bool) -> dict:
    from olmo_cli.evaluate.scoring import score
    from olmo_cli.loading import load_model

    path = synthetic_hf_1b(work / "score-model", shape=SCORE_SHAPE)
    loaded = load_model(str(path), dtype="float32", device="cpu")
    docs = documents(1 if quick else 3)
    context, batch = (256, 2) if quick else (512, 4)
    plain_times, olmo_times = [], []
    plain_loop(loaded.model, loaded.tokenizer, docs[:1], context, batch)  # warm-up
    for _ in range(repeat):
        start = time.perf_counter()
        nll, count = plain_loop(loaded.model, loaded.tokenizer, docs, context, batch)
        plain_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        result = score(loaded.model, loaded.tokenizer, docs, context=context, batch_size=batch)
        olmo_times.append(time.perf_counter() - start)
    assert result.n_tokens == count and abs(result.nll - nll) / nll < 1e-5, (result.nll, nll)
    plain_tps, olmo_tps = count / median(plain_times), count / median(olmo_times)
    return {
        "tokens": count,
        "context": context,
        "batch_size": batch,
        "plain_tokens_per_s": round(plain_tps, 1),
        "olmo_tokens_per_s": round(olmo_tps, 1),
        "ratio": round(olmo_tps / plain_tps, 3),
        "goal": ">= 0.95",
    }


def bench_sweep(work: Path, quick: bool, latency: float) -> dict:
    import olmo_cli
    from olmo_cli.evaluate import text_source

    revisions = [f"step{1000 * (i + 1)}-tokens{4 * (i + 1)}B" for i in range(6)]
    root = work / "sweep-revisions"
    for seed, name in enumerate(revisions):
        synthetic_hf_1b(root / name, shape=SWEEP_SHAPE, seed=seed)
    size = sum(f.stat().st_size for f in (root / revisions[0]).glob("*.safetensors"))
    data = work / "sweep-text.txt"
    data.write_text("\n\n".join(documents(1 if quick else 2)), encoding="utf-8")

    # Calibrate: one revision's scoring time, so that a download takes about as long.
    local = olmo_cli.evaluate(
        str(root / revisions[0]),
        data=text_source(data, split_blank_lines=True),
        context=512,
        batch_size=4,
        results=work / "calibrate",
        device="cpu",
    )[0]
    score_s = local["seconds"]
    rate = size / max(score_s, 0.2)
    results = {
        "revisions": 6,
        "weights_bytes_per_revision": size,
        "load_and_score_s_one_revision": round(score_s, 2),
        "bandwidth_bytes_per_s": int(rate),
        "latency_s": latency,
    }
    with HubProcess(REPO, root, latency, rate):
        for mode, prefetch in (
            ("serial", False),
            ("prefetch", True),
            ("serial_again", False),
            ("prefetch_again", True),
        ):
            if quick and mode.endswith("again"):
                continue
            run_dir = Path(tempfile.mkdtemp(dir=work, prefix=mode))
            os.environ["HF_HUB_CACHE"] = str(run_dir / "hf")
            os.environ["OLMO_CACHE_DIR"] = str(run_dir / "olmo")
            with PeakAnonMemory() as memory:
                start = time.perf_counter()
                rows = olmo_cli.evaluate(
                    REPO,
                    revisions,
                    text_source(data, split_blank_lines=True),
                    context=512,
                    batch_size=4,
                    prefetch=prefetch,
                    device="cpu",
                )
                wall = time.perf_counter() - start
            assert all(r["error"] is None and not r["cached"] for r in rows), rows
            results[f"{mode}_wall_s"] = round(wall, 2)
            results[f"{mode}_score_s"] = round(sum(r["seconds"] for r in rows), 2)
            results[f"{mode}_peak_anon_mib"] = round(memory.peak_bytes / 2**20)
    serial = median([results[k] for k in ("serial_wall_s", "serial_again_wall_s") if k in results])
    prefetched = median([results[k] for k in ("prefetch_wall_s", "prefetch_again_wall_s") if k in results])
    results.update(ratio=round(prefetched / serial, 3), goal="<= 0.7")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "olmo-bench-eval")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    report = {
        "scoring": bench_scoring(args.work, 1 if args.quick else args.repeat, args.quick),
        "sweep": bench_sweep(args.work, args.quick, args.latency),
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return
    for part, figures in report.items():
        print(f"== {part}")
        for key, value in figures.items():
            print(f"  {key:32} {value}")


if __name__ == "__main__":
    main()
