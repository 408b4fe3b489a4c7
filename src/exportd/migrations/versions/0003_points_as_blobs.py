"""polygon points as float64 blobs instead of JSON lists

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

import json

import numpy as np
import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

polygons = sa.table("polygons", sa.column("pk", sa.Integer), sa.column("points", sa.JSON),
                    sa.column("points_blob", sa.LargeBinary))


def upgrade() -> None:
    op.add_column("polygons", sa.Column("points_blob", sa.LargeBinary(), nullable=True))
    connection = op.get_bind()
    rows = connection.execute(sa.select(polygons.c.pk, polygons.c.points)).all()
    for pk, points in rows:
        values = json.loads(points) if isinstance(points, str) else points
        blob = np.asarray(values, dtype="<f8").reshape(-1, 2).tobytes()
        connection.execute(polygons.update().where(polygons.c.pk == pk).values(points_blob=blob))
    with op.batch_alter_table("polygons") as batch:
        batch.drop_column("points")
        batch.alter_column("points_blob", new_column_name="points", nullable=False, existing_type=sa.LargeBinary())


def downgrade() -> None:
    op.add_column("polygons", sa.Column("points_json", sa.JSON(), nullable=True))
    connection = op.get_bind()
    table = sa.table("polygons", sa.column("pk", sa.Integer), sa.column("points", sa.LargeBinary),
                     sa.column("points_json", sa.JSON))
    for pk, blob in connection.execute(sa.select(table.c.pk, table.c.points)).all():
        values = np.frombuffer(blob, dtype="<f8").reshape(-1, 2).tolist()
        connection.execute(table.update().where(table.c.pk == pk).values(points_json=values))
    with op.batch_alter_table("polygons") as batch:
        batch.drop_column("points")
        batch.alter_column("points_json", new_column_name="points", nullable=False, existing_type=sa.JSON())
