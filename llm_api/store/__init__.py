"""Persistence: managed keys and the usage ledger behind small repositories (SQLAlchemy 2 async).

    database.py   the engine (PostgreSQL via asyncpg, or SQLite via aiosqlite in WAL mode)
    tables.py     the schema as SQLAlchemy Core tables (changed only through migrations/)
    migrate.py    Alembic upgrades under a lock (pg_advisory_lock / a file lock), at start-up and from the CLI
    keys.py       KeyRepository: managed keys and their hashed secrets
    ledger.py     LedgerRepository: one row per request, the daily rollup, spend_since, retention
    writer.py     LedgerWriter: the bounded per-worker queue that writes ledger rows off the request path
    usage.py      UsageRepository: reports from the daily rollup (never the raw rows)

Nothing outside this package writes SQL. Money is stored as integer nano-dollars (exact sums on both
databases; SQLite has no decimal type) and handed out as `Decimal`.
"""
