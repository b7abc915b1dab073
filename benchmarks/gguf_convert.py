"""Benchmark: `olmo convert --to gguf` vs llama.cpp's own converter, and llama.cpp decode speed.
(Not `gguf.py`: run as a script from benchmarks/, that name would shadow the gguf package.)

    python benchmarks/gguf_convert.py --quick                          # small model, a minute
    flock /tmp/olmo-heavy.lock python benchmarks/gguf_convert.py       # OLMo-1B shape: ~4.7 GB fp32 HF source,
                                                               # ~10 GB disk, a few minutes

On one synthetic OLMo-1B-shaped transformers checkpoint (random weights, fp32, tied), in the same
run, each contender a fresh process whose RssAnon is sampled from outside:
- `olmo convert SRC out.gguf --outtype q8_0`;
- llama.cpp's `convert_hf_to_gguf.py SRC --outtype q8_0`, from the llama-cpp-python sdist
  (its own gguf-py on PYTHONPATH), the tool users run today;
- whether the two q8_0 files hold the same tensors (byte for byte);
- llama.cpp's decode tokens/s (llama-cpp-python, greedy, 64 tokens) on our q8_0 and f16 outputs,
  next to `olmo generate --stats` (transformers, float32 and bfloat16) on the source.
Goals (issue 14): peak anonymous memory <= 1 GiB, wall <= 2x llama.cpp's converter.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tarfile
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import OLMO_1B, QUICK, PeakAnonMemory, env_for_benchmark, synthetic_hf_1b

ROOT = Path(__file__).resolve().parent.parent
GIB = 1024**3
GOAL_ANON, GOAL_RATIO = 1 * GIB, 2.0
SDIST = Path(os.environ.get("OLMO_CI_CACHE", Path.home() / ".cache" / "olmo-ci")) / "sdist"
VENDOR = "llama_cpp_python-0.3.36/vendor/llama.cpp/"
PROMPT = "Language modeling is the task of"
NEW_TOKENS = 64

DECODE = textwrap.dedent("""
    import json, sys, time
    import numpy as np
    from llama_cpp import Llama
    path, prompt, n, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    llm = Llama(path, n_ctx=512, n_threads=threads, verbose=False)
    ids = llm.tokenize(prompt.encode(), add_bos=False)
    llm.eval(ids)
    start = time.perf_counter()
    for _ in range(n):
        token = int(np.argmax(llm.scores[llm.n_tokens - 1]))
        llm.eval([token])
    seconds = time.perf_counter() - start
    print(json.dumps({"tokens_per_second": n / seconds}))
    llm.close()
""")


def measure(argv: list[str], env: dict[str, str]) -> dict:
    start = time.perf_counter()
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=ROOT)
    memory = PeakAnonMemory(process.pid).start()
    out, err = process.communicate()
    wall = time.perf_counter() - start
    memory.stop()
    if process.returncode != 0:
        raise SystemExit(f"{argv[:4]} failed (exit {process.returncode}):\n{err.decode(errors='replace')[-3000:]}")
    return {"wall_seconds": wall, "peak_anon_bytes": memory.peak_bytes, "stdout": out.decode(), "stderr": err.decode()}


def llama_cpp_converter(work: Path) -> Path:
    """convert_hf_to_gguf.py with its conversion/ package and gguf-py, unpacked from the cached sdist."""
    target = work / "llama.cpp"
    script = target / VENDOR / "convert_hf_to_gguf.py"
    if not script.exists():
        archive = next(SDIST.glob("llama_cpp_python-0.3.36.tar.gz"), None)
        if archive is None:
            raise SystemExit(f"no llama-cpp-python sdist in {SDIST} (scripts/test-llama-cpp fetches it)")
        wanted = tuple(VENDOR + p for p in ("convert_hf_to_gguf.py", "conversion/", "gguf-py/gguf/"))
        with tarfile.open(archive) as tar:
            members = [m for m in tar.getmembers() if m.name.startswith(wanted) and (m.isfile() or m.isdir())]
            tar.extractall(target, members=members, filter="data")
    return target / VENDOR


def same_tensors(a: Path, b: Path) -> tuple[int, int]:
    import gguf
    import numpy as np

    ours = {t.name: t for t in gguf.GGUFReader(a).tensors}
    theirs = {t.name: t for t in gguf.GGUFReader(b).tensors}
    same = sum(
        1
        for name, t in ours.items()
        if name in theirs
        and t.tensor_type == theirs[name].tensor_type
        and np.array_equal(np.asarray(t.data), np.asarray(theirs[name].data))
    )
    return same, len(ours)


def decode_speeds(work: Path, src: Path, env: dict[str, str], threads: int) -> dict:
    """llama.cpp's decode tokens/s on our q8_0 and f16 files, `olmo generate`'s on the source."""
    speeds: dict = {}
    for name in ("q8_0", "f16"):
        argv = [sys.executable, "-c", DECODE, str(work / f"olmo-{name}.gguf"), PROMPT, str(NEW_TOKENS), str(threads)]
        speeds[f"llama_cpp_decode_{name}_tokens_per_second"] = json.loads(measure(argv, env)["stdout"])[
            "tokens_per_second"
        ]
    for dtype in ("float32", "bfloat16"):
        argv = [sys.executable, "-m", "olmo_cli", "generate", str(src), "-p", PROMPT, "--greedy"]
        run = measure([*argv, "-n", str(NEW_TOKENS), "--stats", "--dtype", dtype], env)
        found = re.search(r"decode ([\d.]+) tokens/s", run["stderr"]) or re.search(
            r"\(([\d.]+) tokens/s\)", run["stderr"]
        )
        speeds[f"olmo_generate_{dtype}_tokens_per_second"] = float(found.group(1)) if found else None
    return speeds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a small model with the same shape rules")
    parser.add_argument("--work", default="/tmp/olmo-bench-gguf", help="where the checkpoint and outputs go")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--decode-only", action="store_true", help="only the decode speeds, on the outputs of an earlier run in --work"
    )
    args = parser.parse_args()

    work = Path(args.work) / ("quick" if args.quick else "1b")
    work.mkdir(parents=True, exist_ok=True)
    src = synthetic_hf_1b(work / "hf", "float32", shape=QUICK if args.quick else OLMO_1B)
    config = json.loads((src / "config.json").read_text())
    if "architectures" not in config:  # llama.cpp's converter picks its class by this field
        config["architectures"] = ["OlmoForCausalLM"]
        (src / "config.json").write_text(json.dumps(config, indent=2))
    env = {**env_for_benchmark(args.threads), "PYTHONPATH": str(ROOT)}
    olmo = [sys.executable, "-m", "olmo_cli", "convert", str(src)]
    results: dict = {"threads": args.threads, "shape": "quick" if args.quick else "OLMo-1B", "source_dtype": "float32"}
    if args.decode_only:
        results.update(decode_speeds(work, src, env, args.threads))
        print(json.dumps(results, indent=2))
        return
    converter = llama_cpp_converter(work)
    for stale in work.glob("*.gguf"):
        stale.unlink()

    results["olmo_q8_0"] = measure([*olmo, str(work / "olmo-q8_0.gguf"), "--outtype", "q8_0"], env)
    llama_env = {**env, "PYTHONPATH": str(converter / "gguf-py")}
    llama_argv = [sys.executable, str(converter / "convert_hf_to_gguf.py"), str(src), "--outtype", "q8_0"]
    results["llama_cpp_q8_0"] = measure([*llama_argv, "--outfile", str(work / "llama-q8_0.gguf")], llama_env)
    results["olmo_f16"] = measure([*olmo, str(work / "olmo-f16.gguf"), "--outtype", "f16"], env)
    same, total = same_tensors(work / "olmo-q8_0.gguf", work / "llama-q8_0.gguf")
    results["identical_q8_0_tensors"] = f"{same}/{total}"
    results.update(decode_speeds(work, src, env, args.threads))
    for key in ("olmo_q8_0", "llama_cpp_q8_0", "olmo_f16"):
        results[key] = {k: v for k, v in results[key].items() if k not in ("stdout", "stderr")}
    ratio = results["olmo_q8_0"]["wall_seconds"] / results["llama_cpp_q8_0"]["wall_seconds"]
    results["wall_ratio_vs_llama_cpp"] = ratio
    results["goals_met"] = {
        "peak_anon_le_1GiB": results["olmo_q8_0"]["peak_anon_bytes"] <= GOAL_ANON,
        "wall_le_2x_llama_cpp": ratio <= GOAL_RATIO,
    }
    if args.json:
        print(json.dumps(results, indent=2))
        return
    for key in ("olmo_q8_0", "llama_cpp_q8_0", "olmo_f16"):
        r = results[key]
        print(f"{key:16} wall {r['wall_seconds']:7.1f} s   peak anon {r['peak_anon_bytes'] / 2**20:8.0f} MiB")
    print(f"wall ratio olmo/llama.cpp: {ratio:.2f}   identical q8_0 tensors: {results['identical_q8_0_tensors']}")
    for key, value in results.items():
        if key.endswith("tokens_per_second"):
            print(f"{key:48} {value if value is None else round(value, 1)}")
    print("goals:", results["goals_met"])


if __name__ == "__main__":
    main()
