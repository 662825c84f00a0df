"""`python -m llm_api.admin`: key administration and migrations, working on the database directly.

    migrate
    keys create --name NAME [--rpm N] [--tpm N] [--budget-usd X] [--budget-period P] [--models GLOB,...]
                [--expires-at ISO] [--metadata JSON]
    keys list
    keys show ID
    keys update ID [same options; the value "none" clears one]
    keys revoke ID
    keys rotate ID [--grace-s N]

Reads DATABASE_URL (and REDIS_URL, RATE_LIMIT_KEY_PREFIX to tell running gateways about a change at
once). Answers are JSON on stdout; a secret is printed once, by `create` and `rotate`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from typing import Any

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict
from redis.asyncio import Redis

from llm_api.admin.schemas import (
    IssuedKeyOut,
    KeyCreate,
    KeyDetailOut,
    KeyOut,
    KeyRotate,
    KeyUpdate,
    KeyUsageOut,
)
from llm_api.admin.service import KeyAdmin, ledger_usage
from llm_api.errors import NotFound
from llm_api.security.managed_keys import PUBSUB_SCHEMES, invalidation_channel
from llm_api.store.database import DEFAULT_DATABASE_URL
from llm_api.store.keys import IssuedKey
from llm_api.store.migrate import migrate
from llm_api.store.periods import BUDGET_PERIODS
from llm_api.store.store import Store

NONE = "none"


class CliSettings(BaseSettings):
    """The few settings the CLI needs (not the gateway's: no client or provider keys required)."""

    model_config = SettingsConfigDict(env_file=None, extra="ignore", case_sensitive=False)

    database_url: str = DEFAULT_DATABASE_URL
    redis_url: str | None = None
    rate_limit_key_prefix: str = Field(default="llm_api", min_length=1)


def _key_options(parser: argparse.ArgumentParser, *, create: bool) -> None:
    parser.add_argument("--name", required=create)
    parser.add_argument("--rpm", help="requests per minute")
    parser.add_argument("--tpm", help="input + output tokens per minute")
    parser.add_argument("--budget-usd", help="spend allowed per budget period, in USD")
    parser.add_argument("--budget-period", help="|".join(BUDGET_PERIODS) + " (calendar periods, UTC)")
    parser.add_argument("--models", help="comma list of glob patterns the key may use")
    parser.add_argument("--expires-at", help="ISO time (UTC unless it says otherwise)")
    parser.add_argument("--metadata", help="a JSON object")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m llm_api.admin", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("migrate", help="bring the database schema to the latest revision")
    keys = commands.add_parser("keys", help="managed keys").add_subparsers(dest="action", required=True)
    _key_options(
        keys.add_parser("create", help="create a key; prints its id and, once, its secret"), create=True
    )
    keys.add_parser("list", help="every key (never a secret)")
    keys.add_parser("show", help="one key, with its usage").add_argument("id")
    update = keys.add_parser("update", help="change a key")
    update.add_argument("id")
    _key_options(update, create=False)
    keys.add_parser("revoke", help="revoke a key").add_argument("id")
    rotate = keys.add_parser("rotate", help="a new secret; the old one works for --grace-s seconds")
    rotate.add_argument("id")
    rotate.add_argument("--grace-s", type=float, default=0.0)
    return parser


def _fields(args: argparse.Namespace) -> dict[str, Any]:
    """The options given, as the admin API's field names; "none" clears a field."""
    options = {
        "name": args.name,
        "rpm_limit": args.rpm,
        "tpm_limit": args.tpm,
        "budget_usd": args.budget_usd,
        "budget_period": args.budget_period,
        "models": args.models,
        "expires_at": args.expires_at,
        "metadata": args.metadata,
    }
    fields: dict[str, Any] = {}
    for name, value in options.items():
        if value is None:
            continue
        if value.strip().lower() == NONE and name != "name":
            fields[name] = None
        elif name == "models":
            fields[name] = [pattern.strip() for pattern in value.split(",") if pattern.strip()]
        elif name == "metadata":
            try:
                fields[name] = json.loads(value)
            except ValueError:
                raise SystemExit("--metadata must be a JSON object") from None
        else:
            fields[name] = value
    return fields


def _print(model: KeyOut) -> None:
    print(model.model_dump_json(indent=2))


def _issued(issued: IssuedKey) -> IssuedKeyOut:
    return IssuedKeyOut(**KeyOut.of(issued.key).model_dump(), key=issued.secret)


async def _notifier(settings: CliSettings) -> tuple[Redis[bytes] | None, str]:
    channel = invalidation_channel(settings.rate_limit_key_prefix)
    if settings.redis_url and settings.redis_url.startswith(PUBSUB_SCHEMES):
        return Redis.from_url(settings.redis_url, socket_timeout=2, socket_connect_timeout=2), channel
    return None, channel


async def run_keys(args: argparse.Namespace, store: Store, settings: CliSettings) -> int:
    redis, channel = await _notifier(settings)

    async def notify(key_id: str) -> None:
        if redis is None:
            return
        try:
            await redis.publish(channel, key_id)
        except Exception:
            print(
                "warning: could not reach Redis; running gateways see the change within 1 s of their "
                "cache expiring",
                file=sys.stderr,
            )

    admin = KeyAdmin(store.keys, notify=notify)
    try:
        if args.action == "create":
            issued = await admin.create(KeyCreate(**_fields(args)))
            _print(_issued(issued))
            print("The key's secret is shown only this once: store it now.", file=sys.stderr)
        elif args.action == "list":
            print(json.dumps({"data": [KeyOut.of(k).model_dump(mode="json") for k in await admin.list()]}))
        elif args.action == "show":
            key = await admin.get(args.id)
            usage = await ledger_usage(store.ledger)(key)
            _print(
                KeyDetailOut(
                    **KeyOut.of(key).model_dump(),
                    usage=KeyUsageOut(
                        period_spend_usd=float(usage.period_spend_usd),
                        minute_tokens=usage.minute_tokens,
                        minute_requests=usage.minute_requests,
                    ),
                )
            )
        elif args.action == "update":
            _print(KeyOut.of(await admin.update(args.id, KeyUpdate(**_fields(args)))))
        elif args.action == "revoke":
            await admin.revoke(args.id)
            print(json.dumps({"id": args.id, "revoked": True}))
        elif args.action == "rotate":
            grace = KeyRotate(grace_s=args.grace_s)
            _print(_issued(await admin.rotate(args.id, grace_s=grace.grace_s)))
            print("The new secret is shown only this once: store it now.", file=sys.stderr)
    finally:
        if redis is not None:
            await redis.aclose()  # type: ignore[attr-defined]  # types-redis predates aclose
    return 0


async def run(args: argparse.Namespace) -> int:
    settings = CliSettings()
    if args.command == "migrate":
        applied = await migrate(settings.database_url)
        print(json.dumps({"migrated": applied}))
        return 0
    store = await Store.open(settings.database_url, pool_size=1)
    try:
        return await run_keys(args, store, settings)
    finally:
        await store.aclose()


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return asyncio.run(run(args))
    except ValidationError as exc:
        for error in exc.errors():
            where = ".".join(str(part) for part in error["loc"]) or "options"
            print(f"error: {where}: {error['msg']}", file=sys.stderr)
        return 2
    except NotFound as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
