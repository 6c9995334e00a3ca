"""When to try again after a failed request: the rules the webhooks and the Elasticsearch sink share.

- 429 (too many requests) and 5xx are worth retrying (:func:`retryable`); any other 4xx is final.
- The wait is full jitter (tenacity's ``wait_random_exponential``): uniform up to
  ``base_s * 2**(attempt-1)``, never over ``cap_s``, so many senders that failed together do not
  come back together.
- A server that says how long to wait (``Retry-After``, :func:`retry_after_s`: seconds or an
  HTTP-date) is waited for when that is longer than the back-off, up to ``cap_s``
  (:func:`honour_retry_after`, :func:`backoff_wait`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from datetime import UTC
from email.utils import parsedate_to_datetime

from tenacity import RetryCallState, wait_random_exponential

RETRY_AFTER = "Retry-After"


def retryable(status: int) -> bool:
    """Whether an HTTP answer is worth retrying: 429 and 5xx; any other status will not change on retry.

    >>> [retryable(s) for s in (429, 500, 503, 400, 404, 413)]
    [True, True, True, False, False, False]
    """
    return status == 429 or status >= 500


def retry_after_s(headers: Mapping[str, str] | None, now: float | None = None) -> float | None:
    """The wait a ``Retry-After`` header asks for, in seconds; None when there is none to read.

    ``headers`` is a case-insensitive mapping (httpx's or elastic-transport's headers). The value
    is seconds or an HTTP-date (a date already past asks for no wait: 0); ``now`` is the epoch
    time a date is measured from (the clock when not given).

    >>> retry_after_s({"Retry-After": "120"})
    120.0
    >>> retry_after_s({"Retry-After": "Wed, 02 Dec 2026 17:00:30 GMT"}, now=1796230800.0)
    30.0
    >>> retry_after_s({"Retry-After": "soon"}) is None
    True
    """
    value = (headers or {}).get(RETRY_AFTER)
    if value is None or not value.strip():
        return None
    try:
        seconds = float(value)
    except ValueError:
        return _until_date(value, time.time() if now is None else now)
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def _until_date(value: str, now: float) -> float | None:
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000": a UTC time with no zone said
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - now)


def honour_retry_after(delay_s: float, asked_s: float | None, cap_s: float) -> float:
    """The back-off's ``delay_s``, or the server's longer ``asked_s`` (at most ``cap_s``).

    >>> honour_retry_after(0.3, None, 30.0), honour_retry_after(0.3, 2.0, 30.0), honour_retry_after(0.3, 600, 30.0)
    (0.3, 2.0, 30.0)
    >>> honour_retry_after(0.3, 0.0, 30.0)  # shorter than the back-off: the back-off stands
    0.3
    """
    return delay_s if asked_s is None else max(delay_s, min(asked_s, cap_s))


def backoff_wait(
    base_s: float, cap_s: float, asked_s: Callable[[RetryCallState], float | None]
) -> Callable[[RetryCallState], float]:
    """A tenacity wait strategy: full jitter under ``base_s * 2**(attempt-1)`` and ``cap_s``, or longer
    when ``asked_s`` (what the last answer's ``Retry-After`` asked, read from the call state) says so."""
    backoff = wait_random_exponential(multiplier=base_s, max=cap_s)

    def wait(state: RetryCallState) -> float:
        return honour_retry_after(backoff(state), asked_s(state), cap_s)

    return wait
