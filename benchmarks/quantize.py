"""Quantize the synthetic OLMo-1B-shaped checkpoint: size vs float32, time, peak memory, CPU decode speed.

    python benchmarks/quantize.py --quick                      # a 4-layer, d=256 model (seconds)
    flock /tmp/olmo-heavy.lock python benchmarks/quantize.py   # OLMo-1B shape (minutes, ~5 GB RAM, ~9 GB disk)

Each quantization runs as `olmo quantize ... --json` in a child process whose RssAnon is sampled
(the peak anonymous memory is what quantizing really costs; mmapped weight pages are file-backed).
Decode speed: each output is loaded in its own child process (same thread count) and generates
--tokens tokens greedily after a warm-up; int8 and bf16 are timed in the same run. The weights are
random, so the quality figures only show that the check runs; the sizes and speeds are real.
Goal (issue 6): int8 output at most 0.30 of the float32 weights.
Goals (issue 13): peak anonymous memory <= 1 GiB for every method (quantizing, and the quality
check at most one bf16 model's worth); int8 wall time <= 2x the bf16 cast's. Each case's wall is
also given as a multiple of the bf16 cast's in the same run and check mode ("x cast": against
bf16 for cases with the check, bf16-nocheck for those without).
--no-decode skips the decode timing.

    python benchmarks/quantize.py --no-decode --cases bf16,bf16-nocheck,int8,\
        int8-nocheck,int8-dynamic,int8-dynamic-nocheck,nf4,nf4-nocheck
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import OLMO_1B, QUICK, PeakAnonMemory, env_for_benchmark, synthetic_hf_1b

GOAL_RATIO = 0.30
GOAL_ANON = 2**30
GOAL_INT8_VS_CAST = 2.0
# (label, --method, --dtype): bf16 is the decode baseline; int8 float32 shows what the embedding costs.
DEFAULT_CASES = ("int8", "bf16")
CASES = {
    "int8": ("int8", "auto"),
    "int8-dynamic": ("int8-dynamic", "auto"),
    "bf16": ("bf16", "auto"),
    "int8-fp32": ("int8", "float32"),
    "fp16": ("fp16", "auto"),
    "int8-nocheck": ("int8", "auto", "--no-check"),
    "int8-dynamic-nocheck": ("int8-dynamic", "auto", "--no-check"),
    "bf16-nocheck": ("bf16", "auto", "--no-check"),
    "nf4": ("nf4", "auto"),
    "nf4-nocheck": ("nf4", "auto", "--no-check"),
}  # memory without the float32 reference

DECODE_SCRIPT = r"""
import json, sys, time, torch
from transformers import AutoModelForCausalLM
path, tokens = sys.argv[1], int(sys.argv[2])
model = AutoModelForCausalLM.from_pretrained(path).eval()
prompt = torch.tensor([[510, 3158, 8516, 369, 253, 990, 273, 247]])
kwargs = dict(do_sample=False, min_new_tokens=tokens, max_new_tokens=tokens, pad_token_id=1)
with torch.inference_mode():
    model.generate(prompt, **dict(kwargs, min_new_tokens=4, max_new_tokens=4))  # warm-up
    start = time.perf_counter()
    out = model.generate(prompt, **kwargs)
    seconds = time.perf_counter() - start
print(json.dumps({"tokens": out.shape[1] - prompt.shape[1], "seconds": seconds, "dtype": str(model.dtype)}))
"""


def run_sampled(argv: list[str], env: dict) -> tuple[dict, float, int]:
    """(JSON printed on stdout, wall seconds, peak RssAnon bytes) of a child process."""
    start = time.perf_counter()
    child = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    with PeakAnonMemory(child.pid, interval=0.05) as memory:
        out, err = child.communicate()
    seconds = time.perf_counter() - start
    if child.returncode != 0:
        raise SystemExit(f"failed ({child.returncode}): {' '.join(argv)}\n{err[-3000:]}")
    return (
        json.loads(out.strip().splitlines()[-1] if not out.lstrip().startswith("{") else out),
        seconds,
        memory.peak_bytes,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small model of the same shape rules")
    parser.add_argument("--cases", default=",".join(DEFAULT_CASES), help=f"comma list of {', '.join(CASES)}")
    parser.add_argument("--tokens", type=int, default=None, help="tokens to decode (default 32, quick 16)")
    parser.add_argument("--threads", type=int, default=None, help="OMP_NUM_THREADS for every child (default: all)")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "olmo-bench-quantize")
    parser.add_argument("--keep", action="store_true", help="keep the synthetic source and the outputs")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--no-decode", action="store_true", help="skip the decode timing")
    args = parser.parse_args(argv)
    tokens = args.tokens or (16 if args.quick else 32)
    env = env_for_benchmark(args.threads)

    args.work.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    source = synthetic_hf_1b(
        args.work / ("src-quick" if args.quick else "src-1b"), "float32", shape=QUICK if args.quick else OLMO_1B
    )
    made_in = time.perf_counter() - start
    results = {}
    try:
        for label in args.cases.split(","):
            method, dtype, *extra = CASES[label]
            dst = args.work / f"out-{label}"
            report, wall, peak = run_sampled(
                [
                    sys.executable,
                    "-m",
                    "olmo_cli",
                    "quantize",
                    str(source),
                    str(dst),
                    "--method",
                    method,
                    "--dtype",
                    dtype,
                    "--force",
                    "--json",
                    *extra,
                ],
                env,
            )
            decode, decode_peak = {"tokens": 0, "seconds": float("nan")}, 0
            if not args.no_decode:
                decode, _, decode_peak = run_sampled([sys.executable, "-c", DECODE_SCRIPT, str(dst), str(tokens)], env)
            results[label] = {
                "method": method,
                "dtype": report["dtype"],
                "size_before": report["size_before"],
                "size_after": report["size_after"],
                "ratio_vs_fp32": report["ratio"],
                "quantize_s": wall,
                "quantize_core_s": report["seconds"],
                "quantize_peak_anon_bytes": peak,
                "decode_tokens_per_s": decode["tokens"] / decode["seconds"],
                "decode_tokens": decode["tokens"],
                "decode_peak_anon_bytes": decode_peak,
                "max_logit_diff": report["max_logit_diff"],
                "top1_agreement": report["top1_agreement"],
            }
            if not args.keep:
                shutil.rmtree(dst, ignore_errors=True)
    finally:
        if not args.keep:
            for leftover in args.work.glob("out-*"):
                shutil.rmtree(leftover, ignore_errors=True)
    int8 = results.get("int8")
    summary = {
        "model": "synthetic quick (4 layers, d=256)" if args.quick else "synthetic OLMo-1B shape (16 layers, d=2048)",
        "threads": env.get("OMP_NUM_THREADS", str(os.cpu_count())),
        "source_made_s": made_in,
        "goal_ratio": GOAL_RATIO,
        "int8_ratio": int8["ratio_vs_fp32"] if int8 else None,
        "met": bool(int8 and int8["ratio_vs_fp32"] <= GOAL_RATIO),
    }
    if "int8" in results and "bf16" in results:
        summary["int8_vs_bf16_decode"] = results["int8"]["decode_tokens_per_s"] / results["bf16"]["decode_tokens_per_s"]
        summary["int8_vs_bf16_wall"] = results["int8"]["quantize_s"] / results["bf16"]["quantize_s"]
    for label, r in results.items():
        cast = results.get("bf16-nocheck" if label.endswith("-nocheck") else "bf16")
        r["x_cast"] = r["quantize_s"] / cast["quantize_s"] if cast else None
    summary["int8_wall_ok"] = {
        label: r["x_cast"] <= GOAL_INT8_VS_CAST
        for label, r in results.items()
        if r["method"] in ("int8", "int8-dynamic") and r["x_cast"] is not None
    }
    summary["peak_anon_ok"] = {label: r["quantize_peak_anon_bytes"] <= GOAL_ANON for label, r in results.items()}
    if not args.keep and not args.quick:
        shutil.rmtree(source, ignore_errors=True)

    if args.json:
        print(json.dumps({"results": results, "summary": summary}, indent=2))
        return 0
    print(f"{summary['model']}, {summary['threads']} threads, decode {tokens} tokens")
    print(
        f"{'case':<20} {'dtype':<9} {'size':>9} {'of fp32':>8} {'time':>8} {'x cast':>7} {'peak anon':>10} "
        f"{'decode':>10} {'max diff':>9} {'top-1':>6}"
    )
    for label, r in results.items():
        print(
            f"{label:<20} {r['dtype']:<9} {r['size_after'] / 1e9:>7.3f}GB {r['ratio_vs_fp32']:>8.3f} "
            f"{r['quantize_s']:>7.1f}s {_number(r['x_cast'], '.2f', 6)}x "
            f"{r['quantize_peak_anon_bytes'] / 2**30:>8.2f}GiB "
            f"{r['decode_tokens_per_s']:>6.2f}t/s {_number(r['max_logit_diff'], '.3g', 9)} "
            f"{_number(r['top1_agreement'], '.1%', 6)}"
        )
    if int8:
        print(
            f"\nGoal: int8 <= {GOAL_RATIO} of float32: {'met' if summary['met'] else 'NOT met'} "
            f"({int8['ratio_vs_fp32']:.3f})"
        )
    if "int8_vs_bf16_decode" in summary and not args.no_decode:
        print(f"CPU decode int8 / bf16: {summary['int8_vs_bf16_decode']:.2f}x")
    for label, ok in summary["int8_wall_ok"].items():
        verdict = "met" if ok else "NOT met"
        print(f"Goal: {label} wall <= {GOAL_INT8_VS_CAST}x the bf16 cast: {verdict} ({results[label]['x_cast']:.2f}x)")
    missed = [label for label, ok in summary["peak_anon_ok"].items() if not ok]
    print(f"Goal: peak anon <= 1 GiB: {'met' if not missed else 'NOT met by ' + ', '.join(missed)}")
    return 0


def _number(value, fmt: str, width: int) -> str:
    return format(format(value, fmt) if value is not None else "-", f">{width}")


if __name__ == "__main__":
    sys.exit(main())
