"""The OLMo model catalog: the model card's table and the named revisions (docs/REFERENCE.md section 1)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

TRILLION = 1_000_000_000_000


@dataclass(frozen=True)
class NamedRevision:
    name: str
    repo: str
    revision: str
    tokens: int
    note: str


@dataclass(frozen=True)
class Model:
    name: str
    size: str
    tokens: int
    layers: int
    d_model: int
    heads: int
    context: int
    repo: str  # the original repo (hf_olmo format, needs remote code; carries the step branches)
    hf_repo: str  # the transformers-native copy

    @property
    def repos(self) -> list[str]:
        return [self.repo, self.hf_repo]


MODELS = (
    Model("OLMo 1B", "1B", 3 * TRILLION, 16, 2048, 16, 2048, "allenai/OLMo-1B", "allenai/OLMo-1B-hf"),
    Model("OLMo 7B", "7B", 2_500_000_000_000, 32, 4096, 32, 2048, "allenai/OLMo-7B", "allenai/OLMo-7B-hf"),
    Model(
        "OLMo 7B Twin 2T",
        "7B",
        2 * TRILLION,
        32,
        4096,
        32,
        2048,
        "allenai/OLMo-7B-Twin-2T",
        "allenai/OLMo-7B-Twin-2T-hf",
    ),
)

NAMED_REVISIONS = (
    NamedRevision("OLMo 7B", "allenai/OLMo-7B", "main", 2_500_000_000_000, "the base model"),
    NamedRevision(
        "OLMo 7B (not annealed)",
        "allenai/OLMo-7B",
        "step556000-tokens2460B",
        2_500_000_000_000,
        "learning rate not annealed to 0",
    ),
    NamedRevision("OLMo 7B-2T", "allenai/OLMo-7B", "step452000-tokens2000B", 2 * TRILLION, "checkpoint at 2T tokens"),
    NamedRevision("OLMo-7B-Twin-2T", "allenai/OLMo-7B-Twin-2T", "main", 2 * TRILLION, "twin run on different hardware"),
)


def catalog() -> list[dict]:
    """Every model as a dict (JSON-ready), with the named revisions of its original repo."""
    entries = []
    for model in MODELS:
        entry = asdict(model)
        entry["repos"] = model.repos
        entry["named_revisions"] = [asdict(named) for named in NAMED_REVISIONS if named.repo == model.repo]
        entries.append(entry)
    return entries
