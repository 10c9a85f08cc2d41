"""The composition root: every job name, inbound record handler, after-inbound hook, sent hook
and session listener of Threadline is wired here, and only here.

Modules below do not register themselves on import: reading this file tells what runs when a
record arrives, a job is queued, a reply is sent or a session commits. `wire()` is called by
`create_app` (web, worker, CLI), and is idempotent.
"""
from __future__ import annotations

from typing import Any, Callable

from sqlalchemy import event
from sqlalchemy.orm import Session
from sqlalchemy.pool import Pool

from connectors.base import Ignored, Inbound, StatusUpdate
from connectors.crm import CrmUpsert
from connectors.telegram import ReachabilityChange
from connectors.whatsapp import NumberChange

from app.domain import agents, notifications, search, view_counts
from app.infra import channel_cache, db, events, queues
from app.infra.state import queue
from app.usecases import (
    answer_bot,
    attachments,
    automation,
    bots,
    campaigns,
    channel_events,
    crm,
    csat,
    hooks,
    ingest,
    outbox,
    pollers,
    reports,
    widget_email,
)
from app.web import widget


def sweep() -> dict[str, int]:
    """The periodic "sweep" job: sends and inbound events a dead worker left behind, due
    retries, outgoing webhooks, replies the site chat's visitors missed (by email), and
    site-chat uploads never sent."""
    counts = outbox.sweep()
    counts["webhooks"] = hooks.sweep_webhooks()["queued"]
    widget_email.email_unseen_replies()
    counts["widget_uploads"] = widget.expire_uploads()
    queue.wake(reports.JOB)   # the reports' rollup catches up with whatever committed
    counts["automation"] = automation.tick()   # idle rules, SLA breaches, team queues
    counts["bots"] = bots.sweep()["queued"]   # outside bots: retries, the reader's wake
    counts["campaigns"] = campaigns.tick()["revived"]   # scheduled starts, dead runners
    counts["view_tallies"] = view_counts.compact()   # the inbox's view counts, folded
    return counts


# job name (as queued in rq and the in-process queue) -> function
JOBS: dict[str, Callable[..., Any]] = {
    "fetch_attachments": attachments.fetch_attachments,
    "send_read_receipt": channel_events.send_read_receipt,
    "answer_callback": channel_events.answer_callback,       # Telegram button presses
    "process_event": ingest.process_event,
    "process_received": ingest.process_received,
    "send_message": outbox.send_message,
    "send_queued": outbox.send_queued,
    "sweep": sweep,
    "deliver_webhook": hooks.deliver_webhook,
    "sweep_webhooks": hooks.sweep_webhooks,
    "scan_customer": crm.scan_customer,
    reports.JOB: reports.rollup_job,
    "run_automation": automation.run_automation,   # rules on committed events, queues
    bots.JOB: bots.run_bots,                  # outside bots: committed events -> deliveries
    bots.DELIVER_JOB: bots.deliver_bot_event,  # one signed POST to a bot, retried
    bots.RELEASE_JOB: bots.release_on_disabled_channels,  # a disabled channel's bot-held ones
    campaigns.JOB: campaigns.run_campaign,          # one slice of a running campaign
    campaigns.REACT_JOB: campaigns.react,           # opt-out keywords, replies to campaigns
}

# what a connector's record becomes in the database
RECORD_HANDLERS: dict[type, ingest.RecordHandler] = {
    Ignored: ingest.apply_ignored,
    Inbound: ingest.apply_inbound,
    StatusUpdate: ingest.apply_status,
    ReachabilityChange: channel_events.apply_reachability,
    NumberChange: channel_events.apply_number_change,
    CrmUpsert: crm.apply_crm_upsert,
}

# channel-specific side effects of a new inbound message
AFTER_INBOUND = [channel_events.whatsapp_order_to_crm, channel_events.telegram_button_pressed,
                 csat.after_inbound]

# where a new inbound message belongs before the usual placement (a feedback answer joins the
# resolved conversation it answers)
PLACEMENT_HOOKS = [csat.place_answer]

# reactions of the rules engine to a conversation turned resolved (committed events)
ON_RESOLVED = [csat.on_resolved]

# a customer's message opened a conversation: an outside bot serving the channel holds it
NEW_CONVERSATION = [bots.take_new_conversation]

# read once for a whole set of inbound messages applied together (ingest.apply_set), what
# the placement and new-conversation hooks above would read per message
BATCH_PREFETCH = [csat.prefetch_surveys, bots.remember_bots]

# before the rules, on each committed event they read (automation._wanted: all but a
# send's message.updated and automated outbound messages): the answer bot
# holds, answers, hands over
EVENT_HOOKS = [answer_bot.on_event]

# per channel kind: called after a reply was sent (the site chat pushes it to the visitor)
SENT_HOOKS = {"webchat": [widget.on_reply_sent]}

# in the transaction that fails a send for good (a blocked Telegram bot opts the user out)
FAILED_HOOKS = [campaigns.on_send_failed]

# after a channel is added, edited or removed (admins' settings): pollers look again at once
CHANNEL_HOOKS = [pollers.channels_changed, bots.wake_release]

# SQLAlchemy listeners: (target, event name, function)
LISTENERS: list[tuple[Any, str, Callable[..., Any]]] = [
    (Pool, "connect", search.attach_search_index),        # SQLite's FTS5 sidecar
    (Session, "before_flush", search.fill_stems),         # messages.search_stems
    (Session, "after_flush", search.index_changes),
    (Session, "after_flush", hooks.collect_events),       # outgoing webhooks, suggestion scans
    (Session, "before_commit", hooks.queue_deliveries),
    (Session, "after_rollback", hooks.drop_pending),
    (Session, "before_flush", agents.revoke_on_change),   # sessions end on password change
    # reports: status changes logged in their own transaction, the rollup woken after commit
    (Session, "after_flush", reports.record_changes),
    (Session, "after_commit", reports.clear_wake_flag),
    (Session, "after_rollback", reports.clear_wake_flag),
    (Session, "before_flush", automation.stamp_depth),    # rule-caused events: depth + 1
    (Session, "after_flush", automation.READER.wake_after_commit),  # any event wakes the rules
    (Session, "after_commit", automation.READER.clear_wake),
    (Session, "after_rollback", automation.READER.clear_wake),
    (Session, "after_flush", bots.READER.wake_after_commit),    # customer messages wake the bots
    (Session, "after_commit", bots.READER.clear_wake),
    (Session, "after_rollback", bots.READER.clear_wake),
    # notifications of assignments and new customer messages, whatever made them
    (Session, "after_flush", notifications.collect),
    (Session, "after_flush_postexec", notifications.create_pending),
    (Session, "after_commit", notifications.forget),
    (Session, "after_rollback", notifications.forget),
    (Session, "after_flush", campaigns.READER.wake_after_commit),  # a customer's message: reactions
    (Session, "after_commit", campaigns.READER.clear_wake),
    (Session, "after_rollback", campaigns.READER.clear_wake),
    # the webhook door's channel snapshots are read again after a channel changes
    (Session, "after_flush", channel_cache.note_changes),
    (Session, "do_orm_execute", channel_cache.note_bulk_changes),
    (Session, "after_commit", channel_cache.end_of_transaction),
    (Session, "after_rollback", channel_cache.end_of_transaction),
    # the ingest drain keeps a batch's channels, customers and identities in its session
    (Session, "loaded_as_persistent", ingest.hold_in_batch),
    (Session, "pending_to_persistent", ingest.hold_in_batch),
    (Session, "before_flush", ingest.number_new_rows),   # SQLite: executemany INSERTs
    (Session, "after_commit", ingest.release_batch),
    (Session, "after_rollback", ingest.release_batch),
]


# around the after-commit callbacks of each transaction: the drains they wake, woken in one
# Redis round trip
AFTER_COMMIT_AROUND = [queues.wakes_together]


def wire() -> None:
    queues.TASKS.update(JOBS)
    db.AFTER_COMMIT_AROUND[:] = AFTER_COMMIT_AROUND
    ingest.RECORD_HANDLERS.update(RECORD_HANDLERS)
    ingest.AFTER_INBOUND[:] = AFTER_INBOUND
    ingest.NEW_CONVERSATION[:] = NEW_CONVERSATION
    ingest.PLACEMENT_HOOKS[:] = PLACEMENT_HOOKS
    ingest.BATCH_PREFETCH[:] = BATCH_PREFETCH
    automation.ON_RESOLVED[:] = ON_RESOLVED
    automation.EVENT_HOOKS[:] = EVENT_HOOKS
    for kind, functions in SENT_HOOKS.items():
        outbox.SENT_HOOKS[kind] = list(functions)
    outbox.FAILED_HOOKS[:] = FAILED_HOOKS
    events.CHANNEL_HOOKS[:] = CHANNEL_HOOKS
    for target, name, function in LISTENERS:
        if not event.contains(target, name, function):
            event.listen(target, name, function)
