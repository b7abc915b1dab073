"""Hub API calls (refs, model info, tree listings, paths-info) retried like file transfers.

huggingface_hub retries nothing on 429/5xx for these calls. `call_hub` repeats one with the
transfers' capped backoff (`transfer.RetryPolicy`), honouring the Hub's Retry-After; a Hub that
keeps refusing with 429, or asks for a wait longer than the policy allows, is one line saying
when to try again.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import TypeVar

from olmo_cli.errors import NetworkError

RETRIED = frozenset({429, 500, 502, 503, 504})
T = TypeVar("T")


def call_hub(call: Callable[[], T], *, sleep: Callable[[float], None] = time.sleep) -> T:
    """`call()`, again after a 429 or 5xx answer, at most `policy.attempts` times in all."""
    from olmo_cli.hub import transfer

    policy = transfer.DEFAULT_POLICY
    attempt = 0
    while True:
        try:
            return call()
        except Exception as error:
            status = _status(error)
            if status not in RETRIED:
                raise
            asked = transfer.parse_retry_after(_header(error, "Retry-After"))
            if status == 429 and asked is not None and asked > policy.max_retry_after:
                raise _rate_limited(asked) from None
            if attempt + 1 >= policy.attempts:
                if status == 429:
                    raise _rate_limited(asked if asked is not None else policy.max_delay) from None
                raise  # hub_errors turns it into a one-line NetworkError
            sleep(policy.delay(attempt, _header(error, "Retry-After")))
            attempt += 1


def _rate_limited(seconds: float) -> NetworkError:
    wait = max(1, math.ceil(min(seconds, 86_400.0)))
    return NetworkError(f"rate limited by the Hub; try again in {wait} s", hint="a token (HF_TOKEN) raises the limit")


def _status(error: Exception) -> int | None:
    return getattr(getattr(error, "response", None), "status_code", None)


def _header(error: Exception, name: str) -> str | None:
    headers = getattr(getattr(error, "response", None), "headers", None)
    try:
        return headers.get(name) if headers is not None else None
    except Exception:  # a header that does not decode: as if absent
        return None
