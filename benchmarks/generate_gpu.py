"""GPU benchmark: bf16 eager decoding vs `--compile` (static KV cache + torch.compile), one script.

Creates its own synthetic OLMo-1B-shaped checkpoint (random weights, bf16), loads it once through
`olmo_cli.load_model`, and times greedy generation through `olmo_cli.generate` (what `olmo generate`
runs) eagerly and with `compile=True`. Decode tokens/s counts the steps after the first token
(the first one includes the prefill). Goal (issue 4): compiled >= 3x eager decode tokens/s.
Without a CUDA GPU it says so and exits 0.

    python benchmarks/generate_gpu.py [--new-tokens 256] [--repeats 3] [--quick] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

PROMPT = "Language modeling is the task of predicting the next word in a sequence of words, and"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--new-tokens", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="a small model of the same kind")
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "olmo-bench")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    import torch

    if not torch.cuda.is_available():
        print("no CUDA GPU here: the eager vs --compile benchmark needs one; nothing measured.")
        return 0

    from common import OLMO_1B, QUICK, median, synthetic_hf_1b

    from olmo_cli.generate import SamplingParams, generate
    from olmo_cli.loading import load_model

    started = time.perf_counter()
    shape = QUICK if args.quick else OLMO_1B
    checkpoint = synthetic_hf_1b(
        args.dir / ("gpu-quick-bf16" if args.quick else "synthetic-1b-bf16"), "bfloat16", shape=shape
    )
    created = time.perf_counter() - started
    loaded = load_model(str(checkpoint), dtype="bfloat16", device="cuda")
    figures: dict = {
        "device": torch.cuda.get_device_name(0),
        "torch": torch.__version__,
        "model": "quick" if args.quick else "OLMo-1B shape",
        "new_tokens": args.new_tokens,
        "checkpoint_seconds": created,
        "load_seconds": loaded.load_seconds,
    }

    def timed(compile_: bool) -> dict:
        params = SamplingParams(max_new_tokens=args.new_tokens, greedy=True, compile=compile_)
        first = time.perf_counter()
        warm = generate(loaded, [PROMPT], params)  # eager: CUDA warm-up; compiled: compilation
        warmup_seconds = time.perf_counter() - first
        if compile_:
            generate(loaded, [PROMPT], params)  # CUDA graphs are recorded on the first warm runs
        results = [generate(loaded, [PROMPT], params) for _ in range(args.repeats)]
        return {
            "warmup_seconds": warmup_seconds,
            "decode_tokens_per_second": median(r.timings.decode_tokens_per_second for r in results),
            "tokens_per_second": median(r.timings.tokens_per_second for r in results),
            "first_token_seconds": median(r.timings.first_token_seconds for r in results),
            "new_tokens": results[0].timings.new_tokens,
            "text": results[0].completions[0].completion,
            "warm_text": warm.completions[0].completion,
        }

    eager = timed(False)
    compiled = timed(True)
    figures["eager"], figures["compiled"] = eager, compiled
    figures["decode_speedup"] = compiled["decode_tokens_per_second"] / eager["decode_tokens_per_second"]
    figures["same_text"] = eager["text"] == compiled["text"]
    figures["goal_met"] = figures["decode_speedup"] >= 3.0
    figures["peak_gpu_mib"] = torch.cuda.max_memory_allocated() / 2**20
    for run in (eager, compiled):
        run["text"] = run["text"][:80]
        run.pop("warm_text")
    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    print(
        f"{figures['model']} bf16 on {figures['device']} (torch {figures['torch']}), greedy, "
        f"{args.new_tokens} new tokens, median of {args.repeats}"
    )
    print(f"{'':10}{'decode tok/s':>14}{'tok/s':>9}{'first token s':>15}{'warm-up s':>11}")
    for name, run in (("eager", eager), ("compiled", compiled)):
        print(
            f"{name:10}{run['decode_tokens_per_second']:14.1f}{run['tokens_per_second']:9.1f}"
            f"{run['first_token_seconds']:15.3f}{run['warmup_seconds']:11.1f}"
        )
    print(
        f"compiled/eager decode: {figures['decode_speedup']:.2f}x (goal >= 3x); "
        f"same greedy text: {figures['same_text']}; "
        f"peak GPU memory {figures['peak_gpu_mib']:.0f} MiB"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
