"""Vector files kept with the tests: venues' own numbers harvested from their public test suites and
APIs, in the format ``solvent conformance`` reads (``solvent conformance tests/vectors`` runs them).

Each file's ``notes`` say where its numbers come from and in which units; each case names its
``source`` (repo path::test). Cases whose source expects an error (a revert, a division by zero)
have no number to compare and are left out.

- ``lending_and_freqtrade_sources.json``: Compound v3 (quote, buy and absorb tests), Euler's vault
  kit (liquidation tests), freqtrade's Binance and Bybit rows;
- ``hyperliquid_api.json``: 29 liquidation prices Hyperliquid's API returned (freqtrade's tests);
- any other ``*.json`` there: its ``notes`` say.
"""

import json
from pathlib import Path

import pytest

from solvent.conformance.runner import run_case

FOLDER = Path(__file__).parent / "vectors"
FILES = sorted(FOLDER.glob("*.json"))
CASES = [(path, entry) for path in FILES for entry in json.loads(path.read_text(encoding="utf-8"))["cases"]]


def test_every_file_says_where_its_numbers_come_from():
    assert {"hyperliquid_api.json", "lending_and_freqtrade_sources.json"} <= {path.name for path in FILES}
    for path in FILES:
        data = json.loads(path.read_text(encoding="utf-8"))
        assert data["notes"] and data["cases"] and all("::" in entry["source"] for entry in data["cases"])
    ids = [entry["id"] for _, entry in CASES]
    assert len(ids) == len(set(ids)) >= 29 + 63


@pytest.mark.parametrize("path, entry", CASES, ids=[entry["id"] for _, entry in CASES])
def test_vector(path, entry):
    result = run_case(entry, str(path))
    assert result.passed, f"{entry['source']}: {result.message}"
