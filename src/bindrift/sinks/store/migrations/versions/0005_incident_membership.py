"""incident membership: an incident's first seen as a column, its members read through the findings

Revision ID: 0005_incident_membership
Revises: 0004_incident_triage
"""

import json
from datetime import datetime

import sqlalchemy as sa
from alembic import op

revision = "0005_incident_membership"
down_revision = "0004_incident_triage"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.add_column(sa.Column("first_seen", sa.DateTime(timezone=True), nullable=True))
    incidents = sa.table("incidents", sa.column("id", sa.String), sa.column("first_seen", sa.DateTime(timezone=True)),
                         sa.column("body", sa.LargeBinary))  # fmt: skip
    connection = op.get_bind()
    for ident, body in connection.execute(sa.select(incidents.c.id, incidents.c.body)).all():
        first_seen = datetime.fromisoformat(json.loads(body)["first_seen"].replace("Z", "+00:00"))
        connection.execute(incidents.update().where(incidents.c.id == ident).values(first_seen=first_seen))
    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.alter_column("first_seen", existing_type=sa.DateTime(timezone=True), nullable=False)
    op.create_index("ix_findings_incident_first_seen", "findings", ["incident_id", "first_seen", "id"])


def downgrade() -> None:
    op.drop_index("ix_findings_incident_first_seen", table_name="findings")
    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.drop_column("first_seen")
