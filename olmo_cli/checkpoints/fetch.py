"""What a writer asks of a source: each output tensor, as a byte range when it can be copied
unchanged (the kernel copies it file to file) or else as a tensor (read, sliced, concatenated)."""

from __future__ import annotations

from olmo_cli.checkpoints import layout


def fetcher(checkpoint, table: dict, out_dtype: str, parts: bool = False):
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
