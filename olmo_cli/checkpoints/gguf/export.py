"""`olmo convert SRC DST.gguf`: any checkpoint olmo reads -> one GGUF file, streamed and atomic.

`GGUFWriter` is the format registry's entry for `--to gguf`; `write_gguf` is the writer: a
ModelSpec, a fetch function giving tensors in transformers naming
(the canonical naming every source format maps to through `layout.plan`), a vocabulary and an
output type. The header, key/values and tensor table are written first (they depend on shapes
only); then each tensor is converted a block of rows at a time, so memory stays at a block plus
what the source's memory map pages in, whatever the model size.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from olmo_cli.checkpoints.formats import Written, register_writer
from olmo_cli.checkpoints.kinds import Target
from olmo_cli.errors import NotFoundError, UnsupportedError, UsageError
from olmo_cli.reporting import NULL_REPORTER, Reporter

if TYPE_CHECKING:
    from olmo_cli.checkpoints.formats import PreparedWrite, WriteOptions

OUTTYPE_NAMES = ("f32", "f16", "bf16", "q8_0", "q4_0")


class GGUFWriter:
    """`--to gguf` (the format registry's entry for it: GGUF is written, never read)."""

    target = Target.gguf
    single_file = True

    def check_options(self, options: WriteOptions) -> None:
        dst = options.dst
        if options.verify:
            raise UsageError(
                "--verify is for hf and native outputs", hint="GGUF outputs are checked against llama.cpp in the tests"
            )
        if options.outtype is not None and options.outtype not in OUTTYPE_NAMES:
            raise UsageError(f"unknown --outtype {options.outtype!r}", hint=f"use one of {', '.join(OUTTYPE_NAMES)}")
        if options.dtype != "auto":
            raise UsageError("--dtype is for hf and native outputs", hint="GGUF outputs take --outtype")
        if not dst.absolute().parent.is_dir():
            raise NotFoundError(f"no such directory: {dst.absolute().parent}", hint="create it first")
        if dst.is_dir():
            raise UsageError(f"{dst} is a directory", hint="give the output file's name, e.g. model.gguf")

    def prepare(self, checkpoint, options: WriteOptions) -> PreparedWrite:
        from olmo_cli.checkpoints import layout
        from olmo_cli.checkpoints.formats import PreparedWrite
        from olmo_cli.checkpoints.gguf import metadata, names, quant

        require_gguf()
        spec, reporter = checkpoint.spec, options.reporter
        arch = names.architecture(spec)  # unsupported architectures fail before any write
        chosen = options.outtype or quant.default_outtype(spec.dtype)
        vocabulary = _vocabulary(checkpoint, options.tokenizer, reporter, options.offline)
        table = layout.plan(spec, "hf", checkpoint.keys)

        def fetch(key: str):
            return layout.materialize(table[key], checkpoint.reader.get)

        provenance = metadata.Provenance(
            name=_model_name(options.repo, options.revision, checkpoint.path),
            source_format=options.source_format,
            repo=options.repo,
            revision=options.revision,
            commit=options.commit or _snapshot_commit(checkpoint.path),
        )
        planned, _, sizes = _plan(spec, chosen, reporter)

        def write(tmp: Path) -> Written:
            n = write_gguf(tmp, spec, fetch, vocabulary, outtype=chosen, provenance=provenance, planned=planned)
            return Written([options.dst.name], tmp.stat().st_size, n)

        return PreparedWrite(
            write=write,
            description=f"GGUF {names.arch_name(arch)}, {chosen}",
            dtype=chosen,
            architecture=names.arch_name(arch),
            needed_bytes=sum(sizes.values()),
        )


def _plan(spec, outtype: str, reporter: Reporter):
    """The GGUF tensors of `spec`, each one's GGML type and its bytes."""
    import gguf

    from olmo_cli.checkpoints.gguf import names, quant

    planned = names.tensors(spec, names.architecture(spec))
    types = {t.name: quant.tensor_type(t, outtype, spec.weight_tying) for t in planned}
    sizes = {t.name: quant.nbytes(t.shape, types[t.name]) for t in planned}
    fallback = [t.name for t in planned if types[t.name] == gguf.GGMLQuantizationType.F16 and outtype.startswith("q")]
    if fallback:
        reporter.warn(f"{len(fallback)} tensors have rows that are not whole {outtype} blocks; written as f16")
    return planned, types, sizes


def write_gguf(
    path: Path,
    spec,
    fetch: Callable[[str], object],
    vocabulary,
    *,
    outtype: str,
    provenance,
    planned=None,
    reporter: Reporter = NULL_REPORTER,
) -> int:
    """Write `spec`'s model into the single file `path` (convert writes a temporary sibling of DST
    and renames it). Returns the number of tensors.

    `fetch(hf_key)` returns the tensor of that transformers key (e.g. `model.layers.0.mlp.up_proj.weight`),
    lazily: it is read one block of rows at a time.
    """
    require_gguf()
    import gguf
    import numpy as np

    from olmo_cli.checkpoints.gguf import metadata, names, quant

    arch = names.architecture(spec)
    if planned is None:
        planned = _plan(spec, outtype, reporter)[0]
    types = {t.name: quant.tensor_type(t, outtype, spec.weight_tying) for t in planned}
    sizes = {t.name: quant.nbytes(t.shape, types[t.name]) for t in planned}
    writer = gguf.GGUFWriter(path, names.arch_name(arch))
    try:
        metadata.add_provenance(writer, provenance)
        metadata.add_model(writer, spec, arch, reporter)
        writer.add_file_type(quant.OUTTYPES[outtype][1])
        writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
        vocabulary.add_to(writer)
        for t in planned:
            writer.add_tensor_info(t.name, t.shape, np.dtype(np.float32), sizes[t.name], raw_dtype=types[t.name])
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        assert writer.fout is not None
        out = writer.fout[0]
        with reporter.progress("writing gguf", total=sum(sizes.values()), unit="B") as bar:
            for t in planned:
                writer.write_padding(out, out.tell())  # each tensor starts aligned
                written = 0
                for rows in quant.row_blocks(t, fetch):
                    data = quant.encode(rows, types[t.name])
                    out.write(data)
                    written += len(data)
                    bar.advance(len(data))
                if written != sizes[t.name]:
                    raise AssertionError(f"{t.name}: wrote {written} bytes, planned {sizes[t.name]}")
            writer.write_padding(out, out.tell())
        out.flush()
    finally:
        writer.close()
    return len(planned)


def _vocabulary(checkpoint, override: str | None, reporter: Reporter, offline: bool):
    """The tokenizer exactly as `olmo convert --to hf` would write it, read back as GGUF vocabulary."""
    from olmo_cli.checkpoints.formats.hf_write import write_checkpoint_tokenizer
    from olmo_cli.checkpoints.gguf.vocab import read_vocabulary

    spec = checkpoint.spec
    with tempfile.TemporaryDirectory(prefix="olmo-gguf-tokenizer-") as scratch:
        info = write_checkpoint_tokenizer(checkpoint, Path(scratch), override, offline, reporter)
        return read_vocabulary(
            Path(scratch),
            spec.embedding_size,
            eos_token_id=info.eos_token_id,
            pad_token_id=info.pad_token_id,
            bos_token_id=info.bos_token_id,
        )


def _model_name(repo: str | None, revision: str | None, src: Path) -> str:
    """general.name: `OLMo-1B step20000-tokens84B` for a Hub revision, the directory's name otherwise."""
    if repo:
        base = repo.split("/")[-1]
        return f"{base} {revision}" if revision and revision != "main" else base
    return src.resolve().name


def _snapshot_commit(src: Path) -> str | None:
    """A local path inside the HF cache (`.../snapshots/<sha>`) still says which commit it is."""
    from olmo_cli.revisions.names import is_commit_sha

    resolved = src.resolve()
    return resolved.name if resolved.parent.name == "snapshots" and is_commit_sha(resolved.name) else None


def require_gguf() -> None:
    """One line and exit 8, not a traceback, when the [gguf] extra is missing."""
    try:
        import gguf  # noqa: F401
    except ImportError:
        raise UnsupportedError("GGUF export needs the gguf package", hint="pip install 'olmo-cli[gguf]'") from None


register_writer(GGUFWriter())
