"""Outside bots (issue 18): registered bots and their event deliveries

Revision ID: 0010_bots
Revises: 0009_bot_contract
Create Date: 2026-11-30 01:58:31.463504
"""
from alembic import op
import sqlalchemy as sa
import app.infra.models
from sqlalchemy.dialects import postgresql

revision = '0010_bots'
down_revision = '0009_bot_contract'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('bots',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('url', sa.String(length=1000), nullable=False),
    sa.Column('secret', sa.String(length=200), nullable=False),
    sa.Column('channel_ids', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('timeout_seconds', sa.Integer(), nullable=False),
    sa.Column('agent_id', sa.Integer(), nullable=False),
    sa.Column('created_at', app.infra.models.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['agent_id'], ['agents.id'], name=op.f('fk_bots_agent_id_agents')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_bots'))
    )
    op.create_table('bot_deliveries',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('bot_id', sa.Integer(), nullable=False),
    sa.Column('conversation_id', sa.Integer(), nullable=False),
    sa.Column('event_id', sa.BigInteger(), nullable=False),
    sa.Column('event_type', sa.String(length=40), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', app.infra.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('enqueued_at', app.infra.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('locked_at', app.infra.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('response_status', sa.Integer(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('log', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('created_at', app.infra.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('delivered_at', app.infra.models.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['bot_id'], ['bots.id'], name=op.f('fk_bot_deliveries_bot_id_bots'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['conversation_id'], ['conversations.id'], name=op.f('fk_bot_deliveries_conversation_id_conversations'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_bot_deliveries')),
    sa.UniqueConstraint('bot_id', 'event_id', name=op.f('uq_bot_deliveries_bot_id_event_id'))
    )
    with op.batch_alter_table('bot_deliveries', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_bot_deliveries_bot_id'), ['bot_id'], unique=False)
        batch_op.create_index('ix_bot_deliveries_due', ['status', 'next_attempt_at'], unique=False)

    # the bots' reader of the event log starts at its end: history is not news to a bot
    op.execute("INSERT INTO automation_cursor (name, position, done) "
               "SELECT 'bots', COALESCE(MAX(id), 0), '[]' FROM events")



def downgrade() -> None:
    op.execute("DELETE FROM automation_cursor WHERE name = 'bots'")
    with op.batch_alter_table('bot_deliveries', schema=None) as batch_op:
        batch_op.drop_index('ix_bot_deliveries_due')
        batch_op.drop_index(batch_op.f('ix_bot_deliveries_bot_id'))

    op.drop_table('bot_deliveries')
    op.drop_table('bots')
