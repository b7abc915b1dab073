"""Benchmark: `olmo generate` vs a plain transformers script, on the CPU, same checkpoint, same run.

Both run as fresh processes on a synthetic OLMo-1B-shaped checkpoint (random weights), greedy, 32
new tokens, streaming each token to stdout as soon as it exists. Measured from outside:
  - time to first token: from process start to the first byte of the completion on stdout;
  - tokens/s: new tokens / time in generate(), reported by each process itself;
  - peak anonymous memory (RssAnon) of the process.
Goals (issue 4): olmo >= 0.95x the plain script's tokens/s, and no slower to the first token.

    python benchmarks/generate.py --quick          # small model, a few seconds
    flock /tmp/olmo-heavy.lock python benchmarks/generate.py   # the OLMo-1B shape (~4.7 GB fp32)

`--cpu-decode` (issue 13) runs every CPU decode contender side by side instead: llama.cpp itself
(llama-cpp-python on GGUFs written by `olmo convert`) in q8_0/f16/f32, `olmo generate` in fp32/bf16/
int8 (torch) and `olmo generate --engine llama.cpp` in q8_0/f16/bf16, with the memory read bandwidth
measured in the same run; see benchmarks/cpu_decode.py.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import OLMO_1B, QUICK, PeakAnonMemory, env_for_benchmark, median, synthetic_hf_1b

PROMPT = "Language modeling is the task of"

# The plain transformers way: from_pretrained + generate, tokens written out as they come.
PLAIN_SCRIPT = textwrap.dedent("""
    import json, sys, time
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path, prompt, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype="auto")
    model.eval()

    class Streamer:
        def __init__(self):
            self.prompt_seen = False
        def put(self, value):
            if not self.prompt_seen:
                self.prompt_seen = True
                return
            sys.stdout.write(tokenizer.decode(value.reshape(-1).tolist()))
            sys.stdout.flush()
        def end(self):
            pass

    inputs = tokenizer(prompt, return_tensors="pt")
    start = time.perf_counter()
    with torch.inference_mode():
        out = model.generate(**inputs, max_new_tokens=n, do_sample=False, streamer=Streamer(),
                             pad_token_id=tokenizer.pad_token_id)
    elapsed = time.perf_counter() - start
    new = out.shape[1] - inputs["input_ids"].shape[1]
    sys.stdout.write("\\n")
    sys.stderr.write("PLAIN_STATS " + json.dumps({"new_tokens": new, "generate_seconds": elapsed}) + "\\n")
""")

OLMO_STATS = re.compile(r"(\d+) tokens in ([\d.]+) s")


def run_once(argv: list[str], env: dict) -> dict:
    """Start `argv`, time its first stdout byte, sample its memory, return what it measured."""
    start = time.perf_counter()
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    memory = PeakAnonMemory(process.pid).start()
    first = process.stdout.read(1)
    first_byte = time.perf_counter() - start
    rest, err = process.communicate()
    total = time.perf_counter() - start
    memory.stop()
    err_text = err.decode(errors="replace")
    if process.returncode != 0 or not first:
        raise SystemExit(f"{argv[:3]} failed (exit {process.returncode}):\n{err_text[-3000:]}")
    return {
        "first_token_seconds": first_byte,
        "wall_seconds": total,
        "stderr": err_text,
        "peak_anon_mib": memory.peak_bytes / 2**20,
        "text": (first + rest).decode(errors="replace"),
    }


def synthetic_checkpoint(args) -> tuple[dict, Path]:
    """The shape and checkpoint in --dir that both modes of this script run on (made once, reused)."""
    shape = QUICK if args.quick else OLMO_1B
    return shape, synthetic_hf_1b(args.dir / ("synthetic-quick" if args.quick else "synthetic-1b-fp32"), shape=shape)


def olmo_argv(checkpoint: Path, new_tokens: int) -> list[str]:
    """`olmo generate`, greedy on the CPU with --stats, in a fresh interpreter."""
    command = [sys.executable, "-m", "olmo_cli", "generate", str(checkpoint), "-p", PROMPT, "--greedy"]
    return [*command, "-n", str(new_tokens), "--stats", "--device", "cpu"]


def run_header(args) -> dict:
    """What both modes' summaries start with: the model and the run's settings."""
    model = "quick" if args.quick else "OLMo-1B shape"
    return {"model": model, "new_tokens": args.new_tokens, "threads": args.threads, "repeats": args.repeats}


def tokens_per_second_olmo(stderr: str) -> tuple[int, float]:
    match = OLMO_STATS.search(stderr)
    if not match:
        raise SystemExit(f"no --stats line in olmo's stderr:\n{stderr[-2000:]}")
    return int(match.group(1)), float(match.group(2))


def tokens_per_second_plain(stderr: str) -> tuple[int, float]:
    line = next(line for line in stderr.splitlines() if line.startswith("PLAIN_STATS "))
    stats = json.loads(line.split(" ", 1)[1])
    return stats["new_tokens"], stats["generate_seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small model of the same kind (seconds, not minutes)")
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "olmo-bench")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument(
        "--only", default="", help="--cpu-decode: the contenders whose label holds one of these (comma-separated)"
    )
    parser.add_argument(
        "--cpu-decode", action="store_true", help="every CPU decode contender (issue 13), see cpu_decode.py"
    )
    args = parser.parse_args()
    if args.cpu_decode:
        from cpu_decode import run_cpu_decode

        run_cpu_decode(args)
        return

    _, checkpoint = synthetic_checkpoint(args)
    env = env_for_benchmark(args.threads)
    n = str(args.new_tokens)
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as script:
        script.write(PLAIN_SCRIPT)
    contenders = {
        # The checkpoint's own dtype, as plain transformers loads it: on a CPU with native bf16,
        # olmo's --dtype auto would pick bf16, and the texts would differ for that reason alone.
        "olmo": ([*olmo_argv(checkpoint, args.new_tokens), "--dtype", "float32"], tokens_per_second_olmo),
        "transformers": ([sys.executable, script.name, str(checkpoint), PROMPT, n], tokens_per_second_plain),
    }
    runs: dict[str, list[dict]] = {name: [] for name in contenders}
    texts = {}
    try:
        for repeat in range(args.repeats + 1):  # round 0 warms the page cache, not counted
            for name, (argv, parse) in contenders.items():
                result = run_once(argv, env)
                new_tokens, seconds = parse(result["stderr"])
                result.update(new_tokens=new_tokens, tokens_per_second=new_tokens / seconds)
                texts[name] = result.pop("text").strip()
                result.pop("stderr")
                if repeat:
                    runs[name].append(result)
    finally:
        os.unlink(script.name)

    figures = {
        name: {
            key: median(r[key] for r in results)
            for key in ("tokens_per_second", "first_token_seconds", "wall_seconds", "peak_anon_mib")
        }
        for name, results in runs.items()
    }
    olmo, plain = figures["olmo"], figures["transformers"]
    summary = {
        **run_header(args),
        "figures": figures,
        "tokens_per_second_ratio": olmo["tokens_per_second"] / plain["tokens_per_second"],
        "first_token_ratio": olmo["first_token_seconds"] / plain["first_token_seconds"],
        "same_text": texts["olmo"] == texts["transformers"],
    }
    summary["goals_met"] = {
        "tokens_per_second >= 0.95x": summary["tokens_per_second_ratio"] >= 0.95,
        "first token no slower": summary["first_token_ratio"] <= 1.0,
    }
    if args.json:
        print(json.dumps(summary, indent=2))
        return
    print(
        f"{summary['model']}, CPU, {args.threads} threads, {args.new_tokens} new tokens greedy, "
        f"median of {args.repeats}"
    )
    print(f"{'':14}{'tokens/s':>10}{'first token s':>15}{'wall s':>9}{'peak anon MiB':>15}")
    for name, fig in figures.items():
        print(
            f"{name:14}{fig['tokens_per_second']:10.2f}{fig['first_token_seconds']:15.2f}"
            f"{fig['wall_seconds']:9.2f}{fig['peak_anon_mib']:15.0f}"
        )
    print(
        f"olmo/transformers tokens/s: {summary['tokens_per_second_ratio']:.3f} (goal >= 0.95); "
        f"first token: {summary['first_token_ratio']:.3f}x the plain script's time (goal <= 1.0); "
        f"same text: {summary['same_text']}"
    )


if __name__ == "__main__":
    main()
