"""Client API keys: stored as SHA-256 digests, compared in constant time, known by a non-secret id."""

from __future__ import annotations

import hashlib
import hmac

from pydantic import SecretStr

KEY_ID_LENGTH = 12


def key_id_for_digest(digest_hex: str) -> str:
    """The non-secret id of a key: a short prefix of its SHA-256, safe for logs, traces and Redis."""
    return digest_hex[:KEY_ID_LENGTH]


def key_id(raw_key: str) -> str:
    return key_id_for_digest(hashlib.sha256(raw_key.encode("utf-8")).hexdigest())


class KeyStore:
    """The keys this gateway accepts, from API_KEYS (hashed at start-up) and API_KEY_HASHES."""

    def __init__(self, *, keys: list[SecretStr], digests_hex: list[str]) -> None:
        entries: dict[bytes, str] = {}
        for key in keys:
            digest = hashlib.sha256(key.get_secret_value().encode("utf-8")).digest()
            entries[digest] = key_id_for_digest(digest.hex())
        for digest_hex in digests_hex:
            entries[bytes.fromhex(digest_hex)] = key_id_for_digest(digest_hex)
        self._entries = tuple(entries.items())

    @property
    def empty(self) -> bool:
        return not self._entries

    def authenticate(self, presented: str) -> str | None:
        """The key id of `presented`, or None; every stored digest is compared, in constant time."""
        digest = hashlib.sha256(presented.encode("utf-8", "surrogateescape")).digest()
        found: str | None = None
        for stored, ident in self._entries:
            if hmac.compare_digest(stored, digest):
                found = ident
        return found
