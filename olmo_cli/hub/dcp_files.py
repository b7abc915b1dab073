"""Which `.distcp` files of an OLMo-core step directory on the Hub a model needs.

Its `model_and_optim/.metadata` says where every item lies, so it is fetched first (it is small)
and read by the restricted DCP unpickler; `.distcp` files that hold no `model.*` item (optimizer
state only) are then left out of the download. FSDP writers usually put model and optimizer
items in the same files: those are all still fetched whole.
"""

from __future__ import annotations

from collections.abc import Callable

from olmo_cli.errors import BadInputError
from olmo_cli.hub.cache import RepoCache
from olmo_cli.hub.files import DCP_DIR, RevisionFiles

METADATA = DCP_DIR + ".metadata"


def without_optimizer_only(wanted: set[str], metadata: Callable[[], bytes | None], where: str) -> set[str]:
    """`wanted` less the `.distcp` files whose items are all optimizer state, per the `.metadata`
    bytes `metadata()` gives (None: not at hand, nothing is left out)."""
    distcp = {p for p in wanted if p.startswith(DCP_DIR) and p.endswith(".distcp")}
    if METADATA not in wanted or not distcp:
        return wanted
    from olmo_cli import dcp_metadata as dcp

    raw = metadata()
    if raw is None:
        return wanted
    try:
        stored = dcp.parse_metadata(raw, f"{where}/{METADATA}")
    except BadInputError:
        return wanted  # unreadable here: fetch everything, and let the reader say what is wrong
    holding = {DCP_DIR + name for name in dcp.files_holding(stored)}
    return wanted - (distcp - holding)


def fetched_metadata(repo: str, listing: RevisionFiles) -> Callable[[], bytes]:
    """The listed `.metadata`, fetched into the cache first (it is part of the download anyway)."""

    def read() -> bytes:
        from olmo_cli.hub.env import endpoint, token
        from olmo_cli.hub.transfer import fetch_blob

        remote = listing.by_path()[METADATA]
        cache = RepoCache.of(repo)
        fetch_blob(repo, listing.commit, remote, endpoint=endpoint(), token=token(), cache=cache)
        return cache.blob(remote.etag).read_bytes()

    return read
