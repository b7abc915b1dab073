"""`olmo convert --to native`: the allenai/OLMo trainer's unsharded checkpoint, config.yaml +
model.pt + train.pt, where the old trainer can express the model (it refuses the rest, naming why)."""

from __future__ import annotations

from pathlib import Path

from olmo_cli.checkpoints import layout
from olmo_cli.checkpoints.formats import Checkpoint, PreparedWrite, WriteOptions, Written
from olmo_cli.checkpoints.kinds import Target
from olmo_cli.checkpoints.spec import ModelSpec
from olmo_cli.errors import NotFoundError, UnsupportedError
from olmo_cli.reporting import Reporter
from olmo_cli.revisions.names import parse_revision


class NativeWriter:
    target = Target.native
    single_file = False

    def check_options(self, options: WriteOptions) -> None:
        pass

    def prepare(self, checkpoint: Checkpoint, options: WriteOptions) -> PreparedWrite:
        from olmo_cli.checkpoints.formats.hf_write import output_dtype
        from olmo_cli.checkpoints.tokenizers import trainer_identifier

        reporter, dst = options.reporter, options.dst
        out_dtype = output_dtype(checkpoint, options)
        _refuse_for_native(checkpoint.spec)
        identifier = trainer_identifier(_native_tokenizer(checkpoint, options.tokenizer, reporter))
        spec = _fit_tokenizer(checkpoint.spec.with_(tokenizer_identifier=identifier), reporter)
        if not dst.name.endswith("-unsharded"):
            reporter.warn(
                f"the OLMo trainer treats --load_path as unsharded only if it ends in '-unsharded' "
                f"(e.g. {dst.name}-unsharded)"
            )
        revision = options.revision or checkpoint.path.name
        return PreparedWrite(
            write=lambda tmp: _write_native(checkpoint, spec, tmp, out_dtype, revision, reporter),
            description=f"native, {out_dtype}",
            dtype=out_dtype,
            architecture="native",
            # model.pt is written directly, with no scratch copy
            needed_bytes=layout.output_bytes(layout.native_shapes(spec), out_dtype),
            notes=[
                f"start the OLMo trainer from it with --load_path={dst} --reset_optimizer_state=true "
                "(there is no optim.pt)"
            ],
        )


def _refuse_for_native(spec: ModelSpec) -> None:
    """What the allenai/OLMo trainer cannot express (it has neither window nor RoPE scaling)."""
    for feature, present in (
        ("sliding-window attention layers (OLMo 3)", spec.slides),
        (spec.rope_scaling_name, spec.rope_scaling),
        ("QK-norm per head (use_head_qk_norm)", spec.qk_norm_per_head),
    ):
        if present:
            raise UnsupportedError(
                f"the native OLMo trainer cannot express {feature}",
                hint="convert with --to hf or --to olmo-core instead",
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
) -> Written:
    """model.pt written straight in torch.save's zip layout, tensor by tensor (torchzip_writer):
    uncast tensors and the pieces of the fused ones are kernel copies from the source files."""
    from olmo_cli.checkpoints.fetch import fetcher
    from olmo_cli.checkpoints.formats import native
    from olmo_cli.checkpoints.torchzip_writer import write_state_dict
    from olmo_cli.checkpoints.writer import PlannedTensor

    table = layout.plan(spec, "native", checkpoint.keys)
    shapes = layout.native_shapes(spec)
    planned = [PlannedTensor(key, shapes[key], out_dtype) for key in table]
    total = sum(t.nbytes for t in planned)
    with reporter.progress("writing model.pt", total=total, unit="B") as bar:
        write_state_dict(tmp / "model.pt", planned, fetcher(checkpoint, table, out_dtype, parts=True), bar.advance)
    native.write_config(tmp, spec)
    step, tokens = _step_and_tokens(revision)
    native.write_train_state(tmp, step, tokens)
    files = ["config.yaml", "model.pt", "train.pt"]
    return Written(files, sum((tmp / f).stat().st_size for f in files), len(planned))


def _step_and_tokens(revision: str | None) -> tuple[int, int]:
    """step452000-tokens2000B -> (452000, 2_000_000_000_000); a trainer directory's name
    (step1000-unsharded) -> (1000, 0); anything else -> (0, 0)."""
    parsed = parse_revision((revision or "").removesuffix("-unsharded"))
    return parsed.step or 0, parsed.tokens or 0
