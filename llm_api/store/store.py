"""`Store`: the engine and its repositories, opened once per worker in the lifespan."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from llm_api.store.database import create_engine
from llm_api.store.keys import KeyRepository
from llm_api.store.ledger import LedgerRepository
from llm_api.store.migrate import migrate_engine
from llm_api.store.usage import UsageRepository


@dataclass(frozen=True, slots=True)
class Store:
    engine: AsyncEngine
    keys: KeyRepository
    ledger: LedgerRepository
    usage: UsageRepository

    @classmethod
    async def open(cls, url: str, *, migrate: bool = True, pool_size: int = 10) -> Store:
        """Connect to `url` and (by default) bring its schema to the latest revision, under the lock."""
        engine = create_engine(url, pool_size=pool_size)
        try:
            if migrate:
                await migrate_engine(engine)
        except BaseException:
            await engine.dispose()
            raise
        return cls(
            engine=engine,
            keys=KeyRepository(engine),
            ledger=LedgerRepository(engine),
            usage=UsageRepository(engine),
        )

    async def aclose(self) -> None:
        try:
            await self.ledger.aclose()
        finally:
            await self.engine.dispose()
