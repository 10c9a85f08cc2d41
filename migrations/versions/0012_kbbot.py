"""Knowledge base articles (issue 18: help pages, site chat answers, the answer bot)

Revision ID: 0012_kbbot
Revises: 0011_csat
Create Date: 2026-11-30 02:10:00
"""
from alembic import op
import sqlalchemy as sa
import app.infra.models
from sqlalchemy.dialects import postgresql

revision = '0012_kbbot'
down_revision = '0011_csat'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('kb_articles',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('title', sa.String(length=300), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('body_html', sa.Text(), nullable=False),
    sa.Column('short_answer', sa.Text(), nullable=False),
    sa.Column('language', sa.String(length=2), nullable=False),
    sa.Column('category', sa.String(length=100), nullable=False),
    sa.Column('keywords', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('published', sa.Boolean(), nullable=False),
    sa.Column('search_stems', sa.Text(), nullable=False),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.Column('created_at', app.infra.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', app.infra.models.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['created_by_id'], ['agents.id'], name=op.f('fk_kb_articles_created_by_id_agents'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_kb_articles'))
    )
    with op.batch_alter_table('kb_articles', schema=None) as batch_op:
        batch_op.create_index('ix_kb_articles_language', ['language', 'published', 'id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('kb_articles', schema=None) as batch_op:
        batch_op.drop_index('ix_kb_articles_language')
    op.drop_table('kb_articles')
