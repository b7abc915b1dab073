"""Bad input and faults for convert and inspect: corrupt or hostile weights, absurd configs, a full
or read-only disk, partial outputs of killed runs. Each a documented exit code and one line naming
the problem, no traceback, and nothing left at DST.
"""

from __future__ import annotations

import errno
import os
import pickle
import shutil
from collections import namedtuple
from pathlib import Path

import pytest
import torch
import yaml
from helpers import assert_nothing_at, assert_one_line_error, olmo
from tiny_models import make_native, native_config, native_state_dict

from olmo_cli import oserrors
from olmo_cli.checkpoints import writer
from olmo_cli.checkpoints.atomic import owner_stamp, partial_prefix


@pytest.fixture(scope="module")
def native(tmp_path_factory) -> Path:
    return make_native(tmp_path_factory.mktemp("native") / "src", tokenizer=None)


def copy_with(native: Path, tmp_path: Path, **model_fields) -> Path:
    src = tmp_path / "src"
    shutil.copytree(native, src)
    config = yaml.safe_load((src / "config.yaml").read_text())
    config["model"].update(model_fields)
    (src / "config.yaml").write_text(yaml.safe_dump(config))
    return src


class _Code:
    def __reduce__(self):
        return (os.getcwd, ())


def _weights(tmp_path: Path, native: Path, write) -> Path:
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(native / "config.yaml", src)
    write(src / "model.pt")
    return src


WEIGHTS = {
    "random bytes": (lambda p: p.write_bytes(os.urandom(4096)), "not a torch checkpoint"),
    "a plain pickle": (lambda p: p.write_bytes(pickle.dumps({"a": 1})), "a pickle, but not a torch checkpoint"),
    "code in a zip": (lambda p: torch.save({"a": _Code()}, p), "holds code"),
    "code in a legacy file": (
        lambda p: torch.save({"a": _Code()}, p, _use_new_zipfile_serialization=False),
        "holds code",
    ),
    "a truncated legacy file": (
        lambda p: (
            torch.save(native_state_dict(native_config()), p, _use_new_zipfile_serialization=False),
            p.write_bytes(p.read_bytes()[:3000]),
        ),
        "truncated or corrupt",
    ),
    "an empty file": (lambda p: p.write_bytes(b""), "not a torch checkpoint"),
}


@pytest.mark.parametrize("kind", sorted(WEIGHTS))
def test_broken_or_hostile_model_pt(tmp_path, native, kind):
    write, fragment = WEIGHTS[kind]
    src = _weights(tmp_path, native, write)
    for argv in (["convert", src, tmp_path / "out"], ["inspect", src]):
        result = olmo(*argv)
        line = assert_one_line_error(result, 5, "model.pt", fragment)
        assert "weights_only" not in line and "Please file an issue" not in line  # torch's advice stays out
    assert_nothing_at(tmp_path / "out")


@pytest.mark.parametrize(
    "fields, fragment",
    [
        ({"d_model": 16.5}, "16.5 is not a whole number"),
        ({"n_layers": float("nan")}, "not a whole number"),
        ({"n_heads": True}, "not a whole number"),
        ({"rope_theta": float("inf")}, "not a finite number"),
        ({"layer_norm_eps": float("nan")}, "not a finite number"),
        ({"n_layers": 10**12}, "beyond any model"),  # a shape table of 10**12 layers would fill the memory
        ({"d_model": 2**40}, "beyond any model"),
        ({"n_layers": 64}, "missing tensor"),  # plausible, but not what the weights hold
    ],
    ids=str,
)
def test_absurd_config_numbers_are_refused_before_any_work(tmp_path, native, fields, fragment):
    src = copy_with(native, tmp_path, **fields)
    assert_one_line_error(olmo("convert", src, tmp_path / "out"), 5, fragment)
    assert_nothing_at(tmp_path / "out")


@pytest.mark.parametrize("size", ["nan", "inf", "-5GB", "0", "five"])
def test_bad_shard_sizes(tmp_path, native, size):
    assert_one_line_error(olmo("convert", native, tmp_path / "out", "--shard-size", size), 2, "bad size")
    assert_nothing_at(tmp_path / "out")


def test_empty_paths_are_usage_errors(tmp_path, native):
    result = olmo("convert", native, "")
    assert result.exit_code == 2 and "the path is empty" in result.stderr
    assert_one_line_error(olmo("convert", "", tmp_path / "out"), 2, "the model is empty")
    assert_one_line_error(olmo("inspect", ""), 2, "the model is empty")


def test_a_symlink_loop_as_source(tmp_path):
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    assert_one_line_error(olmo("convert", tmp_path / "a", tmp_path / "out"), 5, "symlink loop")
    assert_nothing_at(tmp_path / "out")


def test_a_fifo_where_the_weights_belong_does_not_hang(tmp_path, native):
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(native / "config.yaml", src)
    os.mkfifo(src / "model.pt")
    assert_one_line_error(olmo("convert", src, tmp_path / "out"), 5, "no model.pt")


Usage = namedtuple("Usage", "total used free")


def test_too_little_free_space_is_refused_up_front(tmp_path, native, monkeypatch):
    monkeypatch.setattr(oserrors.shutil, "disk_usage", lambda path: Usage(10**9, 10**9 - 1000, 1000))
    line = assert_one_line_error(
        olmo("convert", native, tmp_path / "out"), 5, "no space left on /", "needed ~", "free 1000 B"
    )
    assert "MiB" in line or "KiB" in line
    assert_nothing_at(tmp_path / "out")


def test_a_disk_that_fills_while_writing(tmp_path, native, monkeypatch):
    def full(fd, offset, length):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(writer.os, "posix_fallocate", full)
    assert_one_line_error(olmo("convert", native, tmp_path / "out"), 5, "no space left on /", "needed ~")
    assert_nothing_at(tmp_path / "out")


def test_a_disk_that_fills_while_saving_model_pt(tmp_path, tmp_path_factory, monkeypatch):
    from tiny_models import make_hf

    src = make_hf(tmp_path_factory.mktemp("hf") / "src")
    real_pwrite = os.pwrite

    def full(fd, data, offset):  # model.pt is written in place, by positioned writes
        if os.readlink(f"/proc/self/fd/{fd}").endswith("model.pt"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_pwrite(fd, data, offset)

    monkeypatch.setattr(os, "pwrite", full)
    dst = tmp_path / "out-unsharded"
    assert_one_line_error(
        olmo("convert", src, dst, "--to", "native", "--tokenizer", "allenai/gpt-neox-olmo-dolma-v1_5"), 5, "no space"
    )
    assert_nothing_at(dst)


def test_a_read_only_target_is_named_as_such(tmp_path, native, monkeypatch):
    monkeypatch.setattr(oserrors, "is_read_only", lambda path: True)
    assert_one_line_error(olmo("convert", native, tmp_path / "out"), 5, "read-only filesystem")
    assert_nothing_at(tmp_path / "out")


def test_an_output_under_a_file(tmp_path, native):
    (tmp_path / "file").write_text("x")
    assert_one_line_error(olmo("convert", native, tmp_path / "file" / "out"), 5, "is a file")


def test_a_dead_runs_partial_output_is_reclaimed_and_a_live_ones_kept(tmp_path, native):
    dst = tmp_path / "out"
    dead = tmp_path / f"{partial_prefix(dst)}{owner_stamp(2**22 + 12345)}dead"  # no such pid
    live = tmp_path / f"{partial_prefix(dst)}{owner_stamp(os.getpid())}live"
    for folder in (dead, live):
        folder.mkdir()
        (folder / "model.safetensors").write_bytes(b"x" * 5000)
    result = olmo("convert", native, dst)
    assert result.exit_code == 0, result.output
    assert f"removed {dead.name}" in result.stderr and "interrupted run" in result.stderr
    assert not dead.exists() and live.exists()
    assert (dst / "config.json").is_file()


def test_two_runs_into_one_dst_give_one_whole_output(tmp_path, native):
    """Concurrent writers each write their own sibling; the second rename finds DST and refuses."""
    import subprocess
    import sys

    dst = tmp_path / "out"
    cmd = [sys.executable, "-m", "olmo_cli", "convert", str(native), str(dst)]
    runs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outcomes = [(run.wait(timeout=120), run.stderr.read()) for run in runs]
    codes = sorted(code for code, _ in outcomes)
    assert codes in ([0, 0], [0, 6]), outcomes  # 0,0 when the second started after the first finished
    assert all("Traceback" not in err and "internal error" not in err for _, err in outcomes)
    assert (dst / "config.json").is_file() and (dst / "model.safetensors").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.")]


def test_a_non_utf8_path_under_an_ascii_locale(tmp_path, native):
    import subprocess
    import sys

    weird = Path(os.fsdecode(bytes(tmp_path) + b"/ckpt\xff"))
    shutil.copytree(native, weird)
    env = {**os.environ, "LC_ALL": "C", "PYTHONIOENCODING": "ascii"}
    for argv in (["inspect", weird], ["convert", weird, Path(os.fsdecode(bytes(tmp_path) + b"/out\xfe"))]):
        result = subprocess.run(
            [sys.executable, "-m", "olmo_cli", *map(str, argv)], env=env, capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, result.stderr
        assert "Traceback" not in result.stderr and "internal error" not in result.stderr
