"""On a CUDA machine: int4 and int8 quantize / save / reload / generate, tiny and OLMo-1B-shaped.

    python benchmarks/quantize_gpu_check.py [--skip-1b] [--json]

Needs torch, transformers and torchao (the olmo_cli package from this checkout is used when its
imports work; otherwise the same torchao configs are applied through transformers directly).
Without CUDA it says so and exits 0. For each model and method it reports: the output size as a
fraction of the float32 weights, quantize seconds, whether a fresh process reloading the output on
the GPU gets exactly the logits of the in-memory quantized model, and greedy decode tokens/s on
the GPU (bf16 as the baseline).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(HERE), str(ROOT)]

from common import OLMO_1B, QUICK, synthetic_hf_1b  # noqa: E402

TINY = dict(QUICK, num_hidden_layers=2, max_position_embeddings=512)

RELOAD = r"""
import json, sys, time, torch
from transformers import AutoModelForCausalLM
path, ids_file, logits_file, tokens = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
model = AutoModelForCausalLM.from_pretrained(path, device_map="cuda").eval()
ids = torch.load(ids_file).cuda()
with torch.inference_mode():
    torch.save(model(ids).logits.float().cpu(), logits_file)
    kwargs = dict(do_sample=False, pad_token_id=1)
    model.generate(ids[:, :8], min_new_tokens=8, max_new_tokens=8, **kwargs)  # warm-up
    torch.cuda.synchronize(); start = time.perf_counter()
    out = model.generate(ids[:, :8], min_new_tokens=tokens, max_new_tokens=tokens, **kwargs)
    torch.cuda.synchronize(); seconds = time.perf_counter() - start
weight = model.model.layers[0].mlp.up_proj.weight
print(json.dumps({"tokens_per_s": (out.shape[1] - 8) / seconds, "dtype": str(model.dtype),
                  "weight_type": type(getattr(weight, "data", weight)).__name__,
                  "gpu_mem_gib": torch.cuda.max_memory_allocated() / 2**30}))
"""


def make_source(path: Path, shape: dict) -> Path:
    return synthetic_hf_1b(path, "float32", shape=shape)


def weights_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.glob("*.safetensors"))


def quantize_with_olmo(src: Path, dst: Path, method: str) -> dict | None:
    try:
        from olmo_cli.quantize.run import quantize
    except Exception as error:  # a bare CUDA box may lack the CLI's own dependencies
        print(f"  (olmo_cli not importable here: {type(error).__name__}: {error}; using transformers directly)")
        return None
    return quantize(str(src), dst, method=method, force=True).as_dict()


def torchao_config(method: str):
    try:
        from olmo_cli.quantize.methods import quantization_config

        return quantization_config(method)
    except ImportError:
        from torchao.quantization import Int4WeightOnlyConfig, Int8WeightOnlyConfig
        from transformers import TorchAoConfig

        if method == "int8":
            return TorchAoConfig(Int8WeightOnlyConfig())
        return TorchAoConfig(Int4WeightOnlyConfig(group_size=128, int4_packing_format="tile_packed_to_4d"))


def in_memory(src: Path, method: str, ids):
    import torch
    from transformers import AutoModelForCausalLM

    kwargs = {"dtype": torch.bfloat16, "device_map": "cuda"}
    if method != "bf16":
        kwargs["quantization_config"] = torchao_config(method)
    model = AutoModelForCausalLM.from_pretrained(src, **kwargs).eval()
    with torch.inference_mode():
        logits = model(ids.cuda()).logits.float().cpu()
    return model, logits


def check(src: Path, work: Path, method: str, ids, tokens: int) -> dict:
    import torch

    dst = work / f"{src.name}-{method}"
    shutil.rmtree(dst, ignore_errors=True)
    start = time.perf_counter()
    report = quantize_with_olmo(src, dst, method) if method != "bf16" else None
    model, logits = in_memory(src, method, ids)
    if report is None:
        model.save_pretrained(dst)
        for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json"):
            if (src / name).exists():
                shutil.copy(src / name, dst / name)
    seconds = time.perf_counter() - start
    del model
    torch.cuda.empty_cache()
    torch.save(ids, work / "ids.pt")
    done = subprocess.run(
        [sys.executable, "-c", RELOAD, str(dst), str(work / "ids.pt"), str(work / "logits.pt"), str(tokens)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if done.returncode != 0:
        return {
            "method": method,
            "error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed",
            "stderr_tail": done.stderr[-1500:],
        }
    reload = json.loads(done.stdout.strip().splitlines()[-1])
    reloaded = torch.load(work / "logits.pt")
    result = {
        "method": method,
        "ratio_vs_fp32": weights_bytes(dst) / weights_bytes(src),
        "seconds": seconds,
        "reload_logits_equal": bool(torch.equal(reloaded, logits)),
        "reload_max_diff": (reloaded - logits).abs().max().item(),
        **reload,
    }
    if report:
        result.update(
            {k: report[k] for k in ("max_logit_diff", "top1_agreement", "ppl_before", "ppl_after", "seconds")}
        )
    shutil.rmtree(dst, ignore_errors=True)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-1b", action="store_true")
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    try:
        import torch
    except ImportError:
        print("torch is not installed; nothing to check")
        return 0
    if not torch.cuda.is_available():
        print("no CUDA device; nothing to check (int4 needs CUDA)")
        return 0
    import torchao
    import transformers

    print(
        f"torch {torch.__version__}, transformers {transformers.__version__}, torchao {torchao.__version__}, "
        f"{torch.cuda.get_device_name(0)}",
        flush=True,
    )
    work = Path(tempfile.mkdtemp(prefix="olmo-gpu-check-"))
    models = [("tiny", TINY)] + ([] if args.skip_1b else [("olmo-1b-shape", OLMO_1B)])
    results = []
    try:
        for label, shape in models:
            src = make_source(work / label, shape)
            ids = torch.randint(2, 50000, (1, 128), generator=torch.Generator().manual_seed(0))
            for method in ("int4", "int8", "bf16"):
                print(f"{label} {method} ...", flush=True)
                try:
                    result = {"model": label, **check(src, work, method, ids, args.tokens)}
                except Exception as error:  # keep going: one failing method should not hide the others
                    result = {"model": label, "method": method, "error": f"{type(error).__name__}: {error}"[:2000]}
                results.append(result)
                print("  " + json.dumps(result), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        print(json.dumps(results, indent=2))
    ok = all("error" not in r and r["reload_logits_equal"] for r in results)
    print("all reloads matched" if ok else "SOME CHECKS FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
