"""/api/v1/campaigns: a message to a segment, each customer once (app/usecases/campaigns.py);
start / pause / resume / cancel, and counts per channel. Opt-outs on the card:
/api/v1/customers/<id>/opt-outs."""
from __future__ import annotations

from apiflask import abort
from app.domain import optouts
from app.domain.access import visible_channel_ids
from app.infra.models import Campaign, Channel
from app.infra.state import db
from app.usecases import campaigns as uc
from app.web.api.base import bp, current_agent, token_auth
from app.web.api.customers import get_visible_customer
from app.web.api.segments import body


def _campaign(campaign_id: int) -> Campaign:
    """A campaign the agent may see (404 otherwise)."""
    return uc.get_campaign(db.session, campaign_id, current_agent())


def _managed(campaign_id: int) -> Campaign:
    """A campaign the agent may change: its creator or an admin (403 otherwise)."""
    campaign = _campaign(campaign_id)
    uc.check_manage(current_agent(), campaign)
    return campaign


def _dict(campaign: Campaign) -> dict:
    return uc.campaign_dict(db.session, campaign, current_agent())


@bp.get("/campaigns")
@bp.auth_required(token_auth)
@bp.doc(summary="Campaigns the agent may see (an admin: all; an agent: their own and their "
                "teammates'), newest first, with status, counts per channel and can_manage")
def list_campaigns():
    rows = db.session.scalars(uc.visible_campaigns(db.session, current_agent())
                              .order_by(Campaign.id.desc()).limit(200))
    return {"items": [_dict(c) for c in rows], "next_cursor": None}


@bp.post("/campaigns")
@bp.auth_required(token_auth)
@bp.doc(summary="A draft campaign {name, segment_id, text, variants, channel_policy, "
                "schedule} → 201; text variables: {name}, {first_name}, {company}")
def create_campaign():
    uc.check_manage(current_agent())
    campaign = uc.create_campaign(db.session, body(), current_agent())
    db.session.commit()
    return _dict(campaign), 201


@bp.get("/campaigns/<int:campaign_id>")
@bp.auth_required(token_auth)
@bp.doc(summary="status (draft|scheduled|running|paused|done|cancelled) and counts per "
                "channel: queued, sent, delivered, read, failed, replied, opted_out")
def read_campaign(campaign_id: int):
    return _dict(_campaign(campaign_id))


@bp.patch("/campaigns/<int:campaign_id>")
@bp.auth_required(token_auth)
@bp.doc(summary="Edit a campaign not yet running (a running one's message: 422); only its "
                "creator or an admin (403)")
def patch_campaign(campaign_id: int):
    campaign = _managed(campaign_id)
    uc.update_campaign(db.session, campaign, body())
    db.session.commit()
    return _dict(campaign)


def _action(campaign_id: int, action):
    """start / pause / resume / cancel: only the campaign's creator or an admin (403)."""
    campaign = _managed(campaign_id)
    action(campaign)
    db.session.commit()
    return _dict(campaign)


@bp.post("/campaigns/<int:campaign_id>/start")
@bp.auth_required(token_auth)
@bp.doc(summary="Start now (or at the schedule's time); 422 for an empty segment")
def start_campaign(campaign_id: int):
    visible = visible_channel_ids(current_agent())
    return _action(campaign_id, lambda c: uc.start(db.session, c, visible))


@bp.post("/campaigns/<int:campaign_id>/pause")
@bp.auth_required(token_auth)
def pause_campaign(campaign_id: int):
    return _action(campaign_id, lambda c: uc.pause(db.session, c))


@bp.post("/campaigns/<int:campaign_id>/resume")
@bp.auth_required(token_auth)
def resume_campaign(campaign_id: int):
    return _action(campaign_id, lambda c: uc.resume(db.session, c))


@bp.post("/campaigns/<int:campaign_id>/cancel")
@bp.auth_required(token_auth)
@bp.doc(summary="Stop at once: nothing more is sent")
def cancel_campaign(campaign_id: int):
    return _action(campaign_id, lambda c: uc.cancel(db.session, c))


@bp.get("/customers/<int:customer_id>/opt-outs")
@bp.auth_required(token_auth)
@bp.doc(summary="The channels the customer opted out of (keyword, block, unsubscribe link)")
def customer_opt_outs(customer_id: int):
    customer = get_visible_customer(customer_id)
    return {"items": optouts.of_customer(db.session, customer.id), "next_cursor": None}


@bp.post("/customers/<int:customer_id>/opt-outs")
@bp.auth_required(token_auth)
@bp.doc(summary="Record an opt-out {channel_id} on the customer's request")
def add_customer_opt_out(customer_id: int):
    customer = get_visible_customer(customer_id)
    channel_id = body().get("channel_id")
    if isinstance(channel_id, bool) or not isinstance(channel_id, int) \
            or not 0 < channel_id < 2**31 or db.session.get(Channel, channel_id) is None:
        abort(422, "channel_id: no such channel",
              detail={"json": {"channel_id": ["no such channel"]}})
    optouts.record(db.session, customer.id, channel_id, "agent", current_agent().name)
    db.session.commit()
    return {"items": optouts.of_customer(db.session, customer.id), "next_cursor": None}, 201


@bp.delete("/customers/<int:customer_id>/opt-outs/<int:channel_id>")
@bp.auth_required(token_auth)
@bp.doc(summary="The customer opted in again on this channel")
def remove_customer_opt_out(customer_id: int, channel_id: int):
    customer = get_visible_customer(customer_id)
    if not optouts.remove(db.session, customer.id, channel_id):
        abort(404, "no opt-out on that channel")
    db.session.commit()
    return "", 204
