"""incident triage: the owner and state an analyst gave an incident

Revision ID: 0004_incident_triage
Revises: 0003_response
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_incident_triage"
down_revision = "0003_response"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "incident_triage",
        sa.Column("incident_id", sa.String(length=64), nullable=False),
        sa.Column("owner", sa.String(length=255), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("by", sa.String(length=255), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("incident_id"),
    )


def downgrade() -> None:
    op.drop_table("incident_triage")
