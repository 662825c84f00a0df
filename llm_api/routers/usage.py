"""`GET /v1/usage`: the calling key's own usage, from the daily rollup (the shape of `GET /admin/usage`)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, cast

from fastapi import APIRouter, Query, Request

from llm_api.errors import InvalidRequest
from llm_api.routers.openapi import CLIENT_KEY_SECURITY
from llm_api.routers.schemas import EITHER_ERRORS
from llm_api.security.auth import ClientDep
from llm_api.store.store import Store
from llm_api.store.usage import GROUP_BY, GroupBy, UsageTotals

router = APIRouter()

FromQuery = Annotated[
    str | None, Query(alias="from", description="ISO date or datetime (UTC day, inclusive)")
]
ToQuery = Annotated[str | None, Query(alias="to", description="ISO date or datetime (UTC day, inclusive)")]
GroupByQuery = Annotated[str | None, Query(description="comma list of key, model, day")]


def parse_day(value: str | None, *, name: str) -> dt.date | None:
    """An ISO date, or an ISO datetime reduced to its UTC day (reports count whole days)."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        if len(text) == 10:
            return dt.date.fromisoformat(text)
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidRequest(f"'{name}' must be an ISO date (2026-12-01) or datetime") from None
    if moment.tzinfo is not None:
        moment = moment.astimezone(dt.UTC)
    return moment.date()


def parse_group_by(value: str | None) -> list[GroupBy]:
    if value is None or not value.strip():
        return []
    names = [name.strip() for name in value.split(",") if name.strip()]
    unknown = [name for name in names if name not in GROUP_BY]
    if unknown:
        raise InvalidRequest("'group_by' takes a comma list of: key, model, day")
    return [cast(GroupBy, name) for name in dict.fromkeys(names)]


def report_range(from_: str | None, to: str | None) -> tuple[dt.date | None, dt.date | None]:
    first, last = parse_day(from_, name="from"), parse_day(to, name="to")
    if first is not None and last is not None and first > last:
        raise InvalidRequest("'from' is after 'to'")
    return first, last


def report_body(totals: list[UsageTotals], group_by: list[GroupBy]) -> dict[str, Any]:
    rows = []
    for total in totals:
        row: dict[str, Any] = {}
        if "key" in group_by:
            row["key_id"] = total.key_id
        if "model" in group_by:
            row["model"] = total.model
        if "day" in group_by:
            row["day"] = total.day.isoformat() if total.day is not None else None
        row.update(
            requests=total.requests,
            errors=total.errors,
            input_tokens=total.input_tokens,
            output_tokens=total.output_tokens,
            cost_usd=float(total.cost_usd),
        )
        rows.append(row)
    return {"data": rows}


@router.get(
    "/v1/usage",
    responses=EITHER_ERRORS,
    summary="The calling key's own usage (requests, errors, tokens, cost)",
    openapi_extra=CLIENT_KEY_SECURITY,
)
async def own_usage(
    request: Request,
    client: ClientDep,
    model: str | None = None,
    from_: FromQuery = None,
    to: ToQuery = None,
    group_by: GroupByQuery = None,
) -> dict[str, Any]:
    store: Store = request.app.state.store
    first, last = report_range(from_, to)
    groups = parse_group_by(group_by)
    totals = await store.usage.report(
        key_id=client.id, model=model, first_day=first, last_day=last, group_by=groups
    )
    return report_body(totals, groups)
