"""Keeping prompts and secrets out of logs: `scrub_prompt` for code that must describe a request, and the
`Redactor` behind the last-line logging filter.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from pydantic import BaseModel

if TYPE_CHECKING:
    from llm_api.config import Settings

REDACTED = "[REDACTED]"
MIN_SECRET_LENGTH = 6

# Fields that carry message text in our schema and in the vendors' (Anthropic, OpenAI) request bodies.
CONTENT_FIELDS = frozenset(
    {"content", "text", "prompt", "system", "input", "instructions", "delta", "thinking", "arguments"}
)
# Fields that carry credentials.
SECRET_FIELDS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "x-api-key",
        "api-key",
        "api_key",
        "apikey",
        "password",
        "cookie",
    }
)

_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=:-]{4,}")
_VENDOR_KEY = re.compile(r"\b(?:sk|rk|pk)-[A-Za-z0-9_-]{8,}")
_SECRET_FIELD = re.compile(
    r"""(?ix)
    (["']?(?:authorization|proxy-authorization|x-api-key|api[-_]?key|password)["']?\s*[:=]\s*)
    (?:"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'|[^\s,;}\]]+)
    """
)
_CONTENT_FIELD = re.compile(
    r"""(["'](?:content|text|prompt|system|input|instructions|delta|thinking)["']\s*:\s*)
    (?:"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*')""",
    re.VERBOSE,
)
# What every match of those four must contain: whitespace (_BEARER), "sk-", "rk-" or "pk-" (_VENDOR_KEY),
# ":" or "=" (_SECRET_FIELD), a quote (_CONTENT_FIELD). A text with none of these (and no configured
# secret) is returned as it is: most are ids, names and paths, and one search costs less than four subs.
_SHAPE_MARKERS = r"""[\s:="']|[srp]k-"""


def length_hint(text: str) -> str:
    return f"<{len(text)} chars>"


def scrub_prompt(value: object) -> object:
    """A copy of `value` safe to log: message text becomes a length hint, credentials are redacted.

    Walks mappings, sequences, Pydantic models and dataclasses (our `ChatRequest`, the providers'
    `ProviderRequest`, an SDK's request options): `{"role": "user", "content": "<42 chars>"}`.
    """
    return _scrub(value, field=None)


def _scrub(value: object, *, field: str | None) -> object:
    name = field.lower() if field is not None else None
    if name in SECRET_FIELDS:
        return REDACTED
    if isinstance(value, str):
        return length_hint(value) if name in CONTENT_FIELDS else value
    if isinstance(value, bytes | bytearray | memoryview):
        return f"<{len(value)} bytes>"
    if isinstance(value, BaseModel):
        value = value.model_dump()
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(key): _scrub(item, field=str(key)) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        # A list under a content field (content blocks) keeps the field name for its items.
        inherited = field if name in CONTENT_FIELDS or name == "messages" else None
        return [_scrub(item, field=inherited) for item in value]
    return value


def known_secrets(settings: Settings) -> list[str]:
    """Every configured secret value, for the log filter: client keys, provider keys, the admin key, the
    Redis and database passwords."""
    secrets = [key.get_secret_value() for key in settings.api_keys]
    for provider_key in (settings.anthropic_api_key, settings.openai_api_key, settings.admin_api_key):
        if provider_key is not None:
            secrets.append(provider_key.get_secret_value())
    for url in (settings.redis_url, settings.database_url):
        if url:
            try:
                password = urlsplit(url).password
            except ValueError:
                password = None
            if password:
                secrets.append(password)
    return secrets


class Redactor:
    """Replaces configured secrets and anything shaped like a credential or a message field in text."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        unique = sorted({s for s in secrets if len(s) >= MIN_SECRET_LENGTH}, key=len, reverse=True)
        self._secrets = re.compile("|".join(re.escape(s) for s in unique)) if unique else None
        known = f"|{self._secrets.pattern}" if self._secrets is not None else ""
        self._suspect = re.compile(_SHAPE_MARKERS + known)

    def text(self, text: str) -> str:
        if self._suspect.search(text) is None:
            return text
        if self._secrets is not None:
            text = self._secrets.sub(REDACTED, text)
        text = _BEARER.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
        text = _VENDOR_KEY.sub(REDACTED, text)
        text = _SECRET_FIELD.sub(lambda m: f"{m.group(1)}{REDACTED}", text)
        return _CONTENT_FIELD.sub(lambda m: f'{m.group(1)}"{REDACTED}"', text)

    def value(self, value: Any) -> Any:
        """Strings are redacted; containers are scrubbed of message text, then their strings redacted."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, int | float | bool) or value is None:
            return value
        return self._strings(scrub_prompt(value))

    def _strings(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {key: self._strings(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self._strings(item) for item in value]
        return value
