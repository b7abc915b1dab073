"""`load_model`: any OLMo checkpoint, from anywhere, as a ready transformers model and tokenizer."""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from olmo_cli.errors import BadInputError, UnsupportedError, first_line
from olmo_cli.loading.converted import locate_hf_checkpoint
from olmo_cli.loading.devices import checkpoint_dtype, pick_device, pick_dtype
from olmo_cli.quantize.memory import release_free_memory
from olmo_cli.quantize.methods import (
    INSTALL_HINTS,
    quantization_config,
    refuse_quantized,
    require_backend,
    saved_quantization,
)
from olmo_cli.reporting import NULL_REPORTER, Reporter
from olmo_cli.sources import Located

if TYPE_CHECKING:  # types only: importing torch or transformers here would slow every command
    import torch
    from transformers import BatchEncoding, PreTrainedModel, PreTrainedTokenizerBase


def check_ids_fit(ids, model) -> None:
    """BadInputError when a token id has no row in the model's embedding (a tokenizer larger than
    the model's vocabulary, e.g. a test-sized model with the real tokenizer): the forward pass
    would fail with an IndexError."""
    rows = model.get_input_embeddings().num_embeddings
    if ids.numel() and int(ids.max()) >= rows:
        raise BadInputError(
            f"token id {int(ids.max())} is out of range: the model's embedding has {rows} rows",
            hint="the tokenizer does not match the model (a tokenizer with more ids than the model's vocabulary)",
        )


CPU_BF16_NOTE = " (dtype auto: this CPU computes bf16 natively, which decodes faster; --dtype float32 keeps float32)"


def cpu_picked_bf16(device, dtype, checkpoint: Path) -> bool:
    """Whether dtype auto chose bf16 for a float32 checkpoint on this CPU (said on stderr)."""
    import torch

    return device.type == "cpu" and dtype == torch.bfloat16 and checkpoint_dtype(checkpoint) == "float32"


@dataclass
class LoadedModel:
    """A model in eval mode on `device`, its tokenizer (left padding), and where it came from."""

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    device: torch.device
    dtype: torch.dtype
    path: Path
    load_seconds: float
    located: Located | None = None
    quantization: str | None = None

    @property
    def context_length(self) -> int | None:
        return getattr(self.model.config, "max_position_embeddings", None)

    def to_inputs(self, prompts: list[str]) -> BatchEncoding:
        """Tokenized, left-padded prompts on the model's device (quantized models need that)."""
        # No token_type_ids: some tokenizers return them and OLMo's generate() rejects unused inputs.
        encoded = self.tokenizer(prompts, return_tensors="pt", padding=True, return_token_type_ids=False)
        check_ids_fit(encoded["input_ids"][encoded["attention_mask"].bool()], self.model)
        return encoded.to(self.model.device)

    def release(self) -> None:
        """Drop the model and give its memory back (before loading the next one)."""
        # Unusable from here on; None rather than a stand-in so that a late use fails loudly.
        self.model = None  # type: ignore[assignment]
        self.tokenizer = None  # type: ignore[assignment]
        free_memory()


def free_memory() -> None:
    """Collect dropped models and hand their memory back: the C heap (glibc) and CUDA's cache."""
    import gc

    gc.collect()
    release_free_memory()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:  # pragma: no cover - torch is a dependency
        pass


def load_model(
    source: str | None = None,
    revision: str | None = None,
    dtype: str = "auto",
    device: str = "auto",
    quantization: str | None = None,
    *,
    offline: bool = False,
    reporter: Reporter = NULL_REPORTER,
) -> LoadedModel:
    """Load `source` (Hub repo, local directory in any format, or None with a revision naming its repo).

    dtype "auto": bf16 on GPUs that support it, else the checkpoint's own dtype. device "auto":
    cuda, then mps, then cpu. quantization: None, "int8", "int8-dynamic", "int4" (torchao; int4 on CUDA),
    "8bit", "nf4" or "fp4" (bitsandbytes).
    """
    start = time.perf_counter()
    torch_device = pick_device(device)
    # Before any download: a missing quantization package should fail at once.
    method = require_backend(quantization, cuda=torch_device.type == "cuda")
    quantization = method.name if method else None  # "INT8", "4bit" -> the table's own names
    if dtype == "auto" and method is not None and method.dtype:
        dtype = method.dtype  # int4: torchao's kernels compute in bfloat16 only
    explicit_dtype = None if dtype == "auto" else pick_dtype(dtype, torch_device)  # a bad name fails here
    located, path = locate_hf_checkpoint(source, revision, offline=offline, reporter=reporter)
    _check_saved_quantization(path, quantization)
    torch_dtype = explicit_dtype or pick_dtype("auto", torch_device, path)
    qconfig = quantization_config(quantization, compute_dtype=torch_dtype)
    tokenizer = load_tokenizer(path)  # before the weights: a missing tokenizer should not cost a load
    reporter.info(
        f"loading {located.describe()} on {torch_device} in {str(torch_dtype).replace('torch.', '')}"
        + (f" ({quantization})" if quantization else "")
        + (CPU_BF16_NOTE if explicit_dtype is None and cpu_picked_bf16(torch_device, torch_dtype, path) else "")
    )
    model = load_weights(path, torch_dtype, torch_device, qconfig)
    if torch_device.type == "cpu" and quantization in (None, "int8"):
        from olmo_cli.loading.cpu_int8 import pack_int8_linears

        pack_int8_linears(model)  # int8 weight-only: torch's int8 GEMM instead of dequantizing per call
    if model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    return LoadedModel(
        model=model,
        tokenizer=tokenizer,
        device=torch_device,
        dtype=torch_dtype,
        path=path,
        load_seconds=time.perf_counter() - start,
        located=located,
        quantization=quantization,
    )


def _check_saved_quantization(path: Path, quantization: str | None) -> None:
    """A checkpoint saved quantized (olmo quantize) needs its package, and cannot be quantized again."""
    import importlib.util

    if quantization is not None:
        refuse_quantized(path)
    kind = saved_quantization(path)
    if kind in INSTALL_HINTS and importlib.util.find_spec(kind) is None:
        raise UnsupportedError(
            f"{path} was saved quantized with {kind}, which is not installed", hint=INSTALL_HINTS[kind]
        )


def load_weights(path: Path, torch_dtype, torch_device, qconfig=None) -> PreTrainedModel:
    """The transformers model in `path`, in eval mode, never running checkpoint code.

    Weights the model needs but the files lack are an error: transformers would initialise them
    at random and generate noise without a word (docs/REFERENCE.md 3.2).
    """
    import pickle

    from safetensors import SafetensorError
    from transformers import AutoModelForCausalLM

    kwargs: dict[str, Any] = {
        "dtype": torch_dtype,
        "local_files_only": True,
        "trust_remote_code": False,
        "output_loading_info": True,
    }
    if qconfig is not None:
        kwargs["quantization_config"] = qconfig
    # Straight onto the device: no full copy on the CPU first.
    kwargs["device_map"] = str(torch_device)
    try:
        with transformers_progress_on_terminal_only():
            # output_loading_info=True makes it (model, info), which its annotation does not say.
            loaded: Any = AutoModelForCausalLM.from_pretrained(path, **kwargs)
            model, info = loaded
    except ValueError as error:
        if "model type" in str(error) or "trust_remote_code" in str(error) or "Unrecognized" in str(error):
            raise UnsupportedError(
                f"{path} is not a model transformers can load without remote code",
                hint="olmo loads OLMo, OLMo 2/3, OLMoE and FlexOlmo checkpoints",
            ) from None
        raise
    except OSError as error:
        raise BadInputError(f"cannot load the weights in {path}: {first_line(error)}") from None
    except RuntimeError as error:
        if "mismatched_sizes" not in str(error) and "size mismatch" not in str(error):
            raise
        raise BadInputError(
            f"the weights in {path} do not match its config.json: a tensor has another shape",
            hint="transformers' load report above names it",
        ) from None
    except pickle.UnpicklingError:  # a .bin holding more than tensors: refused, never run
        raise BadInputError(
            f"the weights in {path} hold objects other than tensors; olmo never unpickles them",
            hint="re-save them as a plain state dict, or as safetensors",
        ) from None
    except SafetensorError as error:  # a truncated or corrupt file
        raise BadInputError(
            f"cannot read the weights in {path}: {first_line(error)}",
            hint="the file is truncated or corrupt; download or convert it again",
        ) from None
    missing = sorted(info.get("missing_keys") or ())
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise BadInputError(
            f"{path}: the weights lack '{missing[0]}'{more}, which the model needs",
            hint="the checkpoint is incomplete, or its config.json describes another model",
        )
    model.eval()
    return model


@contextmanager
def transformers_progress_on_terminal_only():
    """transformers' own bars ("Loading weights", "Writing model shards") only where a person watches:
    in a log or a pipe they are lines of noise."""
    from transformers.utils import logging as hf_logging

    if sys.stderr is not None and sys.stderr.isatty():
        yield
        return
    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


def load_tokenizer(path: Path) -> PreTrainedTokenizerBase:
    """The checkpoint's tokenizer, without remote code, padding on the left (batched generation)."""
    from transformers import AutoTokenizer

    if not any((path / name).exists() for name in ("tokenizer.json", "tokenizer_config.json", "tokenizer.model")):
        raise BadInputError(
            f"{path} has no tokenizer files",
            hint="convert it with 'olmo convert --tokenizer NAME', or copy tokenizer.json next to config.json",
        )
    try:
        tokenizer = AutoTokenizer.from_pretrained(
            path, local_files_only=True, trust_remote_code=False, clean_up_tokenization_spaces=False
        )  # BPE: cleanup only corrupts
    except (OSError, ValueError) as error:
        raise BadInputError(f"cannot load the tokenizer in {path}: {first_line(error)}") from None
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer
