"""The evidence store's newest schema revision, without the database layer: a one-shot run
that finds its SQLite store at it may append without loading SQLAlchemy or Alembic."""

from __future__ import annotations

HEAD = "0005"  # the newest revision in migrations/versions (tests/storage/test_migrations.py)
