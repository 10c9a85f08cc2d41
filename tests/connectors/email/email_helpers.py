"""Shared constants and helpers of the email tests.

A module of its own (not conftest) so that test files can import it by a name that is
unique in the whole suite: several test folders have a conftest.py.
"""
from __future__ import annotations

from pathlib import Path

from tests.corpus import shared_corpus

ROOT = Path(__file__).resolve().parents[3]
FIXTURES = ROOT / "tests" / "fixtures" / "email"
SHARED_CORPUS = shared_corpus("email")  # shared/ sits beside the repo; None when absent

BASE_SETTINGS = {
    "from_address": "support@shop.example.test",
    "from_name": "Shop Support",
}


def sample(name: str) -> bytes:
    """Bytes of tests/fixtures/email/<name> (synthetic ones as "synthetic/<name>")."""
    return (FIXTURES / name).read_bytes()
