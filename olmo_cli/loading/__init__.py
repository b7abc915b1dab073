"""The one model-loading core: any OLMo checkpoint, from anywhere, as a transformers model.

`hf_checkpoint_dir` gives a directory transformers can load (converting legacy hf_olmo and native
checkpoints once, into a cache); `load_model` loads it on the right device in the right dtype.
Nothing here imports torch or transformers at module level.
"""

from __future__ import annotations

from olmo_cli.loading.converted import converted_cache_dir, hf_checkpoint_dir, locate_hf_checkpoint
from olmo_cli.loading.model import LoadedModel, load_model

__all__ = ["LoadedModel", "converted_cache_dir", "hf_checkpoint_dir", "load_model", "locate_hf_checkpoint"]
