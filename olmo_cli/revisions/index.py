"""The bundled revision index: `revisions.txt`, shipped inside the package, read offline.

The file format is documented at the top of `revisions.txt` itself: `[owner/name]` starts a
repo's section, every other non-comment line is one revision name, in training order.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

_RESOURCE = ("olmo_cli", "data/revisions.txt")


def parse_index(text: str) -> dict[str, list[str]]:
    """Parse the index format into {repo: [revision names in file order]}."""
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1].strip(), [])
            continue
        if current is None:
            raise ValueError(f"revisions index line {number}: a revision before any [repo] section")
        current.append(line)
    return sections


@lru_cache(maxsize=1)
def _index() -> dict[str, tuple[str, ...]]:
    package, path = _RESOURCE
    text = resources.files(package).joinpath(path).read_text(encoding="utf-8")
    return {repo: tuple(names) for repo, names in parse_index(text).items()}


def known_repos() -> list[str]:
    """The repos the bundled index covers, in file order."""
    return list(_index())


def bundled_revisions(repo: str) -> list[str] | None:
    """The bundled revision names of `repo` in training order, or None when it is not covered."""
    names = _index().get(repo)
    return list(names) if names is not None else None


def repos_with_revision(name: str) -> list[str]:
    """The known repos whose bundled index lists `name` exactly."""
    return [repo for repo, names in _index().items() if name in _name_sets()[repo]]


@lru_cache(maxsize=1)
def _name_sets() -> dict[str, frozenset[str]]:
    return {repo: frozenset(names) for repo, names in _index().items()}
