"""sightings: every path a finding's content was seen at

Revision ID: 0006_sightings
Revises: 0005_incident_membership
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_sightings"
down_revision = "0005_incident_membership"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "finding_sightings",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("finding_id", sa.String(length=64), nullable=False),
        sa.Column("first_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("finding_sightings", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_finding_sightings_finding_id"), ["finding_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("finding_sightings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_finding_sightings_finding_id"))
    op.drop_table("finding_sightings")
