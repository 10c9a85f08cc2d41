"""Maintained unread counts and totals of the inbox's views (view_tallies, kept by triggers)

Revision ID: 0017_unread_views
Revises: 0016_rep_reports_fast
Create Date: 2026-11-30 07:00:00

GET /inbox/views counted the conversations that are not resolved at every read: two grouped
scans of every such row (55,000 at 2,000,000 messages; ≈90 ms of SQL, p99 684 ms through the
API on the shared bench box). Now triggers on `conversations` append +1/-1 rows per change of
a conversation's view key (status, channel, team, assignee, held by a bot, unread) to
view_tallies, in the same transaction as the change, whatever statement made it; the sweep
folds them into one row per key, and the read sums a few hundred rows. ix_conversations_labelled
lets the label counts read the labelled conversations only. bench/README.md, issue 15.

SQLite: a later batch_alter_table that recreates `conversations` drops its triggers; such a
migration must create them again (create_sqlite_triggers). tests/web/api/test_view_counts.py
compares the tallies with a recount on both databases.
"""
from alembic import op
import sqlalchemy as sa


revision = '0017_unread_views'
down_revision = '0016_rep_reports_fast'
branch_labels = None
depends_on = None

OLD = "unread_count > 0 AND status != 'resolved'"
LABELLED = "status != 'resolved' AND labels != '[]'"
COLUMNS = "status, channel_id, team_id, assignee_id, by_bot, unread, n"

PG_FUNCTION = f"""
CREATE OR REPLACE FUNCTION tally_conversation_views() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'UPDATE' THEN
    IF NEW.status IS NOT DISTINCT FROM OLD.status
       AND NEW.channel_id IS NOT DISTINCT FROM OLD.channel_id
       AND NEW.team_id IS NOT DISTINCT FROM OLD.team_id
       AND NEW.assignee_id IS NOT DISTINCT FROM OLD.assignee_id
       AND (NEW.handled_by IS NULL) = (OLD.handled_by IS NULL)
       AND (NEW.unread_count > 0) = (OLD.unread_count > 0) THEN
      RETURN NULL;
    END IF;
  END IF;
  IF TG_OP IN ('UPDATE', 'DELETE') THEN
    IF OLD.status <> 'resolved' THEN
      INSERT INTO view_tallies ({COLUMNS}) VALUES (OLD.status, OLD.channel_id, OLD.team_id,
        OLD.assignee_id, OLD.handled_by IS NOT NULL, OLD.unread_count > 0, -1);
    END IF;
  END IF;
  IF TG_OP IN ('UPDATE', 'INSERT') THEN
    IF NEW.status <> 'resolved' THEN
      INSERT INTO view_tallies ({COLUMNS}) VALUES (NEW.status, NEW.channel_id, NEW.team_id,
        NEW.assignee_id, NEW.handled_by IS NOT NULL, NEW.unread_count > 0, 1);
    END IF;
  END IF;
  RETURN NULL;
END $$;
"""
PG_TRIGGER = ("CREATE TRIGGER conversations_view_tally AFTER INSERT OR UPDATE OR DELETE "
              "ON conversations FOR EACH ROW EXECUTE FUNCTION tally_conversation_views()")


def _values(row: str, n: int) -> str:
    return (f"{row}.status, {row}.channel_id, {row}.team_id, {row}.assignee_id, "
            f"{row}.handled_by IS NOT NULL, {row}.unread_count > 0, {n}")


SQLITE_TRIGGERS = [
    f"""CREATE TRIGGER conversations_view_tally_insert AFTER INSERT ON conversations
        WHEN NEW.status != 'resolved'
        BEGIN INSERT INTO view_tallies ({COLUMNS}) VALUES ({_values('NEW', 1)}); END""",
    f"""CREATE TRIGGER conversations_view_tally_delete AFTER DELETE ON conversations
        WHEN OLD.status != 'resolved'
        BEGIN INSERT INTO view_tallies ({COLUMNS}) VALUES ({_values('OLD', -1)}); END""",
    f"""CREATE TRIGGER conversations_view_tally_update
        AFTER UPDATE OF status, channel_id, team_id, assignee_id, handled_by, unread_count
        ON conversations
        WHEN NEW.status IS NOT OLD.status OR NEW.channel_id IS NOT OLD.channel_id
          OR NEW.team_id IS NOT OLD.team_id OR NEW.assignee_id IS NOT OLD.assignee_id
          OR (NEW.handled_by IS NULL) != (OLD.handled_by IS NULL)
          OR (NEW.unread_count > 0) != (OLD.unread_count > 0)
        BEGIN
          INSERT INTO view_tallies ({COLUMNS}) SELECT {_values('OLD', -1)}
            WHERE OLD.status != 'resolved';
          INSERT INTO view_tallies ({COLUMNS}) SELECT {_values('NEW', 1)}
            WHERE NEW.status != 'resolved';
        END""",
]
SQLITE_TRIGGER_NAMES = ["conversations_view_tally_insert", "conversations_view_tally_delete",
                        "conversations_view_tally_update"]


def create_sqlite_triggers() -> None:
    for statement in SQLITE_TRIGGERS:
        op.execute(statement)


def upgrade() -> None:
    op.create_table('view_tallies',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('channel_id', sa.Integer(), nullable=False),
    sa.Column('team_id', sa.Integer(), nullable=True),
    sa.Column('assignee_id', sa.Integer(), nullable=True),
    sa.Column('by_bot', sa.Boolean(), nullable=False),
    sa.Column('unread', sa.Boolean(), nullable=False),
    sa.Column('n', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_view_tallies'))
    )
    with op.batch_alter_table('conversations', schema=None) as batch_op:
        batch_op.create_index('ix_conversations_labelled', ['status'], unique=False,
                              sqlite_where=sa.text(LABELLED), postgresql_where=sa.text(LABELLED))
        batch_op.drop_index('ix_conversations_unread',
                            sqlite_where=sa.text(OLD), postgresql_where=sa.text(OLD))
    if op.get_bind().dialect.name == "postgresql":
        op.execute("LOCK TABLE conversations IN SHARE MODE")   # no change between count and trigger
        op.execute(PG_FUNCTION)
        op.execute(PG_TRIGGER)
    else:
        create_sqlite_triggers()
    op.execute(f"INSERT INTO view_tallies ({COLUMNS}) SELECT status, channel_id, team_id, "
               "assignee_id, handled_by IS NOT NULL, unread_count > 0, count(*) FROM conversations "
               "WHERE status != 'resolved' GROUP BY status, channel_id, team_id, assignee_id, "
               "handled_by IS NOT NULL, unread_count > 0")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS conversations_view_tally ON conversations")
        op.execute("DROP FUNCTION IF EXISTS tally_conversation_views()")
    else:
        for name in SQLITE_TRIGGER_NAMES:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    with op.batch_alter_table('conversations', schema=None) as batch_op:
        batch_op.create_index('ix_conversations_unread',
                              ['status', 'channel_id', 'team_id', 'assignee_id'], unique=False,
                              sqlite_where=sa.text(OLD), postgresql_where=sa.text(OLD))
        batch_op.drop_index('ix_conversations_labelled',
                            sqlite_where=sa.text(LABELLED), postgresql_where=sa.text(LABELLED))
    op.drop_table('view_tallies')
