"""What the codec's directions share: the key of its extras."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from llm_api.chat_model import EMPTY

# The neutral model's `extras` bags may hold any format's fields. This codec keeps Anthropic's under this
# one key (`{"anthropic": {"cache_control": {...}}}`), emits only those, and so never sends another
# format's fields to Anthropic.
EXTRAS_KEY = "anthropic"


def make_extras(source: Mapping[str, Any], *known: str) -> Mapping[str, Any]:
    """The fields of `source` other than `type` and `known`, under EXTRAS_KEY (EMPTY when none)."""
    rest = {key: value for key, value in source.items() if key != "type" and key not in known}
    return MappingProxyType({EXTRAS_KEY: rest}) if rest else EMPTY


def anthropic_extras(extras: Mapping[str, Any]) -> dict[str, Any]:
    value = extras.get(EXTRAS_KEY)
    return dict(value) if isinstance(value, Mapping) else {}
