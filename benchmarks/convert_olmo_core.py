"""Convert an OLMo-core checkpoint written by 2 ranks to transformers: wall time and peak anonymous
memory, beside `cp` of the same bytes and OLMo-core's own converter, in the same run.

    python benchmarks/convert_olmo_core.py --quick           # d_model 256, 2 layers (seconds)
    flock /tmp/olmo-heavy.lock python benchmarks/convert_olmo_core.py [--layers 16]

The source is OLMo-core's own `olmo2_1B_v2` preset (OLMo 2 1B's shape: d_model 2048, 16 heads,
SwiGLU 8192, vocabulary 100352), with `--layers` layers (default 2, to fit OLMo-core's converter,
which holds the whole model more than once, in this machine's memory), saved by two gloo
processes with FSDP2 on the CPU (model only: the optimizer state is never read by `olmo`).
Contenders, each a child process whose RssAnon is sampled:
- `cp -r` of model_and_optim/ (the floor: reading and writing the bytes once);
- `olmo convert SRC DST --to hf` (float32, streaming, one tensor at a time);
- OLMo-core's `convert_checkpoint_to_hf` (float32, validate=False, the tokenizer from olmo's
  output so that it runs offline).
Goals (issue 11): wall <= 1.5x cp, peak anonymous memory <= 1 GiB.
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
from common import env_for_benchmark
from convert import measure

GIB = 1024**3

RANK = r"""
import os, sys, torch, torch.distributed as dist
from torch.distributed.fsdp import fully_shard
from olmo_core.nn.transformer import TransformerConfig
from olmo_core.distributed.checkpoint import save_model_and_optim_state
target, layers, quick = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
dist.init_process_group("gloo")
kw = dict(d_model=256, n_heads=4) if quick else {}
if quick:
    config = TransformerConfig.olmo2_30M(vocab_size=100352, n_layers=layers)
else:
    config = TransformerConfig.olmo2_1B_v2(vocab_size=100352, n_layers=layers)
with torch.device("meta"):
    model = config.build(init_device="meta")
for block in model.blocks.values():
    fully_shard(block)
fully_shard(model)
model.to_empty(device="cpu")
generator = torch.Generator().manual_seed(dist.get_rank())
with torch.no_grad():
    for p in model.parameters():
        local = p.to_local()
        local.copy_(torch.randn(local.shape, generator=generator) * 0.02)
save_model_and_optim_state(target, model)
dist.destroy_process_group()
"""

OLMO_CORE_CONVERTER = r"""
import json, sys
from olmo_core.nn.hf.convert_checkpoint import convert_checkpoint_to_hf
from olmo_core.config import DType
src, dst, tokenizer = sys.argv[1], sys.argv[2], sys.argv[3]
config = json.load(open(src + "/config.json"))
convert_checkpoint_to_hf(src, dst, config["model"], config["dataset"]["tokenizer"],
                         dtype=DType.float32, tokenizer_id=tokenizer, validate=False)
"""


def make_source(directory: Path, layers: int, quick: bool, env: dict) -> Path:
    directory.mkdir(parents=True)
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    base = dict(env, MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE="2")
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", RANK, str(directory / "model_and_optim"), str(layers), "1" if quick else "0"],
            env=dict(base, RANK=str(rank), LOCAL_RANK=str(rank)),
        )
        for rank in range(2)
    ]
    if any(p.wait() for p in procs):
        raise SystemExit("saving the 2-rank source failed")
    from olmo_core.nn.transformer import TransformerConfig

    preset = TransformerConfig.olmo2_30M if quick else TransformerConfig.olmo2_1B_v2
    tokenizer = {"identifier": "allenai/dolma2-tokenizer", "vocab_size": 100278, "eos_token_id": 100257,
                 "pad_token_id": 100277}  # fmt: skip
    config = {"model": preset(vocab_size=100352, n_layers=layers).as_config_dict(), "dataset": {"tokenizer": tokenizer}}
    (directory / "config.json").write_text(json.dumps(config))
    return directory


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    env = env_for_benchmark(args.threads)
    work = Path(tempfile.mkdtemp(prefix="olmo-bench-oc-", dir=os.environ.get("BENCH_DIR")))
    try:
        t0 = time.perf_counter()
        src = make_source(work / "src", args.layers, args.quick, env)
        generate_s = time.perf_counter() - t0
        size = sum(f.stat().st_size for f in (src / "model_and_optim").iterdir())
        olmo = [sys.executable, "-m", "olmo_cli", "convert", str(src), str(work / "olmo-hf"), "--offline"]
        results = [
            measure("cp -r model_and_optim", ["cp", "-r", str(src / "model_and_optim"), str(work / "cp")], env),
            measure("olmo convert --to hf (float32)", olmo, env),
            measure(
                "OLMo-core convert_checkpoint_to_hf (float32)",
                [sys.executable, "-c", OLMO_CORE_CONVERTER, str(src), str(work / "oc-hf"), str(work / "olmo-hf")],
                env,
            ),
        ]
        floor = results[0]["wall_s"]
        for result in results:
            result["x_cp"] = round(result["wall_s"] / floor, 2) if floor else None
        ours = results[1]
        report = {
            "shape": "olmo2_30M" if args.quick else f"olmo2_1B_v2 with {args.layers} layers",
            "ranks": 2,
            "checkpoint_bytes": size,
            "generate_source_s": round(generate_s, 1),
            "results": results,
            "goals": {
                "wall <= 1.5x cp": ours["x_cp"] is not None and ours["x_cp"] <= 1.5,
                "peak anon <= 1 GiB": ours["peak_anon_mib"] * 2**20 <= GIB,
            },
        }
        print(json.dumps(report, indent=2))
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
