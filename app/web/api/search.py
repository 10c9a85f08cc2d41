"""Search: customers by name, email, phone or handle; messages by text."""
from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from app.domain.access import visible_channel_ids
from app.domain.search import matched_words, search_customers, search_messages, snippet, terms
from app.infra.inbox_schemas import SearchOut, SearchQuery
from app.infra.models import Conversation, Customer
from app.infra.state import db
from app.web.api.base import bp, current_agent, token_auth


@bp.get("/search")
@bp.auth_required(token_auth)
@bp.input(SearchQuery, location="query", arg_name="query")
@bp.output(SearchOut)
@bp.doc(summary="Customers by name, email, phone (any part of its digits) or handle; messages "
                "by text, word forms included (Russian, Polish, English), newest first")
def search(query):
    agent = current_agent()
    channels = visible_channel_ids(agent)
    q = query["q"]
    before = int(query["cursor"]) if query["cursor"] else None
    customers = search_customers(db.session, q, limit=10) if before is None else []
    # an agent finds only customers with a conversation they may see
    latest: dict[int, int] = {}
    activity: dict[str, str] = {}
    if customers:
        stmt = select(Conversation.customer_id, func.max(Conversation.id)) \
            .where(Conversation.customer_id.in_([c.id for c in customers])) \
            .group_by(Conversation.customer_id)
        if channels is not None:
            stmt = stmt.where(Conversation.channel_id.in_(channels or [-1]))
        latest = {customer_id: cid for customer_id, cid in db.session.execute(stmt)}
        customers = [c for c in customers if c.id in latest]
        for customer_id, at in db.session.execute(
                select(Conversation.customer_id, Conversation.last_activity_at)
                .where(Conversation.id.in_(list(latest.values()) or [-1]))):
            if at is not None:
                activity[str(customer_id)] = at.isoformat()
    limit = query["limit"]
    messages = search_messages(db.session, q, channels, limit=limit + 1, before=before)
    more = len(messages) > limit
    messages = messages[:limit]
    owners = {c.id: c for c in db.session.scalars(
        select(Customer).options(selectinload(Customer.identities))
        .where(Customer.id.in_({m.customer_id for m in messages} or [-1])))}
    hits = [{"message": m, "snippet": snippet(m.text, q), "matches": matched_words(m.text, q),
             "customer": owners.get(m.customer_id)} for m in messages]
    words = list(dict.fromkeys([*terms(q), *(w for h in hits for w in h["matches"])]))
    return {
        "query": q, "terms": words, "customers": customers,
        "customer_conversations": {str(k): v for k, v in latest.items()},
        "customer_activity": activity,
        "messages": hits,
        "next_cursor": str(messages[-1].id) if more else None,
    }

