"""findings: the index on incident_id alone dropped; the combined (incident_id, first_seen, id) index serves
every lookup by incident, and one index fewer is written with each finding

Revision ID: 0008_drop_incident_id_index
Revises: 0007_dead_letters
"""

from alembic import op

revision = "0008_drop_incident_id_index"
down_revision = "0007_dead_letters"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_findings_incident_id", table_name="findings")


def downgrade() -> None:
    op.create_index("ix_findings_incident_id", "findings", ["incident_id"])
