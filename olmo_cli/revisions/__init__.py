"""The revision core: pure Python, no torch, no network of its own.

- `names`: parse a revision name into step, tokens, stage, ingredient; order by training progress.
- `index`: the bundled branch lists (`revisions.txt`), read offline.
- `select`: pick many revisions (a step/token range, every N, log-spaced, stage, limit).
- `gaps`: spots where consecutive checkpoints are much further apart than usual.
- `resolve`: the one function every `--revision` goes through.
- `complete`: TAB completion candidates (bundled index + local cache, never the network).
"""
