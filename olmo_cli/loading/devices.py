"""Choosing the device and the dtype a model runs in."""

from __future__ import annotations

from pathlib import Path

from olmo_cli.errors import UnsupportedError, UsageError
from olmo_cli.jsonfiles import read_json_object_or_none

DTYPE_NAMES = {
    "float32": "float32",
    "fp32": "float32",
    "float": "float32",
    "bfloat16": "bfloat16",
    "bf16": "bfloat16",
    "float16": "float16",
    "fp16": "float16",
    "half": "float16",
}


def pick_device(device: str = "auto"):
    """`auto`: cuda, then mps, then cpu. An explicit device must exist on this machine."""
    import torch

    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        chosen = torch.device(device)
    except RuntimeError:
        raise UsageError(f"unknown device '{device}'", hint="use auto, cpu, cuda, cuda:N or mps") from None
    if chosen.type == "cuda" and not torch.cuda.is_available():
        raise UnsupportedError(
            f"device '{device}' asked for, but this torch sees no CUDA GPU",
            hint="use --device cpu, or install a CUDA build of torch",
        )
    if chosen.type == "cuda" and chosen.index is not None and chosen.index >= torch.cuda.device_count():
        raise UnsupportedError(
            f"device '{device}' asked for, but only {torch.cuda.device_count()} CUDA device(s) exist"
        )
    if chosen.type == "mps" and not _mps_available():
        raise UnsupportedError("device 'mps' asked for, but MPS is not available here", hint="use --device cpu")
    if chosen.type not in ("cpu", "cuda", "mps"):
        raise UnsupportedError(f"device type '{chosen.type}' is not supported", hint="use auto, cpu, cuda or mps")
    return chosen


def pick_dtype(dtype: str, device, checkpoint: Path | None = None):
    """`auto`: bf16 on a GPU that supports it, and on a CPU with native bf16 instructions when the
    checkpoint is float32 (faster decoding, see `cpu_prefers_bf16`); else the checkpoint's dtype."""
    import torch

    if dtype != "auto":
        name = DTYPE_NAMES.get(str(dtype).lower())
        if name is None:
            raise UsageError(f"unknown dtype '{dtype}'", hint="use auto, float32, bfloat16 or float16")
        return getattr(torch, name)
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    if checkpoint is None:
        raise ValueError("dtype auto on this device needs the checkpoint, whose dtype it keeps")
    saved = checkpoint_dtype(checkpoint)
    if device.type == "cpu" and saved == "float32" and cpu_prefers_bf16():
        return torch.bfloat16
    return getattr(torch, saved)


# CPU flags (Linux /proc/cpuinfo names) of instructions that compute in bf16 natively. Without them
# torch emulates bf16 matmuls and float32 is the faster choice.
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_prefers_bf16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """True when this CPU has native bf16 instructions. There, decoding a float32 checkpoint in bf16
    reads half the bytes per token and measured faster (benchmarks/generate.py)."""
    flags = _first_cpu(cpuinfo).get("flags", "").split()
    return any(flag in flags for flag in NATIVE_BF16_FLAGS)


def physical_cores() -> int:
    """Physical cores this process may run on (SMT siblings share one core's memory bandwidth)."""
    import os

    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    cpu = _first_cpu()
    try:
        per_core = max(1, int(cpu["siblings"]) // int(cpu["cpu cores"]))
    except (KeyError, ValueError, ZeroDivisionError):
        per_core = 1
    return max(1, usable // per_core)


def _first_cpu(cpuinfo: Path = Path("/proc/cpuinfo")) -> dict[str, str]:
    """The first processor's fields in Linux's /proc/cpuinfo; empty elsewhere (nothing to tell by)."""
    try:
        text = cpuinfo.read_text(errors="replace")
    except OSError:
        return {}
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if fields:
                break  # the end of the first processor's block
            continue
        name, _, value = line.partition(":")
        fields.setdefault(name.strip(), value.strip())
    return fields


def checkpoint_dtype(checkpoint: Path) -> str:
    """The dtype named in config.json (`dtype` in transformers 5, `torch_dtype` before); float32 if none."""
    config = read_json_object_or_none(checkpoint / "config.json") or {}
    name = config.get("dtype") or config.get("torch_dtype") or "float32"
    return DTYPE_NAMES.get(str(name).replace("torch.", "").lower(), "float32")


def _mps_available() -> bool:
    import torch

    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())
