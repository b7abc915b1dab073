"""fp16 / bf16: cast every floating tensor, one tensor at a time, straight into safetensors files.

The safetensors header lists every tensor's dtype, shape and byte range up front; those are known
from the source before any data is read, so each output file is written as header, then tensor
after tensor, and only one tensor is ever in memory.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

from olmo_cli.errors import BadInputError
from olmo_cli.jsonfiles import read_json_object
from olmo_cli.quantize.files import weight_files
from olmo_cli.reporting import NULL_REPORTER, Reporter

_ST_DTYPES = {  # torch dtype name -> safetensors dtype code
    "float64": "F64", "float32": "F32", "float16": "F16", "bfloat16": "BF16", "int64": "I64",
    "int32": "I32", "int16": "I16", "int8": "I8", "uint8": "U8", "bool": "BOOL",
}
_TORCH_DTYPES = {code: (lambda torch, name=name: getattr(torch, name)) for name, code in _ST_DTYPES.items()}
_ALIGN = 8


def cast_checkpoint(src: Path, dst: Path, dtype_name: str, reporter: Reporter = NULL_REPORTER) -> int:
    """Write `src`'s weights cast to `dtype_name` into `dst` (an existing empty directory); tensors written."""
    import torch

    target = getattr(torch, dtype_name)
    sources = weight_files(src)
    if not sources:
        raise BadInputError(f"{src} has no weight files")
    weight_map: dict[str, str] = {}
    total = 0
    with reporter.progress(f"casting to {dtype_name}", total=len(sources)) as bar:
        for source in sources:
            name = _output_name(source.name)
            tensors = _open(source)
            names = list(tensors.keys())
            total += _write_safetensors(dst / name, names, tensors, target)
            weight_map.update({tensor: name for tensor in names})
            bar.advance(1)
    if len(sources) > 1:
        (dst / "model.safetensors.index.json").write_text(json.dumps(
            {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}, indent=2) + "\n")
    _write_config(src / "config.json", dst / "config.json", dtype_name)
    return len(weight_map)


def _output_name(name: str) -> str:
    # pytorch_model-00001-of-00002.bin -> model-00001-of-00002.safetensors
    if name.endswith(".safetensors"):
        return name
    stem = name.rsplit(".", 1)[0]
    return stem.replace("pytorch_model", "model", 1) + ".safetensors"


class _Bin:
    """A torch .bin state dict, memory-mapped, read without unpickling code (weights_only)."""

    def __init__(self, path: Path):
        import pickle

        import torch

        try:
            try:
                self.state = torch.load(path, map_location="cpu", mmap=True, weights_only=True)
            except RuntimeError as error:  # the pre-1.6 (non-zip) format cannot be memory-mapped
                if "mmap" not in str(error):
                    raise
                self.state = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError:  # torch's message advises weights_only=False: not ours to give
            raise BadInputError(f"{path} holds objects other than tensors; olmo never unpickles them",
                                hint="re-save it as a plain state dict (torch.save(model.state_dict()))") from None
        except (RuntimeError, EOFError) as error:
            first = (str(error).strip().splitlines() or [type(error).__name__])[0]
            raise BadInputError(f"cannot read {path}: {first.split('. ')[0]}",
                                hint="the file is truncated or corrupt; download or convert it again") from None

    def keys(self):
        return self.state.keys()

    def get(self, name):
        return self.state[name]

    def meta(self, name):
        tensor = self.state[name]
        return list(tensor.shape), tensor.dtype


class _SafeTensors:
    def __init__(self, path: Path):
        from safetensors import safe_open

        self.file = safe_open(str(path), framework="pt")

    def keys(self):
        return self.file.keys()

    def get(self, name):
        return self.file.get_tensor(name)

    def meta(self, name):
        """Shape and dtype from the header alone: no tensor data is read."""
        import torch

        view = self.file.get_slice(name)
        return view.get_shape(), _TORCH_DTYPES[view.get_dtype()](torch)


def _open(path: Path):
    return _SafeTensors(path) if path.suffix == ".safetensors" else _Bin(path)


def _write_safetensors(path: Path, names: list[str], tensors, target) -> int:
    """Header first (shapes and dtypes come from the source's header or its memory map), then the
    data, one tensor at a time. Returns the bytes of tensor data written."""
    import math

    import torch

    header: dict[str, dict] = {"__metadata__": {"format": "pt"}}
    offset = 0
    plans = []
    for name in names:
        shape, dtype = tensors.meta(name)
        dtype = target if dtype.is_floating_point else dtype
        size = math.prod(shape) * dtype.itemsize
        header[name] = {"dtype": _ST_DTYPES[str(dtype).replace("torch.", "")], "shape": list(shape),
                        "data_offsets": [offset, offset + size]}
        plans.append((name, dtype))
        offset += size
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % _ALIGN)
    with open(path, "wb") as out:
        out.write(struct.pack("<Q", len(encoded)))
        out.write(encoded)
        for name, dtype in plans:
            tensor = tensors.get(name).to(dtype).contiguous()
            if tensor.numel():
                # bytes through a uint8 view: numpy has no bfloat16
                out.write(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
            del tensor
    return offset


def _write_config(src: Path, dst: Path, dtype_name: str) -> None:
    config = read_json_object(src)
    config.pop("quantization_config", None)
    config["dtype"] = dtype_name
    if "torch_dtype" in config:  # transformers 4.x reads this name
        config["torch_dtype"] = dtype_name
    dst.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
