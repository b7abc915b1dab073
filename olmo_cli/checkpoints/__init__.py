"""Checkpoint formats and conversion: every format reads and writes one `ModelSpec`.

- `kinds.py`: the closed vocabularies (Format, Target, Family, DType), one table each
- `detect.detect_format(path)`: asks the format registry; native | hf_olmo | hf | olmo-core
- `formats/`: the registry, and one module per format (claims, config -> ModelSpec, reader)
- `layout.py`: the naming tables (native, transformers, OLMo-core), read both ways
- `tensors.py`, `torchzip.py`, `dcp.py`: lazy tensor readers (safetensors, torch zips, DCP)
- `convert.convert(src, dst, to=...)`: the streaming engine
"""
