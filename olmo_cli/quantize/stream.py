"""Quantizing without holding the model: one weight at a time (torchao int8 / int8-dynamic, nf4).

The output is what `save_pretrained` writes for the model loaded with transformers' TorchAoConfig
or 4-bit BitsAndBytesConfig, planned before any weight is read: the state dict's names, the
weights transformers' quantizer quantizes and the ties come from quantize/layout.py, the shapes
from the source's headers. Then each weight is read from the source, quantized and written into
its place in the output file; tensors that are not quantized (embeddings, norms, an untied
lm_head) are cast into place, or copied file-to-file where they already have the dtype.

int8 and int8-dynamic are written in torchao's layout by plain torch (quantize/torchao_layout.py):
no torchao or transformers import on the way. nf4 follows bitsandbytes' layout (what `Linear4bit`
saves): the packed 4-bit weight, `absmax`, `quant_map` and the packed quant state, made by
`bitsandbytes.functional.quantize_4bit` as `Params4bit` does when transformers loads the model.
"""

from __future__ import annotations

import json
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from olmo_cli.jsonfiles import read_json_object
from olmo_cli.quantize import torchao_layout
from olmo_cli.quantize.files import weight_files
from olmo_cli.quantize.layout import Layout, olmo_layout
from olmo_cli.reporting import NULL_REPORTER, Reporter


@dataclass(frozen=True)
class _Output:
    """One output tensor: where its bytes come from."""

    key: str  # flattened output key, e.g. model.layers.0.mlp.up_proj._weight_qdata
    param: str  # the model parameter it belongs to, e.g. model.layers.0.mlp.up_proj.weight
    quantized: bool


def quantize_streaming(
    hf_dir: Path, dst: Path, method: str, compute_dtype: str, shard_size: int, reporter: Reporter = NULL_REPORTER
) -> list[str]:
    """Write `hf_dir` quantized with `method` (int8, int8-dynamic or nf4) computing in
    `compute_dtype` into `dst` (weights, config.json, generation_config.json); the weight file names.
    `hf_dir` holds an olmo, olmo2 or olmo3 model (see `streams`)."""
    from olmo_cli.quantize.cast import write_config

    scheme = _Int8(method, compute_dtype) if method in torchao_layout.METHODS else _Nf4(compute_dtype)
    layout = olmo_layout(read_json_object(hf_dir / "config.json"))
    if layout is None:
        raise ValueError(f"{hf_dir}: streaming quantization plans olmo, olmo2 and olmo3 models only")
    reader = _SourceReader(hf_dir, layout.tied)
    outputs, planned, metadata = scheme.plan(layout, reader)
    fetch = _Fetcher(reader, outputs, scheme, compute_dtype)
    with reporter.progress("quantizing", total=sum(t.nbytes for t in planned), unit="B") as bar:
        names = _write_grouped(dst, planned, [o.param for o in outputs], fetch, metadata, shard_size, bar.advance)
    write_config(hf_dir / "config.json", dst / "config.json", compute_dtype, scheme.quantization_config())
    _write_generation_config(hf_dir, dst)
    return names


def streams(hf_dir: Path) -> bool:
    """Whether `hf_dir`'s model can be quantized one weight at a time (its layout is known here)."""
    return olmo_layout(read_json_object(hf_dir / "config.json")) is not None


def _plain(layout: Layout, reader: _SourceReader, dtype: str):
    """(outputs, PlannedTensors) of every saved tensor of `layout`, quantized ones left to `parts`."""
    from olmo_cli.checkpoints.writer import PlannedTensor

    for name in layout.saved():
        source, key = reader.reader_and_key(name)
        shape = tuple(source.info(key).shape)
        if name not in layout.quantized:
            yield name, shape, [_Output(name, name, False)], [PlannedTensor(name, shape, dtype)]
            continue
        if len(shape) != 2:
            from olmo_cli.errors import BadInputError

            raise BadInputError(f"{name} has shape {shape}; a linear layer's weight has two dimensions")
        yield name, shape, None, None


class _Int8:
    """torchao's Int8Tensor layout (weight-only or with dynamic int8 activations)."""

    def __init__(self, method: str, dtype: str):
        self.method, self.dtype = method, dtype

    def quantization_config(self) -> dict:
        return torchao_layout.quantization_config(self.method)

    def plan(self, layout: Layout, reader: _SourceReader):
        from olmo_cli.checkpoints.writer import PlannedTensor

        outputs, planned = [], []
        metadata = {name: torchao_layout.PLAIN_TENSOR for name in layout.names}
        for name, shape, more, tensors in _plain(layout, reader, self.dtype):
            if more is None:
                metadata[name] = torchao_layout.description(self.method, shape, self.dtype)
                keys, parts = torchao_layout.part_keys(name), torchao_layout.part_shapes(shape)
                more = [_Output(key, name, True) for key in keys]
                tensors = [PlannedTensor(key, *part) for key, part in zip(keys, parts, strict=True)]
            outputs += more
            planned += tensors
        metadata["tensor_names"] = json.dumps(layout.names)
        return outputs, planned, metadata

    def quantize(self, param: str, weight) -> dict:
        import torch

        parts = torchao_layout.quantize_int8(weight, getattr(torch, self.dtype))
        return dict(zip(torchao_layout.part_keys(param), parts, strict=True))


class _Nf4:
    """bitsandbytes 4-bit: what Linear4bit's state dict holds for each quantized weight."""

    BLOCKSIZE = 64  # Params4bit's default, which transformers keeps
    CHUNK = BLOCKSIZE << 14  # values quantized at a time: whole blocks, an even count

    def __init__(self, dtype: str):
        self.dtype = dtype

    def quantization_config(self) -> dict:
        import torch

        from olmo_cli.quantize.methods import quantization_config

        return quantization_config("nf4", compute_dtype=getattr(torch, self.dtype)).to_dict()

    def plan(self, layout: Layout, reader: _SourceReader):
        import torch
        from bitsandbytes.functional import QuantState, get_4bit_type

        from olmo_cli.checkpoints.primitives import dtype_name
        from olmo_cli.checkpoints.writer import PlannedTensor

        outputs, planned = [], []
        for name, shape, more, tensors in _plain(layout, reader, self.dtype):
            if more is None:
                numel = shape[0] * shape[1]
                state = QuantState(
                    absmax=torch.empty(-(-numel // self.BLOCKSIZE), dtype=torch.float32, device="meta"),
                    shape=torch.Size(shape),
                    code=get_4bit_type("nf4", device="cpu"),
                    blocksize=self.BLOCKSIZE,
                    quant_type="nf4",
                    dtype=getattr(torch, self.dtype),
                )
                parts = {name: torch.empty(((numel + 1) // 2, 1), dtype=torch.uint8, device="meta")}
                parts.update({f"{name}.{k}": v for k, v in state.as_dict(packed=True).items()})
                more = [_Output(key, name, True) for key in parts]
                tensors = [PlannedTensor(key, tuple(p.shape), dtype_name(p.dtype)) for key, p in parts.items()]
            outputs += more
            planned += tensors
        return outputs, planned, {}

    def quantize(self, param: str, weight) -> dict:
        """Params4bit's quantize_4bit of the weight cast to the compute dtype, a run of whole
        blocks at a time: each 64-value block is quantized on its own and two values share a
        byte, so the pieces join into exactly the whole weight's result, with small temporaries."""
        import torch
        from bitsandbytes.functional import QuantState, get_4bit_type, quantize_4bit

        dtype = getattr(torch, self.dtype)
        flat = weight.reshape(-1)
        packed, absmax = [], []
        for start in range(0, flat.numel(), self.CHUNK):
            piece, state = quantize_4bit(
                flat[start : start + self.CHUNK].to(dtype).contiguous(),
                blocksize=self.BLOCKSIZE,
                compress_statistics=False,
                quant_type="nf4",
                quant_storage=torch.uint8,
            )
            packed.append(piece)
            absmax.append(state.absmax)
        whole = QuantState(
            absmax=torch.cat(absmax),
            shape=weight.shape,
            dtype=dtype,
            blocksize=self.BLOCKSIZE,
            code=get_4bit_type("nf4", device="cpu"),
            quant_type="nf4",
        )
        return {param: torch.cat(packed), **{f"{param}.{k}": v for k, v in whole.as_dict(packed=True).items()}}


class _SourceReader:
    """The source's tensors by checkpoint key, across its weight files (lazy, memory-mapped).

    `checkpoint_keys`: a parameter name -> the name it is saved under, where they differ (ties).
    """

    def __init__(self, hf_dir: Path, checkpoint_keys: dict[str, str]):
        from olmo_cli.checkpoints.tensors import PickleReader, SafetensorsReader

        self.checkpoint_keys = checkpoint_keys
        self.by_key = {}
        for path in weight_files(hf_dir):
            reader = SafetensorsReader(path) if path.suffix == ".safetensors" else PickleReader(path)
            for key in reader.keys():
                self.by_key[key] = reader

    def reader_and_key(self, param: str):
        for key in (param, self.checkpoint_keys.get(param, param)):
            if key in self.by_key:
                return self.by_key[key], key
        from olmo_cli.errors import BadInputError

        raise BadInputError(f"the checkpoint has no tensor {param!r}", hint="the weights do not match config.json")


class _Fetcher:
    """fetch(output key): a byte range (uncast tensors), a tensor to cast, or a quantized part.

    The parts of one quantized weight come out of one quantization, kept until the next weight
    (the writer asks for keys in order, one ahead, from a single worker thread).
    """

    def __init__(self, reader: _SourceReader, outputs: list[_Output], scheme, dtype: str):
        self.reader, self.scheme, self.dtype = reader, scheme, dtype
        self.outputs = {o.key: o for o in outputs}
        self._lock = threading.Lock()
        self._param: str | None = None
        self._parts: dict = {}

    def __call__(self, key: str):
        output = self.outputs[key]
        reader, source_key = self.reader.reader_and_key(output.param)
        if not output.quantized:
            if reader.info(source_key).dtype == self.dtype:
                where = reader.file_range(source_key)
                if where is not None:
                    return where
            return reader.get(source_key)  # the writer casts it into the file
        with self._lock:
            if self._param != output.param:
                self._parts = {}  # drop the previous weight's parts first
                with _one_torch_thread():
                    self._parts = self.scheme.quantize(output.param, reader.get(source_key))
                self._param = output.param
            return self._parts.pop(key)


@contextmanager
def _one_torch_thread():
    """Quantize on this (worker) thread alone: the work comes in small blocks, and on a busy
    machine torch's second thread stalls every block (measured: 0.2-0.7 s against 1-16 s for one
    layer of the 1B shape). torch keeps its thread count per thread, so the writer's is untouched."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _write_grouped(directory: Path, planned, groups: list[str], fetch, metadata: dict, shard_size: int, advance):
    """Shards as writer.write_sharded makes them, never splitting one parameter's parts."""
    from olmo_cli.checkpoints.writer import write_safetensors
    from olmo_cli.jsonfiles import write_json

    shards: list[list] = [[]]
    used, previous = 0, None
    for tensor, group in zip(planned, groups, strict=True):
        if shards[-1] and group != previous and used + tensor.nbytes > shard_size:
            shards.append([])
            used = 0
        shards[-1].append(tensor)
        used += tensor.nbytes
        previous = group
    if len(shards) == 1:
        names = ["model.safetensors"]
    else:
        names = [f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors" for i in range(len(shards))]
    for name, shard in zip(names, shards, strict=True):
        write_safetensors(directory / name, shard, fetch, advance, metadata=metadata)
    if len(shards) > 1:
        write_json(
            directory / "model.safetensors.index.json",
            {
                "metadata": {"total_size": sum(t.nbytes for t in planned)},
                "weight_map": {t.key: name for name, shard in zip(names, shards, strict=True) for t in shard},
            },
        )
    return names


def _write_generation_config(hf_dir: Path, dst: Path) -> None:
    """The source's generation_config.json, or the one save_pretrained derives from the config."""
    if (hf_dir / "generation_config.json").is_file():
        return  # copied with the other side files
    from transformers import AutoConfig, GenerationConfig

    config = AutoConfig.from_pretrained(hf_dir, local_files_only=True, trust_remote_code=False)
    GenerationConfig.from_model_config(config).save_pretrained(dst)
