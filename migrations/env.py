"""Alembic environment: uses the connection `threadline db upgrade` hands over, or builds
one from the Threadline configuration."""
from alembic import context

from app.infra.models import Base

config = context.config
target_metadata = Base.metadata


def _run(connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata,
                      render_as_batch=connection.dialect.name == "sqlite",
                      compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    from app.infra.config import load_config
    from app.infra.db import make_engine

    engine = make_engine(load_config()["database_url"])
    with engine.begin() as connection:
        _run(connection)


if context.is_offline_mode():
    raise SystemExit("offline migrations are not supported; run `threadline db upgrade`")
run_migrations_online()
