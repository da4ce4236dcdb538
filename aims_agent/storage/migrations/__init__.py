"""Alembic migrations of the evidence store (see aims_agent.storage.migrate)."""
