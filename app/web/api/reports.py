"""`/api/v1/reports/<name>` (DESIGN 3b): figures from the maintained aggregates, JSON or CSV."""
from __future__ import annotations

from apiflask import abort
from flask import Response, request

from app.usecases import reports
from app.web.api import bp, current_agent, token_auth


@bp.get("/reports/<name>")
@bp.auth_required(token_auth)
@bp.doc(summary="A report: volume, response-times, agents, canned-usage, sources, csat, bot",
        description="Query: from, to (dates YYYY-MM-DD in the account's time zone, at most "
                    "366 days; default the last 30 days), channel_id, team_id (the team's "
                    "channels), agent_id, label (conversations carrying it), format=csv "
                    "(table=<a list of the answer, e.g. sla_by_team> for another table than "
                    "items), hours=calendar|business (response-times and agents: durations in calendar "
                    "time, or only in the open hours of the conversation's team; no team or no "
                    "schedule = always open). Medians and 90th percentiles of durations come from "
                    "per-day log-scale histograms: counts are exact, a percentile is the mean of "
                    "the samples in its bin (exact when they are equal, otherwise within 3.2 %). "
                    "Answers {items, next_cursor, period, "
                    "totals, ...}; an agent sees only their teams' channels (403 otherwise).")
def get_report(name: str):
    if name not in reports.REPORTS:
        abort(404, f"no report {name!r}; reports: " + ", ".join(reports.NAMES))
    try:
        filters = reports.parse_filters(request.args, current_agent())
    except reports.ReportInputError as exc:
        abort(422, str(exc), detail={"query": {exc.field: [str(exc)]}})
    except reports.ReportForbidden as exc:
        abort(403, str(exc))
    body = reports.run_report(name, filters)
    if request.args.get("format") == "csv":
        table = request.args.get("table") or "items"
        if table not in reports.tables(body):
            abort(422, "no such table", detail={"query": {"table": [
                "tables of this report: " + ", ".join(reports.tables(body))]}})
        part = "" if table == "items" else f"-{table}"
        filename = f"{name}{part}-{filters.first_day.isoformat()}-{filters.last_day.isoformat()}.csv"
        return Response(reports.to_csv(body, table), mimetype="text/csv",
                        headers={"Content-Disposition": f'attachment; filename="{filename}"'})
    return body
