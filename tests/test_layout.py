"""The layout of the code (issue 13) and the public contract it must not change:

- every module of app/ and connectors/ imports alone, in a fresh interpreter state (no
  module that works only because a test or another module imported something first);
- the URL map and /api/v1/openapi.json of a fresh app keep everything of the snapshots taken
  before the move (tests/fixtures/contract/url_map.json, openapi.json): no URL, endpoint
  name, API operation or response code gone or renamed (new ones are welcome; the move
  itself was checked for equality at its commit);
- every command of `threadline --help` in the snapshot (cli_help.json) is still there, each
  command's help unchanged and each group still listing its commands;
- the import-linter contracts in pyproject.toml hold (`lint-imports`).

A snapshot changes only with a deliberate change of the contract:
    .venv/bin/python -m tests.test_layout --write-cli-help
"""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CONTRACT = ROOT / "tests" / "fixtures" / "contract"
PACKAGES = ("app", "connectors")

# Runs in a subprocess: imports each named module with every module of the checked packages
# removed from sys.modules first, so each import starts from nothing of ours (third-party
# libraries stay loaded: they are not what is checked, and reloading them costs a second a
# module). Prints one JSON object: module -> error text, for the ones that failed.
_IMPORT_ALONE = textwrap.dedent("""
    import importlib, json, sys, traceback
    packages, names = sys.argv[1].split(","), sys.argv[2:]
    failed = {}
    for name in names:
        for loaded in [m for m in sys.modules
                       if any(m == p or m.startswith(p + ".") for p in packages)]:
            del sys.modules[loaded]
        importlib.invalidate_caches()
        try:
            importlib.import_module(name)
        except BaseException:
            failed[name] = traceback.format_exc(limit=-3)
    print(json.dumps(failed))
""")


def modules_of(root: Path, packages: tuple[str, ...]) -> list[str]:
    names = []
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            names.append(".".join(parts))
    return names


def import_alone(root: Path, packages: tuple[str, ...], names: list[str]) -> dict[str, str]:
    result = subprocess.run([sys.executable, "-c", _IMPORT_ALONE, ",".join(packages), *names],
                            cwd=root, capture_output=True, text=True, timeout=240,
                            env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(root),
                                 "PYTHONDONTWRITEBYTECODE": "1"})
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_every_module_imports_alone():
    names = modules_of(ROOT, PACKAGES)
    assert "app.usecases.outbox" in names and "connectors.email.parse" in names
    assert len(names) > 50
    failed = import_alone(ROOT, PACKAGES, names)
    assert failed == {}, "\n\n".join(f"{name}:\n{error}" for name, error in failed.items())


def test_the_import_check_sees_a_module_that_needs_another_imported_first(tmp_path):
    """The checker itself: `late.b` imports only when `late.a` was imported before it (the
    kind of circle the suite once hid), and a plain loop of imports would pass it."""
    package = tmp_path / "late"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("X = 1\nfrom late.b import Y\n")
    (package / "b.py").write_text("from late.a import X\nY = 2\n")
    assert import_alone(tmp_path, ("late",), ["late.a"]) == {}
    failed = import_alone(tmp_path, ("late",), ["late.a", "late.b"])
    assert list(failed) == ["late.b"] and "ImportError" in failed["late.b"]
    plain = subprocess.run([sys.executable, "-c", "import late.a, late.b"], cwd=tmp_path,
                           capture_output=True, text=True)
    assert plain.returncode == 0  # what the check must not be fooled by


# --- the public contract -------------------------------------------------------------------

@pytest.fixture(scope="module")
def fresh_app(tmp_path_factory):
    from tests.conftest import _config

    from app import create_app

    data_dir = tmp_path_factory.mktemp("layout")
    return create_app(_config(f"sqlite:///{data_dir / 'unused.db'}", "", data_dir))


def url_map(app) -> list[str]:
    """One line per rule: "rule METHODS endpoint" (HEAD and OPTIONS left out), sorted."""
    return sorted(f"{rule.rule} {','.join(sorted(rule.methods - {'HEAD', 'OPTIONS'}))} "
                  f"{rule.endpoint}" for rule in app.url_map.iter_rules())


def test_url_map_keeps_every_url(fresh_app):
    expected = json.loads((CONTRACT / "url_map.json").read_text())
    actual = url_map(fresh_app)
    assert sorted(set(expected) - set(actual)) == []


def test_openapi_document_keeps_every_operation(fresh_app):
    expected = json.loads((CONTRACT / "openapi.json").read_text())
    response = fresh_app.test_client().get("/api/v1/openapi.json")
    assert response.status_code == 200
    actual = response.get_json()
    missing = []
    for path, operations in expected["paths"].items():
        for method, operation in operations.items():
            now = actual["paths"].get(path, {}).get(method)
            if now is None:
                missing.append(f"{method.upper()} {path}")
                continue
            assert now.get("operationId") == operation.get("operationId"), (method, path)
            assert set(operation.get("responses", {})) <= set(now.get("responses", {})), \
                (method, path)
    assert missing == []


def cli_help_texts() -> dict[str, str]:
    """`threadline [group ...] --help` for the command and every group and subcommand, as
    printed in a terminal 80 columns wide."""
    import click
    from click.testing import CliRunner

    from app.cli import main

    texts: dict[str, str] = {}
    runner = CliRunner()

    def walk(command: click.Command, path: list[str]) -> None:
        # 78: what click prints in any terminal 80 columns wide or wider
        result = runner.invoke(main, [*path, "--help"], prog_name="threadline",
                               terminal_width=78)
        assert result.exit_code == 0, result.output
        texts[" ".join(["threadline", *path])] = result.output
        if isinstance(command, click.Group):
            for name in sorted(command.commands):
                walk(command.commands[name], [*path, name])

    walk(main, [])
    return texts


def _listed_commands(text: str) -> set[str]:
    listed, inside = set(), False
    for line in text.splitlines():
        if line.strip() == "Commands:":
            inside = True
        elif inside and line.startswith("  ") and line.strip():
            listed.add(line.split()[0])
    return listed


def test_cli_keeps_every_command():
    expected = json.loads((CONTRACT / "cli_help.json").read_text())
    actual = cli_help_texts()
    assert sorted(set(expected) - set(actual)) == []
    for command, text in expected.items():
        if "Commands:" in text:  # a group: may gain commands, never lose one
            assert _listed_commands(text) <= _listed_commands(actual[command]), command
        else:
            assert actual[command] == text, command


def test_the_installed_threadline_command_prints_the_same_help():
    threadline = Path(sys.executable).parent / "threadline"
    if not threadline.exists():
        pytest.skip("the threadline script is not installed in this environment")
    expected = json.loads((CONTRACT / "cli_help.json").read_text())["threadline"]
    result = subprocess.run([str(threadline), "--help"], capture_output=True, text=True,
                            env={"PATH": "/usr/bin:/bin", "COLUMNS": "80", "LANG": "C.UTF-8"},
                            cwd=ROOT, timeout=60)
    assert result.returncode == 0, result.stderr
    assert _listed_commands(expected) <= _listed_commands(result.stdout)


# --- the layers -----------------------------------------------------------------------------

def test_import_linter_contracts_hold():
    lint_imports = Path(sys.executable).parent / "lint-imports"
    assert lint_imports.exists(), "install the test extra: pip install -e '.[test]'"
    result = subprocess.run([str(lint_imports), "--no-cache"], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


if __name__ == "__main__":
    if sys.argv[1:] == ["--write-cli-help"]:
        (CONTRACT / "cli_help.json").write_text(
            json.dumps(cli_help_texts(), indent=1, ensure_ascii=False, sort_keys=True) + "\n")
    else:
        sys.exit(__doc__)
