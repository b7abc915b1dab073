"""The streaming conversion engine: read -> map -> write, one tensor at a time.

Every conversion goes source format -> ModelSpec -> target format. The output is planned from
shapes alone (`layout.plan`), written tensor by tensor into a temporary sibling of DST
(`atomic.atomic_output_dir`) and renamed into place only when everything, `--verify` included,
succeeded.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from olmo_cli.checkpoints import layout
from olmo_cli.checkpoints.atomic import atomic_output_dir, check_destination, output_path, refuse_overlap
from olmo_cli.checkpoints.detect import detect_format
from olmo_cli.checkpoints.formats import Checkpoint, open_checkpoint
from olmo_cli.checkpoints.kinds import DType, Target, choices
from olmo_cli.checkpoints.spec import ModelSpec
from olmo_cli.checkpoints.writer import PlannedTensor, parse_size, write_sharded
from olmo_cli.errors import BadInputError, NotFoundError, UnsupportedError, UsageError
from olmo_cli.jsonfiles import write_json
from olmo_cli.oserrors import disk_full_is_error, require_free
from olmo_cli.reporting import NULL_REPORTER, Reporter
from olmo_cli.revisions.names import parse_revision

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
    """Convert the checkpoint in `src` into `dst` (`to`: "hf", "native" or "gguf"; default "gguf"
    when `dst` ends in .gguf, else "hf"). `outtype` is GGUF's tensor type; `repo` and `commit`
    (where a Hub source came from) are recorded in GGUF metadata.

    `revision` (e.g. step20000-tokens84B; else the source directory's name, e.g. step1000-unsharded)
    fills train.pt's step and tokens for native outputs.
    """
    src, dst = output_path(src, "source"), output_path(dst)
    to = to or ("gguf" if dst.suffix.lower() == ".gguf" else "hf")
    if to not in TARGETS:
        raise UsageError(f"unknown target format {to!r}", hint=f"use --to {', --to '.join(TARGETS)}")
    if to == "gguf":
        from olmo_cli.checkpoints.gguf.export import convert_to_gguf

        if verify:
            raise UsageError(
                "--verify is for hf and native outputs", hint="GGUF outputs are checked against llama.cpp in the tests"
            )

        return convert_to_gguf(
            src, dst, outtype=outtype, dtype=dtype, force=force, tokenizer=tokenizer, reporter=reporter,
            revision=revision, repo=repo, commit=commit, offline=offline,
        )  # fmt: skip
    if outtype is not None:
        raise UsageError("--outtype is for GGUF outputs", hint="use --dtype with --to hf or --to native")
    if dtype not in DTYPES:
        raise UsageError(f"unknown dtype {dtype!r}", hint=f"use one of {', '.join(DTYPES)}")
    shard_bytes = parse_size(shard_size)
    source_format = detect_format(src)
    refuse_overlap(src, dst)
    check_destination(dst, force)

    checkpoint = open_checkpoint(src, source_format)
    check_tensors(checkpoint)
    spec = checkpoint.spec
    out_dtype = (spec.dtype or "float32") if dtype == "auto" else dtype
    if to == "native":
        from olmo_cli.checkpoints.tokenizers import trainer_identifier

        _refuse_for_native(spec)
        identifier = trainer_identifier(_native_tokenizer(checkpoint, tokenizer, reporter))
        spec = _fit_tokenizer(spec.with_(tokenizer_identifier=identifier), reporter)
        if not dst.name.endswith("-unsharded"):
            reporter.warn(
                f"the OLMo trainer treats --load_path as unsharded only if it ends in '-unsharded' "
                f"(e.g. {dst.name}-unsharded)"
            )
    elif to == "olmo-core":
        from olmo_cli.checkpoints.formats import olmo_core

        olmo_core_config = olmo_core.experiment_config(spec, out_dtype)  # refusals before any write
        if source_format != "olmo-core":
            olmo_core.check_yarn_translates(spec)
    else:
        from olmo_cli.checkpoints import tokenizers
        from olmo_cli.checkpoints.formats import hf

        hf_config = hf.config_for(spec, out_dtype)  # unsupported architectures fail before any write
        if source_format == "olmo-core":
            from olmo_cli.checkpoints.formats import olmo_core

            olmo_core.check_yarn_translates(spec)
        if source_format == "olmo-core" and not (tokenizer or spec.tokenizer_identifier):
            raise NotFoundError(
                "the OLMo-core config names no tokenizer (dataset.tokenizer.identifier)",
                hint="pass --tokenizer with an OLMo tokenizer name, a tokenizer directory or a Hub repo, "
                "e.g. --tokenizer allenai/dolma2-tokenizer",
            )
        # So does a tokenizer that cannot be found or fetched (written after the weights).
        tokenizers.check_tokenizer(
            source_dir=checkpoint.path, identifier=spec.tokenizer_identifier, override=tokenizer, offline=offline
        )

    reporter.info(
        f"converting {source_format} ({checkpoint.architecture}) -> "
        f"{'transformers ' + spec.family if to == 'hf' else to}, {out_dtype}"
    )
    needed = _output_bytes(spec, to, out_dtype)
    require_free(dst.absolute().parent, needed)
    with disk_full_is_error(dst.absolute().parent, needed), atomic_output_dir(dst, force, reporter) as tmp:
        if to == "hf":
            files, written, n = _write_hf(
                checkpoint, tmp, hf_config, out_dtype, shard_bytes, tokenizer, reporter, offline
            )
        elif to == "olmo-core":
            from olmo_cli.checkpoints.formats import olmo_core

            files, written, n = olmo_core.write(checkpoint, tmp, olmo_core_config, out_dtype, _fetcher, reporter)
        else:
            files, written, n = _write_native(checkpoint, spec, tmp, out_dtype, revision or src.name, reporter)
        diff = None
        if verify:
            reporter.info("verifying: comparing logits of source and output on a fixed prompt")
            from olmo_cli.checkpoints.verify import compare

            output = open_checkpoint(tmp, to)
            diff = compare(checkpoint, output, out_dtype)
            reporter.info(f"verified: max logit difference {diff:.3g}")
    if to == "olmo-core":
        reporter.info(
            "model weights only (no optimizer state): start OLMo-core from it with "
            f"load_path={dst} and load_trainer_state=false, load_optim_state=false (a fresh optimizer)"
        )
    if to == "native":
        reporter.info(
            f"start the OLMo trainer from it with --load_path={dst} --reset_optimizer_state=true (there is no optim.pt)"
        )
    return ConvertResult(
        dst=dst,
        source_format=source_format,
        target_format=to,
        n_tensors=n,
        bytes_written=written,
        max_logit_diff=diff,
        architecture=spec.family if to != "native" else "native",
        dtype=out_dtype,
        files=files,
    )


def _output_bytes(spec: ModelSpec, to: str, out_dtype: str) -> int:
    """The weights' bytes on disk (model.pt is written directly, with no scratch copy; HF and
    OLMo-core outputs hold the same tensors, so HF shapes stand for both)."""
    from olmo_cli.checkpoints.primitives import nbytes

    shapes = layout.native_shapes(spec) if to == "native" else layout.hf_shapes(spec)
    return sum(nbytes(tuple(shape), out_dtype) for shape in shapes.values())


def _refuse_for_native(spec: ModelSpec) -> None:
    """What the allenai/OLMo trainer cannot express (it has neither window nor RoPE scaling)."""
    for feature, present in (
        ("sliding-window attention layers (OLMo 3)", spec.slides),
        (f"RoPE scaling ({(spec.rope_scaling or {}).get('rope_type')})", spec.rope_scaling),
        ("QK-norm per head (use_head_qk_norm)", spec.qk_norm_per_head),
    ):
        if present:
            raise UnsupportedError(
                f"the native OLMo trainer cannot express {feature}",
                hint="convert with --to hf or --to olmo-core instead",
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


def _fetcher(checkpoint: Checkpoint, table: dict, out_dtype: str, parts: bool = False):
    """fetch(key) -> the output tensor (any dtype: the writer casts it to `out_dtype`); or, when it
    is an uncast byte range of a source file (a whole tensor or a row slice of one), that range,
    for a kernel-side copy. With `parts`, a tensor made of several pieces comes as the list of
    its pieces (ranges or tensors), for a writer that puts them one after another."""
    reader = checkpoint.reader

    def piece_range(piece):
        if reader.info(piece.key).dtype != out_dtype:
            return None
        where = reader.file_range(piece.key)
        if where is None or piece.rows is None:
            return where
        start, stop = piece.rows
        return where.rows(start, stop, reader.info(piece.key).shape[0])

    def fetch(key: str):
        pieces = table[key]
        if parts and len(pieces) > 1:
            return [piece_range(p) or layout.materialize([p], reader.get) for p in pieces]
        if len(pieces) == 1 and reader.info(pieces[0].key).dtype == out_dtype:
            piece = pieces[0]
            if piece.rows is None:
                ranges = reader.file_ranges(piece.key)  # a tensor written by several ranks: its chunks
                if ranges is not None:
                    return ranges[0] if len(ranges) == 1 else ranges
            where = piece_range(piece)
            if where is not None:
                return where
        # The writer casts while copying into the output file (no cast copy in RAM).
        return layout.materialize(pieces, reader.get)

    return fetch


def _write_hf(
    checkpoint: Checkpoint,
    tmp: Path,
    hf_config: dict,
    out_dtype: str,
    shard_bytes: int,
    tokenizer: str | None,
    reporter: Reporter,
    offline: bool,
):
    spec = checkpoint.spec
    table = layout.plan(spec, "hf", checkpoint.keys)
    shapes = layout.hf_shapes(spec)
    planned = [PlannedTensor(key, shapes[key], out_dtype) for key in table]
    total = sum(t.nbytes for t in planned)
    with reporter.progress("writing safetensors", total=total, unit="B") as bar:
        files, written = write_sharded(tmp, planned, _fetcher(checkpoint, table, out_dtype), shard_bytes, bar.advance)
    write_json(tmp / "config.json", hf_config)
    files.append("config.json")
    files += _write_hf_tokenizer(checkpoint, tmp, tokenizer, reporter, offline)
    written += sum((tmp / name).stat().st_size for name in files if not name.endswith(".safetensors"))
    return files, written, len(planned)


def _write_hf_tokenizer(
    checkpoint: Checkpoint, tmp: Path, override: str | None, reporter: Reporter, offline: bool
) -> list[str]:
    from olmo_cli.checkpoints import tokenizers

    spec = checkpoint.spec
    generation = tokenizers.generation_config(spec.eos_token_id, spec.pad_token_id, spec.bos_token_id)
    write_json(tmp / "generation_config.json", generation)
    has_source = override or spec.tokenizer_identifier or (checkpoint.path / "tokenizer.json").is_file()
    if not has_source:
        reporter.warn(
            "the source has no tokenizer and names none; the output has weights and config only "
            "(pass --tokenizer PATH|REPO to add one)"
        )
        return ["generation_config.json"]
    before = set(p.name for p in tmp.iterdir())
    write_checkpoint_tokenizer(checkpoint, tmp, override, offline, reporter)
    return ["generation_config.json", *sorted(set(p.name for p in tmp.iterdir()) - before)]


def write_checkpoint_tokenizer(
    checkpoint: Checkpoint, directory: Path, override: str | None, offline: bool, reporter: Reporter
):
    """The HF tokenizer files for `checkpoint` (from --tokenizer, its own files or its config's
    identifier), with the spec's special ids; what `--to hf` writes and `--to gguf` embeds."""
    from olmo_cli.checkpoints import tokenizers

    spec = checkpoint.spec
    return tokenizers.write_hf_tokenizer(
        directory,
        source_dir=checkpoint.path,
        identifier=spec.tokenizer_identifier,
        override=override,
        eos_token_id=spec.eos_token_id,
        pad_token_id=spec.pad_token_id,
        bos_token_id=spec.bos_token_id,
        model_max_length=spec.max_sequence_length,
        embedding_size=spec.embedding_size,
        offline=offline,
        reporter=reporter,
    )


def _native_tokenizer(checkpoint: Checkpoint, override: str | None, reporter: Reporter) -> str:
    """The `tokenizer.identifier` for a native output: --tokenizer, the source's identifier or
    tokenizer files, or the OLMo tokenizer its eos id implies."""
    from olmo_cli.checkpoints import tokenizers

    eos = checkpoint.spec.eos_token_id
    implied = tokenizers.known_by_eos(eos)  # for HF -> native when the source names no tokenizer
    guess = implied.name if implied is not None else None
    if override:
        known = tokenizers.resolve_identifier(override)
        if known is not None:
            return known[0].name
        local = Path(override).expanduser()
        if local.exists():
            # Not an OLMo tokenizer: the trainer also takes a tokenizer.json path (Tokenizer.from_file).
            file = local / "tokenizer.json" if local.is_dir() else local
            return tokenizers.hf_to_native_identifier(local, fallback=str(file.absolute()))
        return override
    if checkpoint.spec.tokenizer_identifier:  # native -> native keeps its identifier
        return checkpoint.spec.tokenizer_identifier
    if (checkpoint.path / "tokenizer.json").is_file():
        matched = tokenizers.match_known(checkpoint.path / "tokenizer.json")
        if matched is None and guess:
            reporter.warn(
                f"the source's tokenizer.json is not one of the OLMo tokenizers (added tokens?); config.yaml "
                f"names {guess}, the tokenizer of its eos id: pass --tokenizer REPO if that is wrong"
            )
        return matched or tokenizers.hf_to_native_identifier(checkpoint.path, fallback=guess)
    if guess:
        return guess
    raise NotFoundError(
        "cannot tell which tokenizer this model uses (native checkpoints name one in config.yaml)",
        hint="pass --tokenizer with an OLMo tokenizer name or a Hub tokenizer repo, "
        "e.g. --tokenizer allenai/gpt-neox-olmo-dolma-v1_5",
    )


def _fit_tokenizer(spec: ModelSpec, reporter: Reporter) -> ModelSpec:
    """Token fields the OLMo trainer checks against `tokenizer.identifier` (docs/REFERENCE.md 3.1).

    It refuses a `vocab_size` other than its tokenizer's (transformers configs only record the
    embedding rows) and null eos/pad ids (they are plain int fields). A known OLMo tokenizer
    supplies both; otherwise the source's values stand.
    """
    from olmo_cli.checkpoints import tokenizers

    identifier = spec.tokenizer_identifier or ""
    resolved = tokenizers.resolve_identifier(identifier)
    eos: int | None
    pad: int | None
    if resolved is not None:
        known = resolved[0]
        name, size = known.name, known.vocab_size
        eos = known.eos_token_id if spec.eos_token_id is None else spec.eos_token_id
        pad = known.pad_token_id if spec.pad_token_id is None else spec.pad_token_id
    elif identifier.endswith(".json") and Path(identifier).is_file():  # a tokenizer.json given by path
        name, size, eos, pad = (
            identifier,
            tokenizers.vocabulary_size(Path(identifier)),
            spec.eos_token_id,
            spec.pad_token_id,
        )
    else:
        name, size, eos, pad = None, 0, None, None
    if name is not None:
        if size > spec.embedding_size:
            reporter.warn(
                f"tokenizer {name} has {size} ids but the model's embedding has only "
                f"{spec.embedding_size} rows: is it the model's tokenizer?"
            )
        else:
            spec = spec.with_(vocab_size=size, eos_token_id=eos, pad_token_id=pad)
    missing = [name for name in ("eos_token_id", "pad_token_id") if getattr(spec, name) is None]
    if missing:
        reporter.warn(
            f"the source config has no {' or '.join(missing)}; set model.{missing[0]} in config.yaml "
            "before training (the OLMo trainer requires it)"
        )
    return spec


def _write_native(
    checkpoint: Checkpoint, spec: ModelSpec, tmp: Path, out_dtype: str, revision: str | None, reporter: Reporter
):
    """model.pt written straight in torch.save's zip layout, tensor by tensor (torchzip_writer):
    uncast tensors and the pieces of the fused ones are kernel copies from the source files."""
    from olmo_cli.checkpoints.formats import native
    from olmo_cli.checkpoints.torchzip_writer import write_state_dict

    table = layout.plan(spec, "native", checkpoint.keys)
    shapes = layout.native_shapes(spec)
    planned = [PlannedTensor(key, shapes[key], out_dtype) for key in table]
    total = sum(t.nbytes for t in planned)
    with reporter.progress("writing model.pt", total=total, unit="B") as bar:
        write_state_dict(tmp / "model.pt", planned, _fetcher(checkpoint, table, out_dtype, parts=True), bar.advance)
    native.write_config(tmp, spec)
    step, tokens = _step_and_tokens(revision)
    native.write_train_state(tmp, step, tokens)
    files = ["config.yaml", "model.pt", "train.pt"]
    return files, sum((tmp / f).stat().st_size for f in files), len(planned)


def _step_and_tokens(revision: str | None) -> tuple[int, int]:
    """step452000-tokens2000B -> (452000, 2_000_000_000_000); a trainer directory's name
    (step1000-unsharded) -> (1000, 0); anything else -> (0, 0)."""
    parsed = parse_revision((revision or "").removesuffix("-unsharded"))
    return parsed.step or 0, parsed.tokens or 0
