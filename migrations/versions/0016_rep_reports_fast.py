"""Reports: coarse aggregates (per channel hourly, reach without agents, agents per day,
response/resolution time histograms) and business-hours durations

Revision ID: 0016_rep_reports_fast
Revises: 0015_campaigns
Create Date: 2026-11-30 05:35:00

The new tables start empty: the rollup sees the state's version change and rebuilds every
aggregate on its first run after the upgrade (app.usecases.reports.VERSION).
"""
from alembic import op
import sqlalchemy as sa
import app.infra.models


revision = '0016_rep_reports_fast'
down_revision = '0015_campaigns'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('report_channel_hourly',
    sa.Column('label', sa.String(length=100), nullable=False),
    sa.Column('bucket', app.infra.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('channel_id', sa.Integer(), nullable=False),
    sa.Column('direction', sa.String(length=4), nullable=False),
    sa.Column('messages', sa.Integer(), nullable=False),
    sa.Column('automated', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('label', 'bucket', 'channel_id', 'direction', name=op.f('pk_report_channel_hourly'))
    )
    op.create_table('report_reach',
    sa.Column('label', sa.String(length=100), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('channel_id', sa.Integer(), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('label', 'day', 'channel_id', 'customer_id', name=op.f('pk_report_reach'))
    )
    with op.batch_alter_table('report_reach', schema=None) as batch_op:
        batch_op.create_index('ix_report_reach_customer', ['customer_id'], unique=False)
    op.create_table('report_agent_daily',
    sa.Column('label', sa.String(length=100), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('agent_id', sa.Integer(), nullable=False),
    sa.Column('channel_id', sa.Integer(), nullable=False),
    sa.Column('replies', sa.Integer(), nullable=False),
    sa.Column('canned_replies', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('label', 'day', 'agent_id', 'channel_id', name=op.f('pk_report_agent_daily'))
    )
    op.create_table('report_time_bins',
    sa.Column('label', sa.String(length=100), nullable=False),
    sa.Column('clock', sa.String(length=8), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('channel_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=10), nullable=False),
    sa.Column('bin', sa.Integer(), nullable=False),
    sa.Column('samples', sa.Integer(), nullable=False),
    sa.Column('seconds', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('label', 'clock', 'day', 'channel_id', 'kind', 'bin', name=op.f('pk_report_time_bins'))
    )
    with op.batch_alter_table('report_responses', schema=None) as batch_op:
        batch_op.add_column(sa.Column('business_seconds', sa.Integer(), nullable=True))
        batch_op.create_index('ix_report_responses_handled', ['at', 'agent_id', 'conversation_id'], unique=False)
    with op.batch_alter_table('report_conversations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('resolution_business_seconds', sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('report_conversations', schema=None) as batch_op:
        batch_op.drop_column('resolution_business_seconds')
    with op.batch_alter_table('report_responses', schema=None) as batch_op:
        batch_op.drop_index('ix_report_responses_handled')
        batch_op.drop_column('business_seconds')
    op.drop_table('report_time_bins')
    op.drop_table('report_agent_daily')
    with op.batch_alter_table('report_reach', schema=None) as batch_op:
        batch_op.drop_index('ix_report_reach_customer')
    op.drop_table('report_reach')
    op.drop_table('report_channel_hourly')
