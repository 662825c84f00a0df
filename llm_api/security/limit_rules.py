"""Parsing of the rate-limit settings: limit strings, per-key overrides, and the Redis URL.

Used by `config.Settings` validators (so a bad value stops start-up with a clear message) and by
the limiter itself. Limit strings use the `limits`/slowapi notation: ``20/minute``,
``100 per hour``, or several at once separated by ``;`` (``20/minute;500/day``).
"""

from __future__ import annotations

import re

from limits import RateLimitItem, parse_many

from llm_api.security.keys import KEY_ID_LENGTH

_KEY_ID = re.compile(rf"^[0-9a-f]{{{KEY_ID_LENGTH}}}$")

# REDIS_URL scheme -> the `limits.aio` storage scheme (served by redis-py's asyncio client).
_ASYNC_SCHEMES = {
    "redis": "async+redis",
    "rediss": "async+rediss",
    "unix": "async+redis+unix",
    "redis+unix": "async+redis+unix",
    "redis+sentinel": "async+redis+sentinel",
    "redis+cluster": "async+redis+cluster",
}


def parse_limit(text: str, *, setting: str) -> tuple[RateLimitItem, ...]:
    """The limits in `text`; ValueError naming `setting` if it is not a valid limit string."""
    try:
        items = tuple(parse_many(text))
    except ValueError:
        items = ()
    if not items or any(item.amount < 1 for item in items):
        raise ValueError(
            f"{setting}: {text!r} is not a valid rate limit "
            "(expected e.g. '20/minute' or '20/minute;500/day')"
        )
    return items


def parse_overrides(entries: list[str], *, setting: str = "RATE_LIMIT_OVERRIDES") -> dict[str, str]:
    """``["<key-id>=<limit>", ...]`` as a mapping; ValueError on a malformed entry.

    The entries name keys by their non-secret id (the first 12 hex digits of the key's SHA-256), never by
    the key itself: anything that is not such an id is refused, so a raw key cannot end up here by mistake.
    """
    overrides: dict[str, str] = {}
    for entry in entries:
        ident, sep, limit = entry.partition("=")
        ident, limit = ident.strip().lower(), limit.strip()
        if not sep or not _KEY_ID.match(ident):
            raise ValueError(
                f"{setting}: entries must look like '<key-id>=<limit>' where the key id is the first "
                f"{KEY_ID_LENGTH} hex digits of the key's SHA-256 (entry #{len(overrides) + 1} does not)"
            )
        parse_limit(limit, setting=f"{setting} ({ident})")
        overrides[ident] = limit
    return overrides


def storage_uri(redis_url: str) -> str:
    """The `limits.aio` storage URI for REDIS_URL (``redis://``, ``rediss://``, ``redis+unix://``,
    ``redis+sentinel://host:port/service``, ``redis+cluster://host:port,host:port``)."""
    scheme, sep, rest = redis_url.partition("://")
    scheme = scheme.lower().removeprefix("async+")
    if not sep or scheme not in _ASYNC_SCHEMES:
        raise ValueError(
            "REDIS_URL must start with redis://, rediss://, redis+unix://, redis+sentinel:// "
            "or redis+cluster://"
        )
    return f"{_ASYNC_SCHEMES[scheme]}://{rest}"
