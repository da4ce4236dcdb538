"""Alembic's entry point: migrate the connection the store hands over (`attributes`), or with
`sqlalchemy.url` set, a database of its own; offline (`--sql`) renders the SQL instead."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine, pool

from aims_agent.storage.schema import metadata

config = context.config


def _run(connection: Connection) -> None:
    # batch mode: SQLite alters a table by copying it
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    context.configure(
        url=config.get_main_option("sqlalchemy.url"), target_metadata=metadata, literal_binds=True
    )
    with context.begin_transaction():
        context.run_migrations()
elif (given := config.attributes.get("connection")) is not None:
    _run(given)
else:
    engine = create_engine(config.get_main_option("sqlalchemy.url", ""), poolclass=pool.NullPool)
    with engine.begin() as conn:
        _run(conn)
    engine.dispose()
