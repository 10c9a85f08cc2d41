"""Models and Alembic migrations agree on every backend."""
from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from app.infra.models import Base
from app.infra.state import db


def test_autogenerate_finds_no_difference(ctx, backend):
    with db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert context.get_current_revision() is not None
        diff = compare_metadata(context, Base.metadata)
    assert diff == [], f"models and migrations differ on {backend}: {diff}"
