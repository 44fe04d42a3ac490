"""response: evidence and the response audit log

Revision ID: 0003_response
Revises: 0002_bus_messages
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_response"
down_revision = "0002_bus_messages"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "evidence",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("finding_id", sa.String(length=64), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("captured_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("evidence", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_evidence_finding_id"), ["finding_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_evidence_sha256"), ["sha256"], unique=False)
        batch_op.create_index(batch_op.f("ix_evidence_captured_at"), ["captured_at"], unique=False)
    op.create_table(
        "response_actions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("finding_id", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("by", sa.String(length=255), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("response_actions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_response_actions_finding_id"), ["finding_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_response_actions_at"), ["at"], unique=False)


def downgrade() -> None:
    op.drop_table("response_actions")
    op.drop_table("evidence")
