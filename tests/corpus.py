"""Where the shared corpus of real channel payloads lives, for the corpus tests.

`shared/fixtures/<kind>/` sits beside the checkout: in the parent directory of the repository
root (`/work/main` → `/work/shared`), or further up for a git worktree nested deeper
(`/work/wt/conn` → `/work/shared`). `THREADLINE_SHARED_FIXTURES` names the `fixtures` folder
explicitly. On CI (env `CI` set) a missing corpus fails the run instead of skipping it, so a
moved folder can never turn the corpus tests silently green.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def shared_corpus(kind: str) -> Path | None:
    """The folder of shared samples of one channel kind, or None when absent."""
    explicit = os.environ.get("THREADLINE_SHARED_FIXTURES")
    bases = [Path(explicit)] if explicit else [parent / "shared" / "fixtures"
                                               for parent in ROOT.parents]
    for base in bases:
        if (base / kind).is_dir():
            return base / kind
    return None


def require_shared_corpus(kind: str) -> Path:
    """The shared corpus folder; on CI a failure when absent, elsewhere a skip."""
    folder = shared_corpus(kind)
    if folder is None:
        message = (f"shared corpus shared/fixtures/{kind} not found beside {ROOT} "
                   "(or set THREADLINE_SHARED_FIXTURES)")
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return folder
