"""Fitting a client's own-format body to the model (the relay path): only what the gateway must change."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from llm_api.services.capabilities import ModelCapabilities
from llm_api.services.providers.base import FittedBody


def fit_body(
    body: Mapping[str, Any], capabilities: ModelCapabilities, *, max_tokens_keys: Iterable[str]
) -> FittedBody:
    """Remove the top-level parameters the model refuses and clamp the max-tokens keys to the model's
    output maximum; everything else stays as the client sent it."""
    fitted = dict(body)
    dropped = tuple(key for key in body if not capabilities.takes(key))
    for key in dropped:
        del fitted[key]
    clamped: list[str] = []
    limit = capabilities.max_output_tokens
    if limit is not None:
        for key in max_tokens_keys:
            value = fitted.get(key)
            if isinstance(value, int) and not isinstance(value, bool) and value > limit:
                fitted[key] = limit
                clamped.append(key)
    return FittedBody(body=fitted, dropped=dropped, clamped=tuple(clamped))
