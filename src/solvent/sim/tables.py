"""Reading a user's table (CSV, Parquet or JSON) into columns of text, for the book and price loaders.

Every cell becomes a string so that amounts reach the engine exactly (a Parquet float goes through
its shortest ``repr``, as the ledger's rule "never build a decimal from a float's binary value"
asks). An empty cell, a null and a missing key are all ``""``. Rows are numbered from 1 in the
order of the file (a CSV's header line is not a row), which is how validation names them.

Design: docs/your-data.md.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from ..core.errors import InvalidInput

Columns = dict[str, list[str]]


def cell_text(value: Any) -> str:
    """One cell as text: ``""`` for null/NaN, ``repr`` for floats (shortest round-trip), else ``str``."""
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if math.isnan(value) else repr(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def read_columns(path: Path, what: str, records_key: str | None = None) -> Columns:
    """The file at ``path`` as ``{column: [cell text, ...]}``; the format is chosen by suffix:
    ``.csv``/``.txt``, ``.parquet``/``.pq``, ``.json`` (a list of records, or an object holding
    one under ``records_key``)."""
    path = Path(path)
    if not path.is_file():
        raise InvalidInput(what, f"{path}: no such file")
    suffix = path.suffix.lower()
    try:
        if suffix in (".csv", ".txt"):
            return _read_csv(path)
        if suffix in (".parquet", ".pq"):
            return _read_parquet(path)
        if suffix == ".json":
            return _read_json(path, what, records_key)
    except InvalidInput:
        raise
    except Exception as error:  # a reader's own error (bad encoding, truncated file): said as input
        raise InvalidInput(what, f"{path} could not be read as {suffix[1:]}: {error}") from None
    raise InvalidInput(what, f"{path}: expected a .csv, .parquet or .json file")


def _read_csv(path: Path) -> Columns:
    import pandas as pd

    frame = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    return {str(name).strip(): [value.strip() for value in frame[name].tolist()] for name in frame.columns}


def _read_parquet(path: Path) -> Columns:
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    return {name: [cell_text(value) for value in table.column(name).to_pylist()] for name in table.column_names}


def _read_json(path: Path, what: str, records_key: str | None) -> Columns:
    with path.open("rb") as handle:
        data = json.load(handle)
    if isinstance(data, dict) and records_key is not None and records_key in data:
        data = data[records_key]
    if not isinstance(data, list) or not all(isinstance(record, dict) for record in data):
        key = f" or an object with {records_key!r}" if records_key else ""
        raise InvalidInput(what, f"{path}: expected a JSON list of records{key}")
    names: dict[str, None] = {}
    for record in data:
        names.update(dict.fromkeys(str(key) for key in record))
    return {name: [cell_text(record.get(name)) for record in data] for name in names}


def row_count(columns: Columns) -> int:
    return len(next(iter(columns.values()))) if columns else 0


class Problems:
    """Bad values found while validating a table: every one is named, none is acted on."""

    SHOWN = 20

    def __init__(self, source: str):
        self.source = source
        self.found: list[tuple[int, str, str]] = []

    def add(self, row: int, column: str, message: str) -> None:
        self.found.append((row, column, message))

    def raise_if_any(self) -> None:
        """One :class:`InvalidInput` naming the first bad value's row and column, and listing the others."""
        if not self.found:
            return
        row, column, message = self.found[0]
        lines = [f"row {r}, column {c}: {m}" for r, c, m in self.found[1:self.SHOWN]]
        more = len(self.found) - self.SHOWN
        if more > 0:
            lines.append(f"... and {more} more")
        rest = ("; also " + "; ".join(lines)) if lines else ""
        total = f" ({len(self.found)} bad values, nothing loaded)" if len(self.found) > 1 else " (nothing loaded)"
        raise InvalidInput(f"{self.source}[row {row}].{column}", f"{message}{total}{rest}")
