"""Session generation per agent: sign-out everywhere, password change and deactivation end
every session and remember cookie

Revision ID: 0005_seca
Revises: 0004
Create Date: 2026-11-29 23:10:00
"""
from alembic import op
import sqlalchemy as sa

revision = '0005_seca'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('agents', schema=None) as batch_op:
        batch_op.add_column(sa.Column('session_generation', sa.Integer(), nullable=False,
                                      server_default=sa.text('0')))


def downgrade() -> None:
    with op.batch_alter_table('agents', schema=None) as batch_op:
        batch_op.drop_column('session_generation')
