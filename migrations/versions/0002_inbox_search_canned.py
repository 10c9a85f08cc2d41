"""inbox: canned replies; search indexes (PostgreSQL full-text + trigram)

SQLite keeps its FTS5 index in a companion database file managed by app/search.py (FTS5
shadow tables inside the main file would be foreign to the models).

Revision ID: 0002
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa
import app.infra.models

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'canned_replies',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('shortcut', sa.String(length=60), nullable=False),
        sa.Column('title', sa.String(length=200), nullable=False),
        sa.Column('text', sa.Text(), nullable=False),
        sa.Column('created_by_id', sa.Integer(), nullable=True),
        sa.Column('created_at', app.infra.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['created_by_id'], ['agents.id'],
                                name=op.f('fk_canned_replies_created_by_id_agents'),
                                ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_canned_replies')),
        sa.UniqueConstraint('shortcut', name=op.f('uq_canned_replies_shortcut')),
    )
    if op.get_bind().dialect.name == 'postgresql':
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        op.execute("CREATE INDEX ix_messages_text_fts ON messages "
                   "USING gin (to_tsvector('simple', text))")
        op.execute("CREATE INDEX ix_customers_name_trgm ON customers "
                   "USING gin (lower(name) gin_trgm_ops)")
        op.execute("CREATE INDEX ix_identities_value_trgm ON identities "
                   "USING gin (lower(value) gin_trgm_ops)")


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.execute("DROP INDEX IF EXISTS ix_identities_value_trgm")
        op.execute("DROP INDEX IF EXISTS ix_customers_name_trgm")
        op.execute("DROP INDEX IF EXISTS ix_messages_text_fts")
    op.drop_table('canned_replies')
