"""Sign-out everywhere for an agent (admins, or the agent themselves)."""
from __future__ import annotations

from apiflask import abort

from app.domain.agents import end_sessions
from app.infra.models import Agent
from app.infra.state import db
from app.web.api.base import bp, current_agent, token_auth


@bp.post("/agents/<int:agent_id>/sign-out")
@bp.auth_required(token_auth)
@bp.output({}, status_code=204)
@bp.doc(summary="End every session, remember cookie and open socket of an agent (admins; "
                "an agent may sign themselves out). API tokens stay valid.")
def sign_out_agent(agent_id: int):
    caller = current_agent()
    if not caller.is_admin and caller.id != agent_id:
        abort(403, "admins only")
    agent = db.session.get(Agent, agent_id)
    if agent is None:
        abort(404, "agent not found")
    end_sessions(agent)
    db.session.commit()
    return ""
