"""`load_model`: any OLMo checkpoint, from anywhere, as a ready transformers model and tokenizer."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from olmo_cli.errors import BadInputError, UnsupportedError
from olmo_cli.reporting import NULL_REPORTER, Reporter
from olmo_cli.sources import Located


@dataclass
class LoadedModel:
    """A model in eval mode on `device`, its tokenizer (left padding), and where it came from."""

    model: Any
    tokenizer: Any
    device: Any
    dtype: Any
    path: Path
    load_seconds: float
    located: Located | None = None
    quantization: str | None = None

    @property
    def context_length(self) -> int | None:
        return getattr(self.model.config, "max_position_embeddings", None)

    def to_inputs(self, prompts: list[str]):
        """Tokenized, left-padded prompts on the model's device (quantized models need that)."""
        encoded = self.tokenizer(prompts, return_tensors="pt", padding=True)
        return encoded.to(self.model.device)

    def release(self) -> None:
        """Drop the model and give its memory back (before loading the next one)."""
        import gc

        self.model = None
        self.tokenizer = None
        gc.collect()
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
    cuda, then mps, then cpu. quantization: None, "int8" (torchao), "8bit" or "nf4" (bitsandbytes).
    """
    from olmo_cli.loading.converted import locate_hf_checkpoint
    from olmo_cli.loading.devices import pick_device, pick_dtype
    from olmo_cli.loading.quantization import quantization_config, require_backend

    start = time.perf_counter()
    torch_device = pick_device(device)
    # Before any download: a missing quantization package should fail at once.
    require_backend(quantization, cuda=torch_device.type == "cuda")
    located, path = locate_hf_checkpoint(source, revision, offline=offline, reporter=reporter)
    # torchao's int4 kernels compute in bfloat16 only.
    torch_dtype = pick_dtype("bfloat16" if quantization == "int4" and dtype == "auto" else dtype, torch_device, path)
    qconfig = quantization_config(quantization, compute_dtype=torch_dtype)
    reporter.info(f"loading {located.describe()} on {torch_device} in {str(torch_dtype).replace('torch.', '')}"
                  + (f" ({quantization})" if quantization else ""))
    model = _load_weights(path, torch_dtype, torch_device, qconfig)
    tokenizer = load_tokenizer(path)
    if model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    return LoadedModel(model=model, tokenizer=tokenizer, device=torch_device, dtype=torch_dtype, path=path,
                       load_seconds=time.perf_counter() - start, located=located, quantization=quantization)


def _load_weights(path: Path, torch_dtype, torch_device, qconfig):
    from transformers import AutoModelForCausalLM

    kwargs: dict[str, Any] = {"dtype": torch_dtype, "local_files_only": True, "trust_remote_code": False}
    if qconfig is not None:
        kwargs["quantization_config"] = qconfig
    # Straight onto the device: no full copy on the CPU first.
    kwargs["device_map"] = str(torch_device)
    try:
        model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    except ValueError as error:
        if "model type" in str(error) or "trust_remote_code" in str(error) or "Unrecognized" in str(error):
            raise UnsupportedError(f"{path} is not a model transformers can load without remote code",
                                   hint="olmo loads OLMo, OLMo 2/3, OLMoE and FlexOlmo checkpoints") from None
        raise
    except OSError as error:
        raise BadInputError(f"cannot load the weights in {path}: {_first_line(error)}") from None
    model.eval()
    return model


def load_tokenizer(path: Path):
    """The checkpoint's tokenizer, without remote code, padding on the left (batched generation)."""
    from transformers import AutoTokenizer

    if not any((path / name).exists() for name in ("tokenizer.json", "tokenizer_config.json", "tokenizer.model")):
        raise BadInputError(f"{path} has no tokenizer files",
                            hint="convert it with 'olmo convert --tokenizer NAME', or copy tokenizer.json next to config.json")
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True, trust_remote_code=False,
                                                  clean_up_tokenization_spaces=False)  # BPE: cleanup only corrupts
    except (OSError, ValueError) as error:
        raise BadInputError(f"cannot load the tokenizer in {path}: {_first_line(error)}") from None
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
