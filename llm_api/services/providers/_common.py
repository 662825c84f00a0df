"""Helpers shared by the provider adapters."""

from __future__ import annotations

import email.utils
import time
from collections.abc import Mapping

import aiohttp
import httpx2


def parse_retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Seconds the upstream asked us to wait: `retry-after-ms`, else `retry-after` (seconds or a date)."""
    if not headers:
        return None
    raw_ms = headers.get("retry-after-ms")
    if raw_ms:
        try:
            return max(0.0, float(raw_ms) / 1000.0)
        except ValueError:
            pass
    raw = headers.get("retry-after")
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    parsed = email.utils.parsedate_tz(raw)
    if parsed is None:
        return None
    return max(0.0, float(email.utils.mktime_tz(parsed)) - time.time())


def is_timeout(exc: BaseException) -> bool:
    """Did this transport failure come from a timeout (rather than a refused or dropped connection)?

    The SDKs' aiohttp bridge maps every `aiohttp.ClientConnectionError`, a server closing the connection
    included, to a connect *timeout*; the original aiohttp error in the cause chain tells them apart.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, aiohttp.ServerTimeoutError | TimeoutError):
            return True
        if isinstance(current, aiohttp.ClientConnectionError):
            return False
        current = current.__cause__ or current.__context__
    return isinstance(exc, httpx2.TimeoutException) or type(exc).__name__ == "APITimeoutError"
