"""Every script the pages load parses: a syntax error (e.g. from a merge) blanks a whole
page or the site chat, and only browser tests far away would notice, by a timeout."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

STATIC = Path(__file__).resolve().parents[1] / "static"
SCRIPTS = sorted(p for p in STATIC.rglob("*.js") if "vendor" not in p.parts)


def test_there_are_scripts_to_check():
    assert len(SCRIPTS) > 20


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: str(p.relative_to(STATIC)))
def test_script_parses(script):
    node = shutil.which("node")
    assert node, "scripts/install-test-packages.sh installs Node.js"
    result = subprocess.run([node, "--check", str(script)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
