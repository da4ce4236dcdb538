"""The Alembic migrations build exactly `schema.metadata`, on SQLite and PostgreSQL.

A table added to storage/schema.py without a migration makes these tests fail: write one with
scripts/new_migration.sh.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Column, Integer, MetaData, Table, create_engine, inspect, select
from sqlalchemy.engine import make_url

from aims_agent.errors import StorageError
from aims_agent.storage import migrate
from aims_agent.storage.schema import metadata, nonconformities
from aims_agent.storage.store import Store


@pytest.fixture
def engine(storage_url):
    """An engine on the empty database (SQLite: its directory made, as the Store does)."""
    url = make_url(storage_url)
    if url.get_backend_name() == "sqlite":
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    e = create_engine(url)
    yield e
    e.dispose()


def diffs(conn):
    return compare_metadata(MigrationContext.configure(conn), metadata)


def test_head_is_the_newest_revision():
    scripts = ScriptDirectory(str(migrate.MIGRATIONS))
    assert scripts.get_heads() == [migrate.HEAD]


def test_upgrade_from_empty_builds_the_schema_and_downgrade_removes_it(engine):
    with engine.begin() as conn:
        assert inspect(conn).get_table_names() == []
        command.upgrade(migrate.alembic_config(conn), "head")
    with engine.connect() as conn:
        assert diffs(conn) == []
        assert migrate.current_revision(conn) == migrate.HEAD
    with engine.begin() as conn:
        command.downgrade(migrate.alembic_config(conn), "base")
    with engine.connect() as conn:
        assert inspect(conn).get_table_names() == ["alembic_version"]


def test_store_migrates_an_empty_database_and_later_opens_it_without_alembic(storage_url):
    store = Store(storage_url)
    assert store.read(diffs) == []
    assert store.read(migrate.current_revision) == migrate.HEAD
    store.close()
    code = (
        "import sys; from aims_agent.storage.store import Store; "
        f"Store({storage_url!r}).close(); assert 'alembic' not in sys.modules, 'imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_database_made_before_migrations_is_adopted(engine, storage_url):
    older = [t for t in metadata.sorted_tables if t.name != "notification_targets"]
    metadata.create_all(engine, tables=older)
    with engine.begin() as conn:
        conn.execute(
            nonconformities.insert().values(
                nc_id="NC-1",
                model="m",
                check_id="c",
                status="open",
                opened_at=0,
                last_seen_at=0,
                recurrences=2,
                body={},
            )
        )
    store = Store(storage_url)
    assert store.read(lambda c: c.execute(select(nonconformities.c.recurrences)).scalar()) == 2
    assert store.read(migrate.current_revision) == migrate.HEAD
    assert store.read(diffs) == []
    store.close()


def test_database_with_other_tables_of_the_same_names_is_refused(engine, storage_url):
    other = MetaData()
    Table("nonconformities", other, Column("nc_id", Integer, primary_key=True))
    other.create_all(engine)
    with pytest.raises(StorageError, match="differ from the schema"):
        Store(storage_url)
