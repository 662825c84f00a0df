"""Managed keys on a bench gateway: the admin key and prices its environment needs, and the key it creates.

"Everything on" (issue 12) includes a managed key with a token limit and a budget, so every all-on gateway
gets `ADMIN_API_KEY` and, once it answers, one key created with `POST /admin/keys`. Its budget is priced
from the `genai-prices` table, as an operator's is by default (no MODEL_PRICES): every settlement costs
the usage at the package's price, tiers included.
"""

from __future__ import annotations

import httpx

from bench.load import Target

ADMIN_KEY = "bench-admin-key-0001"
# Far above what one run spends (at most ~0.002 USD and ~80 tokens a request, some 10^5 requests): every
# request is admitted, and each still takes the reservation and reconciliation a budgeted key takes.
BUDGETED_KEY = {
    "name": "bench-budgeted",
    "rpm_limit": 10_000_000,
    "tpm_limit": 10**11,
    "budget_usd": 1_000_000,
    "budget_period": "month",
}
NO_ADMIN_API = "no admin API in this build (issue 10, branches store and limits, not merged)"


def admin_env() -> dict[str, str]:
    """What a gateway needs for managed keys besides its own DATABASE_URL (bench.gateway.start_gateway)."""
    return {"ADMIN_API_KEY": ADMIN_KEY}


def limits() -> dict[str, object]:
    return {k: v for k, v in BUDGETED_KEY.items() if k != "name"}


def create_key(base_url: str, *, name: str = str(BUDGETED_KEY["name"])) -> dict[str, object] | str:
    """The created key (`id`, `key`, …), or why managed keys cannot be measured on this gateway."""
    response = httpx.post(
        f"{base_url}/admin/keys",
        json={**BUDGETED_KEY, "name": name},
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        timeout=10,
    )
    if response.status_code == 404:
        return NO_ADMIN_API
    if response.status_code != 201:
        raise RuntimeError(f"POST /admin/keys: {response.status_code} {response.text[:500]}")
    created: dict[str, object] = response.json()
    return created


def key_usage(base_url: str, key_id: object) -> object:
    """The key's live usage (`GET /admin/keys/{id}`), or None."""
    response = httpx.get(
        f"{base_url}/admin/keys/{key_id}", headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=10
    )
    return response.json().get("usage") if response.status_code == 200 else None


def warm_key(target: Target) -> None:
    """One request with the key: its first reservation seeds the budget counter. Only the status is read
    (for a stream, the headers come once the reservation is held)."""
    headers = {"Content-Type": "application/json", **target.headers}
    with httpx.stream("POST", target.url, content=target.body, headers=headers, timeout=30) as response:
        if response.status_code != 200:
            raise RuntimeError(f"warming the managed key: {response.status_code} {response.read()[:500]!r}")
