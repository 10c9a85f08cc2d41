"""The runtime install (issue 14): `pip install .` without the test extra must run every
module of app/ and connectors/; runtime code never imports a test-only package, not even
lazily inside a function (that is how `requests` slipped into outgoing webhooks)."""
from __future__ import annotations

import ast
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import ROOT

# packages of the `test` extra (and test tools) that no runtime module may import
TEST_ONLY = {"pytest", "_pytest", "aiosmtpd", "playwright", "requests", "schemathesis",
             "hypothesis", "tests"}
SOURCES = [ROOT / "app", ROOT / "connectors"]


def imported_names(path: Path) -> set[str]:
    """Top-level names of every absolute import in a file, wherever it stands."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def runtime_imports() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for source in SOURCES:
        for path in source.rglob("*.py"):
            for name in imported_names(path):
                found.setdefault(name, set()).add(str(path.relative_to(ROOT)))
    return found


def test_runtime_code_imports_no_test_only_package():
    offenders = {name: sorted(files) for name, files in runtime_imports().items()
                 if name in TEST_ONLY}
    assert not offenders, f"runtime modules import test-only packages: {offenders}"


CHECK = textwrap.dedent("""
    import importlib, importlib.util, json, pkgutil, sys
    names = json.loads(sys.argv[1])
    failed = {}
    imported = 0
    for package in ("app", "connectors"):
        root = importlib.import_module(package)
        assert "site-packages" in root.__file__, root.__file__
        for info in pkgutil.walk_packages(root.__path__, package + "."):
            try:
                importlib.import_module(info.name)
                imported += 1
            except Exception as exc:
                failed[info.name] = f"{type(exc).__name__}: {exc}"
    missing = sorted(n for n in names if importlib.util.find_spec(n) is None)
    print(json.dumps({"imported": imported, "failed": failed, "missing": missing}))
""")


@pytest.mark.slow
def test_every_module_imports_from_a_runtime_only_install(tmp_path):
    """A fresh virtualenv with `pip install <repo>` (no test extra): every module of app/
    and connectors/ imports, and every package the code names (lazy imports included) is
    installed."""
    import shutil

    # a copy of what the package is built from: an in-tree build would leave build/ behind
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for name in ("app", "connectors"):
        shutil.copytree(ROOT / name, source / name,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    venv = tmp_path / "runtime-venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    installed = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         str(source)], capture_output=True, text=True, timeout=900)
    assert installed.returncode == 0, installed.stderr[-3000:]
    stdlib = set(sys.stdlib_module_names)
    names = sorted(n for n in runtime_imports() if n not in stdlib
                   and n not in ("app", "connectors", "__future__"))
    result = subprocess.run([str(python), "-c", CHECK, json.dumps(names)], cwd=tmp_path,
                            capture_output=True, text=True, timeout=300,
                            env={"PATH": str(venv / "bin"), "HOME": str(tmp_path)})
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["failed"] == {}
    assert report["missing"] == []
    assert report["imported"] > 40
    # the test extra really is absent there
    test_only = subprocess.run([str(python), "-c", "import pytest"], capture_output=True)
    assert test_only.returncode != 0
