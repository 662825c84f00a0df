"""KeyRepository: managed keys and their secrets (stored only as SHA-256 digests)."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import RowMapping, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from llm_api.store.periods import BudgetPeriod
from llm_api.store.tables import api_key_secrets, api_keys, nanos_to_usd, usd_to_nanos

SECRET_PREFIX = "sk-llm-"  # noqa: S105 - the prefix of generated secrets, not a secret
# Fields an update may change; a field given as None clears it (name aside).
UPDATABLE = frozenset(
    {"name", "rpm_limit", "tpm_limit", "budget_usd", "budget_period", "models", "expires_at", "metadata"}
)


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def secret_digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogateescape")).hexdigest()


def new_key_id() -> str:
    return "key_" + secrets.token_hex(8)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """A managed key as stored (never its secret)."""

    id: str
    name: str
    rpm_limit: int | None
    tpm_limit: int | None
    budget_usd: Decimal | None
    budget_period: BudgetPeriod | None
    models: tuple[str, ...] | None
    expires_at: dt.datetime | None
    metadata: Mapping[str, Any] | None
    created_at: dt.datetime
    updated_at: dt.datetime
    revoked_at: dt.datetime | None

    def expired(self, now: dt.datetime) -> bool:
        return self.expires_at is not None and self.expires_at <= now


@dataclass(frozen=True, slots=True)
class SecretMatch:
    """The key a presented secret belongs to, and until when that secret works (None: no end)."""

    key: KeyRecord
    secret_expires_at: dt.datetime | None


@dataclass(frozen=True, slots=True)
class IssuedKey:
    """A key with its new secret: returned once, on creation and rotation, and never stored in clear."""

    key: KeyRecord
    secret: str


def _record(row: RowMapping) -> KeyRecord:
    budget = row["budget_nusd"]
    models = row["models"]
    return KeyRecord(
        id=row["id"],
        name=row["name"],
        rpm_limit=row["rpm_limit"],
        tpm_limit=row["tpm_limit"],
        budget_usd=nanos_to_usd(budget) if budget is not None else None,
        budget_period=row["budget_period"],
        models=tuple(models) if models is not None else None,
        expires_at=row["expires_at"],
        metadata=row["metadata"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        revoked_at=row["revoked_at"],
    )


def _columns(fields: Mapping[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name, value in fields.items():
        if name not in UPDATABLE:
            raise ValueError(f"not a key field: {name}")
        if name == "budget_usd":
            values["budget_nusd"] = usd_to_nanos(Decimal(value)) if value is not None else None
        elif name == "models":
            values["models"] = list(value) if value is not None else None
        else:
            values[name] = value
    return values


class KeyRepository:
    """Create, read, change, revoke and rotate managed keys."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def create(self, *, name: str, **fields: Any) -> IssuedKey:
        """A new key with a new secret; `fields` are the optional limits, models, expiry and metadata."""
        now = utcnow()
        key_id, secret = new_key_id(), new_secret()
        values = {
            "budget_period": "month" if fields.get("budget_usd") is not None else None,
            **_columns(fields),
        }
        async with self._engine.begin() as conn:
            await conn.execute(
                api_keys.insert().values(
                    id=key_id, name=name, created_at=now, updated_at=now, revoked_at=None, **values
                )
            )
            await conn.execute(
                api_key_secrets.insert().values(
                    secret_sha256=secret_digest(secret), key_id=key_id, created_at=now, expires_at=None
                )
            )
        key = await self.get(key_id)
        assert key is not None
        return IssuedKey(key=key, secret=secret)

    async def get(self, key_id: str) -> KeyRecord | None:
        async with self._engine.connect() as conn:
            row = (await conn.execute(select(api_keys).where(api_keys.c.id == key_id))).mappings().first()
        return _record(row) if row is not None else None

    async def list(self, *, include_revoked: bool = True) -> Sequence[KeyRecord]:
        query = select(api_keys).order_by(api_keys.c.created_at, api_keys.c.id)
        if not include_revoked:
            query = query.where(api_keys.c.revoked_at.is_(None))
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [_record(row) for row in rows]

    async def update(self, key_id: str, **fields: Any) -> KeyRecord | None:
        """Change the given fields of a key that is not revoked; None if there is no such key."""
        values = _columns(fields)
        async with self._engine.begin() as conn:
            result = await conn.execute(
                update(api_keys)
                .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
                .values(updated_at=utcnow(), **values)
            )
        if result.rowcount == 0:
            return None
        return await self.get(key_id)

    async def revoke(self, key_id: str) -> bool:
        """Revoke the key (its secrets stop working at once); False if there is no such key."""
        now = utcnow()
        async with self._engine.begin() as conn:
            result = await conn.execute(
                update(api_keys)
                .where(api_keys.c.id == key_id)
                .values(revoked_at=func.coalesce(api_keys.c.revoked_at, now), updated_at=now)
            )
            if result.rowcount:
                await conn.execute(delete(api_key_secrets).where(api_key_secrets.c.key_id == key_id))
        return bool(result.rowcount)

    async def rotate(self, key_id: str, *, grace_s: float = 0) -> IssuedKey | None:
        """A new secret; the current ones keep working for `grace_s` seconds. None if no such live key."""
        now = utcnow()
        secret = new_secret()
        until = now + dt.timedelta(seconds=grace_s)
        async with self._engine.begin() as conn:
            result = await conn.execute(
                update(api_keys)
                .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
                .values(updated_at=now)
            )
            if result.rowcount == 0:
                return None
            secrets_of_key = api_key_secrets.c.key_id == key_id
            if grace_s <= 0:
                await conn.execute(delete(api_key_secrets).where(secrets_of_key))
            else:
                await conn.execute(
                    update(api_key_secrets)
                    .where(
                        secrets_of_key,
                        or_(api_key_secrets.c.expires_at.is_(None), api_key_secrets.c.expires_at > until),
                    )
                    .values(expires_at=until)
                )
                await conn.execute(
                    delete(api_key_secrets).where(secrets_of_key, api_key_secrets.c.expires_at <= now)
                )
            await conn.execute(
                api_key_secrets.insert().values(
                    secret_sha256=secret_digest(secret), key_id=key_id, created_at=now, expires_at=None
                )
            )
        key = await self.get(key_id)
        assert key is not None
        return IssuedKey(key=key, secret=secret)

    async def find_by_secret(self, secret: str) -> SecretMatch | None:
        """The key whose (current or in-grace) secret is `secret`, revoked or expired ones included."""
        query = (
            select(api_keys, api_key_secrets.c.expires_at.label("secret_expires_at"))
            .join(api_key_secrets, api_key_secrets.c.key_id == api_keys.c.id)
            .where(api_key_secrets.c.secret_sha256 == secret_digest(secret))
        )
        async with self._engine.connect() as conn:
            row = (await conn.execute(query)).mappings().first()
        if row is None:
            return None
        return SecretMatch(key=_record(row), secret_expires_at=row["secret_expires_at"])
