"""The OLMo model catalog: sizes, training tokens, shapes, Hub repos, how intermediate
checkpoints are published, and the named revisions.

Sources (facts only):
- OLMo 1: the OLMo model card's table and named revisions (allenai/OLMo-7B README, REFERENCE 1).
- OLMo 2, OLMo 3, OLMoE shapes: OLMo-core 3.0.0's TransformerConfig presets `olmo2_1B_v2`,
  `olmo2_7B`, `olmo2_13B`, `olmo2_32B`, `olmo3_7B`, `olmo3_32B`, `olmoe_1B_7B`
  (olmo_core/nn/transformer/config.py): d_model, layers, heads, KV heads, sliding pattern.
- Training tokens (for OLMo 2 / OLMo 3: pretraining, stage 1; the stage-2 mid-training adds
  50B-300B): the token counts in the repos' own final stage-1 branch names (REFERENCE 2:
  `stage1-step1907359-tokens4001B` 1B, `stage1-step928646-tokens3896B` 7B,
  `stage1-step596057-tokens5001B` 13B, `stage1-step721901-tokens6056B` 32B,
  `step1200000-tokens5033B` OLMoE); OLMo 3 7B's `stage1-step1413814` at 4,194,304 tokens a step
  is 5.93T. OLMo 3 32B's count is
  not in its branch names, so it is left unknown here.
- Checkpoint publication: the branch families listed in REFERENCE 2 (stage1-/stage2-ingredient
  branches on the Hub for OLMo 2, OLMo 3's stage1/2/3 branches without token suffix, OLMoE's
  step branches). The OLMo 2 / OLMo 3 trainer itself writes OLMo-core step directories; `olmo
  convert` reads them when they are all you have.
- Citation: the OLMo model card's "Citation" section (BibTeX and APA, as given there).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

TRILLION = 1_000_000_000_000
BILLION = 1_000_000_000


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
    tokens: int | None  # (pre)training tokens (None: not published in a form we can cite)
    layers: int
    d_model: int
    heads: int
    context: int
    repo: str  # the repo carrying the intermediate checkpoints as branches
    hf_repo: str | None = None  # a transformers-native copy, when the repo above is not one
    family: str = "olmo1"
    kv_heads: int | None = None  # None: as many as heads
    attention: str = "full"
    checkpoints: str = "Hub branches step{N}-tokens{T}B"

    @property
    def repos(self) -> list[str]:
        return [self.repo] + ([self.hf_repo] if self.hf_repo else [])


_OLMO2_BRANCHES = "Hub branches stage1-step{N}-tokens{T}B, stage2-ingredient{K}-step{N}-tokens{T}B"
_OLMO3_BRANCHES = "Hub branches stage1-step{N}, stage2-step{N} (and ablation variants), stage3-step{N}"
_OLMO3_WINDOWS = "sliding window 4096 on 3 of every 4 layers, the last layer full"

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
    Model(
        "OLMo 2 1B (0425)",
        "1B",
        4001 * BILLION,
        16,
        2048,
        16,
        4096,
        "allenai/OLMo-2-0425-1B",
        family="olmo2",
        checkpoints=_OLMO2_BRANCHES,
    ),
    Model(
        "OLMo 2 7B (1124)",
        "7B",
        3896 * BILLION,
        32,
        4096,
        32,
        4096,
        "allenai/OLMo-2-1124-7B",
        family="olmo2",
        checkpoints=_OLMO2_BRANCHES + " (some early ones without stage1-)",
    ),
    Model(
        "OLMo 2 13B (1124)",
        "13B",
        5001 * BILLION,
        40,
        5120,
        40,
        4096,
        "allenai/OLMo-2-1124-13B",
        family="olmo2",
        checkpoints=_OLMO2_BRANCHES,
    ),
    Model(
        "OLMo 2 32B (0325)",
        "32B",
        6056 * BILLION,
        64,
        5120,
        40,
        4096,
        "allenai/OLMo-2-0325-32B",
        family="olmo2",
        kv_heads=8,
        checkpoints=_OLMO2_BRANCHES + "; trained with OLMo-core",
    ),
    Model(
        "OLMo 3 7B (1025)",
        "7B",
        5_930_000_000_000,
        32,
        4096,
        32,
        65536,
        "allenai/Olmo-3-1025-7B",
        family="olmo3",
        attention=_OLMO3_WINDOWS,
        checkpoints=_OLMO3_BRANCHES + "; trained with OLMo-core",
    ),
    Model(
        "OLMo 3 32B (1125)",
        "32B",
        None,
        64,
        5120,
        40,
        65536,
        "allenai/Olmo-3-1125-32B",
        family="olmo3",
        kv_heads=8,
        attention=_OLMO3_WINDOWS,
        checkpoints="Hub branches stage1-step{N}, stage2-ingredient{K}-step{N}; trained with OLMo-core",
    ),
    Model(
        "OLMoE 1B-7B (0924)",
        "1B active / 7B",
        5033 * BILLION,
        16,
        2048,
        16,
        4096,
        "allenai/OLMoE-1B-7B-0924",
        family="olmoe",
        attention="full; mixture-of-experts feed-forward (olmo convert refuses MoE)",
        checkpoints="Hub branches step{N}-tokens{T}B, plus fp32",
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

# The OLMo model card's "Citation" section, as it gives it.
CITATION_BIBTEX = """@article{Groeneveld2023OLMo,
  title={OLMo: Accelerating the Science of Language Models},
  author={Groeneveld, Dirk and Beltagy, Iz and Walsh, Pete and Bhagia, Akshita and Kinney, Rodney and Tafjord, Oyvind and Jha, Ananya Harsh and Ivison, Hamish and Magnusson, Ian and Wang, Yizhong and Arora, Shane and Atkinson, David and Authur, Russell and Chandu, Khyathi and Cohan, Arman and Dumas, Jennifer and Elazar, Yanai and Gu, Yuling and Hessel, Jack and Khot, Tushar and Merrill, William and Morrison, Jacob and Muennighoff, Niklas and Naik, Aakanksha and Nam, Crystal and Peters, Matthew E. and Pyatkin, Valentina and Ravichander, Abhilasha and Schwenk, Dustin and Shah, Saurabh and Smith, Will and Subramani, Nishant and Wortsman, Mitchell and Dasigi, Pradeep and Lambert, Nathan and Richardson, Kyle and Dodge, Jesse and Lo, Kyle and Soldaini, Luca and Smith, Noah A. and Hajishirzi, Hannaneh},
  journal={Preprint},
  year={2024}
}"""  # noqa: E501
CITATION_APA = (
    "Groeneveld, D., Beltagy, I., Walsh, P., Bhagia, A., Kinney, R., Tafjord, O., Jha, A., Ivison, H., "
    "Magnusson, I., Wang, Y., Arora, S., Atkinson, D., Authur, R., Chandu, K., Cohan, A., Dumas, J., Elazar, Y., "
    "Gu, Y., Hessel, J., Khot, T., Merrill, W., Morrison, J., Muennighoff, N., Naik, A., Nam, C., Peters, M., "
    "Pyatkin, V., Ravichander, A., Schwenk, D., Shah, S., Smith, W., Subramani, N., Wortsman, M., Dasigi, P., "
    "Lambert, N., Richardson, K., Dodge, J., Lo, K., Soldaini, L., Smith, N., & Hajishirzi, H. (2024). "
    "OLMo: Accelerating the Science of Language Models. Preprint."
)
CITATIONS = {"bibtex": CITATION_BIBTEX, "apa": CITATION_APA}


def catalog() -> list[dict]:
    """Every model as a dict (JSON-ready), with the named revisions of its original repo."""
    entries = []
    for model in MODELS:
        entry = asdict(model)
        entry["repos"] = model.repos
        entry["named_revisions"] = [asdict(named) for named in NAMED_REVISIONS if named.repo == model.repo]
        entries.append(entry)
    return entries
