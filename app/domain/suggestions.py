"""Merge suggestions: weaker evidence that two customers are one person (a handle mentioned in
a message, a shared phone, the same name). An agent accepts or rejects each; decided pairs
are left alone."""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.infra.models import MergeSuggestion


def suggest(session: Session, customer_id: int, other_id: int, reason: dict, score: int) -> None:
    """Open a suggestion for the pair (stored low id first), or add this reason to it."""
    low, high = sorted((customer_id, other_id))
    suggestion = session.scalar(select(MergeSuggestion).where(
        MergeSuggestion.customer_id == low, MergeSuggestion.other_customer_id == high))
    if suggestion is None:
        session.add(MergeSuggestion(customer_id=low, other_customer_id=high,
                                    reasons=[reason], score=score))
    elif reason not in suggestion.reasons and suggestion.status == "open":
        suggestion.reasons = [*suggestion.reasons, reason]
        suggestion.score = min(100, max(suggestion.score, score) + 10)
    session.flush()
