"""Alembic environment: runs on the connection that `llm_api.store.migrate` opened and locked."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from llm_api.store.tables import metadata

connection: Connection | None = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations with `python -m llm_api.admin migrate` (it takes the migration lock)")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copying them
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
