"""Checkpoint formats and conversion: every format reads and writes one `ModelSpec`.

- `detect.detect_format(path)`: native | hf_olmo | hf
- `formats/`: one module per format, config <-> ModelSpec
- `layout.py`: the tensor maps between native and transformers key names, read both ways
- `tensors.py`: lazy tensor readers and the streaming safetensors writer
- `convert.convert(src, dst, to=...)`: the streaming engine
"""
