"""CPU decode, every contender side by side (issue 13): `python benchmarks/generate.py --cpu-decode`.

On the synthetic OLMo-1B-shaped checkpoint (random fp32 weights), greedy, --new-tokens new tokens,
--threads threads, each run a fresh process: one warm-up run of every contender (page cache; GGUF
conversions for `--engine llama.cpp`), then --repeats rounds in which each contender runs once,
median per contender. Contenders:
  - llama.cpp itself (llama-cpp-python) on q8_0, f16 and f32 GGUFs written by `olmo convert`;
  - `olmo generate` on torch: --dtype float32, --dtype bfloat16, --quantize int8 (dtype auto);
  - `olmo generate --engine llama.cpp`: --quantize int8 (q8_0), --dtype float16, --dtype bfloat16.
Measured: decode tokens/s after the first token (each process times its own generation), time to
first token inside generation, and from process start to the first byte of text on stdout (what a
user waits for, load included). The memory read bandwidth is measured in the same run, once a round
(a 1 GiB float32 sum with the same threads; median of the rounds); a contender's bound is that
bandwidth over the weight bytes it reads per token (GGUF: its tensors; torch: its linears, the tied
embedding read once as lm_head).
llama.cpp contenders are skipped with a note when llama-cpp-python is not installed.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Callable
from pathlib import Path

from common import env_for_benchmark, median
from generate import PROMPT, olmo_argv, run_header, run_once, synthetic_checkpoint, tokens_per_second_olmo

LLAMA_SCRIPT = textwrap.dedent("""
    import json, sys, time
    from llama_cpp import Llama

    path, prompt, n, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    llm = Llama(path, n_ctx=2048, n_batch=512, n_threads=threads, n_threads_batch=threads, verbose=False)
    ids = llm.tokenize(prompt.encode(), add_bos=True)
    start = time.perf_counter()
    first, count = None, 0
    for token in llm.generate(ids, temp=0.0, top_k=0, top_p=1.0, min_p=0.0, repeat_penalty=1.0):
        if first is None:
            first = time.perf_counter() - start
        sys.stdout.write(llm.detokenize([token]).decode(errors="replace"))
        sys.stdout.flush()
        count += 1
        if count >= n:
            break
    elapsed = time.perf_counter() - start
    sys.stdout.write("\\n")
    stats = {"new_tokens": count, "generate_seconds": elapsed, "first_token_seconds": first}
    sys.stderr.write("BENCH_STATS " + json.dumps(stats) + "\\n")
""")

BANDWIDTH_SCRIPT = textwrap.dedent("""
    import json, statistics, sys, time, torch
    torch.set_num_threads(int(sys.argv[1]))
    buffer = torch.empty(2**28, dtype=torch.float32).uniform_()  # 1 GiB, far beyond the caches
    buffer.sum()
    times = []
    for _ in range(7):
        start = time.perf_counter()
        buffer.sum()
        times.append(time.perf_counter() - start)
    print(json.dumps({"gb_per_s": buffer.numel() * 4 / statistics.median(times) / 1e9}))
""")

FIRST = re.compile(r"first token ([\d.]+) s")


def olmo_stats(stderr: str) -> dict:
    new_tokens, seconds = tokens_per_second_olmo(stderr)
    first = FIRST.search(stderr)
    if not first:
        raise SystemExit(f"no first-token time in olmo's --stats line:\n{stderr[-2000:]}")
    return {"new_tokens": new_tokens, "generate_seconds": seconds, "first_token_seconds": float(first.group(1))}


def script_stats(stderr: str) -> dict:
    line = next((line for line in stderr.splitlines() if line.startswith("BENCH_STATS ")), None)
    if line is None:
        raise SystemExit(f"no stats from the script:\n{stderr[-2000:]}")
    return json.loads(line.split(" ", 1)[1])


def torch_weight_bytes(shape: dict, kind: str) -> int:
    """Bytes of weights one decoded token reads in torch (norms left out: a few KiB)."""
    h, i, layers = shape["hidden_size"], shape["intermediate_size"], shape["num_hidden_layers"]
    linear = layers * (4 * h * h + 3 * h * i)
    rows = layers * (4 * h + 2 * i + h)  # per-row int8 scales
    lm_head = shape["vocab_size"] * h  # tied: the embedding, read whole as the output layer
    if kind == "float32":
        return 4 * (linear + lm_head)
    if kind == "bfloat16":
        return 2 * (linear + lm_head)
    return linear + 2 * rows + 2 * lm_head  # int8 linears, bf16 scales, lm_head unquantized in bf16


def gguf_weight_bytes(path: Path) -> int:
    import gguf

    return sum(int(tensor.n_bytes) for tensor in gguf.GGUFReader(str(path)).tensors)


def run_cpu_decode(args) -> None:
    shape, checkpoint = synthetic_checkpoint(args)
    work = args.dir
    env = env_for_benchmark(args.threads)
    env["OLMO_CACHE_DIR"] = str(work / ("olmo-cache-quick" if args.quick else "olmo-cache"))  # never ~/.cache
    n = str(args.new_tokens)
    olmo = olmo_argv(checkpoint, args.new_tokens)
    have_llama = importlib.util.find_spec("llama_cpp") is not None
    notes = []

    contenders: list[tuple[str, list[str], Callable[[str], dict], int]] = []  # label, argv, stats parser, bytes
    if have_llama:
        with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as script:
            script.write(LLAMA_SCRIPT)
        for outtype in ("q8_0", "f16", "f32"):
            gguf_file = work / f"{checkpoint.name}.{outtype}.gguf"
            if not gguf_file.is_file():  # the writer renames a finished file into place
                convert = [sys.executable, "-m", "olmo_cli", "convert", str(checkpoint), str(gguf_file)]
                subprocess.run([*convert, "--outtype", outtype], env=env, check=True, capture_output=True)
            argv = [sys.executable, script.name, str(gguf_file), PROMPT, n, str(args.threads)]
            contenders.append((f"llama.cpp {outtype}", argv, script_stats, gguf_weight_bytes(gguf_file)))
    else:
        notes.append("llama-cpp-python is not installed: the llama.cpp contenders are skipped")
    torch_cases = (
        ("float32", ["--dtype", "float32"]),
        ("bfloat16", ["--dtype", "bfloat16"]),
        ("int8", ["--quantize", "int8"]),
    )
    for kind, extra in torch_cases:
        contenders.append((f"olmo torch {kind}", olmo + extra, olmo_stats, torch_weight_bytes(shape, kind)))
    if have_llama:
        engine_cases = (
            ("q8_0", ["--quantize", "int8"]),
            ("f16", ["--dtype", "float16"]),
            ("bf16", ["--dtype", "bfloat16"]),
        )
        for outtype, extra in engine_cases:
            argv = [*olmo, "--engine", "llama.cpp", *extra]
            contenders.append((f"olmo --engine llama.cpp {outtype}", argv, olmo_stats, 0))  # bytes: after warm-up

    if args.only:  # e.g. --only "q8_0" for a closer look at two contenders, with more --repeats
        contenders = [c for c in contenders if any(part in c[0] for part in args.only.split(","))]
    bandwidth = []
    figures: dict[str, dict] = {}
    runs: dict[str, list[dict]] = {label: [] for label, *_ in contenders}
    try:
        for _label, argv, _parse, _bytes in contenders:
            run_once(argv, env)  # warms the page cache (and converts), not counted
        # Round by round, every contender once per round: a slow spell of this shared machine hits
        # all of them alike instead of whichever ran then.
        for _ in range(args.repeats):
            bandwidth.append(_bandwidth(env, args.threads))
            for label, argv, parse, _ in contenders:
                result = run_once(argv, env)
                runs[label].append(
                    {**parse(result["stderr"]), "process_first_token_seconds": result["first_token_seconds"]}
                )
        for label, _, _, weight_bytes in contenders:
            if not weight_bytes:  # the engine's cached GGUF, named in its stderr
                cached = sorted(Path(env["OLMO_CACHE_DIR"], "gguf").glob(f"*.{label.split()[-1]}.gguf"))
                weight_bytes = gguf_weight_bytes(cached[-1])
            figures[label] = _summarize(runs[label], weight_bytes)
    finally:
        if have_llama:
            os.unlink(script.name)

    gb_per_s = median(bandwidth)
    for fig in figures.values():
        fig["bound_tokens_per_second"] = gb_per_s * 1e9 / fig["weight_bytes"]
        fig["fraction_of_bound"] = fig["decode_tokens_per_second"] / fig["bound_tokens_per_second"]
    summary = {
        **run_header(args),
        "read_bandwidth_gb_per_s": gb_per_s,
        "read_bandwidth_samples": bandwidth,
        "figures": figures,
        "notes": notes,
        "goals": _goals(figures),
    }
    if args.json:
        print(json.dumps(summary, indent=2))
        return
    _print(summary)


def _bandwidth(env: dict, threads: int) -> float:
    done = subprocess.run(
        [sys.executable, "-c", BANDWIDTH_SCRIPT, str(threads)], env=env, capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])["gb_per_s"]


def _summarize(runs: list[dict], weight_bytes: int) -> dict:
    for run in runs:
        decode_seconds = run["generate_seconds"] - run["first_token_seconds"]
        run["decode_tokens_per_second"] = (run["new_tokens"] - 1) / decode_seconds if decode_seconds > 0 else 0.0
    keys = ("decode_tokens_per_second", "first_token_seconds", "process_first_token_seconds", "new_tokens")
    summary: dict = {key: median(run[key] for run in runs) for key in keys}
    summary["runs"] = [round(run["decode_tokens_per_second"], 2) for run in runs]
    summary["weight_bytes"] = weight_bytes
    return summary


def _goals(figures: dict) -> dict:
    """Issue 13's goals, each where the contenders it compares ran (--only may leave some out)."""
    rates = {label: fig["decode_tokens_per_second"] for label, fig in figures.items()}
    goals: dict[str, object] = {}

    def at_least(ours: str, factor: float, theirs: str, name: str = "") -> None:
        if ours in rates and theirs in rates:
            times = f"{factor}x " if factor != 1 else ""
            goals[name or f"{ours} >= {times}{theirs}"] = rates[ours] >= factor * rates[theirs]

    ours = [label for label in rates if label.startswith("olmo")]
    if ours:
        fastest = max(ours, key=rates.__getitem__)
        at_least(fastest, 1, "llama.cpp q8_0", f"fastest olmo path ({fastest}) >= llama.cpp q8_0")
    at_least("olmo torch bfloat16", 1, "llama.cpp f16")
    at_least("olmo --engine llama.cpp bf16", 1, "llama.cpp f16")
    at_least("olmo torch int8", 1.6, "olmo torch bfloat16")
    at_least("olmo --engine llama.cpp q8_0", 1.6, "olmo torch bfloat16")
    at_least("olmo --engine llama.cpp q8_0", 1.6, "olmo --engine llama.cpp bf16")
    if "olmo torch float32" in figures:  # today's default on the CPU
        today = figures["olmo torch float32"]["process_first_token_seconds"]
        for label in ours:
            goals[f"{label}: first byte no later than today's default (torch float32)"] = (
                figures[label]["process_first_token_seconds"] <= today
            )
    return goals


def _print(summary: dict) -> None:
    print(
        f"{summary['model']}, CPU, {summary['threads']} threads, {summary['new_tokens']} new tokens greedy, "
        f"median of {summary['repeats']}; memory read bandwidth {summary['read_bandwidth_gb_per_s']:.1f} GB/s "
        f"(samples {', '.join(f'{v:.1f}' for v in summary['read_bandwidth_samples'])})"
    )
    header = f"{'contender':32}{'weights GB':>11}{'decode tok/s':>13}{'bound':>7}{'of bound':>9}"
    print(header + f"{'TTFT s':>8}{'1st byte s':>11}  runs")
    for label, fig in summary["figures"].items():
        print(
            f"{label:32}{fig['weight_bytes'] / 1e9:11.2f}{fig['decode_tokens_per_second']:13.2f}"
            f"{fig['bound_tokens_per_second']:7.1f}{fig['fraction_of_bound']:9.2f}"
            f"{fig['first_token_seconds']:8.3f}{fig['process_first_token_seconds']:11.2f}  {fig['runs']}"
        )
    for note in summary["notes"]:
        print(f"note: {note}")
    for goal, met in summary["goals"].items():
        print(f"{'met    ' if met else 'NOT met'}  {goal}")
