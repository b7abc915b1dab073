"""Quantizing without holding the model: one weight at a time (torchao int8 / int8-dynamic, nf4).

What `save_pretrained` writes for a model loaded with TorchAoConfig is planned on the meta device
first: the model skeleton, quantized there by torchao itself (`quantize_` runs on meta tensors)
and flattened by torchao's safetensors support, gives every output key, shape and dtype and the
header metadata (`tensor_names`, each weight's tensor-subclass description) before any weight is
read. Then each weight is read from the source, cast to the compute dtype, quantized by the same
`quantize_` on a one-module stand-in, flattened, and written into its place in the output file;
tensors that are not quantized (embeddings, norms, an untied lm_head) are cast or copied as bytes.
Which weights are quantized is decided by transformers' own quantizer.

nf4 follows the same plan with bitsandbytes' layout (what `Linear4bit` saves): the packed 4-bit
weight, `absmax`, `quant_map` and the packed quant state, made by `bitsandbytes.functional.
quantize_4bit` as `Params4bit` does when transformers loads with a BitsAndBytesConfig.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from olmo_cli.quantize.files import weight_files
from olmo_cli.reporting import NULL_REPORTER, Reporter


@dataclass(frozen=True)
class _Output:
    """One output tensor: where its bytes come from."""

    key: str  # flattened output key, e.g. model.layers.0.mlp.up_proj._weight_qdata
    param: str  # the model parameter it belongs to, e.g. model.layers.0.mlp.up_proj.weight
    quantized: bool


def quantize_streaming(
    hf_dir: Path, dst: Path, qconfig, compute_dtype: str, shard_size: int, reporter: Reporter = NULL_REPORTER
) -> list[str]:
    """Write `hf_dir` quantized with the transformers TorchAoConfig or 4-bit BitsAndBytesConfig
    `qconfig` into `dst` (weights, config.json, generation_config.json); the weight file names."""
    import torch
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(hf_dir, local_files_only=True, trust_remote_code=False)
    dtype = getattr(torch, compute_dtype)
    skeleton = _meta_model(config, dtype)
    scheme = _TorchAo(qconfig) if qconfig.quant_method == "torchao" else _Nf4(qconfig)
    quantized_params = _quantized_params(config, dtype, qconfig)
    checkpoint_keys = _checkpoint_keys(skeleton)
    outputs, planned, metadata = scheme.plan(skeleton, quantized_params, checkpoint_keys)
    reader = _SourceReader(hf_dir, checkpoint_keys)
    fetch = _Fetcher(reader, outputs, scheme, dtype)
    with reporter.progress("quantizing", total=sum(t.nbytes for t in planned), unit="B") as bar:
        names = _write_grouped(dst, planned, [o.param for o in outputs], fetch, metadata, shard_size, bar.advance)
    config.quantization_config = qconfig
    config.dtype = dtype
    config.save_pretrained(dst)
    _write_generation_config(hf_dir, dst, config)
    return names


def _meta_model(config, dtype):
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(config, dtype=dtype)


def _quantized_params(config, dtype, qconfig) -> set[str]:
    """The parameters transformers' quantizer would quantize while loading.

    Its own selection runs on a meta skeleton (for bitsandbytes it also swaps in Linear4bit
    there). It decides before the weights are tied (its "last parameter" rule then sees the
    lm_head), so it is asked about an untied skeleton.
    """
    import copy

    from transformers.quantizers.auto import AutoHfQuantizer

    untied = copy.deepcopy(config)
    untied.get_text_config(decoder=True).tie_word_embeddings = False
    model = _meta_model(untied, dtype)
    quantizer = AutoHfQuantizer.from_config(qconfig, pre_quantized=False)
    quantizer._process_model_before_weight_loading(model, device_map=None)
    return {name for name, _ in model.named_parameters() if quantizer.param_needs_quantization(model, name)}


def _checkpoint_keys(model) -> dict[str, str]:
    """Parameter name -> the name it has in a checkpoint (tied parameters share the first name,
    also where the skeleton's ties are declared but not made, as on an empty-weights skeleton)."""
    first: dict[int, str] = {}
    keys = {}
    for name, param in model.named_parameters(remove_duplicate=False):
        keys[name] = first.setdefault(id(param), name)
    for tied, source in (getattr(model, "all_tied_weights_keys", None) or {}).items():
        keys[tied] = keys.get(source, source)
    return keys


def _plain_outputs(name: str, tensor) -> tuple[list[_Output], list]:
    from olmo_cli.checkpoints.primitives import dtype_name
    from olmo_cli.checkpoints.writer import PlannedTensor

    return [_Output(name, name, False)], [PlannedTensor(name, tuple(tensor.shape), dtype_name(tensor.dtype))]


class _TorchAo:
    """torchao's tensor subclasses, flattened by torchao's safetensors support."""

    def __init__(self, qconfig):
        self.config = qconfig.get_apply_tensor_subclass()

    def plan(self, model, quantized_params: set[str], checkpoint_keys: dict[str, str]):
        """(outputs, PlannedTensors, header metadata) as torchao flattens the quantized state dict."""
        from torchao.prototype.safetensors.safetensors_support import flatten_tensor_state_dict
        from torchao.quantization import quantize_

        from olmo_cli.checkpoints.primitives import dtype_name
        from olmo_cli.checkpoints.writer import PlannedTensor

        modules = dict(model.named_modules())
        for name in sorted(quantized_params):
            quantize_(modules[name.rsplit(".", 1)[0]], self.config, filter_fn=lambda module, fqn: True)
        state = model.state_dict()  # meta tensors
        _, metadata = flatten_tensor_state_dict(state)  # `tensor_names` lists tied names too, as saved
        outputs, planned = [], []
        for name, tensor in state.items():
            if checkpoint_keys.get(name, name) != name:
                continue  # a tied duplicate (lm_head of tied embeddings): not saved
            if name not in quantized_params:
                more, tensors = _plain_outputs(name, tensor)
                outputs += more
                planned += tensors
                continue
            flat, _ = flatten_tensor_state_dict({name: tensor})
            for key, part in flat.items():
                outputs.append(_Output(key, name, True))
                planned.append(PlannedTensor(key, tuple(part.shape), dtype_name(part.dtype)))
        return outputs, planned, metadata

    def quantize(self, param: str, weight) -> dict:
        import torch
        from torchao.prototype.safetensors.safetensors_support import flatten_tensor_state_dict
        from torchao.quantization import quantize_

        with torch.device("meta"):
            linear = torch.nn.Linear(weight.shape[1], weight.shape[0], bias=False)
        linear.weight = torch.nn.Parameter(weight, requires_grad=False)
        quantize_(linear, self.config, filter_fn=lambda module, fqn: True)
        flat, _ = flatten_tensor_state_dict({param: linear.weight})
        return flat


class _Nf4:
    """bitsandbytes 4-bit: what Linear4bit's state dict holds for each quantized weight."""

    BLOCKSIZE = 64  # Params4bit's default, which transformers keeps

    def __init__(self, qconfig):
        if qconfig.bnb_4bit_use_double_quant or qconfig.bnb_4bit_quant_type != "nf4":
            raise ValueError("streaming 4-bit quantization writes nf4 without double quantization")
        self.qconfig = qconfig

    def plan(self, model, quantized_params: set[str], checkpoint_keys: dict[str, str]):
        import torch
        from bitsandbytes.functional import QuantState, get_4bit_type

        from olmo_cli.checkpoints.primitives import dtype_name
        from olmo_cli.checkpoints.writer import PlannedTensor

        outputs, planned = [], []
        for name, tensor in model.state_dict().items():
            if checkpoint_keys.get(name, name) != name:
                continue
            if name not in quantized_params:
                more, tensors = _plain_outputs(name, tensor)
                outputs += more
                planned += tensors
                continue
            numel = tensor.numel()
            state = QuantState(
                absmax=torch.empty(-(-numel // self.BLOCKSIZE), dtype=torch.float32, device="meta"),
                shape=tensor.shape,
                code=get_4bit_type("nf4", device="cpu"),
                blocksize=self.BLOCKSIZE,
                quant_type="nf4",
                dtype=tensor.dtype,
            )
            parts = {name: torch.empty(((numel + 1) // 2, 1), dtype=torch.uint8, device="meta")}
            parts.update({f"{name}.{k}": v for k, v in state.as_dict(packed=True).items()})
            for key, part in parts.items():
                outputs.append(_Output(key, name, True))
                planned.append(PlannedTensor(key, tuple(part.shape), dtype_name(part.dtype)))
        return outputs, planned, {}

    def quantize(self, param: str, weight) -> dict:
        import torch
        from bitsandbytes.functional import quantize_4bit

        packed, state = quantize_4bit(
            weight.contiguous(),
            blocksize=self.BLOCKSIZE,
            compress_statistics=False,
            quant_type="nf4",
            quant_storage=torch.uint8,
        )
        return {param: packed, **{f"{param}.{k}": v for k, v in state.as_dict(packed=True).items()}}


class _SourceReader:
    """The source's tensors by checkpoint key, across its weight files (lazy, memory-mapped)."""

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

    def __init__(self, reader: _SourceReader, outputs: list[_Output], scheme, dtype):
        self.reader, self.scheme, self.dtype = reader, scheme, dtype
        self.outputs = {o.key: o for o in outputs}
        self._lock = threading.Lock()
        self._param: str | None = None
        self._parts: dict = {}

    def __call__(self, key: str):
        from olmo_cli.checkpoints.primitives import dtype_name

        output = self.outputs[key]
        reader, source_key = self.reader.reader_and_key(output.param)
        if not output.quantized:
            if reader.info(source_key).dtype == dtype_name(self.dtype):
                where = reader.file_range(source_key)
                if where is not None:
                    return where
            return reader.get(source_key)  # the writer casts it into the file
        with self._lock:
            if self._param != output.param:
                self._parts = {}  # drop the previous weight's parts first
                weight = reader.get(source_key)
                if weight.dim() != 2:
                    raise AssertionError(f"{output.param}: a linear weight with shape {tuple(weight.shape)}")
                # Cast first, as transformers does before quantizing a weight it loads.
                self._parts = self.scheme.quantize(output.param, weight.to(self.dtype))
                self._param = output.param
            return self._parts.pop(key)


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


def _write_generation_config(hf_dir: Path, dst: Path, config) -> None:
    """The source's generation_config.json, or the one save_pretrained derives from the config."""
    if (hf_dir / "generation_config.json").is_file():
        return  # copied with the other side files
    from transformers import GenerationConfig

    GenerationConfig.from_model_config(config).save_pretrained(dst)
