"""Several `threadline serve` processes on one host (issue 14, Medium 10): gunicorn's control
socket sits at one path per user, so a second server removed the first's. None is opened."""
from __future__ import annotations

import pytest
import requests

from app.server import _Gunicorn
from tests.conftest import SCALE_OUT


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


def test_serve_answers_socket_io_itself_by_default(app_config):
    """The embedded default (and Redis without `[realtime] external`): `serve` holds the
    sockets, its Socket.IO server answers the handshake and listens on its manager."""
    from app.infra.extensions import socketio
    from app.server import realtime_external

    assert app_config["realtime"]["external"] is False
    assert realtime_external(app_config) is False
    app = _Gunicorn(app_config).create()
    assert getattr(socketio.server.manager, "write_only", False) is False
    handshake = app.test_client().get("/socket.io/?EIO=4&transport=polling")
    assert handshake.status_code == 200 and b"sid" in handshake.data


@pytest.mark.parametrize("backend", ["sqlite"])
def test_realtime_external_needs_redis(backend, app_config):
    from app.server import realtime_external, run_server

    app_config["realtime"]["external"] = True
    with pytest.raises(RuntimeError, match="needs redis_url"):
        realtime_external(app_config)
    with pytest.raises(RuntimeError, match="needs redis_url"):
        run_server(app_config)


@pytest.mark.parametrize("backend", SCALE_OUT)   # needs Redis
def test_realtime_external_serve_only_publishes(backend, app_config):
    """`[realtime] external` with Redis: a write-only manager (no listener on the channel)
    and no /socket.io; the pages are served as before."""
    from app.infra.config import load_config
    from app.infra.extensions import socketio

    assert load_config(path=app_config["data_dir"] + "/absent.toml",
                       environ={"THREADLINE_REALTIME_EXTERNAL": "true"}
                       )["realtime"]["external"] is True
    app_config["realtime"]["external"] = True
    app = _Gunicorn(app_config).create()
    assert socketio.server.manager.write_only is True
    client = app.test_client()
    assert client.get("/socket.io/?EIO=4&transport=polling").status_code == 404
    assert client.get("/login").status_code == 200
