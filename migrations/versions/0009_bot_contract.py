"""Conversations say who holds them before a human (answer bot, outside bot)

Revision ID: 0009_bot_contract
Revises: 0008_routing
Create Date: 2026-11-30 02:10:00
"""
from alembic import op
import sqlalchemy as sa

revision = '0009_bot_contract'
down_revision = '0008_routing'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('conversations') as batch:
        batch.add_column(sa.Column('handled_by', sa.String(length=40), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('conversations') as batch:
        batch.drop_column('handled_by')
