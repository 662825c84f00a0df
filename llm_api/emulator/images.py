"""Image checks shared by both APIs: media type, base64 and what the bytes really are."""

from __future__ import annotations

import base64
import binascii
import re

MEDIA_TYPES: tuple[str, ...] = ("image/jpeg", "image/png", "image/gif", "image/webp")
_DATA_URL = re.compile(r"^data:(?P<type>[^;,]*)(?P<params>(;[^;,]*)*),(?P<data>.*)$", re.DOTALL)


def sniff(data: bytes) -> str | None:
    """The media type that the bytes' signature shows, or None if it is none of the four."""
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def decode_base64(text: str) -> bytes | None:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


def parse_data_url(url: str) -> tuple[str, bool, str] | None:
    """``data:<type>[;base64],<data>`` as (media type, is base64, data), or None."""
    match = _DATA_URL.match(url)
    if match is None:
        return None
    params = match.group("params").split(";")
    return match.group("type").lower(), "base64" in params, match.group("data")


def is_http_url(url: str) -> bool:
    return re.match(r"^https?://[^\s/?#]+", url) is not None
