"""`olmo inspect`: describe a checkpoint (format, architecture, parameters, dtypes, size, tokenizer, files)."""

from __future__ import annotations

from typing import Any

from olmo_cli.checkpoints.inspect import inspect_source
from olmo_cli.cli.options import JsonOpt, OfflineOpt, RevisionOpt, SourceArg, command_app
from olmo_cli.cli.output import ConsoleReporter, format_size, print_json, print_lines
from olmo_cli.hub.env import offline as offline_mode

app = command_app()


@app.command()
def inspect(
    source: SourceArg,
    revision: RevisionOpt = None,
    offline: OfflineOpt = False,
    as_json: JsonOpt = False,
):
    """Describe a checkpoint: format, family, architecture, parameters, dtypes, size, tokenizer, files.

    Weights are never loaded: parameter counts come from tensor headers. For a Hub repo only the
    small files are downloaded; safetensors headers are read with range requests.

    \b
    Examples:
      olmo inspect ./step1000-unsharded
      olmo inspect allenai/OLMo-1B --revision step20000-tokens84B
      olmo inspect allenai/OLMo-2-1124-7B --json
    """
    summary = inspect_source(source, revision, offline=offline_mode(offline), reporter=ConsoleReporter(quiet=as_json))
    if as_json:
        print_json(summary)
    else:
        _print_summary(summary)


def _print_summary(summary: dict[str, Any]) -> None:
    arch = summary["architecture"]
    where = summary["path"]
    if summary.get("repo"):
        where = f"{summary['repo']} @ {summary['revision']}" + (
            f" ({summary['commit'][:12]})" if summary.get("commit") else ""
        )
    tokenizer = summary.get("tokenizer")
    rows = [
        ("checkpoint", where),
        ("format", summary["format"] + (f" (model_type {summary['model_type']})" if summary.get("model_type") else "")),
        ("family", summary["family"]),
        (
            "parameters",
            _count(summary.get("parameters"))
            + (
                f" (the config implies {_count(summary['parameters_from_config'])})"
                if summary.get("parameters_from_config")
                else ""
            ),
        ),
        (
            "dtypes",
            ", ".join(f"{dtype} ({_count(n, exact=False)})" for dtype, n in summary.get("dtypes", {}).items())
            or "unknown",
        ),
        ("size", format_size(summary["size_bytes"])),
        ("layers", arch["layers"]),
        ("d_model", arch["d_model"]),
        ("heads", f"{arch['heads']} (kv {arch['kv_heads']}, head dim {arch['head_dim']})"),
        ("mlp hidden", arch["mlp_hidden"]),
        ("vocab", f"{arch['vocab_size'] or 'unknown'} (embedding {arch['embedding_size']})"),
        ("context", arch["context_length"]),
        ("tied embeddings", _yes(arch["tied_embeddings"])),
        ("norm", _norm(arch)),
        ("rope_theta", arch["rope_theta"]),
        ("rope scaling", _rope_scaling(arch.get("rope_scaling"))),
        ("attention", _attention(arch)),
        ("clip_qkv", arch["clip_qkv"] if arch["clip_qkv"] is not None else "none"),
        ("tokenizer", _tokenizer(tokenizer)),
    ]
    width = max(len(name) for name, _ in rows) + 2
    lines = [f"{name.ljust(width)}{value}" for name, value in rows]
    files = [
        (entry["name"] + ("" if entry.get("cached", True) else "  (not downloaded)"), format_size(entry["bytes"]))
        for entry in summary["files"]
    ]
    name_width = max((len(name) for name, _ in files), default=0) + 2
    lines += ["", f"files ({len(files)}):"] + [f"  {name.ljust(name_width)}{size.rjust(9)}" for name, size in files]
    print_lines(lines)


def _rope_scaling(scaling: dict[str, Any] | None) -> str:
    if not scaling:
        return "none"
    if scaling.get("rope_type") == "default":  # OLMo-core's ABF: another base frequency
        return f"ABF (rope_theta {scaling.get('rope_theta')}; full-attention layers)"
    details = ", ".join(f"{k} {v}" for k, v in scaling.items() if k != "rope_type")
    return f"{scaling.get('rope_type')} ({details}; full-attention layers)"


def _attention(arch: dict[str, Any]) -> str:
    """'full' or the layer pattern, e.g. 'sliding window 4096: S S S F S S S F' (S sliding, F full)."""
    types = arch.get("layer_types")
    if not types or "sliding_attention" not in types:
        return "full (every layer)"
    pattern = " ".join("S" if t == "sliding_attention" else "F" for t in types)
    return f"sliding window {arch['sliding_window']}: {pattern} (S sliding, F full)"


def _norm(arch: dict[str, Any]) -> str:
    parts = [arch["norm"] + ("" if arch["norm_weights"] else " (no weights)")]
    if arch["qk_norm"]:
        parts.append("qk-norm per head" if arch.get("qk_norm_per_head") else "qk-norm")
    parts.append("after" if arch["norm_after"] else "before")
    return ", ".join(parts)


def _tokenizer(tokenizer: dict[str, Any] | None) -> str:
    if not tokenizer:
        return "none"
    ids = ", ".join(
        f"{role} {tokenizer[role + '_token_id']} {tokenizer[role + '_token']!r}"
        for role in ("eos", "pad", "bos")
        if tokenizer.get(role + "_token_id") is not None
    )
    return f"{tokenizer['name']}, from {tokenizer['source']}" + (f"; {ids}" if ids else "")


def _yes(value: bool) -> str:
    return "yes" if value else "no"


def _count(value: int | None, exact: bool = True) -> str:
    if value is None:
        return "unknown"
    for unit, scale in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if value >= scale:
            return f"{value / scale:.2f}{unit}" + (f" ({value:,})" if exact else "")
    return f"{value:,}"
