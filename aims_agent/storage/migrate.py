"""Schema migrations: the store brings its database to the newest revision when it opens.

The revisions are Alembic scripts in `storage/migrations/versions`, the first one generated
from `schema.metadata` (scripts/new_migration.sh writes the next). A database already at
`HEAD` costs one query and no Alembic import. A database that has the store's tables but no
revision was made by `create_all` before there were migrations: it is adopted (the tables it
lacks created, then stamped at head) if its tables otherwise match the schema. On PostgreSQL an
advisory lock makes agents that start together migrate one after the other.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, func, inspect, select, text

from aims_agent.errors import StorageError
from aims_agent.storage.revision import HEAD as HEAD
from aims_agent.storage.schema import metadata

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).with_name("migrations")
_LOCK = 0x61696D73  # pg_advisory_xact_lock key, "aims"


def current_revision(conn: Connection) -> str | None:
    """The database's revision; None if it has none (empty, or made before migrations)."""
    if not inspect(conn).has_table("alembic_version"):
        return None
    rev = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    return None if rev is None else str(rev)


def alembic_config(conn: Connection) -> Config:
    """Alembic's config for our migrations, bound to a connection."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = conn
    return cfg


def upgrade(engine: Engine) -> None:
    """Bring the database to `HEAD`, or raise StorageError saying why it cannot be."""
    with engine.connect() as conn:
        if current_revision(conn) == HEAD:
            return
    from alembic import command
    from alembic.util import CommandError

    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(select(func.pg_advisory_xact_lock(_LOCK)))
        current = current_revision(conn)  # another agent may have migrated meanwhile
        if current == HEAD:
            return
        cfg = alembic_config(conn)
        try:
            if current is None and set(inspect(conn).get_table_names()) & set(metadata.tables):
                _adopt(conn)
                command.stamp(cfg, "head")
            else:
                command.upgrade(cfg, "head")
        except CommandError as exc:  # e.g. a revision newer than this agent knows
            raise StorageError(f"cannot migrate the evidence store from {current}: {exc}") from exc
        missing = sorted(set(metadata.tables) - set(inspect(conn).get_table_names()))
        if missing:
            raise StorageError(
                f"no migration creates the tables {', '.join(missing)} of storage/schema.py: "
                "add one with scripts/new_migration.sh"
            )


def _adopt(conn: Connection) -> None:
    """Take over a database made by `create_all`: create the tables it lacks, refuse any
    other difference from the schema."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    diffs: list[Any] = compare_metadata(MigrationContext.configure(conn), metadata)
    other = [d for d in diffs if not (isinstance(d, tuple) and d[0] == "add_table")]
    if other:
        shown = "; ".join(str(d) for d in other[:5])
        raise StorageError(
            f"the database has evidence tables but no schema revision, and they differ from "
            f"the schema: {shown}"
        )
    metadata.create_all(conn)
