"""bus messages already stored (idempotent consumption from the message bus)

Revision ID: 0002_bus_messages
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_bus_messages"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "processed_messages",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("finding_id", sa.String(length=64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("processed_messages", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_processed_messages_at"), ["at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("processed_messages", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_processed_messages_at"))
    op.drop_table("processed_messages")
