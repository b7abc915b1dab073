"""OLMo-core checkpoints, against the real ai2-olmo-core: every fixture is built and saved by
OLMo-core itself (tests/olmo_core_models.py), and every conversion is compared with OLMo-core's
own forward pass in float32."""

from __future__ import annotations

import json
import os
import pickle
import shutil
from pathlib import Path

import olmo_core_models as oc
import pytest
import torch
from typer.testing import CliRunner

from olmo_cli.checkpoints.convert import convert
from olmo_cli.cli.app import app
from olmo_cli.dcp_metadata import read_metadata
from olmo_cli.errors import BadInputError, UnsupportedError

pytestmark = pytest.mark.filterwarnings("ignore:torch.distributed is disabled")

IDS = [(17 + 7919 * i) % 100278 for i in range(oc.SEQUENCE)]  # longer than every sliding window
# Every RoPE scaling OLMo-core 3.0.0 has (YaRN, PI, stepwise, ABF) that transformers can express.
SCALED = ["olmo3-yarn", "olmo3-linear", "olmo3-llama3", "olmo3-abf", "olmo2-abf"]
KINDS = ["olmo2", "olmo2-tied", "olmo3", *SCALED, "olmo3-2ranks"]


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    """Each kind saved once by OLMo-core; olmo3-2ranks by two gloo processes (FSDP2 on CPU)."""
    root = tmp_path_factory.mktemp("olmo-core")
    made = {kind: oc.save(root / kind / "step10", kind) for kind in KINDS if kind != "olmo3-2ranks"}
    made["olmo3-2ranks"] = oc.save(root / "olmo3-2ranks" / "step10", "olmo3", ranks=2, seed=1)
    return made


@pytest.fixture(scope="session")
def references(checkpoints):
    """OLMo-core's own logits for IDS, per kind (the model rebuilt from config.json and loaded)."""
    return {kind: oc.logits(oc.load(path), IDS) for kind, path in checkpoints.items()}


@pytest.fixture(scope="session")
def converted(checkpoints, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("converted")
    return {kind: convert(path, root / kind, to="hf", offline=True).dst for kind, path in checkpoints.items()}


def hf_logits(directory: Path, ids=IDS):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32).eval()
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0]


def run(*args: str):
    return CliRunner().invoke(app, list(args))


@pytest.mark.parametrize("kind", KINDS)
def test_to_hf_gives_olmo_core_logits(kind, checkpoints, converted, references):
    config = json.loads((converted[kind] / "config.json").read_text())
    diff = float((hf_logits(converted[kind]) - references[kind]).abs().max())
    assert diff <= 1e-5, (kind, diff)
    if kind.startswith("olmo3"):
        assert config["model_type"] == "olmo3" and config["architectures"] == ["Olmo3ForCausalLM"]
    else:
        assert config["model_type"] == "olmo2" and config["num_key_value_heads"] == (1 if kind == "olmo2" else 3)
    assert config["tie_word_embeddings"] == (kind == "olmo2-tied")
    # The tokenizer named in config.json (allenai/dolma2-tokenizer) is bundled: written offline.
    assert json.loads((converted[kind] / "tokenizer_config.json").read_text())["eos_token"] == "<|endoftext|>"


def test_sliding_window_pattern_and_off_by_one(converted, references):
    """OLMo-core's window 4 is transformers' sliding_window 4; 3 or 5 would change the logits at 12 tokens."""
    config = json.loads((converted["olmo3"] / "config.json").read_text())
    assert (
        config["layer_types"] == ["full_attention", "sliding_attention", "sliding_attention"] + ["full_attention"] * 2
    )
    assert config["sliding_window"] == 4
    for wrong in (3, 5):
        edited = converted["olmo3"].parent / f"window{wrong}"
        shutil.copytree(converted["olmo3"], edited)
        (edited / "config.json").write_text(json.dumps({**config, "sliding_window": wrong}))
        assert float((hf_logits(edited) - references["olmo3"]).abs().max()) > 1e-3


def test_yarn_on_full_attention_layers_only(converted):
    config = json.loads((converted["olmo3-yarn"] / "config.json").read_text())
    full, sliding = config["rope_parameters"]["full_attention"], config["rope_parameters"]["sliding_attention"]
    assert full["rope_type"] == "yarn" and full["factor"] == 4.0 and full["original_max_position_embeddings"] == 8
    assert sliding == {"rope_type": "default", "rope_theta": 500000.0}


@pytest.mark.parametrize(
    "kind, expected",
    [
        ("olmo3-linear", {"rope_type": "linear", "factor": 2.0, "rope_theta": 500000.0}),
        (
            "olmo3-llama3",
            {
                "rope_type": "llama3",
                "factor": 4.0,
                "original_max_position_embeddings": 8,
                "low_freq_factor": 1.0,
                "high_freq_factor": 4.0,
                "rope_theta": 500000.0,
            },
        ),
        ("olmo3-abf", {"rope_type": "default", "rope_theta": 1000.0}),
    ],
)
def test_linear_llama3_and_abf_scaling_on_full_attention_layers(kind, expected, converted, references):
    """PI, stepwise and ABF scaling become transformers' linear, llama3 and a rope_theta of their
    own on the full-attention layers; plain RoPE there would change the logits (so the 1e-5 match
    above is the scaling's)."""
    config = json.loads((converted[kind] / "config.json").read_text())
    full, sliding = config["rope_parameters"]["full_attention"], config["rope_parameters"]["sliding_attention"]
    assert full == expected
    assert sliding == {"rope_type": "default", "rope_theta": 500000.0}
    edited = converted[kind].parent / f"{kind}-unscaled"
    shutil.copytree(converted[kind], edited)
    plain = {**config["rope_parameters"], "full_attention": sliding}
    (edited / "config.json").write_text(json.dumps({**config, "rope_parameters": plain}))
    assert float((hf_logits(edited) - references[kind]).abs().max()) > 1e-3


def test_abf_scaling_is_the_rope_theta(converted, references):
    config = json.loads((converted["olmo2-abf"] / "config.json").read_text())
    assert config["model_type"] == "olmo2" and config["rope_parameters"]["rope_theta"] == 1000.0
    edited = converted["olmo2-abf"].parent / "abf-old-theta"
    shutil.copytree(converted["olmo2-abf"], edited)
    old = {"rope_type": "default", "rope_theta": 500000.0}
    (edited / "config.json").write_text(json.dumps({**config, "rope_theta": 500000.0, "rope_parameters": old}))
    assert float((hf_logits(edited) - references["olmo2-abf"]).abs().max()) > 1e-3


def test_generate_greedy_gives_olmo_core_tokens(checkpoints):
    from tokenizers import Tokenizer

    from olmo_cli.checkpoints.tokenizers import DOLMA2

    tokenizer = Tokenizer.from_file(str(DOLMA2.path))
    prompt = "Language modeling is"
    ids = tokenizer.encode(prompt).ids
    expected = oc.greedy(oc.load(checkpoints["olmo3-2ranks"]), ids, 8)
    result = run("generate", str(checkpoints["olmo3-2ranks"]), "-p", prompt, "--greedy", "-n", "8", "--json")
    assert result.exit_code == 0, result.output
    completion = json.loads(result.stdout)["completions"][0]
    assert completion["completion_tokens"] == len(expected)
    assert completion["completion"] == tokenizer.decode(expected, skip_special_tokens=True)


@pytest.mark.parametrize("kind", ["olmo3-yarn", "olmo3-linear", "olmo3-llama3", "olmo3-abf"])
def test_hf_to_olmo_core_loads_back_in_olmo_core(kind, converted, references, tmp_path):
    out = run("convert", str(converted[kind]), str(tmp_path / "step"), "--to", "olmo-core", "--verify")
    assert out.exit_code == 0, out.output
    assert "weights only" in out.stderr and "optim" in out.stderr
    model = oc.load(tmp_path / "step")  # OLMo-core's TransformerConfig.from_dict + load_model_and_optim_state
    assert float((oc.logits(model, IDS) - references[kind]).abs().max()) <= 1e-5
    assert model.blocks["1"].attention.backend.window_size != (-1, -1)


def test_any_format_to_olmo_core(tmp_path):
    """A transformers olmo2 made by transformers itself -> olmo-core, loaded by OLMo-core, tied and untied."""
    from tiny_models import make_hf

    for tied in (False, True):
        src = make_hf(tmp_path / f"hf{tied}", arch="olmo2", tie_word_embeddings=tied)
        convert(src, tmp_path / f"oc{tied}", to="olmo-core")
        ids = [3, 1, 4, 1, 5, 9, 2, 6]
        got = oc.logits(oc.load(tmp_path / f"oc{tied}"), ids)
        assert float((got - hf_logits(src, ids)).abs().max()) <= 1e-5


def test_olmo_core_to_olmo_core_and_inspect(checkpoints, tmp_path):
    summary = json.loads(run("inspect", str(checkpoints["olmo3-yarn"]), "--json").stdout)
    assert (summary["format"], summary["family"]) == ("olmo-core", "olmo3")
    arch = summary["architecture"]
    assert arch["layer_types"] == ["sliding_attention"] * 3 + ["full_attention"] and arch["sliding_window"] == 5
    assert arch["rope_scaling"]["rope_type"] == "yarn"
    model = oc.load(checkpoints["olmo3-yarn"])
    assert summary["parameters"] == sum(p.numel() for p in model.parameters())
    table = run("inspect", str(checkpoints["olmo3-2ranks"]))
    assert "olmo-core" in table.stdout and "sliding window 4: F S S F F" in table.stdout
    # olmo-core -> olmo-core re-casts (bf16) through the same reader and writer.
    convert(checkpoints["olmo2"], tmp_path / "bf16", to="olmo-core", dtype="bfloat16")
    cast = oc.load(tmp_path / "bf16")
    assert cast.embeddings.weight.dtype == torch.float32  # OLMo-core loads into its fp32 model
    assert torch.equal(cast.embeddings.weight, oc.load(checkpoints["olmo2"]).embeddings.weight.bfloat16().float())


@pytest.mark.parametrize("safetensors", [False, True])
def test_unsharded_forms(checkpoints, references, tmp_path, safetensors):
    """OLMo-core's own unshard (model.pt or model.safetensors) beside the step's config.json."""
    from olmo_core.distributed.checkpoint import unshard_checkpoint

    src = tmp_path / "unsharded"
    unshard_checkpoint(
        str(checkpoints["olmo3-2ranks"] / "model_and_optim"), str(src), optim=False, use_safetensors=safetensors
    )
    shutil.copy(checkpoints["olmo3-2ranks"] / "config.json", src)
    assert json.loads(run("inspect", str(src), "--json").stdout)["format"] == "olmo-core"
    out = convert(src, tmp_path / "hf", to="hf", offline=True).dst
    assert float((hf_logits(out) - references["olmo3-2ranks"]).abs().max()) <= 1e-5


def test_native_refuses_windows(checkpoints, tmp_path):
    result = run("convert", str(checkpoints["olmo3"]), str(tmp_path / "n-unsharded"), "--to", "native")
    assert result.exit_code == 8 and "sliding-window" in result.stderr
    assert not (tmp_path / "n-unsharded").exists()
    ok = run("convert", str(checkpoints["olmo2"]), str(tmp_path / "o2-unsharded"), "--to", "native", "--verify")
    assert ok.exit_code == 0, ok.output


def test_optimizer_state_is_never_read(checkpoints, tmp_path):
    src = tmp_path / "step"
    shutil.copytree(checkpoints["olmo2"], src)
    stored = read_metadata(src / "model_and_optim")
    for fqn, tensor in stored.items():
        if fqn.startswith("optim."):
            for chunk in tensor.chunks:
                with open(src / "model_and_optim" / chunk.file, "r+b") as f:
                    f.seek(chunk.offset)
                    f.write(b"\xff" * chunk.length)  # garbage where the optimizer state was
    assert convert(src, tmp_path / "out", to="hf", verify=True).max_logit_diff <= 1e-4


def test_hub_repo_of_a_step_directory(checkpoints, references, fake_hub, tmp_path):
    from olmo_cli.dcp_metadata import model_files

    src = checkpoints["olmo3-2ranks"]
    files = {p.relative_to(src).as_posix(): p.read_bytes() for p in src.rglob("*") if p.is_file()}
    fake_hub.add_repo("someone/olmo3-core", branches={"main": files, "stage1-step10": files})
    result = run("convert", "someone/olmo3-core", "-r", "stage1-step10", str(tmp_path / "hf"))
    assert result.exit_code == 0, result.output
    assert float((hf_logits(tmp_path / "hf") - references["olmo3-2ranks"]).abs().max()) <= 1e-5
    assert model_files(src / "model_and_optim") <= {name.split("/")[-1] for name in files}


def _optimizer_in_a_file_of_its_own(step: Path) -> str:
    """A real save rearranged: every optim.* item's bytes copied into a new .distcp, which .metadata
    names instead (DCP lets any item live in any file); the name of that file."""
    import dataclasses

    directory, name = step / "model_and_optim", "__2_0.distcp"
    metadata = pickle.loads((directory / ".metadata").read_bytes())  # the test's own, trusted file
    with open(directory / name, "wb") as out:
        for index, info in list(metadata.storage_data.items()):
            if index.fqn.startswith("optim."):
                with open(directory / info.relative_path, "rb") as f:
                    f.seek(info.offset)
                    data = f.read(info.length)
                metadata.storage_data[index] = dataclasses.replace(info, relative_path=name, offset=out.tell())
                out.write(data)
    (directory / ".metadata").write_bytes(pickle.dumps(metadata))
    return name


def test_hub_download_skips_optimizer_only_files(checkpoints, references, fake_hub, tmp_path):
    from olmo_cli.dcp_metadata import files_holding, read_metadata

    src = Path(shutil.copytree(checkpoints["olmo3-2ranks"], tmp_path / "step10"))
    optimizer_only = _optimizer_in_a_file_of_its_own(src)
    stored = read_metadata(src / "model_and_optim")
    assert optimizer_only not in files_holding(stored) and optimizer_only in files_holding(stored, "optim.")
    files = {p.relative_to(src).as_posix(): p.read_bytes() for p in src.rglob("*") if p.is_file()}
    fake_hub.add_repo("someone/olmo3-core", branches={"main": files})
    fake_hub.clear_log()
    result = run("convert", "someone/olmo3-core", str(tmp_path / "hf"))
    assert result.exit_code == 0, result.output
    assert float((hf_logits(tmp_path / "hf") - references["olmo3-2ranks"]).abs().max()) <= 1e-5
    requested = [r.path for r in fake_hub.requests]
    assert not [path for path in requested if optimizer_only in path]
    assert all(any(name in path for path in requested) for name in files_holding(stored))  # the model's are fetched
    # verify judges the snapshot complete without it; download --all-files still fetches it
    checked = json.loads(run("verify", "someone/olmo3-core", "--json").stdout)
    assert checked["ok"] and checked["revisions"][0]["missing"] == [], checked
    assert run("download", "someone/olmo3-core", "--all-files").exit_code == 0
    assert [path for path in (r.path for r in fake_hub.requests) if optimizer_only in path]


# --- bad input: one line, exit 5 (or 8), nothing at DST -----------------------------------------


def _copy(checkpoints, tmp_path, kind="olmo2") -> Path:
    return Path(shutil.copytree(checkpoints[kind], tmp_path / "src"))


def _rewrite_metadata(src: Path, change) -> None:
    path = src / "model_and_optim" / ".metadata"
    metadata = pickle.loads(path.read_bytes())  # the test's own, trusted file
    change(metadata)
    path.write_bytes(pickle.dumps(metadata))


def _assert_refused(src: Path, dst: Path, code: int, text: str) -> None:
    result = run("convert", str(src), str(dst))
    assert result.exit_code == code, result.output
    assert text in result.stderr and "Traceback" not in result.output
    assert result.stderr.startswith("error: ") and len(result.stderr.strip().splitlines()) <= 2  # error + hint
    assert not dst.exists()


class _Payload:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_metadata_with_code_is_refused_not_run(checkpoints, tmp_path):
    src = _copy(checkpoints, tmp_path)
    marker = tmp_path / "PWNED"
    _rewrite_metadata(src, lambda m: m.planner_data.update(x=_Payload(marker)))
    _assert_refused(src, tmp_path / "out", 5, "not allowed")
    assert not marker.exists()


def test_truncated_distcp(checkpoints, tmp_path):
    src = _copy(checkpoints, tmp_path)
    last = max((src / "model_and_optim").glob("*.distcp"), key=lambda p: p.stat().st_size)
    os.truncate(last, last.stat().st_size // 2)
    _assert_refused(src, tmp_path / "out", 5, "truncated")


@pytest.mark.parametrize("problem", ["missing", "not json"])
def test_config_json_missing_or_not_json(checkpoints, tmp_path, problem):
    src = _copy(checkpoints, tmp_path)
    if problem == "missing":
        (src / "config.json").unlink()
    else:
        (src / "config.json").write_text("{not json")
    _assert_refused(src, tmp_path / "out", 5, "config.json")


@pytest.mark.parametrize(
    "key, value, text",
    [
        ("d_model", float("nan"), "nan is not a whole number"),
        ("d_model", 64.5, "64.5 is not a whole number"),
        ("n_layers", True, "True is not a whole number"),
        ("n_layers", 10**12, "beyond any model"),  # was a MemoryError (exit 70) building per-layer tables
        ("vocab_size", -5, "must be positive"),
    ],
)
def test_absurd_numbers_in_the_model_config(checkpoints, tmp_path, key, value, text):
    src = _copy(checkpoints, tmp_path)
    config = json.loads((src / "config.json").read_text())
    config["model"][key] = value
    (src / "config.json").write_text(json.dumps(config))
    _assert_refused(src, tmp_path / "out", 5, text)


def test_missing_and_overlapping_chunks(checkpoints, tmp_path):
    src = Path(shutil.copytree(checkpoints["olmo3-2ranks"], tmp_path / "two"))
    fqn = "model.blocks.0.feed_forward.w1.weight"

    def drop_chunk(metadata):
        metadata.state_dict_metadata[fqn].chunks.pop()

    _rewrite_metadata(src, drop_chunk)
    _assert_refused(src, tmp_path / "out", 5, "a chunk is missing")

    src = Path(shutil.copytree(checkpoints["olmo3-2ranks"], tmp_path / "two-b"))

    def overlap(metadata):
        from torch.distributed.checkpoint.metadata import ChunkStorageMetadata

        chunks = metadata.state_dict_metadata[fqn].chunks
        first = chunks[0]
        grown = torch.Size([first.sizes[0] + 1, *first.sizes[1:]])
        chunks[0] = ChunkStorageMetadata(offsets=first.offsets, sizes=grown)

    _rewrite_metadata(src, overlap)
    _assert_refused(src, tmp_path / "out2", 5, "overlap")


def test_a_tokenizer_is_required_before_writing(checkpoints, tmp_path):
    src = _copy(checkpoints, tmp_path)
    config = json.loads((src / "config.json").read_text())
    del config["dataset"]["tokenizer"]
    (src / "config.json").write_text(json.dumps(config))
    _assert_refused(src, tmp_path / "out", 3, "names no tokenizer")
    given = run("convert", str(src), str(tmp_path / "out"), "--tokenizer", "allenai/dolma2-tokenizer")
    assert given.exit_code == 0, given.output
    assert (tmp_path / "out" / "tokenizer.json").is_file()


def test_shapes_that_disagree_with_the_config(checkpoints, tmp_path):
    src = _copy(checkpoints, tmp_path)
    config = json.loads((src / "config.json").read_text())
    config["model"]["block"]["feed_forward"]["hidden_size"] = 512
    (src / "config.json").write_text(json.dumps(config))
    _assert_refused(src, tmp_path / "out", 5, "config implies")


@pytest.mark.parametrize(
    "edit, feature",
    [
        (lambda m: m["block"].update(name="mystery_norm"), "block name 'mystery_norm'"),
        (lambda m: m["block"].update(name="moe_reordered_norm"), "MoE"),
        (lambda m: m["block"]["sequence_mixer"].update(bias=True), "biases"),
        (
            lambda m: m["block"].update(
                sequence_mixer={"_CLASS_": "olmo_core.nn.attention.recurrent.GatedDeltaNetConfig"}
            ),
            "GDN",
        ),
    ],
)
def test_unsupported_models_name_the_feature(checkpoints, tmp_path, edit, feature):
    src = _copy(checkpoints, tmp_path)
    config = json.loads((src / "config.json").read_text())
    edit(config["model"])
    (src / "config.json").write_text(json.dumps(config))
    _assert_refused(src, tmp_path / "out", 8, feature)


def test_yarn_that_transformers_computes_differently_is_refused(checkpoints, tmp_path):
    src = _copy(checkpoints, tmp_path, "olmo3-yarn")
    config = json.loads((src / "config.json").read_text())
    config["model"]["block_overrides"]["3"]["sequence_mixer"]["rope"]["scaling"]["old_context_len"] = 100000
    (src / "config.json").write_text(json.dumps(config))
    _assert_refused(src, tmp_path / "out", 8, "YaRN")


def _abf(**fields):
    return {"_CLASS_": "olmo_core.nn.rope.ABFRoPEScalingConfig", "new_theta": 1000, **fields}


@pytest.mark.parametrize(
    "kind, scaling, feature",
    [
        # transformers has no attention rescale for these types (YaRN's is fixed by its factor)
        ("olmo3-linear", {"attention_rescale_factor": 2.0}, "PIRoPEScalingConfig with attention_rescale_factor 2.0"),
        ("olmo3-llama3", {"attention_rescale_factor": 0.5}, "StepwiseRoPEScalingConfig with attention_rescale_factor"),
        ("olmo3-linear", _abf(attention_rescale_factor=2.0), "ABFRoPEScalingConfig with attention_rescale_factor"),
        ("olmo3-linear", {"_CLASS_": "olmo_core.nn.rope.NTKRoPEScalingConfig"}, "NTKRoPEScalingConfig"),
    ],
)
def test_rope_scalings_transformers_cannot_express_are_refused(checkpoints, tmp_path, kind, scaling, feature):
    src = _copy(checkpoints, tmp_path, kind)
    config = json.loads((src / "config.json").read_text())
    rope = config["model"]["block_overrides"]["3"]["sequence_mixer"]["rope"]
    rope["scaling"] = {**rope["scaling"], **scaling} if "_CLASS_" not in scaling else scaling
    (src / "config.json").write_text(json.dumps(config))
    _assert_refused(src, tmp_path / "out", 8, feature)


def test_qk_norm_per_head_reads_but_has_no_transformers_architecture(tmp_path):
    src = oc.save(tmp_path / "step", "olmo2-head-qk-norm")
    _assert_refused(src, tmp_path / "hf", 8, "QK-norm per head")
    # OLMo-core -> OLMo-core keeps it; --verify runs the per-head norm against the source.
    result = run("convert", str(src), str(tmp_path / "again"), "--to", "olmo-core", "--verify")
    assert result.exit_code == 0, result.output
    reference = oc.logits(oc.load(src), IDS)
    assert torch.equal(oc.logits(oc.load(tmp_path / "again"), IDS), reference)
    from olmo_cli.checkpoints.formats import open_checkpoint
    from olmo_cli.checkpoints.verify import checkpoint_logits

    ours = checkpoint_logits(open_checkpoint(src, "olmo-core"), IDS)
    assert float((ours - reference).abs().max()) <= 1e-5


def test_restricted_unpickler_maps_only_the_listed_names(tmp_path):
    from olmo_cli.dcp_metadata import _MetadataUnpickler

    for payload in (pickle.dumps(eval), pickle.dumps(Path("x")), pickle.dumps(torch.nn.Linear)):
        directory = tmp_path / str(len(list(tmp_path.iterdir())))
        directory.mkdir()
        (directory / ".metadata").write_bytes(payload)
        with pytest.raises(BadInputError, match="not allowed"):
            read_metadata(directory)
    assert _MetadataUnpickler  # the names it knows are the ones REFERENCE 3.4 lists
    with pytest.raises(UnsupportedError):
        from olmo_cli.checkpoints.formats.olmo_core import rope_scaling_to_hf

        rope_scaling_to_hf({"_CLASS_": "olmo_core.nn.rope.NTKRoPEScalingConfig"}, "config.json")
