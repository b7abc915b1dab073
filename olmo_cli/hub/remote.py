"""Reading single files of a Hub repo: a small file into the HF cache, or a byte range of a big one.

What `inspect` (safetensors headers by range requests) and the tokenizer lookup (a tokenizer repo's
few JSON files) need; whole revisions go through hub/download.py.
"""

from __future__ import annotations

from pathlib import Path

from olmo_cli.hub import env
from olmo_cli.hub.errors import hub_errors
from olmo_cli.hub.retry import call_hub


def fetch_repo_file(repo: str, filename: str, *, revision: str = "main", offline: bool = False) -> Path:
    """`filename` of `repo` at `revision`, downloaded into the HF cache (or found there when
    offline); NotFoundError when the repo or the file does not exist."""
    from huggingface_hub import hf_hub_download  # here, not at the top: only online paths pay for it

    def download() -> str:
        return hf_hub_download(
            repo,
            filename,
            revision=revision,
            endpoint=env.endpoint(),
            cache_dir=env.hub_cache_dir(),
            token=env.token(),
            local_files_only=env.offline(offline),
        )

    with hub_errors(repo, revision):
        return Path(call_hub(download))  # 429 and 5xx retried like every other Hub call


def read_range(repo: str, revision: str, filename: str, start: int, end: int) -> bytes:
    """Bytes start..end (inclusive) of a file on the Hub, by one HTTP range request."""
    from huggingface_hub import get_session, hf_hub_url
    from huggingface_hub.utils import hf_raise_for_status

    token = env.token()
    headers = {"Range": f"bytes={start}-{end}"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    url = hf_hub_url(repo, filename, revision=revision, endpoint=env.endpoint())

    def get():
        response = get_session().get(url, headers=headers, follow_redirects=True)
        hf_raise_for_status(response)
        return response

    with hub_errors(repo, revision):
        response = call_hub(get)
    return response.content[: end - start + 1]
