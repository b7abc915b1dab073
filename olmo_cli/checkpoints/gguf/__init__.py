"""GGUF export (llama.cpp, Ollama, LM Studio): a ModelSpec plus tensors in transformers naming -> one .gguf file.

- `names`: the llama.cpp architecture and the tensor-name table (gguf-py's constants), Q/K row order;
- `vocab`: the tokenizer as llama.cpp's BPE vocabulary (tokens, types, merges, pre-tokenizer);
- `metadata`: the spec and provenance as GGUF key/values;
- `quant`: output types and streaming conversion/quantization, a row block at a time;
- `export`: the writer and the `olmo convert --to gguf` entry point.

The `gguf` package (gguf-py, the `[gguf]` extra) is imported only here, never at startup.
"""
