"""Loss, perplexity and bits per byte of a causal LM on documents.

Each document is tokenized on its own (the tokenizer's own BOS when it adds one, never an EOS) and
cut into windows that never span two documents:
- chunks (no stride): consecutive pieces of `context` tokens, each scored on its own; the first
  token of a chunk has no context, so a chunk of n tokens scores n - 1 of them;
- sliding windows (stride S): as in transformers' perplexity guide, each window re-reads up to
  `context` tokens and scores only the tokens not scored before (the last S).
Per-token losses come from float32 log-softmax and are summed in float64.
"""

from __future__ import annotations

import inspect
import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from olmo_cli.errors import BadInputError, UsageError

_CE_ROWS = 1024  # positions per cross-entropy slice


@dataclass
class Score:
    nll: float  # summed negative log-likelihood of the scored tokens, in nats
    n_tokens: int
    n_bytes: int  # UTF-8 bytes of the scored documents' whole text
    n_documents: int
    n_skipped: int  # documents shorter than 2 tokens: nothing in them can be predicted
    seconds: float

    @property
    def loss(self) -> float:
        return self.nll / self.n_tokens

    @property
    def perplexity(self) -> float:
        return math.exp(self.loss)

    @property
    def bits_per_byte(self) -> float:
        return self.nll / math.log(2) / self.n_bytes


@dataclass(frozen=True)
class Window:
    tokens: tuple[int, ...]
    first: int  # index of the first scored token in `tokens` (>= 1: token 0 has no context)


def check_lengths(context: int | None, stride: int | None) -> None:
    if context is not None and context < 2:
        raise UsageError(f"--context {context} is too short", hint="a window needs at least 2 tokens")
    if stride is not None and stride < 1:
        raise UsageError("--stride must be at least 1")
    if stride is not None and context is not None and stride > context:
        raise UsageError(f"--stride {stride} is larger than the context ({context})", hint="use a stride <= --context")


def document_ids(tokenizer, documents: Sequence[str]) -> list[list[int]]:
    """Token ids per document: the tokenizer's default leading special tokens (a BOS), no trailing ones (EOS)."""
    prefix = _default_prefix(tokenizer)
    encoded = tokenizer(list(documents), add_special_tokens=False, verbose=False)["input_ids"]
    return [prefix + list(ids) for ids in encoded]


def _default_prefix(tokenizer) -> list[int]:
    """What `add_special_tokens=True` puts before the text (a BOS, for tokenizers that add one)."""
    plain = tokenizer("a", add_special_tokens=False)["input_ids"]
    full = tokenizer("a", add_special_tokens=True)["input_ids"]
    for start in range(len(full) - len(plain) + 1):
        if full[start : start + len(plain)] == plain:
            return list(full[:start])
    return []


def windows(ids: Sequence[int], context: int, stride: int | None = None) -> Iterator[Window]:
    """The windows of one document (see the module docstring)."""
    if len(ids) < 2:
        return
    if stride is None:
        for begin in range(0, len(ids), context):
            chunk = tuple(ids[begin : begin + context])
            if len(chunk) >= 2:  # a leftover 1-token chunk scores nothing
                yield Window(chunk, 1)
        return
    scored_to = 0  # tokens before this index are scored already
    for begin in range(0, len(ids), stride):
        end = min(begin + context, len(ids))
        first = max(scored_to, begin + 1)  # a window's first token has no context
        if end > first:
            yield Window(tuple(ids[begin:end]), first - begin)
        scored_to = end
        if end == len(ids):
            return


def score(
    model, tokenizer, documents: Sequence[str], *, context: int, stride: int | None = None, batch_size: int = 1
) -> Score:
    """Score `documents`; windows of the same length run together, longest first."""
    import torch

    check_lengths(context, stride)
    start = time.perf_counter()
    all_ids = document_ids(tokenizer, documents)
    kept = [(doc, ids) for doc, ids in zip(documents, all_ids, strict=True) if len(ids) >= 2]
    if not kept:
        raise BadInputError(
            f"none of the {len(documents)} document(s) has 2 tokens or more", hint="nothing can be predicted"
        )
    todo = [w for _, ids in kept for w in windows(ids, context, stride)]
    todo.sort(key=lambda w: -len(w.tokens))
    device = next(model.parameters()).device
    keep_logits = "logits_to_keep" in inspect.signature(model.forward).parameters
    nll = 0.0
    n_tokens = 0
    with torch.inference_mode():
        for batch in _batches(todo, batch_size):
            batch_nll, batch_tokens = _score_batch(model, batch, device, keep_logits)
            nll += batch_nll
            n_tokens += batch_tokens
    return Score(
        nll=nll,
        n_tokens=n_tokens,
        n_bytes=sum(len(doc.encode("utf-8")) for doc, _ in kept),
        n_documents=len(kept),
        n_skipped=len(documents) - len(kept),
        seconds=time.perf_counter() - start,
    )


def _batches(todo: list[Window], batch_size: int) -> Iterator[list[Window]]:
    """Windows of one length per batch: no padding, so a batch computes exactly what single rows would."""
    batch: list[Window] = []
    for window in todo:
        if batch and (len(batch) == batch_size or len(window.tokens) != len(batch[0].tokens)):
            yield batch
            batch = []
        batch.append(window)
    if batch:
        yield batch


def _score_batch(model, batch: list[Window], device, keep_logits: bool) -> tuple[float, int]:
    import torch
    import torch.nn.functional as F

    ids = torch.tensor([w.tokens for w in batch], dtype=torch.long, device=device)
    length = ids.shape[1]
    first = min(w.first for w in batch)
    # targets[:, t] is the token position t predicts; unscored ones are ignored. Aligned with the
    # logits as they come (no sliced copy of a batch x length x vocabulary tensor).
    targets = torch.full_like(ids, -100)
    targets[:, :-1] = ids[:, 1:]
    starts = torch.tensor([w.first - 1 for w in batch], device=device)
    targets[torch.arange(length, device=device)[None, :] < starts[:, None]] = -100
    kwargs = {}
    if keep_logits and first > 1:  # sliding windows: only the positions that predict scored tokens
        kwargs["logits_to_keep"] = length - first + 1
        targets = targets[:, first - 1 :]
    logits = model(input_ids=ids, **kwargs).logits
    flat, wanted = logits.reshape(-1, logits.shape[-1]), targets.reshape(-1)
    nll = 0.0
    # A slice of positions at a time: the float32 copy and log-softmax of bf16/fp16 logits then
    # cost one slice, not a second and third batch-sized tensor.
    for rows, labels in zip(flat.split(_CE_ROWS), wanted.split(_CE_ROWS), strict=True):
        nll += float(F.cross_entropy(rows.float(), labels, reduction="none").double().sum())
    return nll, int((targets != -100).sum())
