"""A repo's revision names as some source answered them: the input of pure resolution."""

from __future__ import annotations

from dataclasses import dataclass, field

SOURCE_HUB = "hub"
SOURCE_OFFLINE = "bundled index + local cache"
SOURCE_LOCAL = "local cache"


@dataclass
class Listing:
    """A repo's revision names in training order (checkpoints, then main, tags and the rest)."""

    names: list[str]
    commits: dict[str, str] = field(default_factory=dict)  # name -> sha, where known
    source: str = SOURCE_HUB
    warning: str | None = None  # set when the Hub was unreachable and the fallback answered
    from_cache: bool = False  # the Hub's answer of the last few minutes, reused: a newer branch may be missing
