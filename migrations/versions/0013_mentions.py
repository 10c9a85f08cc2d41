"""Notifications per agent (mentions, assignments, new messages) and their options

Revision ID: 0013_mentions
Revises: 0012_kbbot
Create Date: 2026-11-30 02:15:00
"""
from alembic import op
import sqlalchemy as sa

import app.infra.models

revision = '0013_mentions'
down_revision = '0012_kbbot'
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table(
        'notifications',
        sa.Column('id', BigId, nullable=False),
        sa.Column('agent_id', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=20), nullable=False),
        sa.Column('conversation_id', sa.Integer(), nullable=False),
        sa.Column('message_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'),
                  nullable=True),
        sa.Column('actor_id', sa.Integer(), nullable=True),
        sa.Column('text', sa.Text(), nullable=False),
        sa.Column('count', sa.Integer(), nullable=False),
        sa.Column('created_at', app.infra.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column('read_at', app.infra.models.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['agent_id'], ['agents.id'], ondelete='CASCADE',
                                name=op.f('fk_notifications_agent_id_agents')),
        sa.ForeignKeyConstraint(['conversation_id'], ['conversations.id'], ondelete='CASCADE',
                                name=op.f('fk_notifications_conversation_id_conversations')),
        sa.ForeignKeyConstraint(['message_id'], ['messages.id'], ondelete='SET NULL',
                                name=op.f('fk_notifications_message_id_messages')),
        sa.ForeignKeyConstraint(['actor_id'], ['agents.id'], ondelete='SET NULL',
                                name=op.f('fk_notifications_actor_id_agents')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_notifications')),
    )
    op.create_index('ix_notifications_agent', 'notifications', ['agent_id', 'id'])
    op.create_table(
        'notification_prefs',
        sa.Column('agent_id', sa.Integer(), nullable=False),
        sa.Column('sound', sa.Boolean(), nullable=False),
        sa.Column('title_badge', sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(['agent_id'], ['agents.id'], ondelete='CASCADE',
                                name=op.f('fk_notification_prefs_agent_id_agents')),
        sa.PrimaryKeyConstraint('agent_id', name=op.f('pk_notification_prefs')),
    )


def downgrade() -> None:
    op.drop_table('notification_prefs')
    op.drop_index('ix_notifications_agent', table_name='notifications')
    op.drop_table('notifications')
