"""Real OLMo-core checkpoints for the tests, built and saved by ai2-olmo-core itself (CPU only).

- `config(kind)`: a tiny TransformerConfig from OLMo-core's own olmo2_1M / olmo3_1M presets
  (d_model 12, 3 heads of 4, the dolma2 vocabulary so that the bundled tokenizer decodes them).
- `save(directory, kind, ranks=1)`: a step directory (config.json + model_and_optim/) written by
  `save_model_and_optim_state`, in this process or by `ranks` gloo processes with FSDP2.
- `load(directory)`: the model OLMo-core rebuilds from config.json and loads with
  `load_model_and_optim_state`: the reference every conversion is compared against.

Run as a script (`python olmo_core_models.py DIR KIND RANK WORLD PORT`), it is one rank of a
multi-process save.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import torch

VOCAB = 100352  # dolma2's padded embedding rows
TOKENIZER = {
    "identifier": "allenai/dolma2-tokenizer",
    "vocab_size": 100278,
    "eos_token_id": 100257,
    "pad_token_id": 100277,
}
SEQUENCE = 12  # test prompts are longer than every sliding window below


def config(kind: str):
    from olmo_core.nn.attention import SlidingWindowAttentionConfig
    from olmo_core.nn.rope import (
        ABFRoPEScalingConfig,
        PIRoPEScalingConfig,
        StepwiseRoPEScalingConfig,
        YaRNRoPEScalingConfig,
    )
    from olmo_core.nn.transformer import TransformerConfig

    small = dict(vocab_size=VOCAB, n_heads=3, head_dim=4)
    if kind == "olmo2":  # GQA (3 query heads, 1 KV head), untied
        return TransformerConfig.olmo2_1M(n_kv_heads=1, **small)
    if kind == "olmo2-tied":
        return TransformerConfig.olmo2_1M(tie_word_embeddings=True, **small)
    if kind == "olmo2-head-qk-norm":
        return TransformerConfig.olmo2_1M(use_head_qk_norm=True, **small)
    window = SlidingWindowAttentionConfig(
        pattern=[4, 4, -1], force_full_attention_on_first_layer=True, force_full_attention_on_last_layer=True
    )
    if kind == "olmo3":  # layers: full, 4, 4, full, full (forced last)
        return TransformerConfig.olmo3_1M(n_layers=5, sliding_window=window, attn_backend="torch", **small)
    scalings = {  # on the full-attention layer of OLMo 3's default pattern (layers 0-2 slide)
        "olmo3-yarn": lambda: YaRNRoPEScalingConfig(factor=4.0, old_context_len=8),
        "olmo3-linear": lambda: PIRoPEScalingConfig(factor=2.0),
        # Llama 3.1's stepwise scaling: at head_dim 4 one frequency lies in the smoothed band, one is scaled.
        "olmo3-llama3": lambda: StepwiseRoPEScalingConfig(factor=4.0, old_context_len=8),
        # ABF: another base frequency on the full-attention layer only
        "olmo3-abf": lambda: ABFRoPEScalingConfig(new_theta=1000),
    }
    if kind in scalings:
        cfg = TransformerConfig.olmo3_1M(
            n_layers=4,
            sliding_window=SlidingWindowAttentionConfig(
                pattern=[5, 5, 5, -1],
                force_full_attention_on_first_layer=False,
                force_full_attention_on_last_layer=True,
            ),
            attn_backend="torch",
            **small,
        )
        scaled = copy.deepcopy(cfg.block)
        scaled.sequence_mixer.rope.scaling = scalings[kind]()
        cfg.block_overrides = {3: scaled}
        return cfg
    if kind == "olmo2-abf":  # ABF on every layer: a new base frequency
        cfg = TransformerConfig.olmo2_1M(**small)
        cfg.block.sequence_mixer.rope.scaling = ABFRoPEScalingConfig(new_theta=1000)
        return cfg
    raise ValueError(kind)


def _randomize(model, seed: int) -> None:
    """Random weights everywhere, norms around 1 (not exactly 1), so a swapped tensor shows."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in sorted(model.named_parameters()):
            noise = torch.randn(param.shape, generator=generator)
            param.copy_(1 + 0.1 * noise if "norm" in name else 0.3 * noise)


def _experiment_config(kind: str) -> dict:
    return {
        "run_name": f"test-{kind}",
        "model": config(kind).as_config_dict(),
        "dataset": {"tokenizer": TOKENIZER, "sequence_length": 64},
        "trainer": {"save_folder": "/nowhere"},
    }


def save(directory: Path, kind: str, ranks: int = 1, seed: int = 0) -> Path:
    directory = Path(directory)
    directory.mkdir(parents=True)
    (directory / "config.json").write_text(json.dumps(_experiment_config(kind)))
    if ranks == 1:
        _save_rank(directory, kind, seed, distributed=False)
        return directory
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(ranks))
    procs = [
        subprocess.Popen(
            [sys.executable, __file__, str(directory), kind, str(seed)],
            env=dict(env, RANK=str(rank), LOCAL_RANK=str(rank)),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for rank in range(ranks)
    ]
    outputs = [p.communicate(timeout=300)[0].decode(errors="replace") for p in procs]
    if any(p.returncode for p in procs):
        raise RuntimeError("multi-rank save failed:\n" + "\n".join(o[-3000:] for o in outputs))
    return directory


def _save_rank(directory: Path, kind: str, seed: int, distributed: bool) -> None:
    from olmo_core.distributed.checkpoint import save_model_and_optim_state

    model = config(kind).build(init_device="cpu")
    _randomize(model, seed)
    if distributed:
        from torch.distributed.fsdp import fully_shard

        for block in model.blocks.values():
            fully_shard(block)
        fully_shard(model)
    optim = torch.optim.AdamW(model.parameters(), lr=0.0)  # a real optimizer state, never read back
    model(torch.arange(SEQUENCE)[None]).sum().backward()
    optim.step()
    save_model_and_optim_state(str(directory / "model_and_optim"), model, optim)


def load(directory: Path):
    from olmo_core.distributed.checkpoint import load_model_and_optim_state
    from olmo_core.nn.transformer import TransformerConfig

    model_config = json.loads((Path(directory) / "config.json").read_text())["model"]
    model = TransformerConfig.from_dict(model_config).build(init_device="cpu")
    load_model_and_optim_state(str(Path(directory) / "model_and_optim"), model)
    return model.eval()


def logits(model, ids: list[int]):
    with torch.no_grad():
        return model(torch.tensor([ids])).float()[0]


def greedy(model, ids: list[int], n: int, eos: int = TOKENIZER["eos_token_id"]) -> list[int]:
    """OLMo-core's own forward, argmax token by token (no cache): the reference greedy tokens."""
    out = list(ids)
    for _ in range(n):
        token = int(logits(model, out)[-1].argmax())
        out.append(token)
        if token == eos:
            break
    return out[len(ids) :]


if __name__ == "__main__":
    import torch.distributed as dist

    target, kind_arg, seed_arg = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    dist.init_process_group("gloo")
    try:
        _save_rank(target, kind_arg, seed_arg, distributed=True)
    finally:
        dist.destroy_process_group()
