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
    """`auto`: bf16 on a GPU that supports it, else the dtype the checkpoint was saved in."""
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
    return getattr(torch, checkpoint_dtype(checkpoint))


def checkpoint_dtype(checkpoint: Path) -> str:
    """The dtype named in config.json (`dtype` in transformers 5, `torch_dtype` before); float32 if none."""
    config = read_json_object_or_none(checkpoint / "config.json") or {}
    name = config.get("dtype") or config.get("torch_dtype") or "float32"
    return DTYPE_NAMES.get(str(name).replace("torch.", "").lower(), "float32")


def _mps_available() -> bool:
    import torch

    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())
