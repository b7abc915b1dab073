"""How much quantizing changed a model: logits, top-1 tokens and perplexity on a fixed English text.

The reference is the full-precision model in float32. Both models read the same built-in text
(written for this check, so it is the same on every machine and needs no download).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

SAMPLE_TEXT = (
    "The old lighthouse stood at the end of a narrow path that wound between the dunes. Every evening, "
    "the keeper climbed the spiral stairs, cleaned the glass and lit the lamp, and every morning he wrote "
    "a few lines in a worn logbook: the direction of the wind, the ships that had passed, the birds that "
    "had rested on the railing. Nobody had asked him to keep these notes. He kept them because the sea "
    "changed a little every day, and writing it down was the only way to notice. Years later, when the "
    "light was run by a machine and the keeper had moved to the village, a student found the logbooks in "
    "a cupboard and read them all. She learned that the storms had grown stronger, that the herring boats "
    "had come less often, and that a pair of swallows had returned to the same nest for eleven summers."
)


@dataclass(frozen=True)
class Quality:
    max_logit_diff: float  # largest |quantized - reference| over every position and vocabulary entry
    top1_agreement: float  # fraction of positions where both models rank the same next token first
    ppl_before: float  # perplexity of the reference model on the text
    ppl_after: float  # perplexity of the quantized model on the text
    tokens: int  # tokens in the text


def sample_ids(tokenizer, max_tokens: int = 256):
    """The built-in text as a [1, n] tensor of token ids, at most `max_tokens` (the model's context)."""
    return tokenizer(
        SAMPLE_TEXT, return_tensors="pt", add_special_tokens=False, truncation=True, max_length=max_tokens
    )["input_ids"]


def logits_of(model, ids):
    """float32 logits on the CPU for `ids` (moved to the model's device first)."""
    import torch

    with torch.inference_mode():
        out = model(input_ids=ids.to(model.device)).logits
    return out.float().cpu()


def perplexity(logits, ids) -> float:
    """exp of the mean next-token cross-entropy."""
    import torch

    loss = torch.nn.functional.cross_entropy(logits[0, :-1], ids[0, 1:].to(logits.device))
    return math.exp(loss.item())


def compare(reference, quantized, ids) -> Quality:
    """The quality figures for two [1, n, vocab] float32 logit tensors of the same ids."""
    if reference.shape != quantized.shape:
        raise ValueError(f"logit shapes differ: {tuple(reference.shape)} vs {tuple(quantized.shape)}")
    return Quality(
        max_logit_diff=(quantized - reference).abs().max().item(),
        top1_agreement=(quantized.argmax(-1) == reference.argmax(-1)).float().mean().item(),
        ppl_before=perplexity(reference, ids),
        ppl_after=perplexity(quantized, ids),
        tokens=int(ids.shape[1]),
    )
