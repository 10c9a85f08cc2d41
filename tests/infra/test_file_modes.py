"""The SQLite database and its folder (data_dir) are created for the owner only
(issue 14, Low): 600 and 700 whatever the umask, -wal and -shm included."""
from __future__ import annotations

import os
import stat

from sqlalchemy import text

from app.infra.db import Database


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_new_database_file_and_folder_are_private(tmp_path):
    from app import wiring

    wiring.wire()  # the search index's sidecar file (threadline.db.search) is attached too
    folder = tmp_path / "var"
    previous = os.umask(0o022)
    try:
        database = Database(f"sqlite:///{folder / 'threadline.db'}")
        with database.engine.begin() as connection:
            connection.execute(text("CREATE TABLE t (x INTEGER)"))
            connection.execute(text("INSERT INTO t VALUES (1)"))
        with database.engine.connect() as connection:  # WAL files exist while connected
            connection.execute(text("SELECT x FROM t")).all()
            made = sorted(p.name for p in folder.iterdir())
            assert "threadline.db" in made and "threadline.db.search" in made
            assert _mode(folder) == 0o700
            for name in made:
                assert _mode(folder / name) == 0o600, name
        database.dispose()
    finally:
        os.umask(previous)


def test_an_existing_folder_keeps_its_mode(tmp_path):
    folder = tmp_path / "shared"
    folder.mkdir(mode=0o750)
    os.chmod(folder, 0o750)
    Database(f"sqlite:///{folder / 'threadline.db'}").dispose()
    assert _mode(folder) == 0o750 and _mode(folder / "threadline.db") == 0o600
