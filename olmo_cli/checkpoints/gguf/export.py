"""`olmo convert SRC DST.gguf`: any checkpoint olmo reads -> one GGUF file, streamed and atomic.

`write_gguf` is the writer: a ModelSpec, a fetch function giving tensors in transformers naming
(the canonical naming every source format maps to through `layout.plan`), a vocabulary and an
output type. The header, key/values and tensor table are written first (they depend on shapes
only); then each tensor is converted a block of rows at a time, so memory stays at a block plus
what the source's memory map pages in, whatever the model size.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from olmo_cli.errors import NotFoundError, UnsupportedError, UsageError
from olmo_cli.reporting import NULL_REPORTER, Reporter

OUTTYPE_NAMES = ("f32", "f16", "bf16", "q8_0", "q4_0")


@dataclass
class GGUFResult:
    n_tensors: int
    bytes_written: int
    architecture: str
    types: dict[str, int]  # GGML type name -> number of tensors


def convert_to_gguf(
    src,
    dst,
    *,
    outtype: str | None = None,
    dtype: str = "auto",
    force: bool = False,
    tokenizer: str | None = None,
    reporter: Reporter = NULL_REPORTER,
    revision: str | None = None,
    repo: str | None = None,
    commit: str | None = None,
    offline: bool = False,
):
    """The `--to gguf` half of `checkpoints.convert.convert` (same checks on the source)."""
    from olmo_cli.checkpoints import convert as engine
    from olmo_cli.checkpoints.atomic import check_destination, refuse_overlap
    from olmo_cli.checkpoints.detect import detect_format
    from olmo_cli.checkpoints.formats import open_checkpoint

    src, dst = Path(src), Path(dst)
    if outtype is not None and outtype not in OUTTYPE_NAMES:
        raise UsageError(f"unknown --outtype {outtype!r}", hint=f"use one of {', '.join(OUTTYPE_NAMES)}")
    if dtype != "auto":
        raise UsageError("--dtype is for hf and native outputs", hint="GGUF outputs take --outtype")
    if not dst.absolute().parent.is_dir():
        raise NotFoundError(f"no such directory: {dst.absolute().parent}", hint="create it first")
    if dst.is_dir():
        raise UsageError(f"{dst} is a directory", hint="give the output file's name, e.g. model.gguf")
    source_format = detect_format(src)
    refuse_overlap(src, dst)
    check_destination(dst, force)

    checkpoint = open_checkpoint(src, source_format)
    engine.check_tensors(checkpoint)
    spec = checkpoint.spec

    require_gguf()
    from olmo_cli.checkpoints import layout
    from olmo_cli.checkpoints.gguf import metadata, names, quant

    arch = names.architecture(spec)  # unsupported architectures fail before any write
    chosen = outtype or quant.default_outtype(spec.dtype)
    vocabulary = _vocabulary(checkpoint, tokenizer, reporter, offline)
    table = layout.plan(spec, "hf", checkpoint.keys)

    def fetch(key: str):
        return layout.materialize(table[key], checkpoint.reader.get)

    provenance = metadata.Provenance(
        name=_model_name(repo, revision, src),
        source_format=source_format,
        repo=repo,
        revision=revision,
        commit=commit or _snapshot_commit(src),
    )
    reporter.info(f"converting {source_format} ({checkpoint.architecture}) -> GGUF {names.arch_name(arch)}, {chosen}")
    result = write_gguf(
        dst, spec, fetch, vocabulary, outtype=chosen, provenance=provenance, force=force, reporter=reporter
    )
    return engine.ConvertResult(
        dst=dst,
        source_format=source_format,
        target_format="gguf",
        n_tensors=result.n_tensors,
        bytes_written=result.bytes_written,
        architecture=result.architecture,
        dtype=chosen,
        files=[dst.name],
    )


def write_gguf(
    dst: Path,
    spec,
    fetch: Callable[[str], object],
    vocabulary,
    *,
    outtype: str,
    provenance,
    force: bool = False,
    reporter: Reporter = NULL_REPORTER,
) -> GGUFResult:
    """Write `spec`'s model into the single file `dst` (atomically: a temporary sibling, renamed).

    `fetch(hf_key)` returns the tensor of that transformers key (e.g. `model.layers.0.mlp.up_proj.weight`),
    lazily: it is read one block of rows at a time.
    """
    require_gguf()
    import gguf
    import numpy as np

    from olmo_cli.checkpoints.atomic import atomic_output_file
    from olmo_cli.checkpoints.gguf import metadata, names, quant

    arch = names.architecture(spec)
    planned = names.tensors(spec, arch)
    tied = spec.weight_tying
    types = {t.name: quant.tensor_type(t, outtype, tied) for t in planned}
    sizes = {t.name: quant.nbytes(t.shape, types[t.name]) for t in planned}
    counts: dict[str, int] = {}
    for qtype in types.values():
        counts[qtype.name] = counts.get(qtype.name, 0) + 1
    fallback = [t.name for t in planned if types[t.name] == gguf.GGMLQuantizationType.F16 and outtype.startswith("q")]
    if fallback:
        reporter.warn(f"{len(fallback)} tensors have rows that are not whole {outtype} blocks; written as f16")

    from olmo_cli.oserrors import disk_full_is_error, require_free

    needed = sum(sizes.values())
    parent = Path(dst).absolute().parent
    require_free(parent, needed)
    with disk_full_is_error(parent, needed), atomic_output_file(dst, force, reporter) as tmp:
        writer = gguf.GGUFWriter(tmp, names.arch_name(arch))
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
        total = tmp.stat().st_size
    return GGUFResult(len(planned), total, names.arch_name(arch), counts)


def _vocabulary(checkpoint, override: str | None, reporter: Reporter, offline: bool):
    """The tokenizer exactly as `olmo convert --to hf` would write it, read back as GGUF vocabulary."""
    from olmo_cli.checkpoints.convert import write_checkpoint_tokenizer
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
