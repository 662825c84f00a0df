"""Reading the results dict: nested keys that may be missing, numbers that may be None."""

from __future__ import annotations

from typing import Any


def dig(data: Any, *path: str) -> Any:
    """`data[path[0]][path[1]]…`, or None where a level is missing or not a dict."""
    for key in path:
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
