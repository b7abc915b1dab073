"""Bad input: each a one-line error with the right exit code, and nothing left at DST.

Also the output's atomicity: an existing DST needs --force, an unwritable DST fails before any
work, and SIGINT in the middle of writing leaves neither DST nor a temporary sibling.
"""

from __future__ import annotations

import base64
import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from helpers import assert_one_line_error, olmo
from tiny_models import make_hf, make_hf_olmo, make_native

from olmo_cli.checkpoints.atomic import atomic_output_dir
from olmo_cli.checkpoints.convert import convert
from olmo_cli.checkpoints.detect import detect_format
from olmo_cli.checkpoints.tensors import decode_olmo_key
from olmo_cli.errors import BadInputError, ExistsError, UnsupportedError

TESTS = Path(__file__).parent


def run_convert(*argv):
    return olmo("convert", *argv)


def assert_one_line_failure(result, code, *fragments):
    line = assert_one_line_error(result, code, *fragments)
    assert next(text for text in result.stderr.splitlines() if text.strip()) == line  # the error comes first
    assert "Traceback" not in result.output


def assert_nothing_at(dst: Path):
    assert not dst.exists()
    assert not [p for p in dst.parent.iterdir() if p.name.startswith(f".{dst.name}.")]


def edit_config_yaml(directory: Path, **changes):
    config = yaml.safe_load((directory / "config.yaml").read_text())
    for key, value in changes.items():
        if value is None:
            config["model"].pop(key)
        else:
            config["model"][key] = value
    (directory / "config.yaml").write_text(yaml.safe_dump(config))


def truncate(path: Path, keep: float = 0.6):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def test_truncated_model_pt(tmp_path):
    src = make_native(tmp_path / "src", tokenizer=None)
    truncate(src / "model.pt")
    result = run_convert(src, tmp_path / "out")
    assert_one_line_failure(result, 5, "model.pt")
    assert_nothing_at(tmp_path / "out")


@pytest.mark.parametrize("maker", ["native", "hf"])
def test_truncated_safetensors(tmp_path, maker):
    if maker == "native":
        src = make_native(tmp_path / "src", safetensors="plain", tokenizer=None)
        args = [src, tmp_path / "out"]
    else:
        src = make_hf(tmp_path / "src")
        args = [src, tmp_path / "out", "--to", "native", "--tokenizer", "allenai/gpt-neox-olmo-dolma-v1_5"]
    truncate(src / "model.safetensors")
    result = run_convert(*args)
    assert_one_line_failure(result, 5, "truncated")
    assert_nothing_at(tmp_path / "out")


def test_config_yaml_missing_required_fields(tmp_path):
    src = make_native(tmp_path / "src", tokenizer=None)
    edit_config_yaml(src, d_model=None, n_layers=None)
    result = run_convert(src, tmp_path / "out")
    assert_one_line_failure(result, 5, "missing required model field", "d_model", "n_layers")
    assert_nothing_at(tmp_path / "out")


@pytest.mark.parametrize(
    "change,fragment",
    [
        ({"block_group_size": "two"}, "'two'"),
        ({"n_heads": 0}, "n_heads must be positive"),
        ({"n_heads": 5}, "not a multiple of n_heads"),
        ({"n_kv_heads": 3}, "not a multiple of n_kv_heads"),
    ],
)
def test_config_yaml_field_of_the_wrong_type_or_size(tmp_path, change, fragment):
    src = make_native(tmp_path / "src", tokenizer=None)
    edit_config_yaml(src, **change)
    result = run_convert(src, tmp_path / "out")
    assert_one_line_failure(result, 5, "bad model field value", fragment)
    assert_nothing_at(tmp_path / "out")
    inspected = olmo("inspect", str(src))
    assert inspected.exit_code in (0, 5) and "Traceback" not in inspected.output, inspected.output


@pytest.mark.parametrize("change", [{"num_attention_heads": 0}, {"eos_token_id": "x"}, {"rope_parameters": "x"}])
def test_hf_config_field_of_the_wrong_type_or_size(tmp_path, change):
    src = make_hf(tmp_path / "src")
    config = json.loads((src / "config.json").read_text())
    config.update(change)
    (src / "config.json").write_text(json.dumps(config))
    for target in ("hf", "native"):
        result = run_convert(
            src, tmp_path / "out-unsharded", "--to", target, "--tokenizer", "allenai/gpt-neox-olmo-dolma-v1_5"
        )
        assert_one_line_failure(result, 5)
        assert_nothing_at(tmp_path / "out-unsharded")
    inspected = olmo("inspect", str(src))
    assert inspected.exit_code in (0, 5) and "Traceback" not in inspected.output, inspected.output


@pytest.mark.parametrize("weight_map", [["a", "b"], {"model.embed_tokens.weight": "../outside.safetensors"}])
def test_safetensors_index_that_is_malformed_or_points_outside(tmp_path, weight_map):
    src = make_hf(tmp_path / "src", sharded=True)
    (tmp_path / "outside.safetensors").write_bytes(
        (src / "model-00001-of-00002.safetensors").read_bytes()
        if (src / "model-00001-of-00002.safetensors").exists()
        else b""
    )
    index = json.loads((src / "model.safetensors.index.json").read_text())
    index["weight_map"] = weight_map if isinstance(weight_map, list) else {**index["weight_map"], **weight_map}
    (src / "model.safetensors.index.json").write_text(json.dumps(index))
    result = run_convert(
        src, tmp_path / "out-unsharded", "--to", "native", "--tokenizer", "allenai/gpt-neox-olmo-dolma-v1_5"
    )
    assert_one_line_failure(result, 5, "not a valid safetensors index")
    assert_nothing_at(tmp_path / "out-unsharded")
    inspected = olmo("inspect", str(src))
    assert inspected.exit_code == 5 and "not a valid safetensors index" in inspected.stderr


def test_tokenizer_json_with_bad_ids(tmp_path):
    src = make_hf_olmo(tmp_path / "src", weights="safetensors")
    (src / "tokenizer.json").write_text('{"model": {"vocab": {"a": "x"}}}')
    result = run_convert(src, tmp_path / "out")
    assert_one_line_failure(result, 5, "tokenizer.json")
    assert_nothing_at(tmp_path / "out")
    inspected = olmo("inspect", str(src))  # describes the rest, names the problem
    assert inspected.exit_code == 0 and "unreadable" in inspected.stdout and "parameters" in inspected.stdout


def test_shapes_that_disagree_with_the_config(tmp_path):
    src = make_native(tmp_path / "src", tokenizer=None)
    edit_config_yaml(src, mlp_ratio=4)
    result = run_convert(src, tmp_path / "out")
    assert_one_line_failure(result, 5, "ff_proj.weight", "shape")
    assert_nothing_at(tmp_path / "out")


def test_missing_tensor_is_named(tmp_path):
    src = make_native(tmp_path / "src", tokenizer=None)
    edit_config_yaml(src, weight_tying=False)  # now transformer.ff_out.weight is expected
    with pytest.raises(BadInputError, match=r"missing tensor 'transformer\.ff_out\.weight'"):
        convert(src, tmp_path / "out")


def test_unknown_model_type(tmp_path):
    src = make_hf(tmp_path / "src")
    config = json.loads((src / "config.json").read_text())
    config["model_type"] = "llama"
    (src / "config.json").write_text(json.dumps(config))
    result = run_convert(src, tmp_path / "out", "--to", "native")
    assert_one_line_failure(result, 8, "model_type 'llama'")
    assert_nothing_at(tmp_path / "out")


@pytest.mark.parametrize(
    "change,feature",
    [
        ({"include_bias": True}, "biases"),
        ({"block_group_size": 2}, "block_group_size 2"),
        ({"alibi": True, "rope": False}, "ALiBi"),
        ({"block_type": "llama"}, "block_type 'llama'"),
    ],
)
def test_unsupported_features_are_named(tmp_path, change, feature):
    src = make_native(tmp_path / "src", tokenizer=None)
    edit_config_yaml(src, **change)
    with pytest.raises(UnsupportedError, match=feature):
        convert(src, tmp_path / "out")
    assert_nothing_at(tmp_path / "out")


def test_hf_sliding_window_and_rope_scaling_are_unsupported(tmp_path):
    src = make_hf(tmp_path / "src", arch="olmo2")
    config = json.loads((src / "config.json").read_text())
    config["rope_parameters"] = {"rope_type": "yarn", "rope_theta": 500000.0, "factor": 4.0}
    (src / "config.json").write_text(json.dumps(config))
    with pytest.raises(UnsupportedError, match="RoPE scaling 'yarn'"):
        convert(src, tmp_path / "out", to="native")
    config["model_type"], config["layer_types"] = "olmo3", ["sliding_attention", "full_attention"]
    config["rope_parameters"] = {"rope_type": "default", "rope_theta": 500000.0}
    (src / "config.json").write_text(json.dumps(config))
    with pytest.raises(UnsupportedError, match="sliding-window"):
        convert(src, tmp_path / "out", to="native")


class _Payload:
    """Pickles as a call to os.system: loading it unsafely would create the marker file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_model_pt_with_a_code_payload_is_refused_not_run(tmp_path):
    src = make_native(tmp_path / "src", tokenizer=None)
    marker = tmp_path / "PWNED"
    state = torch.load(src / "model.pt", weights_only=True)
    state["transformer.extra"] = _Payload(marker)
    torch.save(state, src / "model.pt")
    result = run_convert(src, tmp_path / "out")
    assert_one_line_failure(result, 5, "refused", "system")  # names what it refused...
    assert "\x1b" not in result.stderr and "trust" not in result.stderr  # ...not how to load it unsafely
    assert not marker.exists()
    assert_nothing_at(tmp_path / "out")


def test_olmo_safetensors_key_with_a_code_payload_is_refused(tmp_path):
    marker = tmp_path / "PWNED"
    evil = base64.urlsafe_b64encode(pickle.dumps(_Payload(marker))).decode()
    with pytest.raises(BadInputError):
        decode_olmo_key(evil)
    assert not marker.exists()
    good = base64.urlsafe_b64encode(pickle.dumps((("transformer", "wte", "weight"), False))).decode()
    assert decode_olmo_key(good) == ("transformer.wte.weight", False)


def test_olmo_safetensors_keys_with_globals_are_refused_without_importing(tmp_path):
    """No global is ever resolved while decoding a key: not even a harmless one, not even a module import."""
    import sys

    for module, name in (("os", "system"), ("builtins", "eval"), ("antigravity", "fly"), ("builtins", "tuple")):
        raw = b"\x80\x02c" + f"{module}\n{name}\n".encode() + b"X\x01\x00\x00\x00x\x85R\x89\x86."
        with pytest.raises(BadInputError):
            decode_olmo_key(base64.urlsafe_b64encode(raw).decode())
    assert "antigravity" not in sys.modules
    one_name = base64.urlsafe_b64encode(pickle.dumps((("transformer.wte.weight",), False))).decode()
    assert decode_olmo_key(one_name) == ("transformer.wte.weight", False)


def test_model_pt_index_cannot_touch_the_readers_own_functions():
    """A BUILD opcode sets attributes on whatever is on the stack; the globals it sees are throwaways."""
    import io

    from olmo_cli.checkpoints import torchzip

    defaults = torchzip._rebuild_tensor.__defaults__
    raw = b"\x80\x02ctorch._utils\n_rebuild_tensor_v2\nN}X\x0c\x00\x00\x00__defaults__K\x01\x85s\x86b."
    torchzip._IndexUnpickler(io.BytesIO(raw)).load()
    assert torchzip._rebuild_tensor.__defaults__ == defaults


def test_model_pt_with_a_storage_missing_from_the_zip(tmp_path):
    import zipfile

    src = make_native(tmp_path / "src", tokenizer=None)
    whole = src / "model.pt"
    with zipfile.ZipFile(whole) as old, zipfile.ZipFile(src / "cut.pt", "w") as new:
        for info in old.infolist():
            if not info.filename.endswith("/data/0"):
                new.writestr(info, old.read(info.filename))
    (src / "cut.pt").replace(whole)
    result = run_convert(src, tmp_path / "out")
    assert_one_line_failure(result, 5, "model.pt")
    assert_nothing_at(tmp_path / "out")


def test_unknown_tokenizer_fails_before_any_weight_is_written(tmp_path, monkeypatch):
    from olmo_cli.checkpoints import writer

    def no_writing(*args, **kwargs):
        raise AssertionError("weights were written before the tokenizer was found")

    monkeypatch.setattr(writer, "write_safetensors", no_writing)
    src = make_native(tmp_path / "src", tokenizer="tokenizers/not-an-olmo-tokenizer.json")
    result = run_convert(src, tmp_path / "out")
    assert_one_line_failure(result, 3, "not-an-olmo-tokenizer")
    assert_nothing_at(tmp_path / "out")


def test_not_a_checkpoint(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(BadInputError, match="not a checkpoint"):
        detect_format(tmp_path / "empty")
    result = run_convert(tmp_path / "empty", tmp_path / "out")
    assert_one_line_failure(result, 5, "not a checkpoint")


def test_formats_are_detected(tmp_path):
    assert detect_format(make_native(tmp_path / "n", tokenizer=None)) == "native"
    assert detect_format(make_hf_olmo(tmp_path / "o", tokenizer=False)) == "hf_olmo"
    assert detect_format(make_hf(tmp_path / "h")) == "hf"


def test_existing_dst_needs_force(tmp_path):
    src = make_native(tmp_path / "src", tokenizer=None)
    dst = tmp_path / "out"
    dst.mkdir()
    (dst / "keep.txt").write_text("old")
    result = run_convert(src, dst)
    assert_one_line_failure(result, 6, "already exists")
    assert (dst / "keep.txt").read_text() == "old"
    result = run_convert(src, dst, "--force", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["n_tensors"] == 15
    assert not (dst / "keep.txt").exists() and (dst / "model.safetensors").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.")]


def test_dst_that_cannot_be_written(tmp_path):
    src = make_native(tmp_path / "src", tokenizer=None)
    if os.geteuid() == 0 or os.access("/", os.W_OK):
        # Permissions do not stop root: use a parent that is a regular file instead.
        parent = tmp_path / "a-file"
        parent.write_text("")
    else:
        parent = tmp_path / "read-only"
        parent.mkdir()
        parent.chmod(0o555)
    try:
        result = run_convert(src, parent / "out")
        assert_one_line_failure(result, 5, "cannot write into")
    finally:
        if parent.is_dir():
            parent.chmod(0o755)
    assert not (parent / "out").exists()


def test_atomic_output_dir_cleans_up_on_keyboard_interrupt(tmp_path):
    dst = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt), atomic_output_dir(dst) as tmp:
        (tmp / "half.bin").write_bytes(b"x" * 10)
        raise KeyboardInterrupt
    assert_nothing_at(dst)
    with atomic_output_dir(dst) as tmp:
        (tmp / "whole.bin").write_bytes(b"x")
    assert (dst / "whole.bin").is_file()
    with pytest.raises(ExistsError), atomic_output_dir(dst):
        pass


def test_force_keeps_the_old_output_when_the_final_rename_fails(tmp_path, monkeypatch):
    from olmo_cli.checkpoints import atomic

    dst = tmp_path / "out"
    dst.mkdir()
    (dst / "old.txt").write_text("old")
    real_rename = os.rename

    def failing_rename(a, b):
        if Path(a).name.startswith(".out.partial-"):  # the new output moving into place
            raise OSError(28, "No space left on device")
        real_rename(a, b)

    monkeypatch.setattr(atomic.os, "rename", failing_rename)
    with pytest.raises(OSError), atomic_output_dir(dst, force=True) as tmp:
        (tmp / "new.txt").write_text("new")
    assert (dst / "old.txt").read_text() == "old" and not (dst / "new.txt").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


# The child converts with a writer slowed to 0.3 s per tensor, so the signal lands mid-write.
_SLOW_CHILD = """
import sys, time
sys.path.insert(0, {tests!r})
import olmo_cli.checkpoints.writer as writer
def slowed(real):
    def slow(f, tensor):
        time.sleep(0.3)
        real(f, tensor)
    return slow
writer._write_tensor = slowed(writer._write_tensor)
writer._copy_range = slowed(writer._copy_range)
from olmo_cli.cli.app import _stop_on_sigterm, app
_stop_on_sigterm()  # as main() does
app(args=["convert", {src!r}, {dst!r}], prog_name="olmo")
"""


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupt_mid_write_leaves_nothing(tmp_path, signum):
    src = make_native(tmp_path / "src", tokenizer=None)
    dst = tmp_path / "out"
    code = _SLOW_CHILD.format(tests=str(TESTS), src=str(src), dst=str(dst))
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        partial = []
        while time.monotonic() < deadline and child.poll() is None:
            partial = [p for p in tmp_path.iterdir() if p.name.startswith(".out.partial-")]
            if partial and any(partial[0].glob("*.safetensors")):
                break
            time.sleep(0.05)
        assert partial, "the child never started writing"
        child.send_signal(signum)
        _, stderr = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == 130, stderr
    assert "error: interrupted" in stderr
    assert_nothing_at(dst)
