"""The inbox's views counted: unread conversations (`counts`) and every conversation
(`totals`) per view, from the maintained tallies (view_tallies, written by triggers on
`conversations` in the same transaction as each change), and folding those tallies."""
from __future__ import annotations

from sqlalchemy import func, select, text

from app.infra.models import Conversation, ViewTally
from app.infra.state import db

VIEWS = ("open", "mine", "unassigned", "snoozed", "bot")
# `labels != '[]'` is the predicate of the partial index ix_conversations_labelled, written the
# same way here so that both databases pick it (an empty list is stored as '[]')
LABELLED = text("conversations.labels != '[]'")
KEY = (ViewTally.status, ViewTally.channel_id, ViewTally.team_id, ViewTally.assignee_id,
       ViewTally.by_bot, ViewTally.unread)


def tally_views(agent_id: int, channels: set[int] | None) -> tuple[dict[str, int], dict[str, int]]:
    """Conversations per view among those not resolved in `channels` (None: every channel):
    open, mine, unassigned, bot, snoozed, channel:<id>, team:<id>, label:<name>.

    The sum of the tallies' rows per key (a few hundred once folded, plus the changes since
    the last sweep), and the labels of the labelled conversations only."""
    where = []
    if channels is not None:
        where.append(ViewTally.channel_id.in_(channels or [-1]))
    rows = db.session.execute(select(*KEY, func.sum(ViewTally.n)).where(*where)
                              .group_by(*KEY).having(func.sum(ViewTally.n) != 0))
    counts: dict[str, int] = dict.fromkeys(VIEWS, 0)
    totals: dict[str, int] = dict.fromkeys(VIEWS, 0)

    def add(key: str, n: int, is_unread: bool) -> None:
        totals[key] = totals.get(key, 0) + n
        if is_unread:
            counts[key] = counts.get(key, 0) + n

    for status, channel_id, team_id, assignee_id, by_bot, is_unread, n in rows:
        n = int(n)
        if status == "snoozed":
            add("snoozed", n, is_unread)
            continue
        if status != "open":
            continue
        add("open", n, is_unread)
        if assignee_id == agent_id:
            add("mine", n, is_unread)
        if by_bot:
            add("bot", n, is_unread)      # a bot holds it: the Bot view, not the people's queue
        elif assignee_id is None:
            add("unassigned", n, is_unread)
        add(f"channel:{channel_id}", n, is_unread)
        if team_id is not None:
            add(f"team:{team_id}", n, is_unread)
    labelled = [Conversation.status != "resolved", LABELLED]
    if channels is not None:
        labelled.append(Conversation.channel_id.in_(channels or [-1]))
    for status, labels, is_unread in db.session.execute(
            select(Conversation.status, Conversation.labels, Conversation.unread_count > 0)
            .where(*labelled)):
        if status != "open":
            continue
        for label in labels or []:
            add(f"label:{label}", 1, is_unread)
    # a view whose conversations are all read shows 0, not nothing
    for key in totals:
        counts.setdefault(key, 0)
    return counts, totals


_COLUMNS = "status, channel_id, team_id, assignee_id, by_bot, unread"


def compact(session=None) -> int:
    """Fold the tallies into one row per key (keys summing to 0 go); returns the rows folded.
    PostgreSQL: one statement that deletes the rows it sees and inserts their sums, so rows of
    transactions not committed yet are left for the next fold, never lost nor counted twice.
    SQLite has one writer: the rows up to the highest id, summed then deleted."""
    session = session or db.session
    if session.get_bind().dialect.name == "postgresql":
        folded = session.execute(text(
            f"WITH gone AS (DELETE FROM view_tallies RETURNING {_COLUMNS}, n), "
            f"sums AS (INSERT INTO view_tallies ({_COLUMNS}, n) SELECT {_COLUMNS}, sum(n) "
            f"FROM gone GROUP BY {_COLUMNS} HAVING sum(n) != 0 RETURNING 1) "
            "SELECT (SELECT count(*) FROM gone)")).scalar()
    else:
        top = session.scalar(select(func.max(ViewTally.id)))
        if top is None:
            session.commit()
            return 0
        folded = session.scalar(select(func.count()).where(ViewTally.id <= top))
        session.execute(text(
            f"INSERT INTO view_tallies ({_COLUMNS}, n) SELECT {_COLUMNS}, sum(n) "
            f"FROM view_tallies WHERE id <= :top GROUP BY {_COLUMNS} HAVING sum(n) != 0"),
            {"top": top})
        session.execute(text("DELETE FROM view_tallies WHERE id <= :top"), {"top": top})
    session.commit()
    return int(folded or 0)


def rebuild(session=None) -> None:
    """Count the tallies again from the conversations (after a bulk load that bypassed the
    triggers, as a restore or `session_replication_role = replica` does). PostgreSQL: the
    conversations are locked against writes meanwhile, so no change is lost or counted twice."""
    session = session or db.session
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("LOCK TABLE conversations IN SHARE MODE"))
    session.execute(text("DELETE FROM view_tallies"))
    session.execute(text(
        f"INSERT INTO view_tallies ({_COLUMNS}, n) SELECT status, channel_id, team_id, "
        "assignee_id, handled_by IS NOT NULL, unread_count > 0, count(*) FROM conversations "
        "WHERE status != 'resolved' GROUP BY status, channel_id, team_id, assignee_id, "
        "handled_by IS NOT NULL, unread_count > 0"))
    session.commit()
