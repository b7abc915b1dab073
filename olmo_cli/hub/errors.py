"""Turn huggingface_hub and transport exceptions into OlmoError, in one place.

Every call into huggingface_hub that may fail runs inside `hub_errors(repo, revision)`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from olmo_cli.errors import AuthError, NetworkError, NotFoundError, OlmoError, UsageError, first_line
from olmo_cli.hub.env import endpoint


class RepoNotFoundError(NotFoundError):
    """The repo itself does not exist (or is hidden): every revision of it would fail the same way."""


@contextmanager
def hub_errors(repo: str | None = None, revision: str | None = None) -> Iterator[None]:
    from huggingface_hub import errors as hf

    what = repo or "the Hub"
    at = f" at revision '{revision}'" if revision else ""
    try:
        yield
    except OlmoError:
        raise
    except hf.GatedRepoError as error:  # before RepositoryNotFoundError: it is a subclass
        raise AuthError(
            f"{what} is gated and this token has no access ({_status(error)})",
            hint="accept the terms on the model page and set HF_TOKEN",
        ) from None
    except hf.RepositoryNotFoundError as error:
        if _status(error) in (401, 403):
            raise AuthError(
                f"{what}: not authorized ({_status(error)}); "
                "the repo is private or gated, or the token is missing or expired",
                hint="set HF_TOKEN to a valid token",
            ) from None
        raise RepoNotFoundError(
            f"repo '{what}' not found on {_host()}", hint="check the repo id, e.g. allenai/OLMo-7B"
        ) from None
    except hf.RevisionNotFoundError:
        raise NotFoundError(
            f"revision '{revision}' not found in {what}",
            hint=f"run 'olmo list-revisions {repo}' to see the revisions" if repo else None,
        ) from None
    except hf.EntryNotFoundError as error:  # includes LocalEntryNotFoundError (offline, not cached)
        raise NotFoundError(f"{first_line(error)}") from None
    except hf.HFValidationError as error:  # a repo id or revision the client refuses before asking
        raise UsageError(first_line(error), hint="a repo id looks like allenai/OLMo-7B") from None
    except hf.OfflineModeIsEnabled:
        raise NetworkError(
            f"offline mode is on (HF_HUB_OFFLINE) and {what}{at} is not in the local cache",
            hint="unset HF_HUB_OFFLINE or download it first",
        ) from None
    except hf.HfHubHTTPError as error:
        status = _status(error)
        if status in (401, 403):
            raise AuthError(
                f"{what}: not authorized ({status}); the token is missing, expired or lacks access",
                hint="set HF_TOKEN to a valid token",
            ) from None
        if status == 404:
            raise NotFoundError(f"{what}{at}: not found on {_host()} (404)") from None
        raise NetworkError(
            f"the Hub answered {status or 'an error'} for {what}{at}: {first_line(error)}",
            hint="try again later, or use --offline",
        ) from None
    except (ValueError, KeyError, TypeError, AttributeError) as error:  # not JSON, or JSON of another shape
        raise NetworkError(
            f"the Hub's answer for {what}{at} is not what its API returns "
            f"({type(error).__name__}: {first_line(error)[:120]})",
            hint="check HF_ENDPOINT; try again later",
        ) from None
    except Exception as error:
        if is_transport_error(error):
            raise NetworkError(
                f"cannot reach {_host()}: {first_line(error)}",
                hint="check your connection or HF_ENDPOINT, or use --offline",
            ) from None
        raise


def is_transport_error(error: BaseException) -> bool:
    kinds: tuple[type, ...] = (ConnectionError, TimeoutError)
    for client in ("httpx2", "httpx"):  # huggingface_hub 2.x uses httpx2, 1.x httpx
        try:
            # RequestError: transport failures, and also redirect loops and undecodable bodies
            kinds += (__import__(client).RequestError,)
        except ImportError:
            pass
    return isinstance(error, kinds)


def _status(error: Exception) -> int | None:
    response = getattr(error, "response", None)
    return getattr(response, "status_code", None)


def _host() -> str:
    return endpoint()
