"""`olmo convert --to hf`: safetensors shards streamed from the source (file-to-file copies where
no cast is needed), config.json for transformers' olmo/olmo2/olmo3, and the tokenizer files."""

from __future__ import annotations

from pathlib import Path

from olmo_cli.checkpoints import layout
from olmo_cli.checkpoints.formats import Checkpoint, PreparedWrite, WriteOptions, Written
from olmo_cli.checkpoints.kinds import Target
from olmo_cli.errors import NotFoundError
from olmo_cli.jsonfiles import write_json
from olmo_cli.reporting import Reporter


class HFWriter:
    target = Target.hf
    single_file = False

    def check_options(self, options: WriteOptions) -> None:
        pass

    def prepare(self, checkpoint: Checkpoint, options: WriteOptions) -> PreparedWrite:
        from olmo_cli.checkpoints import tokenizers
        from olmo_cli.checkpoints.formats import hf, olmo_core

        spec = checkpoint.spec
        out_dtype = output_dtype(checkpoint, options)
        config = hf.config_for(spec, out_dtype)  # unsupported architectures fail before any write
        if options.source_format == "olmo-core":
            olmo_core.check_yarn_translates(spec)
            if not (options.tokenizer or spec.tokenizer_identifier):
                raise NotFoundError(
                    "the OLMo-core config names no tokenizer (dataset.tokenizer.identifier)",
                    hint="pass --tokenizer with an OLMo tokenizer name, a tokenizer directory or a Hub repo, "
                    "e.g. --tokenizer allenai/dolma2-tokenizer",
                )
        # So does a tokenizer that cannot be found or fetched (written after the weights).
        tokenizers.check_tokenizer(
            source_dir=checkpoint.path,
            identifier=spec.tokenizer_identifier,
            override=options.tokenizer,
            offline=options.offline,
        )
        return PreparedWrite(
            write=lambda tmp: write_hf(checkpoint, tmp, config, out_dtype, options),
            description=f"transformers {spec.family}, {out_dtype}",
            dtype=out_dtype,
            architecture=spec.family,
            needed_bytes=layout.output_bytes(layout.hf_shapes(spec), out_dtype),
        )


def output_dtype(checkpoint: Checkpoint, options: WriteOptions) -> str:
    """--dtype, or with `auto` the source's (float32 where it records none)."""
    return (checkpoint.spec.dtype or "float32") if options.dtype == "auto" else options.dtype


def write_hf(checkpoint: Checkpoint, tmp: Path, hf_config: dict, out_dtype: str, options: WriteOptions) -> Written:
    from olmo_cli.checkpoints.fetch import fetcher
    from olmo_cli.checkpoints.writer import PlannedTensor, write_sharded

    spec, reporter = checkpoint.spec, options.reporter
    table = layout.plan(spec, "hf", checkpoint.keys)
    shapes = layout.hf_shapes(spec)
    planned = [PlannedTensor(key, shapes[key], out_dtype) for key in table]
    total = sum(t.nbytes for t in planned)
    with reporter.progress("writing safetensors", total=total, unit="B") as bar:
        fetch = fetcher(checkpoint, table, out_dtype)
        files, written = write_sharded(tmp, planned, fetch, options.shard_bytes, bar.advance)
    write_json(tmp / "config.json", hf_config)
    files.append("config.json")
    files += _write_hf_tokenizer(checkpoint, tmp, options.tokenizer, reporter, options.offline)
    written += sum((tmp / name).stat().st_size for name in files if not name.endswith(".safetensors"))
    return Written(files, written, len(planned))


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
