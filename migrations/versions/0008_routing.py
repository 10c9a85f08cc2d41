"""Work distribution (issue 17): availability, capacity, rules, activity, SLA

Revision ID: 0008_routing
Revises: 0007_reports
Create Date: 2026-11-29 23:00:49.287475
"""
from alembic import op
import sqlalchemy as sa
import app.infra.models
from sqlalchemy.dialects import postgresql

revision = '0008_routing'
down_revision = '0007_reports'
branch_labels = None
depends_on = None


def upgrade() -> None:
    
    op.create_table('automation_cursor',
    sa.Column('name', sa.String(length=40), nullable=False),
    sa.Column('position', sa.BigInteger(), nullable=False),
    sa.Column('done', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('gap_seen_at', app.infra.models.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_automation_cursor'))
    )
    op.create_table('automation_rules',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('event', sa.String(length=40), nullable=False),
    sa.Column('options', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('conditions', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('actions', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('standard', sa.String(length=40), nullable=True),
    sa.Column('fired_count', sa.Integer(), nullable=False),
    sa.Column('failed_count', sa.Integer(), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('created_at', app.infra.models.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_automation_rules')),
    sa.UniqueConstraint('standard', name=op.f('uq_automation_rules_standard'))
    )
    op.create_table('sla_policies',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('team_id', sa.Integer(), nullable=True),
    sa.Column('priority', sa.String(length=10), nullable=True),
    sa.Column('first_response_minutes', sa.Integer(), nullable=True),
    sa.Column('resolution_minutes', sa.Integer(), nullable=True),
    sa.Column('next_response_minutes', sa.Integer(), nullable=True),
    sa.Column('warn_percent', sa.Integer(), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('created_at', app.infra.models.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['team_id'], ['teams.id'], name=op.f('fk_sla_policies_team_id_teams'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sla_policies'))
    )
    op.create_table('conversation_activity',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('conversation_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=30), nullable=False),
    sa.Column('actor_id', sa.Integer(), nullable=True),
    sa.Column('rule_id', sa.Integer(), nullable=True),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('details', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('created_at', app.infra.models.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['actor_id'], ['agents.id'], name=op.f('fk_conversation_activity_actor_id_agents'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['conversation_id'], ['conversations.id'], name=op.f('fk_conversation_activity_conversation_id_conversations'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['rule_id'], ['automation_rules.id'], name=op.f('fk_conversation_activity_rule_id_automation_rules'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_conversation_activity'))
    )
    with op.batch_alter_table('conversation_activity', schema=None) as batch_op:
        batch_op.create_index('ix_conversation_activity_conversation', ['conversation_id', 'id'], unique=False)
        batch_op.create_index('ix_conversation_activity_rule', ['rule_id', 'id'], unique=False)

    op.create_table('sla_breaches',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('conversation_id', sa.Integer(), nullable=False),
    sa.Column('policy_id', sa.Integer(), nullable=True),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('due_at', app.infra.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('breached_at', app.infra.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('team_id', sa.Integer(), nullable=True),
    sa.Column('assignee_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['assignee_id'], ['agents.id'], name=op.f('fk_sla_breaches_assignee_id_agents'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['conversation_id'], ['conversations.id'], name=op.f('fk_sla_breaches_conversation_id_conversations'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['policy_id'], ['sla_policies.id'], name=op.f('fk_sla_breaches_policy_id_sla_policies'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['team_id'], ['teams.id'], name=op.f('fk_sla_breaches_team_id_teams'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sla_breaches')),
    sa.UniqueConstraint('conversation_id', 'kind', name=op.f('uq_sla_breaches_conversation_id_kind'))
    )
    with op.batch_alter_table('agents', schema=None) as batch_op:
        batch_op.add_column(sa.Column('availability', sa.String(length=10), server_default='offline', nullable=False))
        batch_op.add_column(sa.Column('availability_choice', sa.String(length=10), nullable=True))
        batch_op.add_column(sa.Column('connections', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('capacity', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('last_assigned_at', app.infra.models.UTCDateTime(timezone=True), nullable=True))

    with op.batch_alter_table('conversations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('waiting_since', app.infra.models.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('seen_status', sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column('sla_policy_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('first_response_due_at', app.infra.models.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('resolution_due_at', app.infra.models.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('first_response_at', app.infra.models.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('sla_warning_at', app.infra.models.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('next_response_due_at', app.infra.models.UTCDateTime(timezone=True), nullable=True))
        batch_op.create_index('ix_conversations_waiting', ['team_id', 'waiting_since'], unique=False, sqlite_where=sa.text('waiting_since IS NOT NULL'), postgresql_where=sa.text('waiting_since IS NOT NULL'))
        batch_op.create_foreign_key(batch_op.f('fk_conversations_sla_policy_id_sla_policies'), 'sla_policies', ['sla_policy_id'], ['id'], ondelete='SET NULL')

    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('depth', sa.Integer(), server_default='0', nullable=False))

    # the rules engine starts at the end of the existing event log: history is not news
    op.execute("INSERT INTO automation_cursor (name, position, done) "
               "SELECT 'rules', COALESCE(MAX(id), 0), '[]' FROM events")

    with op.batch_alter_table('teams', schema=None) as batch_op:
        batch_op.add_column(sa.Column('distribution', sa.String(length=20), server_default='manual', nullable=False))
        batch_op.add_column(sa.Column('capacity', sa.Integer(), server_default='5', nullable=False))
        batch_op.add_column(sa.Column('business_hours', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True))




def downgrade() -> None:
    
    with op.batch_alter_table('teams', schema=None) as batch_op:
        batch_op.drop_column('business_hours')
        batch_op.drop_column('capacity')
        batch_op.drop_column('distribution')

    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_column('depth')

    with op.batch_alter_table('conversations', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_conversations_sla_policy_id_sla_policies'), type_='foreignkey')
        batch_op.drop_index('ix_conversations_waiting', sqlite_where=sa.text('waiting_since IS NOT NULL'), postgresql_where=sa.text('waiting_since IS NOT NULL'))
        batch_op.drop_column('next_response_due_at')
        batch_op.drop_column('sla_warning_at')
        batch_op.drop_column('first_response_at')
        batch_op.drop_column('resolution_due_at')
        batch_op.drop_column('first_response_due_at')
        batch_op.drop_column('sla_policy_id')
        batch_op.drop_column('seen_status')
        batch_op.drop_column('waiting_since')

    with op.batch_alter_table('agents', schema=None) as batch_op:
        batch_op.drop_column('last_assigned_at')
        batch_op.drop_column('capacity')
        batch_op.drop_column('connections')
        batch_op.drop_column('availability_choice')
        batch_op.drop_column('availability')

    op.drop_table('sla_breaches')
    with op.batch_alter_table('conversation_activity', schema=None) as batch_op:
        batch_op.drop_index('ix_conversation_activity_rule')
        batch_op.drop_index('ix_conversation_activity_conversation')

    op.drop_table('conversation_activity')
    op.drop_table('sla_policies')
    op.drop_table('automation_rules')
    op.drop_table('automation_cursor')

