"""The streaming conversion engine: read -> map -> write, one tensor at a time.

Every conversion goes source format -> ModelSpec -> target format; the target's writer is its
entry in the format registry (formats.writer). The output is planned from
shapes alone (`layout.plan`), written tensor by tensor into a temporary sibling of DST
(`atomic.atomic_output_dir`) and renamed into place only when everything, `--verify` included,
succeeded.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from olmo_cli.checkpoints import formats, layout
from olmo_cli.checkpoints.atomic import (
    atomic_output_dir,
    atomic_output_file,
    check_destination,
    output_path,
    refuse_overlap,
)
from olmo_cli.checkpoints.detect import detect_format
from olmo_cli.checkpoints.formats import Checkpoint, open_checkpoint
from olmo_cli.checkpoints.kinds import DType, Target, choices
from olmo_cli.checkpoints.writer import parse_size
from olmo_cli.errors import BadInputError, UsageError
from olmo_cli.oserrors import disk_full_is_error, require_free
from olmo_cli.reporting import NULL_REPORTER, Reporter

TARGETS = choices(Target)  # hf, native, olmo-core
DTYPES = choices(DType)
# transformers may keep these buffers in old checkpoints; they are recomputed, never converted.
_IGNORED_SUFFIXES = (".rotary_emb.inv_freq",)


@dataclass
class ConvertResult:
    dst: Path
    source_format: str
    target_format: str
    n_tensors: int
    bytes_written: int
    max_logit_diff: float | None = None
    architecture: str = ""
    dtype: str = ""
    files: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        data = asdict(self)
        data["dst"] = str(self.dst)
        return data


def convert(
    src,
    dst,
    *,
    to: str | None = None,
    dtype: str = "auto",
    shard_size="5GB",
    force: bool = False,
    tokenizer: str | None = None,
    reporter: Reporter = NULL_REPORTER,
    verify: bool = False,
    revision: str | None = None,
    offline: bool = False,
    outtype: str | None = None,
    repo: str | None = None,
    commit: str | None = None,
) -> ConvertResult:
    """Convert the checkpoint in `src` into `dst` (`to`: a Target, default "gguf" when `dst` ends
    in .gguf, else "hf"); the target's writer comes from the format registry. `outtype` is GGUF's
    tensor type; `repo` and `commit` (where a Hub source came from) are recorded in GGUF metadata.

    `revision` (e.g. step20000-tokens84B; else the source directory's name, e.g. step1000-unsharded)
    fills train.pt's step and tokens for native outputs.
    """
    src, dst = output_path(src, "source"), output_path(dst)
    to = to or ("gguf" if dst.suffix.lower() == ".gguf" else "hf")
    try:
        writer = formats.writer(to)
    except ValueError:
        raise UsageError(f"unknown target format {to!r}", hint=f"use --to {', --to '.join(TARGETS)}") from None
    options = formats.WriteOptions(
        dst=dst, dtype=dtype, tokenizer=tokenizer, offline=offline, verify=verify, revision=revision,
        outtype=outtype, repo=repo, commit=commit, force=force, reporter=reporter,
    )  # fmt: skip
    writer.check_options(options)
    if not writer.single_file:
        if outtype is not None:
            raise UsageError("--outtype is for GGUF outputs", hint="use --dtype with --to hf or --to native")
        if dtype not in DTYPES:
            raise UsageError(f"unknown dtype {dtype!r}", hint=f"use one of {', '.join(DTYPES)}")
        options = replace(options, shard_bytes=parse_size(shard_size))
    source_format = detect_format(src)
    options = replace(options, source_format=str(source_format))
    refuse_overlap(src, dst)
    check_destination(dst, force)

    checkpoint = open_checkpoint(src, source_format)
    check_tensors(checkpoint)
    prepared = writer.prepare(checkpoint, options)  # every refusal before any write
    reporter.info(f"converting {source_format} ({checkpoint.architecture}) -> {prepared.description}")
    parent = dst.absolute().parent
    require_free(parent, prepared.needed_bytes)
    atomic = atomic_output_file if writer.single_file else atomic_output_dir
    with disk_full_is_error(parent, prepared.needed_bytes), atomic(dst, force, reporter) as tmp:
        written = prepared.write(tmp)
        diff = None
        if verify:
            reporter.info("verifying: comparing logits of source and output on a fixed prompt")
            from olmo_cli.checkpoints.verify import compare

            output = open_checkpoint(tmp, to)
            diff = compare(checkpoint, output, prepared.dtype)
            reporter.info(f"verified: max logit difference {diff:.3g}")
    for note in prepared.notes:
        reporter.info(note)
    return ConvertResult(
        dst=dst,
        source_format=source_format,
        target_format=to,
        n_tensors=written.n_tensors,
        bytes_written=written.bytes_written,
        max_logit_diff=diff,
        architecture=prepared.architecture,
        dtype=prepared.dtype,
        files=written.files,
    )


def check_tensors(checkpoint: Checkpoint) -> None:
    """The weights hold exactly the tensors the config implies, with the implied shapes."""
    spec, reader = checkpoint.spec, checkpoint.reader
    expected = layout.native_shapes(spec) if checkpoint.keys == "native" else layout.hf_shapes(spec)
    present = [k for k in reader.keys() if not k.endswith(_IGNORED_SUFFIXES)]
    if checkpoint.keys == "hf" and spec.weight_tying:
        present = [k for k in present if k != "lm_head.weight"]  # some tied saves keep a copy
    where = f"{checkpoint.path.name}/{reader.description}"
    extra = [k for k in present if k not in expected]
    if extra:
        raise BadInputError(
            f"{where}: unexpected tensor {extra[0]!r}" + (f" (and {len(extra) - 1} more)" if len(extra) > 1 else ""),
            hint="the weights do not match the config (biases, another architecture?)",
        )
    present_set = set(present)
    missing = [k for k in expected if k not in present_set]
    if missing:
        raise BadInputError(
            f"{where}: missing tensor {missing[0]!r}" + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""),
            hint="the weights do not match the config",
        )
    for key, shape in expected.items():
        actual = reader.info(key).shape
        if tuple(actual) != tuple(shape):
            raise BadInputError(
                f"{where}: {key} has shape {list(actual)} but the config implies {list(shape)}",
                hint="the config and the weights disagree",
            )
