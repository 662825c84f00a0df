"""The admin API's bodies (also the CLI's option checks). Unknown fields are refused (422)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, StringConstraints, field_validator

from llm_api.store.keys import KeyRecord
from llm_api.store.periods import BudgetPeriod

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Pattern = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
MAX_GRACE_S = 30 * 24 * 3600


def as_utc(value: dt.datetime | None) -> dt.datetime | None:
    """A time without a zone is taken as UTC."""
    if value is None:
        return None
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


class KeyFields(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rpm_limit: int | None = Field(default=None, ge=1, le=10_000_000)
    tpm_limit: int | None = Field(default=None, ge=1, le=10**12)
    budget_usd: Decimal | None = Field(default=None, ge=0, le=10**9, decimal_places=9)
    budget_period: BudgetPeriod | None = None
    models: list[Pattern] | None = Field(default=None, max_length=100)
    expires_at: dt.datetime | None = None
    metadata: dict[str, JsonValue] | None = None

    @field_validator("expires_at")
    @classmethod
    def _utc(cls, value: dt.datetime | None) -> dt.datetime | None:
        return as_utc(value)

    def changes(self) -> dict[str, Any]:
        """The fields the caller gave (an explicit null clears a field)."""
        return {name: getattr(self, name) for name in self.model_fields_set}


class KeyCreate(KeyFields):
    name: Name


class KeyUpdate(KeyFields):
    name: Name | None = None

    @field_validator("name")
    @classmethod
    def _keep_a_name(cls, value: str | None) -> str:
        if value is None:
            raise ValueError("a key's name cannot be cleared")
        return value


class KeyRotate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    grace_s: float = Field(default=0, ge=0, le=MAX_GRACE_S)


class KeyUsageOut(BaseModel):
    period_spend_usd: float
    minute_tokens: int
    minute_requests: int


class KeyOut(BaseModel):
    """A managed key as the admin API shows it: never its secret."""

    id: str
    name: str
    status: Literal["active", "expired", "revoked"]
    rpm_limit: int | None
    tpm_limit: int | None
    budget_usd: float | None
    budget_period: BudgetPeriod | None
    models: list[str] | None
    expires_at: dt.datetime | None
    metadata: dict[str, JsonValue] | None
    created_at: dt.datetime
    updated_at: dt.datetime
    revoked_at: dt.datetime | None

    @classmethod
    def of(cls, key: KeyRecord, *, now: dt.datetime | None = None) -> KeyOut:
        now = now or dt.datetime.now(dt.UTC)
        status: Literal["active", "expired", "revoked"] = (
            "revoked" if key.revoked_at is not None else "expired" if key.expired(now) else "active"
        )
        return cls(
            id=key.id,
            name=key.name,
            status=status,
            rpm_limit=key.rpm_limit,
            tpm_limit=key.tpm_limit,
            budget_usd=float(key.budget_usd) if key.budget_usd is not None else None,
            budget_period=key.budget_period,
            models=list(key.models) if key.models is not None else None,
            expires_at=key.expires_at,
            metadata=dict(key.metadata) if key.metadata is not None else None,
            created_at=key.created_at,
            updated_at=key.updated_at,
            revoked_at=key.revoked_at,
        )


class KeyDetailOut(KeyOut):
    usage: KeyUsageOut


class IssuedKeyOut(KeyOut):
    """The answer to a creation or a rotation: the only place a secret is ever shown."""

    key: str


class KeyListOut(BaseModel):
    data: list[KeyOut]
