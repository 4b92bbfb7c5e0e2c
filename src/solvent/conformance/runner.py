"""Run conformance vectors: read case files, run each case's check, compare with tolerance.

Contract (../shared/conformance/README.md): one ``FAIL <id>: ...`` line per failing case, then
``N passed, M failed``; an unknown check fails, never skips. Malformed data fails too, with the
reason, and never stops the run: a case that is not an object, an input the check cannot read,
a file that is not JSON or has no ``cases`` list (one failure named after the file).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from ..core.errors import InvalidInput, SolventError
from .checks import CHECKS


@dataclass(frozen=True)
class CaseResult:
    id: str
    check: str
    passed: bool
    message: str = ""  # why it failed
    source_file: str = ""
    outputs: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "check": self.check, "passed": self.passed, "message": self.message,
                "file": self.source_file}


def case_files(paths: Iterable[str | Path]) -> list[Path]:
    """Every ``.json`` file named, or found below a named folder (sorted, for a stable order)."""
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*.json") if p.is_file()))
        elif path.is_file():
            files.append(path)
        else:
            raise InvalidInput("path", f"{path} is neither a file nor a folder")
    return files


def load_cases(path: Path) -> Iterator[Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"), parse_float=Decimal)  # a leading BOM is tolerated
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InvalidInput(str(path), f"not valid JSON: {error}") from None
    except OSError as error:
        raise InvalidInput(str(path), f"cannot be read: {error}") from None
    cases = data.get("cases") if isinstance(data, Mapping) else None
    if not isinstance(cases, list):
        raise InvalidInput(str(path), "expected an object with a list 'cases'")
    yield from cases


# ------------------------------------------------------------------------------- comparison


def _decimal(text: Any) -> Decimal | None:
    if isinstance(text, bool) or not isinstance(text, (str, int, Decimal)):
        return None
    try:
        value = Decimal(str(text))
    except InvalidOperation:
        return None
    return value if value.is_finite() else None


def _default_tolerance(expected: str, got: Any) -> Decimal:
    """Half a unit of the last decimal place written; exact when both sides are integers."""
    value = Decimal(expected)
    exponent = value.as_tuple().exponent
    assert isinstance(exponent, int)  # a finite decimal (checked by the caller)
    if exponent >= 0 and isinstance(got, int) and not isinstance(got, bool):
        return Decimal(0)
    return Decimal(1).scaleb(int(exponent)) / 2


def _render(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    if value is None:
        return "none"
    if isinstance(value, list):
        return "[" + ", ".join(_render(item) for item in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{key}: {_render(item)}" for key, item in value.items()) + "}"
    return str(value)


def matches(expected: Any, got: Any, tolerance: Decimal | None) -> bool:
    if isinstance(expected, bool) or expected is None:
        return expected == got
    if isinstance(got, bool) and isinstance(expected, str):  # a boolean written as text ("true")
        return expected.strip().lower() == ("true" if got else "false")
    if isinstance(expected, list):
        return isinstance(got, list) and len(got) == len(expected) and all(
            matches(e, g, tolerance) for e, g in zip(expected, got))
    if isinstance(expected, Mapping):
        return isinstance(got, Mapping) and all(
            key in got and matches(value, got[key], tolerance) for key, value in expected.items())
    want = _decimal(expected)
    if want is None or isinstance(got, str):
        # A name (an account, a status) is compared as text, even when it reads as a number
        # (account "1"): checks return names as strings and numbers as int/Decimal.
        return str(expected) == str(got)
    if isinstance(got, bool) or not isinstance(got, (int, Decimal)):
        return False
    allowed = tolerance if tolerance is not None else _default_tolerance(str(expected), got)
    return abs(Decimal(got) - want) <= allowed


def _malformed(case_id: str, name: str, message: str, source_file: str) -> CaseResult:
    return CaseResult(case_id, name, False, f"malformed case: {message}", source_file)


def run_case(case: Any, source_file: str = "") -> CaseResult:
    if not isinstance(case, Mapping):
        return _malformed("<no id>", "", f"expected an object, got {type(case).__name__}", source_file)
    case_id = str(case.get("id", "<no id>"))
    name = str(case.get("check", ""))
    handler = CHECKS.get(name)
    if handler is None:
        return CaseResult(case_id, name, False, f"unsupported check {name}", source_file)
    data = case.get("input", {})
    expect = case.get("expect", {})
    tolerances = case.get("tol", {})
    for key, value in (("input", data), ("expect", expect), ("tol", tolerances)):
        if value is not None and not isinstance(value, Mapping):
            return _malformed(case_id, name, f"'{key}' must be an object, got {type(value).__name__}", source_file)
    try:
        outputs = handler(data or {})
    except SolventError as error:
        return CaseResult(case_id, name, False, f"error {type(error).__name__}: {error}", source_file)
    except Exception as error:
        return CaseResult(case_id, name, False, f"error {type(error).__name__} (unreadable input?): {error}",
                          source_file)
    tolerances = tolerances or {}
    for field_name, expected in (expect or {}).items():
        if field_name not in outputs:
            return CaseResult(case_id, name, False, f"expected {field_name}={_render(expected)}, got nothing "
                              f"(the check does not produce {field_name})", source_file, outputs)
        tolerance = _decimal(tolerances[field_name]) if field_name in tolerances else None
        got = outputs[field_name]
        if not matches(expected, got, tolerance):
            return CaseResult(case_id, name, False, f"expected {field_name}={_render(expected)}, got {_render(got)}",
                              source_file, outputs)
    return CaseResult(case_id, name, True, "", source_file, outputs)


def run_paths(paths: Iterable[str | Path]) -> list[CaseResult]:
    """Every case of every file; a file that cannot be read as vectors counts as one failure."""
    results = []
    for path in case_files(paths):
        try:
            cases = list(load_cases(path))
        except InvalidInput as error:
            results.append(CaseResult(str(path), "", False, f"malformed file: {error}", str(path)))
            continue
        for case in cases:
            results.append(run_case(case, str(path)))
    return results
