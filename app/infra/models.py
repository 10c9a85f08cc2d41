"""The domain model (DESIGN section 2), SQLAlchemy 2 typed mappings.

Alembic migrations in migrations/ must match this file: tests/infra/test_migrations.py runs
autogenerate against a migrated database and expects no difference.
"""
from __future__ import annotations

import uuid
from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship, validates

from app.infra.logs import scrub

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

JSONType = JSON().with_variant(JSONB(), "postgresql")
# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL gets BIGINT for busy tables.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on every backend (SQLite stores naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use timezone-aware UTC")
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value


def _scrubbed(_obj: Any, _key: str, value: str | None) -> str | None:
    """Validator of every stored error text (channels, messages, attachments, inbound events,
    webhook deliveries): admins see them, so secrets are kept out like in log lines."""
    return scrub(value) if value else value


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {
        dict[str, Any]: JSONType,
        list[Any]: JSONType,
        datetime: UTCDateTime,
    }


agent_teams = Table(
    "agent_teams",
    Base.metadata,
    Column("agent_id", ForeignKey("agents.id", ondelete="CASCADE"), primary_key=True),
    Column("team_id", ForeignKey("teams.id", ondelete="CASCADE"), primary_key=True),
)

team_channels = Table(
    "team_channels",
    Base.metadata,
    Column("team_id", ForeignKey("teams.id", ondelete="CASCADE"), primary_key=True),
    Column("channel_id", ForeignKey("channels.id", ondelete="CASCADE"), primary_key=True),
)


class Team(Base):
    __tablename__ = "teams"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    agents: Mapped[list[Agent]] = relationship(secondary=agent_teams, back_populates="teams")
    channels: Mapped[list[Channel]] = relationship(secondary=team_channels, back_populates="teams")


class Agent(Base):
    __tablename__ = "agents"
    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(20), default="agent")  # admin | agent
    locale: Mapped[str | None] = mapped_column(String(10))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # part of the id in every session and remember cookie: raising it (sign-out, password
    # change, deactivation) ends every session of the agent (app.domain.agents.end_sessions)
    session_generation: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    teams: Mapped[list[Team]] = relationship(secondary=agent_teams, back_populates="agents")

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    # Flask-Login
    @property
    def is_active(self) -> bool:
        return self.active

    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def is_anonymous(self) -> bool:
        return False

    def get_id(self) -> str:
        """Flask-Login's "alternative id": the agent and their session generation, so that
        a session or remember cookie from before a sign-out everywhere no longer loads."""
        return f"{self.id}:{self.session_generation or 0}"


class ApiToken(Base):
    __tablename__ = "api_tokens"
    id: Mapped[int] = mapped_column(primary_key=True)
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"), index=True)
    # sha256 of the token: a database leak does not leak usable tokens
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None]
    agent: Mapped[Agent] = relationship()


class Channel(Base):
    __tablename__ = "channels"
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    name: Mapped[str] = mapped_column(String(100), unique=True)
    # a non-guessable id for places the public sees (widget tag)
    public_id: Mapped[str] = mapped_column(String(40), unique=True,
                                           default=lambda: uuid.uuid4().hex)
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # sync cursors, polling offsets: written by the app, never by connectors
    state: Mapped[dict[str, Any]] = mapped_column(default=dict)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    error: Mapped[str | None] = mapped_column(Text)  # last problem, shown to admins
    _scrub_error = validates("error")(_scrubbed)

    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    teams: Mapped[list[Team]] = relationship(secondary=team_channels, back_populates="channels")


class Customer(Base):
    __tablename__ = "customers"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    company: Mapped[str | None] = mapped_column(String(200))
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"))
    # first-touch source: channel, utm, referrer, ad, deep-link payload
    source: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    tags: Mapped[list[Any]] = mapped_column(default=list)
    custom_fields: Mapped[dict[str, Any]] = mapped_column(default=dict)
    merged_into_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    identities: Mapped[list[Identity]] = relationship(back_populates="customer",
                                                      order_by="Identity.id")
    owner: Mapped[Agent | None] = relationship()


class Identity(Base):
    __tablename__ = "identities"
    __table_args__ = (UniqueConstraint("kind", "value"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    value: Mapped[str] = mapped_column(String(320))
    verified: Mapped[bool] = mapped_column(Boolean, default=True)
    # false after a bounce / a blocked bot: shown on the card, the composer warns
    reachable: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    customer: Mapped[Customer] = relationship(back_populates="identities")


class Conversation(Base):
    __tablename__ = "conversations"
    __table_args__ = (
        # at most one conversation per customer that is not resolved
        Index("uq_conversations_one_open", "customer_id", unique=True,
              sqlite_where=text("status != 'resolved'"),
              postgresql_where=text("status != 'resolved'")),
        Index("ix_conversations_inbox", "status", "last_activity_at", "id"),
        Index("ix_conversations_assignee", "assignee_id", "status", "last_activity_at"),
        Index("ix_conversations_channel", "channel_id", "status", "last_activity_at"),
        # the unread counts of every view come from view_tallies; their labels from the
        # labelled conversations only
        Index("ix_conversations_labelled", "status",
              sqlite_where=text("status != 'resolved' AND labels != '[]'"),
              postgresql_where=text("status != 'resolved' AND labels != '[]'")),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    # the channel of the latest inbound message: default reply route and access scope
    channel_id: Mapped[int] = mapped_column(ForeignKey("channels.id"))
    status: Mapped[str] = mapped_column(String(20), default="open")
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"))
    team_id: Mapped[int | None] = mapped_column(ForeignKey("teams.id", ondelete="SET NULL"))
    priority: Mapped[str] = mapped_column(String(10), default="normal")
    labels: Mapped[list[Any]] = mapped_column(default=list)
    subject: Mapped[str | None] = mapped_column(String(500))
    snoozed_until: Mapped[datetime | None]
    last_activity_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_inbound_at: Mapped[datetime | None]
    last_message_preview: Mapped[str] = mapped_column(String(200), default="")
    unread_count: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    resolved_at: Mapped[datetime | None]
    # who holds the conversation before a human: None (people), "answer_bot" (the built-in
    # answer bot) or "bot:<id>" (an outside bot registered through /api/v1/bots)
    handled_by: Mapped[str | None] = mapped_column(String(40))
    customer: Mapped[Customer] = relationship()
    channel: Mapped[Channel] = relationship()


class ViewTally(Base):
    """Maintained unread counts and totals of the inbox's views (GET /inbox/views): one row
    per change of a not-resolved conversation's view key, written by database triggers on
    `conversations` (migration 0017_unread_views) in the same transaction as the change,
    whatever made it (ingest, read, reply, assignment, status, team, merge, delete, a foreign
    key's SET NULL). +1 for the key a conversation enters, -1 for the one it leaves; the sweep
    folds the rows into one per key (app.domain.view_counts.compact). A view's figure is the
    sum of its keys' rows."""
    __tablename__ = "view_tallies"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    status: Mapped[str] = mapped_column(String(20))
    channel_id: Mapped[int] = mapped_column(Integer)
    team_id: Mapped[int | None] = mapped_column(Integer)
    assignee_id: Mapped[int | None] = mapped_column(Integer)
    by_bot: Mapped[bool] = mapped_column(Boolean)
    unread: Mapped[bool] = mapped_column(Boolean)
    n: Mapped[int] = mapped_column(Integer)


class Message(Base):
    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("channel_id", "external_id"),
        Index("ix_messages_conversation", "conversation_id", "id"),
        Index("ix_messages_customer", "customer_id", "id"),
        Index("ix_messages_outbox", "status", "next_attempt_at"),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    # stable across retries: the idempotency key and the email Message-ID
    uuid: Mapped[str] = mapped_column(String(36), unique=True,
                                      default=lambda: str(uuid.uuid4()))
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    channel_id: Mapped[int | None] = mapped_column(ForeignKey("channels.id"))
    direction: Mapped[str] = mapped_column(String(4))  # in | out | note
    author_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"))
    content_type: Mapped[str] = mapped_column(String(30), default="text")
    subject: Mapped[str | None] = mapped_column(String(500))
    text: Mapped[str] = mapped_column(Text, default="")
    # the text's words as stems (Russian, Polish, English), what search matches word forms
    # by; filled on flush by app.domain.search.fill_stems
    search_stems: Mapped[str | None] = mapped_column(Text)
    html: Mapped[str | None] = mapped_column(Text)
    external_id: Mapped[str | None] = mapped_column(String(500))
    reply_to_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id"))
    # delivery: received (inbound) | queued | sending | sent | delivered | read | failed
    status: Mapped[str] = mapped_column(String(12), default="received")
    error: Mapped[str | None] = mapped_column(Text)
    _scrub_error = validates("error")(_scrubbed)

    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None]
    enqueued_at: Mapped[datetime | None]
    locked_at: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    edited_at: Mapped[datetime | None]
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)
    automated: Mapped[bool] = mapped_column(Boolean, default=False)
    # the canned reply ("script") the agent inserted into this reply, for the reports
    canned_reply_id: Mapped[int | None] = mapped_column(
        ForeignKey("canned_replies.id", ondelete="SET NULL"))
    history: Mapped[list[Any]] = mapped_column(default=list)   # earlier texts of edits
    meta: Mapped[dict[str, Any]] = mapped_column(default=dict)
    attachments: Mapped[list[Attachment]] = relationship(order_by="Attachment.id")
    conversation: Mapped[Conversation] = relationship()


class Attachment(Base):
    __tablename__ = "attachments"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"),
                                            index=True)
    filename: Mapped[str] = mapped_column(String(300))
    content_type: Mapped[str] = mapped_column(String(120))
    size: Mapped[int | None] = mapped_column(BigInteger)
    path: Mapped[str | None] = mapped_column(String(500))      # relative to attachments_dir
    remote_ref: Mapped[str | None] = mapped_column(String(500))
    content_id: Mapped[str | None] = mapped_column(String(300))
    error: Mapped[str | None] = mapped_column(Text)
    _scrub_error = validates("error")(_scrubbed)



class InboundEvent(Base):
    """Every raw delivery, stored before processing. (channel, external_id) is unique, so a
    repeated delivery is a no-op insert, not a check-then-insert race."""

    __tablename__ = "inbound_events"
    __table_args__ = (
        UniqueConstraint("channel_id", "external_id"),
        Index("ix_inbound_events_status", "status", "id"),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    channel_id: Mapped[int] = mapped_column(ForeignKey("channels.id"))
    external_id: Mapped[str] = mapped_column(String(500))
    payload: Mapped[dict[str, Any]] = mapped_column()
    status: Mapped[str] = mapped_column(String(12), default="received")  # received|processed|failed
    error: Mapped[str | None] = mapped_column(Text)
    _scrub_error = validates("error")(_scrubbed)

    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    enqueued_at: Mapped[datetime | None]   # last handed to a worker (the sweeper's clock)
    processed_at: Mapped[datetime | None]


class Event(Base):
    """The event log behind Socket.IO: ids increase, a reconnecting client asks for the rest."""

    __tablename__ = "events"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    type: Mapped[str] = mapped_column(String(40))
    # access scope: the conversation's channel (None: admins only, or everyone for presence)
    channel_id: Mapped[int | None] = mapped_column(ForeignKey("channels.id", ondelete="SET NULL"))
    payload: Mapped[dict[str, Any]] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class Note(Base):
    """A note on the customer's CRM card (not a message in the thread)."""

    __tablename__ = "notes"
    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    author_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"))
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Order(Base):
    __tablename__ = "orders"
    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    external_ref: Mapped[str | None] = mapped_column(String(200), unique=True)
    placed_at: Mapped[datetime | None]
    total: Mapped[Decimal | None] = mapped_column(Numeric(14, 2))
    currency: Mapped[str | None] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(40), default="new")
    items: Mapped[list[Any]] = mapped_column(default=list)


class Deal(Base):
    __tablename__ = "deals"
    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    external_ref: Mapped[str | None] = mapped_column(String(200), unique=True)
    title: Mapped[str] = mapped_column(String(300))
    stage: Mapped[str] = mapped_column(String(60), default="new")
    amount: Mapped[Decimal | None] = mapped_column(Numeric(14, 2))
    currency: Mapped[str | None] = mapped_column(String(3))
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"))
    expected_close: Mapped[date | None] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class MergeSuggestion(Base):
    __tablename__ = "merge_suggestions"
    __table_args__ = (UniqueConstraint("customer_id", "other_customer_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    other_customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    reasons: Mapped[list[Any]] = mapped_column(default=list)
    score: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(12), default="open")  # open|accepted|rejected
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    decided_at: Mapped[datetime | None]


class AuditLog(Base):
    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"))
    action: Mapped[str] = mapped_column(String(40))
    target_type: Mapped[str] = mapped_column(String(40))
    target_id: Mapped[int | None] = mapped_column(BigInteger)
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


# --- CRM (issue 8): pipeline, custom fields, merges, outgoing webhooks -------------------

# Notes pushed by a shop or CRM are upserted by their reference, like orders and deals.
Note.external_ref = mapped_column(String(200), unique=True, nullable=True)


class PipelineStage(Base):
    """An admin-defined stage of the sales pipeline; deals.stage holds its key."""

    __tablename__ = "pipeline_stages"
    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(60), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    position: Mapped[int] = mapped_column(Integer, default=0)
    # open | won | lost: reports and the card know a closed deal
    outcome: Mapped[str] = mapped_column(String(10), default="open")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class CustomFieldDef(Base):
    """An admin-defined field of the CRM card; values live in customers.custom_fields."""

    __tablename__ = "custom_field_defs"
    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(60), unique=True)
    label: Mapped[str] = mapped_column(String(100))
    type: Mapped[str] = mapped_column(String(10))  # text | number | date | choice
    choices: Mapped[list[Any]] = mapped_column(default=list)
    position: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class CustomerMerge(Base):
    """One merge, with what unmerge needs to put every row back."""

    __tablename__ = "customer_merges"
    id: Mapped[int] = mapped_column(primary_key=True)
    target_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"))
    reason: Mapped[str] = mapped_column(Text, default="")
    suggestion_id: Mapped[int | None] = mapped_column(
        ForeignKey("merge_suggestions.id", ondelete="SET NULL"))
    # {"target": {field: value}, "source": {...}, "moved": {table: [ids]}, "conversations": ...}
    snapshot: Mapped[dict[str, Any]] = mapped_column(default=dict)
    chosen: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(10), default="merged")  # merged | unmerged
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    unmerged_at: Mapped[datetime | None]
    unmerged_by_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id",
                                                                  ondelete="SET NULL"))


class WebhookEndpoint(Base):
    """An outgoing webhook: events are POSTed to `url`, signed with `secret`."""

    __tablename__ = "webhook_endpoints"
    id: Mapped[int] = mapped_column(primary_key=True)
    url: Mapped[str] = mapped_column(String(1000))
    secret: Mapped[str] = mapped_column(String(200))
    events: Mapped[list[Any]] = mapped_column(default=list)  # empty: every event
    description: Mapped[str] = mapped_column(String(200), default="")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class WebhookDelivery(Base):
    """One event for one endpoint: written in the event's own transaction (nothing committed
    is silently dropped), sent by a job, retried with backoff, replayable by an admin."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("endpoint_id", "event_id"),
        Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("webhook_endpoints.id",
                                                        ondelete="CASCADE"), index=True)
    # no foreign key: the event log is pruned, the delivery keeps its own copy of the body
    event_id: Mapped[int] = mapped_column(BigInteger)
    event_type: Mapped[str] = mapped_column(String(40))
    body: Mapped[str] = mapped_column(Text)
    # pending | sending | delivered | failed
    status: Mapped[str] = mapped_column(String(10), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None]
    enqueued_at: Mapped[datetime | None]
    locked_at: Mapped[datetime | None]
    response_status: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    _scrub_error = validates("error")(_scrubbed)

    log: Mapped[list[Any]] = mapped_column(default=list)  # one entry per attempt
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[datetime | None]


class CannedReply(Base):
    """A saved answer an agent inserts with `/shortcut`; managed by admins. The text may use
    variables: {{customer.first_name}}, {{customer.name}}, {{agent.name}}."""

    __tablename__ = "canned_replies"
    id: Mapped[int] = mapped_column(primary_key=True)
    shortcut: Mapped[str] = mapped_column(String(60), unique=True)
    title: Mapped[str] = mapped_column(String(200), default="")
    text: Mapped[str] = mapped_column(Text)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


# --- Reports (issue 20): aggregates maintained by the rollup job (app/usecases/reports.py) ---
# Buckets are the UTC instants at which an hour of the account's time zone starts; days are
# dates of that zone. Dimensions use 0 for "none" so they can be part of a primary key.


class ReportState(Base):
    """The rollup's watermarks and the time zone its buckets were cut in."""

    __tablename__ = "report_state"
    key: Mapped[str] = mapped_column(String(40), primary_key=True)
    value: Mapped[dict[str, Any]] = mapped_column(default=dict)


class ReportHourly(Base):
    """Messages per local hour × channel × author × direction × canned reply."""

    __tablename__ = "report_hourly"
    bucket: Mapped[datetime] = mapped_column(primary_key=True)
    channel_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    agent_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    direction: Mapped[str] = mapped_column(String(4), primary_key=True)
    canned_reply_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    messages: Mapped[int] = mapped_column(Integer, default=0)
    automated: Mapped[int] = mapped_column(Integer, default=0)


class ReportDailyCustomer(Base):
    """Who was in touch on which local day, on which channel, with which agent (0: inbound)."""

    __tablename__ = "report_daily_customers"
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    channel_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    agent_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_id: Mapped[int] = mapped_column(Integer, primary_key=True)


class ReportCustomerFirst(Base):
    """A customer's first message (new vs returning) and their card's first-touch source,
    as report columns (refreshed whenever the customer writes or is written to)."""

    __tablename__ = "report_customer_first"
    customer_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    first_at: Mapped[datetime] = mapped_column(index=True)
    channel_id: Mapped[int] = mapped_column(Integer)
    source_channel: Mapped[str] = mapped_column(String(40), default="")
    utm_source: Mapped[str] = mapped_column(String(200), default="")
    utm_medium: Mapped[str] = mapped_column(String(200), default="")
    utm_campaign: Mapped[str] = mapped_column(String(200), default="")
    referrer: Mapped[str] = mapped_column(String(200), default="")
    deep_link: Mapped[str] = mapped_column(String(200), default="")


class ReportConversation(Base):
    """One conversation's facts: where it started, first response, latest resolution."""

    __tablename__ = "report_conversations"
    conversation_id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"),
                                                 primary_key=True)
    customer_id: Mapped[int] = mapped_column(Integer)
    channel_id: Mapped[int] = mapped_column(Integer)      # the channel of its first message
    created_at: Mapped[datetime]                          # the conversation's own created_at
    started_at: Mapped[datetime | None] = mapped_column(index=True)  # its first message
    first_in_at: Mapped[datetime | None]
    awaiting_since: Mapped[datetime | None]               # an inbound message not yet answered
    first_response_at: Mapped[datetime | None]
    first_response_agent_id: Mapped[int | None] = mapped_column(Integer)
    resolved_at: Mapped[datetime | None] = mapped_column(index=True)
    resolution_seconds: Mapped[int | None] = mapped_column(Integer)
    # the same in the open hours of the conversation's team (when the resolution was folded)
    resolution_business_seconds: Mapped[int | None] = mapped_column(Integer)
    resolved_agent_id: Mapped[int | None] = mapped_column(Integer)
    reopened: Mapped[int] = mapped_column(Integer, default=0)


class ReportResponse(Base):
    """One agent reply to a waiting customer: first or next response time (calendar seconds)."""

    __tablename__ = "report_responses"
    # the second index answers "conversations handled per agent" from the index alone
    __table_args__ = (Index("ix_report_responses_at", "at", "first"),
                      Index("ix_report_responses_handled", "at", "agent_id", "conversation_id"))
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    conversation_id: Mapped[int] = mapped_column(BigInteger)
    channel_id: Mapped[int] = mapped_column(Integer)
    agent_id: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime]
    seconds: Mapped[int] = mapped_column(Integer)
    first: Mapped[bool] = mapped_column(Boolean)
    # the same wait counted in the open hours of the conversation's team (folded with it)
    business_seconds: Mapped[int | None] = mapped_column(Integer)


class ReportStatusChange(Base):
    """Every change of a conversation's status to or from resolved, written in the changing
    transaction by a session listener (resolved / reopened counts, the rollup's input)."""

    __tablename__ = "report_status_changes"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    conversation_id: Mapped[int] = mapped_column(BigInteger, index=True)
    channel_id: Mapped[int | None] = mapped_column(Integer)
    agent_id: Mapped[int | None] = mapped_column(Integer)   # the assignee at that moment
    old_status: Mapped[str | None] = mapped_column(String(20))
    new_status: Mapped[str] = mapped_column(String(20))
    at: Mapped[datetime] = mapped_column(index=True)


# The label filter of the reports. Labels are a JSON list on the conversation and change at any
# time, so the label is a dimension of its own: the rollup keeps each conversation's labels as
# it last saw them (report_labels) and, per label, the same hourly and daily-reach rows as the
# unlabelled tables. Adding a label to a conversation adds that conversation's messages to the
# label's rows, removing it subtracts them: a filtered report reads as few rows as an
# unfiltered one, whatever the share of conversations carrying the label.

class ReportLabel(Base):
    """A conversation's labels as the rollup last folded them."""

    __tablename__ = "report_labels"
    __table_args__ = (Index("ix_report_labels_label", "label", "conversation_id"),)
    conversation_id: Mapped[int] = mapped_column(BigId, primary_key=True)
    label: Mapped[str] = mapped_column(String(100), primary_key=True)


class ReportLabelChange(Base):
    """A conversation whose labels changed (written in the changing transaction)."""

    __tablename__ = "report_label_changes"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    conversation_id: Mapped[int] = mapped_column(BigInteger)


class ReportLabelHourly(Base):
    """report_hourly per label of the message's conversation."""

    __tablename__ = "report_label_hourly"
    label: Mapped[str] = mapped_column(String(100), primary_key=True)
    bucket: Mapped[datetime] = mapped_column(primary_key=True)
    channel_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    agent_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    direction: Mapped[str] = mapped_column(String(4), primary_key=True)
    canned_reply_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    messages: Mapped[int] = mapped_column(Integer, default=0)
    automated: Mapped[int] = mapped_column(Integer, default=0)


class ReportLabelDailyCustomer(Base):
    """report_daily_customers per label of the message's conversation."""

    __tablename__ = "report_label_daily_customers"
    __table_args__ = (Index("ix_report_label_daily_customers_customer", "customer_id"),)
    label: Mapped[str] = mapped_column(String(100), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    channel_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    agent_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_id: Mapped[int] = mapped_column(Integer, primary_key=True)


# Coarse aggregates the reports read (issue 20, speed): the rows above split messages by agent
# and canned reply (and reach by agent), which at a busy inbox leaves them barely fewer than the
# messages. These drop the split; label '' is every conversation, any other label the
# conversations carrying it. The rollup writes them beside the fine rows from the same deltas.

class ReportChannelHourly(Base):
    """Messages (and conversations started: direction "conv") per local hour x channel."""

    __tablename__ = "report_channel_hourly"
    label: Mapped[str] = mapped_column(String(100), primary_key=True)
    bucket: Mapped[datetime] = mapped_column(primary_key=True)
    channel_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    direction: Mapped[str] = mapped_column(String(4), primary_key=True)
    messages: Mapped[int] = mapped_column(Integer, default=0)
    automated: Mapped[int] = mapped_column(Integer, default=0)


class ReportReach(Base):
    """Who was in touch on which local day on which channel (reach without the agent split)."""

    __tablename__ = "report_reach"
    __table_args__ = (Index("ix_report_reach_customer", "customer_id"),)
    label: Mapped[str] = mapped_column(String(100), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    channel_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_id: Mapped[int] = mapped_column(Integer, primary_key=True)


class ReportAgentDaily(Base):
    """Replies per local day x agent x channel, and how many used a canned reply."""

    __tablename__ = "report_agent_daily"
    label: Mapped[str] = mapped_column(String(100), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    agent_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    channel_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    replies: Mapped[int] = mapped_column(Integer, default=0)
    canned_replies: Mapped[int] = mapped_column(Integer, default=0)


class ReportTimeBin(Base):
    """Response and resolution times as per-day histograms: per local day x channel x kind
    (first, next, resolution) x clock (calendar, business) x log-scale bin, the number of
    samples and the sum of their seconds (app.usecases.reports.bin_of says why bins)."""

    __tablename__ = "report_time_bins"
    label: Mapped[str] = mapped_column(String(100), primary_key=True)
    clock: Mapped[str] = mapped_column(String(8), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    channel_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(10), primary_key=True)
    bin: Mapped[int] = mapped_column(Integer, primary_key=True)
    samples: Mapped[int] = mapped_column(Integer, default=0)
    seconds: Mapped[int] = mapped_column(BigInteger, default=0)


# Search (PostgreSQL): full-text over the messages' stems ('simple' config over words
# stemmed in Python: Russian, Polish and English alike), trigram indexes for customer names,
# handles and the digits of phone handles. They are expression indexes, so SQLite (where
# app/domain/search.py keeps FTS5 tables) never creates them.
Index("ix_messages_stems_fts", text("to_tsvector('simple', search_stems)"),
      postgresql_using="gin", _table=Message.__table__)
Index("ix_identities_digits_trgm", text("regexp_replace(value, '[^0-9]', '', 'g') gin_trgm_ops"),
      postgresql_using="gin", postgresql_where=text("kind IN ('phone', 'whatsapp')"),
      _table=Identity.__table__)
Index("ix_customers_name_trgm", text("lower(name) gin_trgm_ops"), postgresql_using="gin",
      _table=Customer.__table__)
Index("ix_identities_value_trgm", text("lower(value) gin_trgm_ops"), postgresql_using="gin",
      _table=Identity.__table__)


# --- Work distribution (issue 17): availability, capacity, rules, activity, SLA ----------

# Agent availability: the effective status (what distribution reads) and what the agent chose.
# choice None = automatic: online while a Socket.IO connection is open, offline otherwise.
Agent.availability = mapped_column(String(10), default="offline", server_default="offline",
                                   nullable=False)
Agent.availability_choice = mapped_column(String(10), nullable=True)
Agent.connections = mapped_column(Integer, default=0, server_default="0", nullable=False)
Agent.capacity = mapped_column(Integer, nullable=True)        # None: the team's default
Agent.last_assigned_at = mapped_column(UTCDateTime(), nullable=True)   # round-robin order

# Team distribution: manual | round_robin | least_loaded; capacity per agent (open
# conversations); business hours {"timezone", "days": {"mon": [["09:00", "18:00"]]}, "holidays"}
Team.distribution = mapped_column(String(20), default="manual", server_default="manual",
                                  nullable=False)
Team.capacity = mapped_column(Integer, default=5, server_default="5", nullable=False)
Team.business_hours = mapped_column(JSONType, nullable=True)

# Conversation routing and SLA clock
Conversation.waiting_since = mapped_column(UTCDateTime(), nullable=True)  # in the team's queue
Conversation.seen_status = mapped_column(String(20), nullable=True)      # automation's last view
Conversation.sla_policy_id = mapped_column(
    ForeignKey("sla_policies.id", ondelete="SET NULL"), nullable=True)
Conversation.first_response_due_at = mapped_column(UTCDateTime(), nullable=True)
Conversation.resolution_due_at = mapped_column(UTCDateTime(), nullable=True)
Conversation.first_response_at = mapped_column(UTCDateTime(), nullable=True)
# when the nearest SLA target turns amber (the list colours the badge from here)
Conversation.sla_warning_at = mapped_column(UTCDateTime(), nullable=True)
# the customer wrote again after an agent's answer: the next answer is due by then
Conversation.next_response_due_at = mapped_column(UTCDateTime(), nullable=True)

# How many rule hops led to this event (0: a person or a channel did it)
Event.depth = mapped_column(Integer, default=0, server_default="0", nullable=False)

Index("ix_conversations_waiting", Conversation.__table__.c.team_id,
      Conversation.__table__.c.waiting_since,
      sqlite_where=text("waiting_since IS NOT NULL"),
      postgresql_where=text("waiting_since IS NOT NULL"))
# the SLA block of the reports: conversations whose target fell due in the period
Index("ix_conversations_first_response_due", Conversation.__table__.c.first_response_due_at,
      sqlite_where=text("first_response_due_at IS NOT NULL"),
      postgresql_where=text("first_response_due_at IS NOT NULL"))
Index("ix_conversations_resolution_due", Conversation.__table__.c.resolution_due_at,
      sqlite_where=text("resolution_due_at IS NOT NULL"),
      postgresql_where=text("resolution_due_at IS NOT NULL"))


class AutomationRule(Base):
    """WHEN `event` happens, IF every condition holds, THEN run the actions in order."""

    __tablename__ = "automation_rules"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    # conversation_created | customer_message | conversation_reopened | agent_reply |
    # conversation_idle | status_changed | sla_warning
    event: Mapped[str] = mapped_column(String(40))
    options: Mapped[dict[str, Any]] = mapped_column(default=dict)   # {"minutes": N} for idle
    conditions: Mapped[list[Any]] = mapped_column(default=list)
    actions: Mapped[list[Any]] = mapped_column(default=list)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    position: Mapped[int] = mapped_column(Integer, default=0)
    # standard rules installed by `init`: greeting, away, distribute
    standard: Mapped[str | None] = mapped_column(String(40), unique=True)
    fired_count: Mapped[int] = mapped_column(Integer, default=0)
    failed_count: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ConversationActivity(Base):
    """Who or which rule did what to a conversation, when and why."""

    __tablename__ = "conversation_activity"
    __table_args__ = (Index("ix_conversation_activity_conversation", "conversation_id", "id"),
                      Index("ix_conversation_activity_rule", "rule_id", "id"))
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id",
                                                            ondelete="CASCADE"))
    # assigned | waiting | rule | rule_failed | loop_stopped | sla_breached | unassigned
    kind: Mapped[str] = mapped_column(String(30))
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"))
    rule_id: Mapped[int | None] = mapped_column(ForeignKey("automation_rules.id",
                                                           ondelete="SET NULL"))
    text: Mapped[str] = mapped_column(Text, default="")
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class SlaPolicy(Base):
    """Targets in business minutes; the most specific enabled policy (team and priority, then
    team, then priority, then neither) applies to a conversation."""

    __tablename__ = "sla_policies"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    team_id: Mapped[int | None] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"))
    priority: Mapped[str | None] = mapped_column(String(10))
    first_response_minutes: Mapped[int | None] = mapped_column(Integer)
    resolution_minutes: Mapped[int | None] = mapped_column(Integer)
    next_response_minutes: Mapped[int | None] = mapped_column(Integer)
    warn_percent: Mapped[int] = mapped_column(Integer, default=80)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class SlaBreach(Base):
    __tablename__ = "sla_breaches"
    __table_args__ = (UniqueConstraint("conversation_id", "kind"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id",
                                                            ondelete="CASCADE"))
    policy_id: Mapped[int | None] = mapped_column(ForeignKey("sla_policies.id",
                                                             ondelete="SET NULL"))
    # first_response | next_response | resolution (each at most once per conversation)
    kind: Mapped[str] = mapped_column(String(20))
    due_at: Mapped[datetime] = mapped_column()
    breached_at: Mapped[datetime] = mapped_column(default=utcnow)
    team_id: Mapped[int | None] = mapped_column(ForeignKey("teams.id", ondelete="SET NULL"))
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"))


class AutomationCursor(Base):
    """How far the rules engine has read the event log: every id up to `position`, plus
    `done` ids beyond a gap (a transaction that took its id earlier but committed later)."""

    __tablename__ = "automation_cursor"
    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    position: Mapped[int] = mapped_column(BigInteger, default=0)
    done: Mapped[list[Any]] = mapped_column(default=list)
    gap_seen_at: Mapped[datetime | None]


class Bot(Base):
    """An outside bot (issue 18): it holds new conversations of its channels before a human
    (Conversation.handled_by = "bot:<id>"), receives the customer's messages at `url` signed
    with `secret`, and acts through /api/v1 as its own agent (role "bot", `agent_id`)."""

    __tablename__ = "bots"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    url: Mapped[str] = mapped_column(String(1000))
    secret: Mapped[str] = mapped_column(String(200))
    channel_ids: Mapped[list[Any]] = mapped_column(default=list)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # seconds the bot's URL has to answer one event before the attempt counts as failed
    timeout_seconds: Mapped[int] = mapped_column(Integer, default=10)
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    agent: Mapped[Agent] = relationship()


class BotDelivery(Base):
    """One event for one bot, written by the bots' reader of the event log; sent by a job,
    retried, and after the last failed attempt the conversation goes to humans."""

    __tablename__ = "bot_deliveries"
    __table_args__ = (
        UniqueConstraint("bot_id", "event_id"),
        Index("ix_bot_deliveries_due", "status", "next_attempt_at"),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    bot_id: Mapped[int] = mapped_column(ForeignKey("bots.id", ondelete="CASCADE"), index=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id",
                                                            ondelete="CASCADE"))
    event_id: Mapped[int] = mapped_column(BigInteger)
    event_type: Mapped[str] = mapped_column(String(40))
    body: Mapped[str] = mapped_column(Text)
    # pending | sending | delivered | failed
    status: Mapped[str] = mapped_column(String(10), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None]
    enqueued_at: Mapped[datetime | None]
    locked_at: Mapped[datetime | None]
    response_status: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    _scrub_error = validates("error")(_scrubbed)

    log: Mapped[list[Any]] = mapped_column(default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[datetime | None]


# --- Feedback after a conversation (CSAT, issue 21) --------------------------------------

class CsatSettings(Base):
    """The account's CSAT settings: one row (id 1), written from /settings/feedback and
    PATCH /api/v1/settings/csat. `questions`: {"ru": ..., "pl": ..., "en": ...} (empty or
    missing = the built-in text in that language)."""

    __tablename__ = "csat_settings"
    id: Mapped[int] = mapped_column(primary_key=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    questions: Mapped[dict[str, Any]] = mapped_column(default=dict)
    throttle_days: Mapped[int] = mapped_column(Integer, default=30)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class CsatSurvey(Base):
    """One question per conversation (unique): asked when an agent resolved it, answered by a
    button, a digit reply, the email link or the widget's stars."""

    __tablename__ = "csat_surveys"
    __table_args__ = (Index("ix_csat_surveys_asked", "asked_at"),
                      Index("ix_csat_surveys_customer", "customer_id", "asked_at"))
    id: Mapped[int] = mapped_column(primary_key=True)
    conversation_id: Mapped[int] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), unique=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    channel_id: Mapped[int | None] = mapped_column(ForeignKey("channels.id", ondelete="SET NULL"))
    # the conversation's assignee and team when it was resolved (the report's per agent/team)
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"))
    team_id: Mapped[int | None] = mapped_column(ForeignKey("teams.id", ondelete="SET NULL"))
    message_id: Mapped[int | None] = mapped_column(BigInteger)   # the question sent
    language: Mapped[str] = mapped_column(String(5), default="en")
    asked_at: Mapped[datetime] = mapped_column(default=utcnow)
    score: Mapped[int | None] = mapped_column(Integer)
    comment: Mapped[str | None] = mapped_column(Text)
    answered_at: Mapped[datetime | None]
    # how the answer came: button | reply | link | widget
    answered_via: Mapped[str | None] = mapped_column(String(10))


class CsatThrottle(Base):
    """When a customer was last asked: no second question within the throttle period."""

    __tablename__ = "csat_throttle"
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"),
                                             primary_key=True)
    last_asked_at: Mapped[datetime] = mapped_column()


class KbArticle(Base):
    """A knowledge base article (issue 18): the public help at /help, the site chat's "search
    answers" and the answer bot's source. `body` is Markdown; `body_html` its rendering,
    sanitized (nh3); `search_stems` the stems of title, keywords, short answer and body
    (app.domain.search.stems), what search matches word forms by."""

    __tablename__ = "kb_articles"
    __table_args__ = (Index("ix_kb_articles_language", "language", "published", "id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text, default="")
    body_html: Mapped[str] = mapped_column(Text, default="")
    short_answer: Mapped[str] = mapped_column(Text, default="")
    language: Mapped[str] = mapped_column(String(2))          # ru | pl | en
    category: Mapped[str] = mapped_column(String(100), default="")
    keywords: Mapped[list[Any]] = mapped_column(default=list)
    published: Mapped[bool] = mapped_column(Boolean, default=False)
    search_stems: Mapped[str] = mapped_column(Text, default="")
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Notification(Base):
    """One agent's notification: a mention in a note, a conversation assigned to them, a new
    message in a conversation they hold (app.domain.notifications). Unread while read_at is
    null; new messages in one conversation fold into the agent's unread one (`count`)."""

    __tablename__ = "notifications"
    __table_args__ = (Index("ix_notifications_agent", "agent_id", "id"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(20))  # mention | assigned | message
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id",
                                                            ondelete="CASCADE"))
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id",
                                                              ondelete="SET NULL"))
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"))
    text: Mapped[str] = mapped_column(Text, default="")
    count: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    read_at: Mapped[datetime | None]


class NotificationPrefs(Base):
    """An agent's notification options: a sound on a new one, the unread count in the tab."""

    __tablename__ = "notification_prefs"
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"),
                                          primary_key=True)
    sound: Mapped[bool] = mapped_column(Boolean, default=False)
    title_badge: Mapped[bool] = mapped_column(Boolean, default=True)


# --- Segments, opt-outs and campaigns (issue 21) -----------------------------------------


class Segment(Base):
    """A saved filter over customers (app/domain/segments.py says what a filter may hold)."""

    __tablename__ = "segments"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    filter: Mapped[dict[str, Any]] = mapped_column(default=dict)   # {} = every customer
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class OptOut(Base):
    """The customer asked not to be written to on this channel (a keyword, Telegram's block,
    the email unsubscribe link, an agent): no campaign reaches them there."""

    __tablename__ = "opt_outs"
    __table_args__ = (UniqueConstraint("customer_id", "channel_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    channel_id: Mapped[int] = mapped_column(ForeignKey("channels.id", ondelete="CASCADE"),
                                            index=True)
    # keyword | blocked | unsubscribe_link | agent
    source: Mapped[str] = mapped_column(String(20))
    detail: Mapped[str] = mapped_column(String(200), default="")
    campaign_id: Mapped[int | None] = mapped_column(ForeignKey("campaigns.id",
                                                               ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Campaign(Base):
    """One message to a segment: each customer gets it once, on their preferred channel."""

    __tablename__ = "campaigns"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    segment_id: Mapped[int | None] = mapped_column(ForeignKey("segments.id",
                                                              ondelete="SET NULL"))
    # the segment's filter as it was at start: a later edit of the segment changes nothing
    segment_filter: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    text: Mapped[str] = mapped_column(Text)
    # per channel kind: {"email": {"subject", "text", "html"}, "whatsapp": {"template": {...}},
    # "telegram": {"text", "buttons"}}
    variants: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # {"fallback": ["telegram", "whatsapp", "email", "webchat"]} (kinds, in order)
    channel_policy: Mapped[dict[str, Any]] = mapped_column(default=dict)
    schedule: Mapped[dict[str, Any]] = mapped_column(default=dict)   # {"at": ISO time}
    scheduled_at: Mapped[datetime | None]
    # draft | scheduled | running | paused | done | cancelled
    status: Mapped[str] = mapped_column(String(12), default="draft")
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"))
    # expansion of the segment: customers with id <= cursor have their recipient row
    cursor: Mapped[int] = mapped_column(BigInteger, default=0)
    expanded: Mapped[bool] = mapped_column(Boolean, default=False)
    # one runner at a time: the job holds the campaign until then (renewed while it lives)
    runner_until: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]


class CampaignRecipient(Base):
    """(campaign, customer) is unique: the row is claimed before the message is queued, so no
    customer gets a campaign twice, whatever their number of handles and channels."""

    __tablename__ = "campaign_recipients"
    __table_args__ = (UniqueConstraint("campaign_id", "customer_id"),
                      Index("ix_campaign_recipients_pending", "campaign_id", "status",
                            "channel_id"))
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"),
                                             index=True)
    channel_id: Mapped[int | None] = mapped_column(ForeignKey("channels.id", ondelete="SET NULL"))
    # pending (claimed, waiting its channel's pace) | queued (message in the outbox) |
    # skipped (reason: opted_out | no_channel | window_closed) | cancelled
    status: Mapped[str] = mapped_column(String(12), default="pending")
    reason: Mapped[str | None] = mapped_column(String(40))
    message_id: Mapped[int | None] = mapped_column(BigInteger)
    replied_at: Mapped[datetime | None]
    opted_out_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
