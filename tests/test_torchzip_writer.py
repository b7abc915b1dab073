"""model.pt written by olmo_cli's own zip writer: torch loads it, and it is torch.save's bytes.

The one difference is documented torch behaviour: `.data/serialization_id` is 20 random digits
followed by 20 digits derived from the records' CRCs, so its first half (and so that record's
CRC-32, in its data descriptor and in the central directory) differs between any two saves,
torch's own included. Everything else must match byte for byte.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from tiny_models import make_hf

from olmo_cli.checkpoints.convert import convert
from olmo_cli.checkpoints.primitives import FileRange
from olmo_cli.checkpoints.torchzip_writer import write_plain, write_state_dict
from olmo_cli.checkpoints.writer import PlannedTensor


def planned_for(state: dict) -> list[PlannedTensor]:
    return [PlannedTensor(k, tuple(v.shape), str(v.dtype).removeprefix("torch.")) for k, v in state.items()]


def serialization_id_spans(path: Path) -> list[range]:
    """Byte ranges allowed to differ: the random half of the id and the id record's two CRCs."""
    with zipfile.ZipFile(path) as archive:
        info = next(i for i in archive.infolist() if i.filename.endswith("/.data/serialization_id"))
    with open(path, "rb") as f:
        data = f.read()
    start = info.header_offset + 30 + len(info.filename) + int.from_bytes(data[info.header_offset + 28 :][:2], "little")
    central = data.rindex(b"PK\x01\x02")  # the id's is the last central header
    return [range(start, start + 20), range(start + 44, start + 48), range(central + 16, central + 20)]


def assert_same_bytes_as_torch_save(ours: Path, theirs: Path) -> None:
    a, b = ours.read_bytes(), theirs.read_bytes()
    assert len(a) == len(b)
    allowed = set().union(*serialization_id_spans(theirs))
    assert serialization_id_spans(ours) == serialization_id_spans(theirs)
    differing = [i for i in range(len(a)) if a[i] != b[i] and i not in allowed]
    assert differing == [], f"first differing byte at {differing[:1]}"
    # The derived half of the id is torch's too (the CRCs of all records folded together).
    id_start = serialization_id_spans(theirs)[0].stop
    assert a[id_start : id_start + 20] == b[id_start : id_start + 20]


def mixed_state(n: int = 13) -> dict:
    g = torch.Generator().manual_seed(0)
    dtypes = [torch.float32, torch.bfloat16, torch.float16]
    state = {f"layer.{i}.w": torch.randn(3 + i, 5, generator=g).to(dtypes[i % 3]) for i in range(n)}
    state["scalar"] = torch.tensor(2.5)
    state["empty"] = torch.zeros(0, 4)
    return state


def test_bytes_equal_torch_save_and_torch_loads_it(tmp_path):
    state = mixed_state()
    (tmp_path / "ours").mkdir()
    (tmp_path / "theirs").mkdir()
    write_state_dict(tmp_path / "ours" / "model.pt", planned_for(state), lambda key: state[key])
    torch.save(state, tmp_path / "theirs" / "model.pt")
    assert_same_bytes_as_torch_save(tmp_path / "ours" / "model.pt", tmp_path / "theirs" / "model.pt")
    for mmap in (False, True):
        back = torch.load(tmp_path / "ours" / "model.pt", weights_only=True, mmap=mmap)
        assert list(back) == list(state)
        for key, tensor in state.items():
            assert back[key].dtype == tensor.dtype and torch.equal(back[key], tensor)
    with zipfile.ZipFile(tmp_path / "ours" / "model.pt") as archive:
        assert archive.testzip() is None  # every CRC-32 is right


def test_ranges_concatenations_and_casts(tmp_path):
    """Kernel copies of byte ranges, row blocks of several sources, and casts into the map."""
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(6, 4, generator=g), torch.randn(2, 4, generator=g)
    save_file({"a": a, "b": b}, tmp_path / "src.safetensors")
    header = int.from_bytes((tmp_path / "src.safetensors").read_bytes()[:8], "little") + 8

    def whole(t, before=0):
        return FileRange(tmp_path / "src.safetensors", header + before, t.numel() * 4)

    ra, rb = whole(a), whole(b, a.numel() * 4)
    expected = {
        "copied": a,
        "fused": torch.cat([a[2:5], b, a[:1]]),
        "mixed": torch.cat([b, a[:3]]),
        "cast": a.to(torch.bfloat16),
        "cast_fused": torch.cat([a, b]).to(torch.bfloat16),
    }
    parts = {
        "copied": ra,
        "fused": [ra.rows(2, 5, 6), rb, ra.rows(0, 1, 6)],
        "mixed": [rb, a[:3]],
        "cast": a,
        "cast_fused": [a, b],
    }
    planned = planned_for(expected)
    advanced = []
    write_state_dict(tmp_path / "model.pt", planned, lambda key: parts[key], advanced.append)
    assert sum(advanced) == sum(t.nbytes for t in planned)
    back = torch.load(tmp_path / "model.pt", weights_only=True, mmap=True)
    for key, tensor in expected.items():
        assert back[key].dtype == tensor.dtype and torch.equal(back[key], tensor), key
    with zipfile.ZipFile(tmp_path / "model.pt") as archive:
        assert archive.testzip() is None
    (tmp_path / "t").mkdir()
    torch.save(expected, tmp_path / "t" / "model.pt")
    assert_same_bytes_as_torch_save(tmp_path / "model.pt", tmp_path / "t" / "model.pt")


def test_plain_values_like_train_pt(tmp_path):
    state = {"global_step": 1000, "tokens": 4 * 10**12, "name": "x", "checkpoints": [], "nested": {"a": [1, 2.5]}}
    (tmp_path / "t").mkdir()
    write_plain(tmp_path / "train.pt", state)
    torch.save(state, tmp_path / "t" / "train.pt")
    assert torch.load(tmp_path / "train.pt", weights_only=True) == state
    assert_same_bytes_as_torch_save(tmp_path / "train.pt", tmp_path / "t" / "train.pt")


def test_zip64_layout_matches_torch_for_large_offsets(tmp_path):
    """Offsets past 4 GiB switch to ZIP64 fields; checked on the layout alone (no 4 GiB file):
    the headers come from the same code that writes them, against what torch wrote for a
    4.4 GB record followed by a small one (recorded once from torch 2.13)."""
    from olmo_cli.checkpoints import torchzip_writer as w

    big = w._Record("big/data/0", 4_400_000_000, header_offset=726)
    small = w._Record("big/data/1", 40, header_offset=4_400_000_856)
    small.crc = 0xE6A5E769
    assert big.local_header()[30 + 10 :][:24].hex() == "0100100000ac42060100000000000000000000004642" + "2a00"
    assert small.local_header()[30 + 10 :][:16].hex() == "0100080058af4206010000004642" + "3000"
    assert small.descriptor().hex() == "504b070869e7a5e628000000000000002800000000000000"
    assert small.central_header()[42:46].hex() == "ffffffff"
    assert small.central_header()[46 + 10 :].hex() == "0100080058af420601000000"
    assert big.central_header()[20:28].hex() == "ffffffffffffffff"
    assert big.central_header()[46 + 10 :].hex() == "0100100000ac42060100000000ac420601000000"


def test_hf_to_native_output_is_what_torch_save_writes(tmp_path):
    """The converter's model.pt (fused q/k/v and up/gate copied as file ranges) is byte for byte
    torch.save of the tensors it holds."""
    src = make_hf(tmp_path / "src", arch="olmo2", num_key_value_heads=2)
    dst = tmp_path / "step0-unsharded"
    convert(src, dst, to="native", tokenizer="allenai/dolma2-tokenizer")
    state = torch.load(dst / "model.pt", weights_only=True)
    (tmp_path / "t").mkdir()
    torch.save({k: v.clone() for k, v in state.items()}, tmp_path / "t" / "model.pt")
    assert_same_bytes_as_torch_save(dst / "model.pt", tmp_path / "t" / "model.pt")


TRAINER_SITE = os.environ.get("OLMO_TEST_AI2_OLMO_SITE")


@pytest.mark.skipif(
    not TRAINER_SITE,
    reason="ai2-olmo 0.6 pins ai2-olmo-core 0.1 and numpy<2, so it is not in the test env: set "
    "OLMO_TEST_AI2_OLMO_SITE to a `pip install --no-deps --target DIR ai2-olmo==0.6.0 omegaconf` dir",
)
def test_the_olmo_trainer_loads_the_converted_checkpoint(tmp_path):
    """ai2-olmo's own unsharded load path (OLMo.from_checkpoint: torch.load + load_state_dict)
    gives the logits transformers gives for the source."""
    from transformers import AutoModelForCausalLM

    src = make_hf(tmp_path / "src", arch="olmo2", num_key_value_heads=2)
    dst = tmp_path / "step0-unsharded"
    convert(src, dst, to="native", tokenizer="allenai/dolma2-tokenizer")
    ids = [[3, 17, 42, 5, 9, 31, 0, 58]]
    with torch.no_grad():
        expected = AutoModelForCausalLM.from_pretrained(src, dtype=torch.float32).eval()(torch.tensor(ids)).logits
    script = textwrap.dedent(
        """
        import sys, torch
        from olmo.model import OLMo
        model = OLMo.from_checkpoint(sys.argv[1])
        with torch.no_grad():
            torch.save(model(torch.tensor(eval(sys.argv[2]))).logits, sys.argv[3])
        """
    )
    env = dict(os.environ, PYTHONPATH=f"{TRAINER_SITE}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    out = tmp_path / "logits.pt"
    subprocess.run([sys.executable, "-c", script, str(dst), repr(ids), str(out)], env=env, check=True)
    torch.testing.assert_close(torch.load(out, weights_only=True), expected, atol=1e-5, rtol=1e-5)
