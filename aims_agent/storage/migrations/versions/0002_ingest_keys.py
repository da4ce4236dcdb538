"""ingest keys

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03 17:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ingest_keys",
        sa.Column("model", sa.String(length=128), nullable=False),
        sa.Column("key", sa.String(length=256), nullable=False),
        sa.Column("window_start", sa.Double(), nullable=False),
        sa.Column("answer", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("model", "key"),
    )
    with op.batch_alter_table("ingest_keys", schema=None) as batch_op:
        batch_op.create_index("ix_ingest_keys_window", ["model", "window_start"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("ingest_keys", schema=None) as batch_op:
        batch_op.drop_index("ix_ingest_keys_window")
    op.drop_table("ingest_keys")
