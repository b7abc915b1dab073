"""GGUF outputs checked by llama.cpp itself (llama-cpp-python, which vendors it), against transformers.

For every source format and architecture: llama.cpp's tokenization equals the tokenizer's, and
its logits on a 40+ token prompt equal transformers' on the same checkpoint (f32: max abs
difference under 5e-3 of the largest logit, the same top-1 wherever the reference is not a near
tie, the same 8 greedy tokens up to the first near tie; q8_0: correlation >= 0.995, same top-1 at
clear-cut positions). OLMo 3's prompt is longer than its sliding window, and its full layer uses
YaRN, so both reach the logits.

Marked `llama_cpp`. The tests are fast; building llama-cpp-python is not (scripts/test-llama-cpp
installs it from the cached wheel, or builds the wheel once). When it is missing the tests skip,
unless it was asked for (`-m llama_cpp` or OLMO_REQUIRE_LLAMA_CPP=1, as scripts/test sets): then
they fail.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch
from gguf_sources import SOURCES

from olmo_cli.checkpoints.convert import convert
from olmo_cli.checkpoints.detect import detect_format

pytestmark = pytest.mark.llama_cpp

PROMPT = (
    "In 1492, Columbus sailed the ocean blue; by 2024 the population of Earth was about 8.1 billion, "
    "and a quick brown fox still jumps over the lazy dog 3 times. Meanwhile, in the library, "
    "students read 12 books about history, science and the art of writing clear sentences."
)
TOKENIZE = [
    "Hello world",
    "The year 2024 had 366 days, pi is 3.14159 and 1,000,000 is a million.",
    "  leading, and   several   spaces\n\nnew lines\ttabs 12345678",
    "naïve café, Straße, 東京, emoji 🙂 and <|endoftext|> at the end",
    "don't WE'LL it's I'M x=y+1; f(x) -> [a, b]",
]
# Non-special added tokens are matched in plain text by tokenizers, so llama.cpp must too (USER_DEFINED).
PLAIN_ADDED = "call |||PHONE_NUMBER||| or mail |||EMAIL_ADDRESS||| <|extra_id_1|> today"
TOLERANCE = 5e-3  # of the largest reference logit (llama.cpp's own converter: 5e-4 .. 1.6e-3)
GREEDY = 8


def _require_llama_cpp(config):
    try:
        import llama_cpp
    except ImportError:
        asked = os.environ.get("OLMO_REQUIRE_LLAMA_CPP") == "1" or "llama_cpp" in (config.option.markexpr or "")
        message = "llama-cpp-python is not installed (scripts/test-llama-cpp installs it from the cached wheel)"
        if asked:
            pytest.fail(message)
        pytest.skip(message)
    return llama_cpp


@pytest.fixture(scope="module")
def llama_cpp(pytestconfig):
    return _require_llama_cpp(pytestconfig)


class Reference:
    """transformers on the source (HF) or on `olmo convert --to hf` of it (native, hf_olmo)."""

    def __init__(self, directory: Path):
        from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast

        self.tokenizer = PreTrainedTokenizerFast(tokenizer_file=str(directory / "tokenizer.json"))
        self.model = AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32).eval()

    def ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def logits(self, ids: list[int]) -> np.ndarray:
        with torch.no_grad():
            return self.model(torch.tensor([ids])).logits[0].numpy()

    def greedy(self, ids: list[int], n: int) -> list[int]:
        with torch.no_grad():
            out = self.model.generate(torch.tensor([ids]), max_new_tokens=n, do_sample=False, pad_token_id=0)
        return out[0, len(ids) :].tolist()


@pytest.fixture(scope="module", params=list(SOURCES))
def case(request, tmp_path_factory):
    """(source dir, reference, name) for each source format and architecture."""
    root = tmp_path_factory.mktemp(request.param)
    src = SOURCES[request.param](root / "src")
    if detect_format(src) == "hf":
        reference_dir = src
    else:
        reference_dir = root / "hf"
        convert(src, reference_dir, to="hf")
    return src, Reference(reference_dir), request.param


@contextmanager
def _gguf_in_llama_cpp(llama_cpp, src: Path, out: Path, outtype: str):
    """`src` converted to the GGUF `out` (`outtype`) and opened in llama.cpp; closed afterwards."""
    convert(src, out, outtype=outtype)
    llm = llama_cpp.Llama(str(out), n_ctx=256, n_batch=256, logits_all=True, verbose=False, n_threads=2, seed=0)
    try:
        yield llm
    finally:
        llm.close()


def _llama_logits(llm, ids: list[int]) -> np.ndarray:
    llm.reset()
    llm.eval(ids)
    return np.array(llm.scores[: len(ids)], dtype=np.float32)


def _llama_greedy(llm, ids: list[int], n: int) -> list[int]:
    llm.reset()
    llm.eval(ids)
    out = []
    for _ in range(n):
        token = int(np.argmax(llm.scores[llm.n_tokens - 1]))
        out.append(token)
        llm.eval([token])
    return out


def _margins(logits: np.ndarray) -> np.ndarray:
    top2 = np.sort(logits, axis=-1)[:, -2:]
    return top2[:, 1] - top2[:, 0]


def test_f32_matches_transformers(llama_cpp, case, tmp_path):
    src, reference, name = case
    with _gguf_in_llama_cpp(llama_cpp, src, tmp_path / "model.gguf", "f32") as llm:
        for text in TOKENIZE:
            assert llm.tokenize(text.encode(), add_bos=True, special=True) == reference.ids(text), text
        plain = PLAIN_ADDED.encode()
        assert llm.tokenize(plain, add_bos=True, special=False) == reference.ids(PLAIN_ADDED)
        assert llm.token_eos() == reference.model.config.eos_token_id
        ids = reference.ids(PROMPT)
        assert len(ids) >= 40
        ref = reference.logits(ids)
        got = _llama_logits(llm, ids)
        scale = float(np.abs(ref).max())
        diff = float(np.abs(got - ref).max())
        print(f"{name}: f32 max abs diff {diff / scale:.3g} of the largest logit")
        assert diff < TOLERANCE * scale, f"{name}: max abs diff {diff:.3g}, largest logit {scale:.3g}"
        clear = _margins(ref) > 2 * TOLERANCE * scale  # a near tie could flip within the tolerance
        assert clear.mean() > 0.5
        assert (got.argmax(-1) == ref.argmax(-1))[clear].all()
        expected, actual = reference.greedy(ids, GREEDY), _llama_greedy(llm, ids, GREEDY)
        # Compare up to the first step where the reference itself nearly ties.
        context = list(ids)
        for want, have in zip(expected, actual, strict=True):
            if _margins(reference.logits(context)[-1:])[0] <= 2 * TOLERANCE * scale:
                break
            assert have == want, f"{name}: greedy continuation differs: {actual} vs {expected}"
            context.append(want)


def test_q8_0_tracks_transformers(llama_cpp, case, tmp_path):
    src, reference, name = case
    with _gguf_in_llama_cpp(llama_cpp, src, tmp_path / "model-q8_0.gguf", "q8_0") as llm:
        ids = reference.ids(PROMPT)
        ref, got = reference.logits(ids), _llama_logits(llm, ids)
        correlation = float(np.corrcoef(ref.ravel(), got.ravel())[0, 1])
        assert correlation >= 0.995, f"{name}: correlation {correlation:.4f}"
        scale = float(np.abs(ref).max())
        relative = float(np.abs(got - ref).max()) / scale
        print(f"{name}: q8_0 correlation {correlation:.5f}, max abs diff {relative:.3g} of the largest logit")
        clear = _margins(ref) > 0.02 * scale  # q8_0 moves logits by ~1% of the largest here
        assert clear.mean() > 0.2
        assert (got.argmax(-1) == ref.argmax(-1))[clear].all()


def test_without_the_q_k_row_order_olmo_1_is_wrong(llama_cpp, tmp_path, monkeypatch):
    """The Q/K permutation is what makes OLMo-1 right: with the rows left as they are, llama.cpp's
    logits are far off (so the f32 test above would catch a wrong order)."""
    from gguf_sources import olmo1_hf

    from olmo_cli.checkpoints.gguf import names

    src = olmo1_hf(tmp_path / "src")
    reference = Reference(src)
    ids = reference.ids(PROMPT)
    ref = reference.logits(ids)
    monkeypatch.setattr(names, "head_pair_order", lambda heads, head_dim: np.arange(heads * head_dim))
    with _gguf_in_llama_cpp(llama_cpp, src, tmp_path / "unpermuted.gguf", "f32") as llm:
        diff = float(np.abs(_llama_logits(llm, ids) - ref).max())
    assert diff > 10 * TOLERANCE * float(np.abs(ref).max())


def test_olmo3_window_and_yarn_are_in_effect(llama_cpp, tmp_path):
    """Past the window, the sliding layers and YaRN change the logits: a GGUF of the same weights
    with a wider window (or default attention factor) does not match transformers, ours does."""
    from gguf_sources import olmo3_hf

    src = olmo3_hf(tmp_path / "src", window=8)
    reference = Reference(src)
    ids = reference.ids(PROMPT)
    assert len(ids) > 5 * 8
    ref = reference.logits(ids)
    scale = float(np.abs(ref).max())
    results = {}
    for label, edit in (("ours", {}), ("wide", {"sliding_window": 4096}), ("no-attn", {"attention_factor": None})):
        variant = src if not edit else _edited_olmo3(src, tmp_path / label, **edit)
        with _gguf_in_llama_cpp(llama_cpp, variant, tmp_path / f"{label}.gguf", "f32") as llm:
            results[label] = float(np.abs(_llama_logits(llm, ids) - ref).max())
    assert results["ours"] < TOLERANCE * scale
    assert results["wide"] > 10 * TOLERANCE * scale
    assert results["no-attn"] > 2 * TOLERANCE * scale


def _edited_olmo3(src: Path, dst: Path, **edit) -> Path:
    import json
    import shutil

    shutil.copytree(src, dst)
    config = json.loads((dst / "config.json").read_text())
    if "sliding_window" in edit:
        config["sliding_window"] = edit["sliding_window"]
    if "attention_factor" in edit:
        config["rope_parameters"]["full_attention"].pop("attention_factor", None)
    (dst / "config.json").write_text(json.dumps(config))
    return dst


# --- against llama.cpp's own converter -------------------------------------------------------

SDIST = "llama_cpp_python-0.3.36.tar.gz"
_VENDOR = "llama_cpp_python-0.3.36/vendor/llama.cpp/"


@pytest.fixture(scope="module")
def llama_cpp_converter(pytestconfig, tmp_path_factory):
    """convert_hf_to_gguf.py and its gguf-py, unpacked from the cached llama-cpp-python sdist."""
    import tarfile

    cache = Path(os.environ.get("OLMO_CI_CACHE", Path.home() / ".cache" / "olmo-ci"))
    sdist = cache / "sdist" / SDIST
    if not sdist.is_file():
        message = f"no {sdist} (scripts/test-llama-cpp downloads it)"
        if os.environ.get("OLMO_REQUIRE_LLAMA_CPP") == "1" or "llama_cpp" in (pytestconfig.option.markexpr or ""):
            pytest.fail(message)
        pytest.skip(message)
    root = tmp_path_factory.mktemp("llama.cpp")
    wanted = tuple(_VENDOR + p for p in ("convert_hf_to_gguf.py", "conversion/", "gguf-py/gguf/"))
    with tarfile.open(sdist) as archive:
        members = [m for m in archive.getmembers() if m.name.startswith(wanted) and (m.isfile() or m.isdir())]
        archive.extractall(root, members=members, filter="data")
    return root / _VENDOR


def _run_llama_cpp_converter(converter: Path, src: Path, out: Path, outtype: str) -> None:
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": str(converter / "gguf-py")}
    command = [sys.executable, str(converter / "convert_hf_to_gguf.py"), str(src), "--outfile", str(out)]
    done = subprocess.run([*command, "--outtype", outtype], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]


@pytest.mark.parametrize(
    ("source", "outtype"),
    [("olmo1-hf-tied-gqa", "q8_0"), ("olmo2-hf-gqa", "f32"), ("olmo3-hf-sliding-yarn", "f16")],
)
def test_same_tensors_and_tokenizer_as_llama_cpps_own_converter(llama_cpp_converter, tmp_path, source, outtype):
    """Every tensor byte for byte and every tokenizer key as llama.cpp's convert_hf_to_gguf.py
    writes them, on the same transformers checkpoint. Known, deliberate differences: non-special
    added tokens that look like `<|...|>` (dolma2's `<|extra_id_N|>`) are USER_DEFINED here, as
    tokenizers treats them (matched in text, shown when decoding), where llama.cpp's converter
    guesses CONTROL; and YaRN's attention factor goes in `rope.scaling.attn_factor`, the key
    llama.cpp's olmo2 reads (its converter writes `yarn_attn_factor`, which olmo2 ignores)."""
    import gguf

    src = SOURCES[source](tmp_path / "src")
    ours, theirs = tmp_path / "ours.gguf", tmp_path / "theirs.gguf"
    convert(src, ours, outtype=outtype)
    _run_llama_cpp_converter(llama_cpp_converter, src, theirs, outtype)
    a, b = gguf.GGUFReader(ours), gguf.GGUFReader(theirs)
    mine = {t.name: t for t in a.tensors}
    upstream = {t.name: t for t in b.tensors}
    assert set(mine) == set(upstream)
    for name, tensor in mine.items():
        other = upstream[name]
        assert tensor.tensor_type == other.tensor_type, name
        assert list(tensor.shape) == list(other.shape), name
        assert np.array_equal(np.asarray(tensor.data), np.asarray(other.data)), name
    kv_a = {k: f.contents() for k, f in a.fields.items()}
    kv_b = {k: f.contents() for k, f in b.fields.items()}
    for key in kv_b:
        if key.startswith("tokenizer.") and key != "tokenizer.ggml.token_type":
            assert kv_a.get(key) == kv_b[key], key
    tokens = kv_a["tokenizer.ggml.tokens"]
    differ = [
        i
        for i, (x, y) in enumerate(
            zip(kv_a["tokenizer.ggml.token_type"], kv_b["tokenizer.ggml.token_type"], strict=True)
        )
        if x != y
    ]
    assert all(
        tokens[i].startswith("<|") and kv_a["tokenizer.ggml.token_type"][i] == gguf.TokenType.USER_DEFINED
        for i in differ
    )
    arch = kv_b["general.architecture"]
    for key in kv_b:
        if key.startswith(f"{arch}.") and key not in (
            f"{arch}.rope.scaling.yarn_attn_factor",
            f"{arch}.rope.freq_base_swa",
        ):
            assert kv_a.get(key) == pytest.approx(kv_b[key]), key
    assert kv_a["general.size_label"] == kv_b["general.size_label"]
