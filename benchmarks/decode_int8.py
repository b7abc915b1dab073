"""CPU decode speed of int8 weight-only linears: torch's int8 GEMM (what `olmo generate --quantize int8`
now loads) against torchao's dequantize-per-call path and the float32 / bfloat16 models, one run.

    python benchmarks/decode_int8.py --quick     # a 4-layer d=256 model (seconds)
    flock /tmp/olmo-heavy.lock python benchmarks/decode_int8.py   # d=1024, 8 layers (~0.9 GB fp32)

Each contender is a child process (same thread count) that loads the synthetic checkpoint with
`olmo_cli.loading.load_model` (the `olmo generate` path), warms up, then decodes --tokens tokens
greedily; tokens/s is measured inside the child around generate(). "torchao int8" loads the same
quantized model but skips the swap (the path before it). The bandwidth bound is the bytes of the
weights read per token (every linear and the lm_head) over --bandwidth GB/s (default 15, the
middle of what was measured on this machine: 11-21 GB/s).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import OLMO_1B, QUICK, env_for_benchmark, synthetic_hf_1b

MID = dict(
    OLMO_1B, hidden_size=1024, num_hidden_layers=8, num_attention_heads=8, num_key_value_heads=8, intermediate_size=4096
)

CHILD = textwrap.dedent("""
    import json, sys, time, torch
    from olmo_cli.loading.model import load_model, load_weights
    from olmo_cli.loading.cpu_int8 import Int8PackedLinear
    from olmo_cli.quantize.methods import quantization_config
    path, dtype, quant, tokens, unpacked = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5] == "1"
    quant = None if quant == "none" else quant
    if unpacked:  # the model as transformers + torchao give it, without the swap
        torch_dtype = getattr(torch, dtype)
        qconfig = quantization_config(quant, compute_dtype=torch_dtype)
        model = load_weights(path, torch_dtype, torch.device("cpu"), qconfig)
    else:
        model = load_model(path, dtype=dtype, device="cpu", quantization=quant).model
    packed = sum(isinstance(m, Int8PackedLinear) for m in model.modules())
    weight_bytes = 0
    for module in model.modules():
        if isinstance(module, Int8PackedLinear):
            weight_bytes += module.qdata.numel() + module.scale.numel() * module.scale.element_size()
        elif isinstance(module, torch.nn.Linear):
            w = module.weight
            weight_bytes += w.qdata.numel() if hasattr(w, "qdata") else w.numel() * w.element_size()
    prompt = torch.tensor([[510, 3158, 8516, 369, 253, 990, 273, 247]])
    kwargs = dict(do_sample=False, min_new_tokens=tokens, max_new_tokens=tokens, pad_token_id=1)
    with torch.inference_mode():
        model.generate(prompt, **dict(kwargs, min_new_tokens=4, max_new_tokens=4))
        start = time.perf_counter()
        out = model.generate(prompt, **kwargs)
        seconds = time.perf_counter() - start
    print(json.dumps({"tokens": out.shape[1] - prompt.shape[1], "seconds": seconds, "packed": packed,
                      "weight_bytes": weight_bytes, "threads": torch.get_num_threads()}))
""")

CASES = (
    ("float32", "float32", "none", False),
    ("bfloat16", "bfloat16", "none", False),
    ("int8 packed, float32 activations", "float32", "int8", False),
    ("int8 packed, bfloat16 activations", "bfloat16", "int8", False),
    ("torchao int8 (before), float32", "float32", "int8", True),
    ("torchao int8 (before), bfloat16", "bfloat16", "int8", True),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--bandwidth", type=float, default=15.0, help="GB/s for the bandwidth bound")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "olmo-bench-decode-int8")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    shape = QUICK if args.quick else MID
    source = synthetic_hf_1b(args.work / ("quick" if args.quick else "mid"), "float32", shape=shape)
    env = env_for_benchmark(args.threads)
    results = []
    for label, dtype, quant, unpacked in CASES:
        done = subprocess.run(
            [sys.executable, "-c", CHILD, str(source), dtype, quant, str(args.tokens), "1" if unpacked else "0"],
            env=env,
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            raise SystemExit(f"{label} failed:\n{done.stderr[-3000:]}")
        r = json.loads(done.stdout.strip().splitlines()[-1])
        r["label"] = label
        r["tokens_per_s"] = r["tokens"] / r["seconds"]
        r["bound_tokens_per_s"] = args.bandwidth * 1e9 / r["weight_bytes"]
        results.append(r)
    by = {r["label"]: r for r in results}
    bf16 = by["bfloat16"]["tokens_per_s"]
    if args.json:
        print(json.dumps({"shape": shape, "results": results}, indent=2))
        return
    print(f"{'quick' if args.quick else 'd=1024, 8 layers'}; {args.threads} threads; {args.tokens} greedy tokens")
    print(f"{'contender':36} {'weights MB':>10} {'tokens/s':>9} {'x bf16':>7} {'of bound':>9} {'swapped':>8}")
    for r in results:
        print(
            f"{r['label']:36} {r['weight_bytes'] / 1e6:10.0f} {r['tokens_per_s']:9.2f} {r['tokens_per_s'] / bf16:7.2f} "
            f"{r['tokens_per_s'] / r['bound_tokens_per_s']:9.2f} {r['packed']:8d}"
        )


if __name__ == "__main__":
    main()
