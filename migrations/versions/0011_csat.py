"""Feedback after a conversation (CSAT): settings, one survey per conversation, a
per-customer throttle

Revision ID: 0011_csat
Revises: 0010_bots
Create Date: 2026-11-30 02:20:00
"""
from alembic import op
import sqlalchemy as sa

from app.infra.models import JSONType, UTCDateTime

revision = '0011_csat'
down_revision = '0010_bots'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'csat_settings',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('enabled', sa.Boolean(), nullable=False),
        sa.Column('questions', JSONType, nullable=False),
        sa.Column('throttle_days', sa.Integer(), nullable=False),
        sa.Column('updated_at', UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_csat_settings')))
    op.create_table(
        'csat_surveys',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('conversation_id', sa.Integer(), nullable=False),
        sa.Column('customer_id', sa.Integer(), nullable=False),
        sa.Column('channel_id', sa.Integer(), nullable=True),
        sa.Column('agent_id', sa.Integer(), nullable=True),
        sa.Column('team_id', sa.Integer(), nullable=True),
        sa.Column('message_id', sa.BigInteger(), nullable=True),
        sa.Column('language', sa.String(length=5), nullable=False),
        sa.Column('asked_at', UTCDateTime(), nullable=False),
        sa.Column('score', sa.Integer(), nullable=True),
        sa.Column('comment', sa.Text(), nullable=True),
        sa.Column('answered_at', UTCDateTime(), nullable=True),
        sa.Column('answered_via', sa.String(length=10), nullable=True),
        sa.ForeignKeyConstraint(['agent_id'], ['agents.id'],
                                name=op.f('fk_csat_surveys_agent_id_agents'), ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['channel_id'], ['channels.id'],
                                name=op.f('fk_csat_surveys_channel_id_channels'),
                                ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['conversation_id'], ['conversations.id'],
                                name=op.f('fk_csat_surveys_conversation_id_conversations'),
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['customer_id'], ['customers.id'],
                                name=op.f('fk_csat_surveys_customer_id_customers')),
        sa.ForeignKeyConstraint(['team_id'], ['teams.id'],
                                name=op.f('fk_csat_surveys_team_id_teams'), ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_csat_surveys')),
        sa.UniqueConstraint('conversation_id', name=op.f('uq_csat_surveys_conversation_id')))
    op.create_index('ix_csat_surveys_asked', 'csat_surveys', ['asked_at'])
    op.create_index('ix_csat_surveys_customer', 'csat_surveys', ['customer_id', 'asked_at'])
    op.create_table(
        'csat_throttle',
        sa.Column('customer_id', sa.Integer(), nullable=False),
        sa.Column('last_asked_at', UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(['customer_id'], ['customers.id'],
                                name=op.f('fk_csat_throttle_customer_id_customers'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('customer_id', name=op.f('pk_csat_throttle')))


def downgrade() -> None:
    op.drop_table('csat_throttle')
    op.drop_index('ix_csat_surveys_customer', table_name='csat_surveys')
    op.drop_index('ix_csat_surveys_asked', table_name='csat_surveys')
    op.drop_table('csat_surveys')
    op.drop_table('csat_settings')
