"""The files of a transformers checkpoint directory: weights, their size, and the files that go with them."""

from __future__ import annotations

import shutil
from pathlib import Path

from olmo_cli.checkpoints.detect import weight_files as checkpoint_weight_files

# Copied next to the new weights so that the output loads on its own (tokenizer, generation defaults).
SIDE_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "merges.txt",
    "tokenizer.model",
    "chat_template.jinja",
    "chat_template.json",
    "generation_config.json",
)


def weight_files(directory: Path) -> list[Path]:
    """The weight files transformers would load (the converter's rule: an index's shards, else
    safetensors, else the pickle)."""
    return [directory / name for name in checkpoint_weight_files(directory)]


def weights_bytes(directory: Path) -> int:
    """Bytes on disk of the weight files (what a download or a copy of the checkpoint costs)."""
    return sum(path.stat().st_size for path in weight_files(directory))


def copy_side_files(src: Path, dst: Path) -> list[str]:
    """Copy the tokenizer and generation files that `dst` does not have yet; the names copied."""
    copied = []
    for name in SIDE_FILES:
        if (src / name).is_file() and not (dst / name).exists():
            shutil.copy(src / name, dst / name)  # follows Hub-cache symlinks
            copied.append(name)
    return copied
