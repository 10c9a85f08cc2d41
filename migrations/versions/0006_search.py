"""search by word forms: messages.search_stems (Russian, Polish, English stems) with its
full-text index on PostgreSQL, and the digits of phone handles trigram-indexed

The backfill stems existing messages in chunks of BATCH rows by id (Python: PyStemmer), so
memory stays flat at any size, and on PostgreSQL writes each chunk with one UPDATE ... FROM
unnest(...); the GIN index is built once after it, far cheaper than keeping it up to date
row by row. Measured on the development machine (2 busy cores): 100,000 messages in 20 s
(stemming 2 s, rewriting the rows the rest), so 3-4 minutes per million messages. It runs in
the migration's transaction: replies' status updates wait for it, so run `threadline db
upgrade` in a quiet hour on a large database (README, "Search").
Rows it has not reached yet (or written by an older process during a rolling upgrade) get
their stems on their next write, and the SQLite index is rebuilt from the text when attached.

Revision ID: 0006_search
Revises: 0005_seca
"""
from alembic import op
import sqlalchemy as sa

revision = '0006_search'
down_revision = '0005_seca'
branch_labels = None
depends_on = None

BATCH = 5000
DIGITS_WHERE = "kind IN ('phone', 'whatsapp')"


def _backfill(bind) -> None:
    from app.domain.search import stems

    last = 0
    select = sa.text("SELECT id, text FROM messages WHERE id > :last ORDER BY id LIMIT :n")
    if bind.dialect.name == 'postgresql':
        # one statement per chunk: row-by-row updates took 5 minutes per million messages
        update = sa.text("UPDATE messages SET search_stems = v.s FROM unnest("
                         "CAST(:ids AS bigint[]), CAST(:stems AS text[])) AS v(id, s) "
                         "WHERE messages.id = v.id")
    else:
        update = sa.text("UPDATE messages SET search_stems = :s WHERE id = :id")
    while True:
        rows = bind.execute(select, {"last": last, "n": BATCH}).fetchall()
        if not rows:
            return
        if bind.dialect.name == 'postgresql':
            bind.execute(update, {"ids": [r[0] for r in rows],
                                  "stems": [stems(r[1]) for r in rows]})
        else:
            bind.execute(update, [{"id": row_id, "s": stems(body)} for row_id, body in rows])
        last = rows[-1][0]


def upgrade() -> None:
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('search_stems', sa.Text(), nullable=True))
    bind = op.get_bind()
    _backfill(bind)
    if bind.dialect.name == 'postgresql':
        op.execute("DROP INDEX IF EXISTS ix_messages_text_fts")
        op.execute("CREATE INDEX ix_messages_stems_fts ON messages "
                   "USING gin (to_tsvector('simple', search_stems))")
        op.execute("CREATE INDEX ix_identities_digits_trgm ON identities USING gin "
                   f"(regexp_replace(value, '[^0-9]', '', 'g') gin_trgm_ops) WHERE {DIGITS_WHERE}")


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.execute("DROP INDEX IF EXISTS ix_identities_digits_trgm")
        op.execute("DROP INDEX IF EXISTS ix_messages_stems_fts")
        op.execute("CREATE INDEX ix_messages_text_fts ON messages "
                   "USING gin (to_tsvector('simple', text))")
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.drop_column('search_stems')
