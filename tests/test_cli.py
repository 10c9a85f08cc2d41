"""The `threadline` command, run as a user runs it (a subprocess)."""
from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.conftest import ROOT, run_cli, threadline_cmd


def fresh(tmp_path, *args, input=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("THREADLINE_")}
    env["THREADLINE_CONFIG"] = str(tmp_path / "config.toml")
    env["THREADLINE_SERVER_POLLERS"] = "false"
    return subprocess.run(threadline_cmd(*args), cwd=ROOT, env=env, capture_output=True,
                          text=True, input=input, timeout=120)


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """One initialized SQLite install shared by the read-mostly CLI tests."""
    home = tmp_path_factory.mktemp("install")
    result = fresh(home, "init", "--admin-email", "Boss@Example.com", "--admin-password", "s3cret-pass")
    assert result.returncode == 0, result.stderr
    return home, result


def test_init_writes_config_database_and_admin(installed):
    home, result = installed
    config = (home / "config.toml").read_text()
    assert "secret_key = " in config
    assert oct((home / "config.toml").stat().st_mode)[-3:] == "600"
    assert "admin boss@example.com created" in result.stdout
    assert (home / "var" / "threadline.db").exists()
    again = fresh(home, "init", "--admin-email", "x@example.com", "--admin-password", "whatever1")
    assert again.returncode == 0 and "an admin exists already" in again.stdout


def test_init_prompts_when_interactive(tmp_path):
    result = fresh(tmp_path, "init", input="ola@example.com\nhasło-długie\nhasło-długie\n")
    assert result.returncode == 0, result.stderr
    assert "admin ola@example.com created" in result.stdout


def test_user_and_token(installed):
    home, _ = installed
    made = fresh(home, "user", "create", "--email", "jan@example.com", "--name", "Jan Kowalski",
                 "--password", "zażółć-gęślą", "--team", "Sales")
    assert made.returncode == 0, made.stderr
    assert "agent jan@example.com created" in made.stdout and "Sales" in made.stdout
    duplicate = fresh(home, "user", "create", "--email", "jan@example.com", "--name", "J",
                      "--password", "zażółć-gęślą")
    assert duplicate.returncode != 0 and "exists already" in duplicate.stderr
    short = fresh(home, "user", "create", "--email", "k@example.com", "--name", "K", "--password", "123")
    assert short.returncode != 0 and "too short" in short.stderr
    unknown_team = fresh(home, "user", "create", "--email", "t@example.com", "--name", "T",
                         "--password", "long-enough", "--team", "Nope")
    assert unknown_team.returncode != 0 and "unknown team" in unknown_team.stderr
    token = fresh(home, "token", "create", "--user", "jan@example.com")
    assert token.returncode == 0 and token.stdout.strip().startswith("tl_")
    missing = fresh(home, "token", "create", "--user", "nobody@example.com")
    assert missing.returncode != 0 and "no agent" in missing.stderr


def test_channel_add_list_json_and_secrets_hidden(installed):
    home, _ = installed
    added = fresh(home, "channel", "add", "telegram", "--name", "Магазин бот",
                  "--set", "token=123456:ABCDEFsecret", "--json")
    assert added.returncode == 0, added.stderr
    channel = json.loads(added.stdout)
    assert channel["kind"] == "telegram" and channel["name"] == "Магазин бот"
    assert isinstance(channel["id"], int)
    assert channel["settings"]["token"] == "***"
    assert channel["settings"]["secret_token"] == "***"   # generated at add
    assert channel["settings"]["mode"] == "polling"
    listed = fresh(home, "channel", "list", "--json")
    assert any(c["id"] == channel["id"] for c in json.loads(listed.stdout))
    assert "ABCDEFsecret" not in listed.stdout
    plain = fresh(home, "channel", "list")
    assert "Магазин бот" in plain.stdout and "ABCDEFsecret" not in plain.stdout


@pytest.mark.parametrize("args, message", [
    (["channel", "add", "fax", "--name", "x"], "unknown channel kind"),
    (["channel", "add", "telegram", "--name", "x", "--set", "nonsense"], "key=value"),
    (["channel", "add", "telegram", "--name", "x", "--set", "colour=red", "--set", "token=1:a"], "unknown setting"),
    (["channel", "add", "telegram", "--name", "x"], "token"),
    (["channel", "test", "999"], "no channel"),
])
def test_bad_input_exits_non_zero_with_a_message(installed, args, message):
    home, _ = installed
    result = fresh(home, *args)
    assert result.returncode != 0
    assert message in result.stderr


def test_commands_before_init_say_what_to_do(tmp_path):
    result = fresh(tmp_path, "channel", "list")
    assert result.returncode != 0 and "threadline init" in result.stderr


def test_events_replay_reports_counts(app_config, ctx):
    result = run_cli(app_config, "events", "replay")
    assert result.returncode == 0, result.stderr
    assert "no failed events" in result.stdout


def test_demo_fills_a_fresh_database_once(tmp_path):
    assert fresh(tmp_path, "init", "--admin-email", "a@example.com", "--admin-password", "long-enough").returncode == 0
    result = fresh(tmp_path, "demo")
    assert result.returncode == 0, result.stderr
    counts = dict(part.split(" ")[::-1] for part in result.stdout.strip().splitlines()[-1]
                  .removeprefix("demo data: ").split(", "))
    assert int(counts["customers"]) == 50 and int(counts["conversations"]) == 200
    assert int(counts["orders"]) > 20 and int(counts["deals"]) > 5
    # canned replies in Russian, Polish and English, so `/` in the reply box works at once
    assert int(counts["canned_replies"]) == 9
    import re
    import sqlite3

    database = sqlite3.connect(next((tmp_path / "var").glob("*.db")))
    texts = [r[0] for r in database.execute("SELECT text FROM canned_replies")]
    assert any(re.search(r"[а-яё]", t) for t in texts), texts
    assert any(re.search(r"[ąćęłńóśźż]", t) for t in texts), texts
    assert any(t.startswith("Hello") for t in texts), texts
    # an SLA policy with due times on every conversation: the Reports page's SLA block
    assert database.execute("SELECT count(*) FROM sla_policies").fetchone()[0] == 1
    assert database.execute("SELECT count(*) FROM conversations "
                            "WHERE first_response_due_at IS NOT NULL").fetchone()[0] == 200
    # the salesperson's segment, and demo customers in it (issue 21)
    [(name, filter_)] = database.execute("SELECT name, filter FROM segments").fetchall()
    assert "Instagram" in name and "instagram" in filter_
    members = database.execute(
        "SELECT count(*) FROM customers c WHERE json_extract(c.source, '$.utm_source') = 'instagram'"
        " AND EXISTS (SELECT 1 FROM orders o WHERE o.customer_id = c.id"
        " AND o.placed_at >= datetime('now', '-30 days'))").fetchone()[0]
    assert members > 0
    # the site chat's answer bot menu (issue 18): Доставка / Возврат / … / Оператор
    import json

    (settings,) = database.execute("SELECT settings FROM channels WHERE kind = 'webchat'") \
        .fetchone()
    menu = json.loads(settings)["bot_menu"]
    assert [i["title"] for i in menu["items"]][:2] == ["Доставка", "Возврат"]
    assert [i["action"] for i in menu["items"]][-1] == "handoff"
    assert all(database.execute("SELECT published FROM kb_articles WHERE id = ?",
                                (i["article_id"],)).fetchone()[0]
               for i in menu["items"] if i["action"] == "article")
    again = fresh(tmp_path, "demo")
    assert again.returncode != 0 and "--force" in again.stderr
    # the demo's reports: its messages folded in, some replies from canned replies
    rebuilt = fresh(tmp_path, "reports", "rebuild")
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert f"rebuilt from {counts['messages']} messages" in rebuilt.stdout
    assert "rolled up 0 messages" in fresh(tmp_path, "reports", "rollup").stdout
