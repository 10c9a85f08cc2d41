"""Search: customers by name, email, phone or handle; messages by text."""
from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from app.domain.access import visible_channel_ids
from app.domain.search import search_customers, search_messages, snippet, terms
from app.infra.inbox_schemas import SearchOut, SearchQuery
from app.infra.models import Conversation, Customer
from app.infra.state import db
from app.web.api.base import bp, current_agent, token_auth


@bp.get("/search")
@bp.auth_required(token_auth)
@bp.input(SearchQuery, location="query", arg_name="query")
@bp.output(SearchOut)
@bp.doc(summary="Customers by name, email, phone or handle; messages by text")
def search(query):
    agent = current_agent()
    channels = visible_channel_ids(agent)
    q = query["q"]
    customers = search_customers(db.session, q, limit=10)
    # an agent finds only customers with a conversation they may see
    latest: dict[int, int] = {}
    if customers:
        stmt = select(Conversation.customer_id, func.max(Conversation.id)) \
            .where(Conversation.customer_id.in_([c.id for c in customers])) \
            .group_by(Conversation.customer_id)
        if channels is not None:
            stmt = stmt.where(Conversation.channel_id.in_(channels or [-1]))
        latest = {customer_id: cid for customer_id, cid in db.session.execute(stmt)}
        customers = [c for c in customers if c.id in latest]
    messages = search_messages(db.session, q, channels, limit=query["limit"])
    owners = {c.id: c for c in db.session.scalars(
        select(Customer).options(selectinload(Customer.identities))
        .where(Customer.id.in_({m.customer_id for m in messages} or [-1])))}
    return {
        "query": q, "terms": terms(q), "customers": customers,
        "customer_conversations": {str(k): v for k, v in latest.items()},
        "messages": [{"message": m, "snippet": snippet(m.text, q),
                      "customer": owners.get(m.customer_id)} for m in messages],
    }

