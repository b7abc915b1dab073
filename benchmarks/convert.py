"""Convert a synthetic OLMo-1B-shaped native checkpoint to transformers: wall time and peak anonymous memory.

    python benchmarks/convert.py --quick                        # d_model 512, 4 layers (seconds)
    flock /tmp/olmo-heavy.lock python benchmarks/convert.py     # OLMo-1B shape: ~4.7 GB model.pt,
                                                                # ~10 GB RAM for the baseline, ~20 GB disk

Contenders, each a child process whose RssAnon (/proc/<pid>/status) is sampled in a thread, in
the same run on the same (page-cached) source file:
- `cp` of model.pt (the floor: reading and writing the bytes once);
- the startup alone (interpreter + torch import), the fixed part of every `olmo convert`;
- `olmo convert SRC DST` to float32 and to bfloat16 (streaming, one tensor at a time);
- a load-everything baseline: `torch.load` of the whole model.pt, split into transformers keys
  (cloned, as save_file refuses shared storage), then `safetensors.torch.save_file`;
- the way back, HF (the float32 output) -> native model.pt, uncast (every tensor, the fused
  q/k/v and up/gate included, a kernel file-range copy) and cast to bfloat16.
Goals (issue 3): peak anonymous memory <= 1 GiB for every output dtype; wall <= 2x the cp.
Goals (issue 13) for HF -> native float32: <= 1.5x the cp, peak anonymous memory <= 1 GiB.
The source is generated once, tensor by tensor (never the whole model in memory: the zip
writer streams it into model.pt), and removed at the end unless --keep.
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
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from common import PeakAnonMemory, env_for_benchmark

GIB = 1024**3
GOAL_ANON = 1 * GIB
GOAL_CP_RATIO = 2.0
GOAL_TO_NATIVE_CP_RATIO = 1.5
TO_NATIVE = "HF -> native: convert --to native"
# OLMo-1B (docs/REFERENCE.md 1 and 3.1): d_model 2048, 16 layers, 16 heads, mlp_ratio 8, tied, 50304 rows.
OLMO_1B = dict(d_model=2048, n_layers=16, n_heads=16, mlp_ratio=8, vocab_size=50280, embedding_size=50304)
QUICK = dict(OLMO_1B, d_model=512, n_layers=4, n_heads=8)

BASELINE = r"""
import sys, torch, yaml
from safetensors.torch import save_file
src, dst = sys.argv[1], sys.argv[2]
state = torch.load(src + "/model.pt", map_location="cpu", weights_only=True)  # the whole model in RAM
m = yaml.safe_load(open(src + "/config.yaml"))["model"]
d, h = m["d_model"], m["d_model"] * m["mlp_ratio"] // 2
out = {"model.embed_tokens.weight": state.pop("transformer.wte.weight")}
for i in range(m["n_layers"]):
    n, t = f"transformer.blocks.{i}.", f"model.layers.{i}."
    qkv, ff = state.pop(n + "att_proj.weight"), state.pop(n + "ff_proj.weight")
    out[t + "self_attn.q_proj.weight"] = qkv[:d].clone()
    out[t + "self_attn.k_proj.weight"] = qkv[d:2 * d].clone()
    out[t + "self_attn.v_proj.weight"] = qkv[2 * d:].clone()
    out[t + "self_attn.o_proj.weight"] = state.pop(n + "attn_out.weight")
    out[t + "mlp.up_proj.weight"] = ff[:h].clone()
    out[t + "mlp.gate_proj.weight"] = ff[h:].clone()
    out[t + "mlp.down_proj.weight"] = state.pop(n + "ff_out.weight")
save_file(out, dst + "/model.safetensors", metadata={"format": "pt"})
"""


def make_source(directory: Path, shape: dict, seed: int = 0) -> Path:
    """A native checkpoint (config.yaml + model.pt) written tensor by tensor."""
    import torch
    import yaml

    from olmo_cli.checkpoints import layout
    from olmo_cli.checkpoints.formats.native import model_fields, spec_from_model_fields
    from olmo_cli.checkpoints.torchzip_writer import write_state_dict
    from olmo_cli.checkpoints.writer import PlannedTensor

    fields = dict(
        shape,
        rope=True,
        include_bias=False,
        layer_norm_with_affine=False,
        weight_tying=True,
        max_sequence_length=2048,
        eos_token_id=50279,
        pad_token_id=1,
    )
    spec = spec_from_model_fields(fields, "benchmark")
    directory.mkdir(parents=True, exist_ok=True)
    planned = [PlannedTensor(k, s, "float32") for k, s in layout.native_shapes(spec).items()]
    generator = torch.Generator().manual_seed(seed)

    def random_tensor(key):
        return torch.empty(dict((t.key, t.shape) for t in planned)[key]).normal_(0, 0.02, generator=generator)

    write_state_dict(directory / "model.pt", planned, random_tensor)
    config = {"model": model_fields(spec), "tokenizer": {"identifier": "allenai/gpt-neox-olmo-dolma-v1_5"}}
    (directory / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return directory


def measure(label: str, argv: list[str], env: dict) -> dict:
    # Every contender starts with no dirty pages from the one before (writeback would slow it).
    os.sync()
    start = time.perf_counter()
    child = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    with PeakAnonMemory(child.pid, interval=0.02) as peak:
        _stdout, stderr = child.communicate()
    wall = time.perf_counter() - start
    if child.returncode != 0:
        raise SystemExit(f"{label} failed ({child.returncode}):\n{stderr[-2000:]}")
    return {"label": label, "wall_s": round(wall, 2), "peak_anon_mib": round(peak.peak_bytes / 2**20, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small model with the same shape rules")
    parser.add_argument(
        "--workdir", type=Path, default=None, help="where to put the temporary files (default: a temp dir)"
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--keep", action="store_true", help="keep the generated source (in --workdir)")
    parser.add_argument("--source", type=Path, default=None, help="reuse a source generated before with --keep")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    shape = QUICK if args.quick else OLMO_1B
    work = Path(tempfile.mkdtemp(prefix="olmo-bench-convert-", dir=args.workdir))
    env = env_for_benchmark(args.threads)
    results = []
    try:
        t0 = time.perf_counter()
        src = args.source or make_source(work / "src", shape)
        size = (src / "model.pt").stat().st_size
        generate_s = time.perf_counter() - t0
        cases = [
            ("cp model.pt", ["cp", str(src / "model.pt"), str(work / "cp.pt")], work / "cp.pt"),
            # The fixed cost inside every `olmo convert`: the interpreter, Typer and torch.
            (
                "startup only (python, torch import)",
                [sys.executable, "-c", "import torch, yaml, olmo_cli.cli.convert"],
                work / "none",
            ),
        ]
        to_hf = [sys.executable, "-m", "olmo_cli", "convert", str(src)]
        hf32, back = work / "hf-float32", work / "back-unsharded"
        to_native = [sys.executable, "-m", "olmo_cli", "convert", str(hf32)]
        cases += [
            ("olmo convert --dtype float32", [*to_hf, str(hf32), "--dtype", "float32"], None),
            # The way back, from the float32 output (removed after the second).
            ("cp HF model-*.safetensors", ["sh", "-c", f"cp {hf32}/*.safetensors {work}/cp-hf"], work / "cp-hf"),
            (TO_NATIVE, [*to_native, str(work / "back32-unsharded"), "--to", "native"], work / "back32-unsharded"),
            (
                "HF -> native --dtype bfloat16 (cast)",
                [*to_native, str(back), "--to", "native", "--dtype", "bfloat16"],
                back,
            ),
            (
                "olmo convert --dtype bfloat16",
                [*to_hf, str(work / "hf-bfloat16"), "--dtype", "bfloat16"],
                work / "hf-bfloat16",
            ),
            (
                "load everything + save_file",
                [sys.executable, "-c", BASELINE, str(src), str(work / "baseline")],
                work / "baseline",
            ),
        ]
        (work / "baseline").mkdir()
        (work / "none").mkdir()
        (work / "cp-hf").mkdir()
        # Warm the page cache once so every contender reads the source from memory alike.
        subprocess.run(["cat", str(src / "model.pt")], stdout=subprocess.DEVNULL, check=True)
        for label, argv, output in cases:
            results.append(measure(label, argv, env))
            if output is back:
                shutil.rmtree(hf32, ignore_errors=True)
            if output is not None:
                shutil.rmtree(output, ignore_errors=True) if output.is_dir() else output.unlink(missing_ok=True)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    cp = results[0]["wall_s"]
    for r in results:
        r["x_cp"] = round(r["wall_s"] / cp, 2) if cp else None
    ours = [r for r in results if r["label"].startswith("olmo convert")]
    native = next(r for r in results if r["label"] == TO_NATIVE)
    cp_hf = next(r for r in results if r["label"].startswith("cp HF"))["wall_s"]
    native["x_cp"] = round(native["wall_s"] / cp_hf, 2) if cp_hf else None  # against the cp of its own source
    summary = {
        "shape": shape,
        "model_pt_bytes": size,
        "generate_s": round(generate_s, 1),
        "threads": args.threads,
        "results": results,
        "goal_peak_anon_ok": all(r["peak_anon_mib"] * 2**20 <= GOAL_ANON for r in ours),
        "goal_wall_ok": all(r["wall_s"] <= GOAL_CP_RATIO * cp for r in ours),
        "goal_to_native_ok": native["wall_s"] <= GOAL_TO_NATIVE_CP_RATIO * cp_hf
        and native["peak_anon_mib"] * 2**20 <= GOAL_ANON,
    }
    if args.json:
        print(json.dumps(summary, indent=2))
        return
    print(
        f"source: model.pt {size / 1e9:.2f} GB ({'quick' if args.quick else 'OLMo-1B'} shape), "
        f"generated in {generate_s:.0f} s; {args.threads} threads"
    )
    print(f"{'contender':34} {'wall s':>8} {'x cp':>6} {'peak anon MiB':>14}")
    for r in results:
        print(f"{r['label']:34} {r['wall_s']:8.2f} {r['x_cp']:6.2f} {r['peak_anon_mib']:14.1f}")
    print(
        f"goals: peak anon <= 1 GiB: {'met' if summary['goal_peak_anon_ok'] else 'MISSED'}; "
        f"wall <= 2x cp: {'met' if summary['goal_wall_ok'] else 'MISSED'}; "
        f"HF -> native <= 1.5x cp of the safetensors, <= 1 GiB: {'met' if summary['goal_to_native_ok'] else 'MISSED'}"
    )


if __name__ == "__main__":
    main()
