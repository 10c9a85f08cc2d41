"""Several `threadline serve` processes on one host (issue 14, Medium 10): gunicorn's control
socket sits at one path per user, so a second server removed the first's. None is opened."""
from __future__ import annotations

import pytest
import requests

from app.server import _Gunicorn


def test_gunicorn_control_socket_is_off(app_config):
    assert _Gunicorn(app_config).cfg.control_socket_disable is True


@pytest.mark.parametrize("backend", ["sqlite"])
def test_two_servers_leave_no_shared_control_socket(backend, app_config, tmp_path, start_server,
                                                    monkeypatch):
    home, runtime = tmp_path / "home", tmp_path / "runtime"
    home.mkdir()
    runtime.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    servers = [start_server(), start_server()]
    for server in servers:
        # gunicorn's arbiter opens the control socket right after spawning its worker, so by
        # the time the worker answers it would exist
        assert requests.get(f"{server.url}/login", timeout=10).status_code == 200
    left = sorted(str(p) for p in list(home.rglob("*")) + list(runtime.rglob("*")))
    assert left == []
