"""Alembic's entry point: migrate the connection the store hands over (`attributes`)."""

from __future__ import annotations

from alembic import context

from aims_agent.storage.schema import metadata

connection = context.config.attributes["connection"]
# batch mode: SQLite alters a table by copying it
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
