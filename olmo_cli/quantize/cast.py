"""fp16 / bf16: cast every floating tensor, one tensor at a time, straight into safetensors files.

The safetensors header lists every tensor's dtype, shape and byte range up front; those are known
from the source before any data is read, so each output file is written as header, then tensor
after tensor, and only one tensor is ever in memory.
"""

from __future__ import annotations

from pathlib import Path

from olmo_cli.errors import BadInputError
from olmo_cli.jsonfiles import read_json_object, write_json
from olmo_cli.quantize.files import weight_files
from olmo_cli.reporting import NULL_REPORTER, Reporter

# Floating dtypes are cast; integer and bool tensors (if any) keep theirs.
_FLOATS = frozenset({"float64", "float32", "float16", "bfloat16", "float8_e4m3fn", "float8_e5m2"})


def cast_checkpoint(src: Path, dst: Path, dtype_name: str, reporter: Reporter = NULL_REPORTER) -> int:
    """Write `src`'s weights cast to `dtype_name` into `dst` (an existing empty directory), one output
    file per source file, with the converter's reader and streaming writer; tensors written."""
    from olmo_cli.checkpoints.tensors import PickleReader, SafetensorsReader
    from olmo_cli.checkpoints.writer import PlannedTensor, write_safetensors

    sources = weight_files(src)
    if not sources:
        raise BadInputError(f"{src} has no weight files")
    weight_map: dict[str, str] = {}
    total = 0
    with reporter.progress(f"casting to {dtype_name}", total=len(sources)) as bar:
        for source in sources:
            name = _output_name(source.name)
            reader = SafetensorsReader(source) if source.suffix == ".safetensors" else PickleReader(source)
            planned = []
            for key in reader.keys():
                info = reader.info(key)
                planned.append(
                    PlannedTensor(key, tuple(info.shape), dtype_name if info.dtype in _FLOATS else info.dtype)
                )
            write_safetensors(dst / name, planned, _fetcher(reader, planned))
            total += sum(t.nbytes for t in planned)
            weight_map.update({t.key: name for t in planned})
            bar.advance(1)
    if len(sources) > 1:
        write_json(
            dst / "model.safetensors.index.json",
            {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))},
        )
    write_config(src / "config.json", dst / "config.json", dtype_name)
    return len(weight_map)


def _fetcher(reader, planned):
    """Tensors that keep their dtype are copied as bytes where the reader knows where they lie."""
    kept = {t.key for t in planned if reader.info(t.key).dtype == t.dtype}

    def fetch(key: str):
        where = reader.file_range(key) if key in kept else None
        return where if where is not None else reader.get(key)

    return fetch


def _output_name(name: str) -> str:
    # pytorch_model-00001-of-00002.bin -> model-00001-of-00002.safetensors
    if name.endswith(".safetensors"):
        return name
    stem = name.rsplit(".", 1)[0]
    return stem.replace("pytorch_model", "model", 1) + ".safetensors"


def write_config(src: Path, dst: Path, dtype_name: str, quantization: dict | None = None) -> None:
    """`src`'s config.json for weights in `dtype_name`, with `quantization` as its quantization_config."""
    config = read_json_object(src)
    config.pop("quantization_config", None)
    config["dtype"] = dtype_name
    if "torch_dtype" in config:  # transformers 4.x reads this name
        config["torch_dtype"] = dtype_name
    if quantization is not None:
        config["quantization_config"] = quantization
    write_json(dst, config)
