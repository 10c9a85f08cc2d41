"""Unread counts and totals of every view from one covering partial index

Revision ID: 0016_unread_views_index
Revises: 0016_rep_reports_fast
Create Date: 2026-11-30 07:00:00

GET /inbox/views groups the conversations that are not resolved by status, channel, team,
assignee, bot and unread flag. ix_conversations_unread (0004) covered the unread ones without
handled_by, so both counts read the table's rows; ix_conversations_views holds every column
the grouped count reads (an index-only scan on PostgreSQL), and ix_conversations_labelled
lets the label counts read the labelled conversations only (bench/README.md, issue 15).
"""
from alembic import op
import sqlalchemy as sa


revision = '0016_unread_views_index'
down_revision = '0016_rep_reports_fast'
branch_labels = None
depends_on = None

OLD = "unread_count > 0 AND status != 'resolved'"
VIEWS = "status != 'resolved'"
LABELLED = "status != 'resolved' AND labels != '[]'"


def upgrade() -> None:
    with op.batch_alter_table('conversations', schema=None) as batch_op:
        batch_op.create_index('ix_conversations_views',
                              ['status', 'channel_id', 'team_id', 'assignee_id', 'handled_by',
                               'unread_count'], unique=False,
                              sqlite_where=sa.text(VIEWS), postgresql_where=sa.text(VIEWS))
        batch_op.create_index('ix_conversations_labelled', ['status'], unique=False,
                              sqlite_where=sa.text(LABELLED), postgresql_where=sa.text(LABELLED))
        batch_op.drop_index('ix_conversations_unread',
                            sqlite_where=sa.text(OLD), postgresql_where=sa.text(OLD))


def downgrade() -> None:
    with op.batch_alter_table('conversations', schema=None) as batch_op:
        batch_op.create_index('ix_conversations_unread',
                              ['status', 'channel_id', 'team_id', 'assignee_id'], unique=False,
                              sqlite_where=sa.text(OLD), postgresql_where=sa.text(OLD))
        batch_op.drop_index('ix_conversations_labelled',
                            sqlite_where=sa.text(LABELLED), postgresql_where=sa.text(LABELLED))
        batch_op.drop_index('ix_conversations_views',
                            sqlite_where=sa.text(VIEWS), postgresql_where=sa.text(VIEWS))
