"""The `threadline` command."""
from __future__ import annotations

import json
import secrets
import sys
from pathlib import Path
from typing import Any

import click

from app.infra.config import ConfigError, config_path, load_config, redact_url


def _fail(message: str) -> None:
    raise click.ClickException(message)


def _app():
    from app import create_app

    try:
        return create_app()
    except (ConfigError, RuntimeError) as exc:
        _fail(str(exc))


def _echo_json(data: Any) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Threadline: one live inbox for email, Telegram, WhatsApp and site chat."""


# --- init / db ---------------------------------------------------------------------------

def _write_config(path: Path, database_url: str | None, redis_url: str | None) -> bool:
    if path.exists():
        return False
    example = Path(__file__).resolve().parent.parent / "config.example.toml"
    text = example.read_text(encoding="utf-8") if example.exists() else ""
    lines = [f'secret_key = "{secrets.token_urlsafe(48)}"']
    if database_url:
        lines.append(f'database_url = "{database_url}"')
    if redis_url:
        lines.append(f'redis_url = "{redis_url}"')
    body = "\n".join(lines) + "\n"
    path.write_text("# Written by `threadline init`. See config.example.toml for every key.\n"
                    + body + _strip_top_keys(text), encoding="utf-8")
    path.chmod(0o600)  # it holds the secret key
    return True


def _strip_top_keys(example: str) -> str:
    """The example's sections, commented out, so the admin sees what can be set."""
    out = []
    for line in example.splitlines():
        out.append(line if line.startswith("#") or not line.strip() else "# " + line)
    return "\n" + "\n".join(out) + "\n"


def upgrade_database(app) -> str:
    import logging

    # alembic logs each plugin and step at INFO, some while importing: quiet it first
    for name in ("alembic", "alembic.runtime.migration", "alembic.runtime.plugins"):
        logging.getLogger(name).setLevel(logging.WARNING)
    from alembic import command
    from alembic.config import Config as AlembicConfig

    root = Path(__file__).resolve().parent.parent
    cfg = AlembicConfig(str(root / "alembic.ini"))
    cfg.set_main_option("script_location", str(root / "migrations"))
    with app.app_context():
        from app.infra.state import db

        with db.engine.begin() as connection:
            cfg.attributes["connection"] = connection
            command.upgrade(cfg, "head")
        from alembic.runtime.migration import MigrationContext

        with db.engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision() or "base"


@main.command()
@click.option("--admin-email", help="The first admin's email (asked for when missing).")
@click.option("--admin-password", help="The first admin's password (asked for when missing).")
@click.option("--admin-name", default="Admin", show_default=True)
@click.option("--database-url", help="Write this database_url into a new config.toml.")
@click.option("--redis-url", help="Write this redis_url into a new config.toml.")
def init(admin_email, admin_password, admin_name, database_url, redis_url) -> None:
    """Write config.toml (with a secret key), create the database and the first admin."""
    path = config_path()
    if _write_config(path, database_url, redis_url):
        click.echo(f"wrote {path}")
    else:
        click.echo(f"using existing {path}")
    app = _app()
    revision = upgrade_database(app)
    click.echo(f"database {redact_url(app.config['THREADLINE']['database_url'])} at revision {revision}")
    with app.app_context():
        from sqlalchemy import select

        from app.infra.models import Agent, Team
        from app.infra.state import db
        from app.domain.agents import create_agent, ensure_teams

        ensure_teams(["Support", "Sales"])
        from app.usecases.automation import install_standard_rules

        install_standard_rules(db.session)  # greeting, away, distribute: disabled
        if db.session.scalar(select(Agent.id).where(Agent.role == "admin").limit(1)):
            click.echo("an admin exists already; no new admin created")
            db.session.commit()
            return
        if not admin_email:
            admin_email = click.prompt("Admin email")
        if not admin_password:
            admin_password = click.prompt("Admin password", hide_input=True,
                                          confirmation_prompt=True)
        try:
            agent = create_agent(admin_email, admin_name, admin_password, role="admin",
                                 teams=list(db.session.scalars(select(Team.name))))
        except ValueError as exc:
            db.session.rollback()
            _fail(str(exc))
        db.session.commit()
        click.echo(f"admin {agent.email} created")


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply Alembic migrations up to the newest."""
    app = _app()
    revision = upgrade_database(app)
    click.echo(f"database at revision {revision}")


# --- serving -----------------------------------------------------------------------------

def _listening_config(section: str, host: str | None, port: int | None) -> dict[str, Any]:
    """The configuration, with --host/--port given on the command line over `[section]`."""
    given = {key: value for key, value in (("host", host), ("port", port)) if value}
    try:
        return load_config(overrides={section: given})
    except ConfigError as exc:
        _fail(str(exc))


@main.command()
@click.option("--host", help="Interface to listen on (config server.host).")
@click.option("--port", type=int, help="Port (config server.port).")
def serve(host, port) -> None:
    """Run the web inbox, API, webhooks and Socket.IO (and, without Redis, the jobs)."""
    from app.server import run_server

    config = _listening_config("server", host, port)
    try:
        run_server(config)
    except RuntimeError as exc:
        _fail(str(exc))


@main.command()
@click.option("--host", help="Interface to listen on (config realtime.host).")
@click.option("--port", type=int, help="Port (config realtime.port).")
def realtime(host, port) -> None:
    """Hold agents' and visitors' websockets (/socket.io) in one asyncio process (needs redis_url)."""
    from app.realtime import run_realtime

    config = _listening_config("realtime", host, port)
    if not config["redis_url"]:
        _fail("redis_url is not set: the realtime process hears the web processes and "
              "workers through Redis")
    try:
        run_realtime(config)
    except RuntimeError as exc:
        _fail(str(exc))


@main.command()
@click.option("--burst", is_flag=True, help="Run the jobs queued now, then exit.")
@click.option("--no-sweeper", is_flag=True, help="Do not re-queue stale or due sends here.")
def worker(burst, no_sweeper) -> None:
    """Run an rq worker (needs redis_url)."""
    from rq import SimpleWorker

    from app.infra.queues import RQQueue, Sweeper, run_in_app, set_worker_app

    app = _app()
    config = app.config["THREADLINE"]
    if not config["redis_url"]:
        _fail("redis_url is not set: without Redis, `threadline serve` runs the jobs itself")
    set_worker_app(app)
    rq_queue: RQQueue = app.extensions["threadline.queue"]
    # The sweep first: sends a dead worker left "sending" become due again.
    counts = run_in_app(app, "sweep", ())
    click.echo(f"worker on queue {rq_queue.queue.name} ({redact_url(config['redis_url'])}); "
               f"sweep: {counts}")
    background: list = []
    if not (burst or no_sweeper):
        background.append(Sweeper(app, float(config["jobs"]["sweep_interval"])))
        background[-1].start()
    if not burst and config["server"]["pollers"]:
        from app.usecases.pollers import start_pollers

        background += start_pollers(app)  # a Redis lock per channel: one poller per channel
    # SimpleWorker runs jobs in this process: no fork per job (≈6x the throughput of the
    # forking worker), and every job is a short, self-contained database transaction.
    rq_worker = SimpleWorker([rq_queue.queue], connection=rq_queue.redis)
    rq_worker.work(burst=burst, logging_level=config["log"]["level"])
    for thread in background:
        thread.stop()


# --- users and tokens --------------------------------------------------------------------

@main.group()
def user() -> None:
    """Agents."""


@user.command("create")
@click.option("--email", required=True)
@click.option("--name", required=True)
@click.option("--password", help="Asked for when missing.")
@click.option("--role", type=click.Choice(["agent", "admin"]), default="agent", show_default=True)
@click.option("--team", "teams", multiple=True, help="Team name (repeatable).")
def user_create(email, name, password, role, teams) -> None:
    """Create an agent."""
    app = _app()
    with app.app_context():
        from app.infra.state import db
        from app.domain.agents import create_agent

        if not password:
            password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
        try:
            agent = create_agent(email, name, password, role=role, teams=list(teams))
        except ValueError as exc:
            db.session.rollback()
            _fail(str(exc))
        db.session.commit()
        click.echo(f"{agent.role} {agent.email} created (id {agent.id}"
                   + (f", teams: {', '.join(teams)}" if teams else "") + ")")


@user.command("invite")
@click.option("--email", required=True)
@click.option("--name", default="")
@click.option("--role", type=click.Choice(["agent", "admin"]), default="agent", show_default=True)
@click.option("--team", "teams", multiple=True, help="Team name (repeatable).")
@click.option("--url", "base_url", help="Public base URL of this server "
              "(default: server.public_url, else http://<host>:<port>).")
def user_invite(email, name, role, teams, base_url) -> None:
    """Invite an agent: prints a one-time link (7 days) that sets their password."""
    app = _app()
    with app.app_context():
        from sqlalchemy import select

        from app.domain.agents import invite_agent
        from app.domain.audit import FieldError
        from app.infra.models import Team
        from app.infra.state import config, db

        known = {t.name: t.id for t in db.session.scalars(select(Team))}
        missing = [t for t in teams if t not in known]
        if missing:
            _fail(f"unknown team(s): {', '.join(missing)}")
        try:
            agent, token = invite_agent(None, email, name, role, [known[t] for t in teams])
        except FieldError as exc:
            db.session.rollback()
            _fail(f"{exc.field}: {exc.message}")
        db.session.commit()
        server = config["server"]
        base = (base_url or server.get("public_url")
                or f"http://{server.get('host', '127.0.0.1')}:{server.get('port', 8000)}")
        click.echo(f"{agent.role} {agent.email} invited (id {agent.id}); the link works once, "
                   f"for 7 days:")
        click.echo(f"{base.rstrip('/')}/invite/{token}")


@user.command("deactivate")
@click.option("--email", required=True)
def user_deactivate(email) -> None:
    """Deactivate an agent: signed out, API tokens revoked, open conversations unassigned."""
    _user_active(email, False)


@user.command("reactivate")
@click.option("--email", required=True)
def user_reactivate(email) -> None:
    """Reactivate a deactivated agent."""
    _user_active(email, True)


def _user_active(email: str, active: bool) -> None:
    app = _app()
    with app.app_context():
        from app.domain.agents import find_agent, update_agent
        from app.domain.audit import FieldError
        from app.infra.state import db

        agent = find_agent(email)
        if agent is None:
            _fail(f"no agent with email {email}")
        try:
            update_agent(None, agent, {"active": active})
        except FieldError as exc:
            db.session.rollback()
            _fail(exc.message)
        db.session.commit()
        click.echo(f"{agent.email} {'reactivated' if active else 'deactivated'}")


@main.group()
def team() -> None:
    """Teams."""


@team.command("create")
@click.argument("name")
def team_create(name) -> None:
    """Create a team."""
    app = _app()
    with app.app_context():
        from app.domain.agents import create_team
        from app.domain.audit import FieldError
        from app.infra.state import db

        try:
            created = create_team(None, name)
        except FieldError as exc:
            db.session.rollback()
            _fail(f"{exc.field}: {exc.message}")
        db.session.commit()
        click.echo(f"team {created.id} {created.name!r} created")


@team.command("list")
def team_list() -> None:
    """Teams with their members and channels."""
    app = _app()
    with app.app_context():
        from sqlalchemy import select

        from app.infra.models import Team
        from app.infra.state import db

        for found in db.session.scalars(select(Team).order_by(Team.name)):
            click.echo(f"{found.id:>4} {found.name}: "
                       f"{', '.join(a.email for a in found.agents) or 'no members'}; "
                       f"channels: {', '.join(c.name for c in found.channels) or 'none'}")


@main.group()
def token() -> None:
    """API tokens."""


@token.command("create")
@click.option("--user", "email", required=True, help="The agent's email.")
@click.option("--name", default="", help="A label for the token.")
def token_create(email, name) -> None:
    """Print a new API token for an agent (shown once)."""
    app = _app()
    with app.app_context():
        from app.domain.agents import create_token, find_agent
        from app.infra.state import db

        agent = find_agent(email)
        if agent is None:
            _fail(f"no agent with email {email}")
        value = create_token(agent, name)
        db.session.commit()
        click.echo(value)


# --- channels ----------------------------------------------------------------------------

def _parse_settings(pairs: tuple[str, ...]) -> dict[str, str]:
    settings = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            _fail(f"--set takes key=value, got {pair!r}")
        settings[key.strip()] = value
    return settings


@main.group()
def channel() -> None:
    """Channels: mailboxes, bots, numbers, widgets."""


@channel.command("add")
@click.argument("kind")
@click.option("--name", required=True)
@click.option("--set", "pairs", multiple=True, metavar="KEY=VALUE", help="A setting (repeatable).")
@click.option("--team", "teams", multiple=True, help="Team that may see it (repeatable; default all).")
@click.option("--json", "as_json", is_flag=True, help="Print the channel as JSON.")
def channel_add(kind, name, pairs, teams, as_json) -> None:
    """Add a channel of KIND (email, telegram, whatsapp, webchat, crm)."""
    app = _app()
    with app.app_context():
        from app.domain.channels import add_channel, channel_summary
        from app.infra.state import db

        try:
            created = add_channel(kind, name, _parse_settings(pairs), list(teams))
        except ValueError as exc:
            db.session.rollback()
            _fail(str(exc))
        db.session.commit()
        summary = channel_summary(created)
        if as_json:
            _echo_json(summary)
        else:
            click.echo(f"channel {created.id} added: {kind} {name!r}")
            for key, value in summary["settings"].items():
                click.echo(f"  {key} = {value}")


@channel.command("list")
@click.option("--json", "as_json", is_flag=True)
def channel_list(as_json) -> None:
    """List channels (secrets hidden)."""
    app = _app()
    with app.app_context():
        from app.domain.channels import all_channels, channel_summary

        rows = [channel_summary(c) for c in all_channels()]
        if as_json:
            _echo_json(rows)
            return
        if not rows:
            click.echo("no channels yet: threadline channel add <kind> --name <name> --set key=value")
        for row in rows:
            status = "active" if row["active"] else "inactive"
            error = f"  error: {row['error']}" if row["error"] else ""
            click.echo(f"{row['id']:>4}  {row['kind']:<9} {row['name']:<30} {status}{error}")


@channel.command("disable")
@click.argument("ref")
def channel_disable(ref) -> None:
    """Disable a channel (by id or name): no polling, no sending; its history stays."""
    _channel_active(ref, False)


@channel.command("enable")
@click.argument("ref")
def channel_enable(ref) -> None:
    """Enable a disabled channel again."""
    _channel_active(ref, True)


def _channel_active(ref: str, active: bool) -> None:
    app = _app()
    with app.app_context():
        from app.domain.channels import find_channel, update_channel
        from app.infra.state import db

        found = find_channel(ref)
        if found is None:
            _fail(f"no channel {ref!r}")
        update_channel(None, found, {"active": active})
        db.session.commit()
        click.echo(f"channel {found.id} {found.name!r} {'enabled' if active else 'disabled'}")


@channel.command("delete")
@click.argument("ref")
def channel_delete(ref) -> None:
    """Delete a channel that never carried a message; one with history is disabled instead."""
    app = _app()
    with app.app_context():
        from app.domain.channels import delete_channel, find_channel
        from app.infra.state import db

        found = find_channel(ref)
        if found is None:
            _fail(f"no channel {ref!r}")
        channel_id, name = found.id, found.name
        outcome = delete_channel(None, found)
        db.session.commit()
        click.echo(f"channel {channel_id} {name!r} {outcome}"
                   + (" (it has messages: kept, disabled)" if outcome == "disabled" else ""))


@channel.command("test")
@click.argument("ref")
def channel_test(ref) -> None:
    """Check a channel's settings against the channel (by id or name)."""
    app = _app()
    with app.app_context():
        from connectors import get_connector

        from app.domain.channels import find_channel

        found = find_channel(ref)
        if found is None:
            _fail(f"no channel {ref!r}")
        try:
            click.echo(get_connector(found.kind).test(found.settings))
        except Exception as exc:
            _fail(f"{found.kind} channel {found.name!r}: {type(exc).__name__}: {exc}")


@main.group()
def telegram() -> None:
    """Telegram bots."""


@telegram.command("set-webhook")
@click.argument("ref")
@click.option("--url", "base_url", help="Public base URL of this server "
              "(default: the channel's public_url, else server.public_url).")
def telegram_set_webhook(ref, base_url) -> None:
    """Switch a Telegram channel to webhook mode: setWebhook with its secret token."""
    app = _app()
    with app.app_context():
        from connectors.telegram import set_webhook

        from app.domain.channels import find_channel
        from app.infra.state import db

        found = find_channel(ref)
        if found is None or found.kind != "telegram":
            _fail(f"no telegram channel {ref!r}")
        base = (base_url or found.settings.get("public_url")
                or app.config["THREADLINE"]["server"]["public_url"])
        if not base or not base.startswith("https://"):
            _fail("Telegram needs a public https:// URL: pass --url https://inbox.example.com "
                  "or set server.public_url")
        hook = f"{base.rstrip('/')}/webhooks/telegram/{found.id}"
        settings = {**found.settings, "mode": "webhook", "public_url": base}
        try:
            answer = set_webhook(settings, hook)
        except Exception as exc:
            _fail(f"setWebhook failed: {exc}")
        found.settings, found.error = settings, None
        db.session.commit()
        click.echo(f"channel {found.id}: {answer}; polling stopped")


# --- events ------------------------------------------------------------------------------

@main.group()
def events() -> None:
    """Inbound events (raw deliveries)."""


@events.command("replay")
@click.option("--id", "ids", type=int, multiple=True, help="Event id (repeatable); default: every failed one.")
def events_replay(ids) -> None:
    """Process failed inbound events again."""
    app = _app()
    with app.app_context():
        from app.usecases.ingest import replay_failed

        def progress(n: int, total: int, status: str) -> None:
            if n == total or n % 100 == 0:
                click.echo(f"  {n}/{total} ({status})", err=True)

        counts = replay_failed(list(ids) or None, progress)
        if not counts:
            click.echo("no failed events to replay")
            return
        click.echo("replayed: " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items())))
        if counts.get("failed"):
            sys.exit(1)


@events.command("list")
@click.option("--failed", is_flag=True, help="Only failed events.")
@click.option("--limit", default=50, show_default=True)
def events_list(failed, limit) -> None:
    """Show recent inbound events with their status and error."""
    app = _app()
    with app.app_context():
        from sqlalchemy import select

        from app.infra.models import InboundEvent
        from app.infra.state import db

        stmt = select(InboundEvent).order_by(InboundEvent.id.desc()).limit(limit)
        if failed:
            stmt = stmt.where(InboundEvent.status == "failed")
        for ev in db.session.scalars(stmt):
            click.echo(f"{ev.id:>6} channel {ev.channel_id:<4} {ev.status:<9} {ev.external_id[:40]:<40} "
                       f"{ev.error or ''}")


# --- demo --------------------------------------------------------------------------------

@main.command()
@click.option("--force", is_flag=True, help="Add demo data even if the database has conversations.")
def demo(force) -> None:
    """Fill a fresh database with sample customers, conversations and CRM data."""
    app = _app()
    with app.app_context():
        from app.demo import DemoError, load_demo

        try:
            counts = load_demo(force=force, echo=click.echo)
        except DemoError as exc:
            _fail(str(exc))
        click.echo("demo data: " + ", ".join(f"{v} {k}" for k, v in counts.items()))
        from app.usecases.reports import rollup

        rollup()  # the Reports page shows the demo at once


@main.group()
def reports() -> None:
    """The reports' aggregates (the rollup job keeps them current on its own)."""


@reports.command("rollup")
def reports_rollup() -> None:
    """Fold every message and status change committed since the last rollup."""
    app = _app()
    with app.app_context():
        from app.usecases.reports import rollup

        counts = rollup()
        click.echo(f"rolled up {counts['messages']} messages, "
                   f"{counts['status_changes']} status changes")


@reports.command("rebuild")
def reports_rebuild() -> None:
    """Throw the aggregates away and compute them again from every message (to check them,
    or after editing history by hand)."""
    app = _app()
    with app.app_context():
        from app.usecases.reports import rebuild

        counts = rebuild()
        click.echo(f"rebuilt from {counts['messages']} messages, "
                   f"{counts['status_changes']} status changes")


from app.cli_customers import customers as _customers  # noqa: E402  (threadline customers ...)

main.add_command(_customers)

if __name__ == "__main__":  # pragma: no cover
    main()

