"""Validation at the edge: what the service refuses *before* anything is written to the log.

Two stages, both before the command is appended:

1. :func:`parse_command` (stateless): the body is a JSON object, no NaN/Infinity literals, no
   floats (numbers travel as decimal strings), a known ``kind``, known fields of the right JSON
   type, no missing field, amounts finite, positive where the engine needs them positive and not
   absurd (|x| <= 1e24, at most 40 significant digits), integers in 0..2**53.
2. :func:`check_references` (against the live engine, under the service lock): the venue,
   market and accounts a command names exist; a venue or account is not created twice; oracle
   time does not go backwards.

What only the engine can judge (a withdrawal larger than the free balance, an invalid preset
override, ...) is left to the engine: the command is appended, refused by the engine, and the
refusal is recorded with its reason (the log is the history of what was asked) and answered 422.
"""

from __future__ import annotations

import json
import re
from dataclasses import MISSING, fields
from decimal import Decimal, InvalidOperation
from typing import Any, NamedTuple

from ..engine import Engine
from ..engine.commands import COMMANDS, ApplyFill, Command
from ..engine.lending import registry as lending_registry

ABSURD = Decimal("1e24")
MAX_DIGITS = 40
MAX_INT = 2 ** 53
MAX_TEXT = 200  # ids, symbols, assets

POSITIVE = {"amount", "size", "price", "base_amount", "max_price", "contract_size", "debt_to_cover", "buyer_leverage",
            "seller_leverage", "leverage"}
NON_NEGATIVE = {"min_amount", "min_yield", "repay", "seize"}
POSITIVE_MAPS = {"prices"}
NON_NEGATIVE_MAPS = {"caps"}
SIGNED = {"buyer_fee", "seller_fee"}  # maker rebates are negative fees
SIGNED_OF_KIND = {"adjust_isolated_margin": {"amount"}}  # negative: margin taken out of the position
LISTS = {"deposits": "positive", "prices": "positive", "sizes": "any"}  # arrays of decimal strings (open_positions)
MAY_BE_MAX = {"amount", "debt_to_cover", "repay"}

# Fields naming accounts that must already exist (open_account/open_lending_account create theirs).
ACCOUNT_FIELDS = ("account", "buyer", "seller", "borrower", "liquidator", "absorber", "keeper", "payer")
CREATES_ACCOUNT = {"open_account", "open_lending_account"}


class EdgeError(Exception):
    """A request refused at the edge: HTTP ``status``, ``field`` (dotted path) and a message."""

    def __init__(self, status: int, field: str | None, message: str, *, index: int | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after  # seconds (429)
        self.status = status
        self.field = field
        self.message = message
        self.index = index  # which command of a batch, if it is one

    def body(self) -> dict[str, Any]:
        if self.index is not None:
            return {"error": self.message, "field": self.field, "index": self.index}
        return {"error": self.message, "field": self.field}


class _Float(str):
    """A JSON float literal, kept as text so that the path to it can be reported."""


class _Constant(str):
    """NaN, Infinity or -Infinity (Python's json accepts them; JSON does not)."""


def parse_json(raw: bytes) -> Any:
    try:
        return json.loads(raw, parse_float=_Float, parse_constant=_Constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as error:  # ValueError: also ints of > 4,300 digits
        raise EdgeError(400, None, f"malformed JSON: {error}") from None



BAD_NUMBERS = {"nan", "snan", "inf", "infinity"}


def _walk(value: Any, path: str) -> None:
    """Refuse NaN/Infinity and floats anywhere, naming where."""
    kind = type(value)
    if kind is str:
        if len(value) > 10_000:
            raise EdgeError(422, path or None, "string too long")
        if value.strip().lower().lstrip("+-") in BAD_NUMBERS:
            raise EdgeError(422, path or None, f"{value!r} is not a finite number")
    elif kind is dict:
        for key, item in value.items():
            if type(item) is str and len(item) <= 10_000 and item.strip().lower().lstrip("+-") not in BAD_NUMBERS:
                continue  # the common case, without a call and a path
            _walk(item, f"{path}.{key}" if path else str(key))
    elif kind is list:
        for index, item in enumerate(value):
            _walk(item, f"{path}[{index}]")
    elif kind is int:
        if abs(value) > MAX_INT:
            raise EdgeError(422, path or None, f"integer out of range (|x| <= 2**53): {value}")
    elif kind is _Constant:
        raise EdgeError(422, path or None, f"{value} is not a number: pass finite decimal strings")
    elif kind is _Float:
        raise EdgeError(422, path or None, f"floats are not accepted ({value}): pass the decimal string \"{value}\"")


# A plain decimal (at most 20 integer and 18 fractional digits): finite, |x| < 1e24, fewer than 40
# digits and never negative, so only its sign is left to check (the common case, without Decimal).
PLAIN_DECIMAL = re.compile(r"[0-9]{1,20}(?:\.[0-9]{1,18})?")


def _decimal(value: Any, field: str, *, sign: str) -> None:
    if not isinstance(value, str):
        raise EdgeError(422, field, f"expected a decimal string, got {type(value).__name__}")
    if PLAIN_DECIMAL.fullmatch(value):
        if sign == "positive" and not value.strip("0.").strip("."):
            raise EdgeError(422, field, f"must be positive, got {value!r}")
        return
    if value.strip().lower() == "max" and field.split(".")[0] in MAY_BE_MAX:
        return
    try:
        number = Decimal(value.strip().replace("_", ""))
    except InvalidOperation:
        raise EdgeError(422, field, f"not a decimal number: {value!r}") from None
    if not number.is_finite():
        raise EdgeError(422, field, f"must be finite, got {value!r}")
    if abs(number) > ABSURD or len(number.as_tuple().digits) > MAX_DIGITS:
        raise EdgeError(422, field, f"absurd value {value!r} (|x| <= 1e24, at most {MAX_DIGITS} digits)")
    if sign == "positive" and number <= 0:
        raise EdgeError(422, field, f"must be positive, got {value!r}")
    if sign == "non_negative" and number < 0:
        raise EdgeError(422, field, f"must not be negative, got {value!r}")


def _text(value: Any, field: str, *, nullable: bool = False) -> None:
    if value is None and nullable:
        return
    if not isinstance(value, str):
        raise EdgeError(422, field, f"expected a string, got {type(value).__name__}")
    if len(value) > MAX_TEXT:
        raise EdgeError(422, field, f"longer than {MAX_TEXT} characters")


class _Field(NamedTuple):
    """What :func:`parse_command` checks of one field of a command class."""

    name: str
    base: str  # the annotation without "| None": "str", "int", "bool", "Mapping[...]", "tuple[...]"
    nullable: bool
    required: bool
    sign: str | None  # a decimal string: "positive", "non_negative" or "any"
    map_sign: str | None  # a map of decimal strings: "positive" or "non_negative"
    list_sign: str | None  # an array of decimal strings: "positive" or "any"


_SPECS: dict[type, tuple[dict[str, _Field], tuple[_Field, ...]]] = {}


def _spec(cls: type[Command]) -> tuple[dict[str, _Field], tuple[_Field, ...]]:
    """The fields of a command class, read once (``fields()`` and annotations are slow per request)."""
    found = _SPECS.get(cls)
    if found is None:
        compiled = []
        for f in fields(cls):
            annotation = str(f.type)
            name = f.name
            base = annotation.replace("| None", "").strip()
            compiled.append(_Field(
                name, base, annotation.endswith("| None"),
                f.default is MISSING and f.default_factory is MISSING,
                "any" if name in SIGNED_OF_KIND.get(cls.kind, ()) else
                "positive" if name in POSITIVE else "non_negative" if name in NON_NEGATIVE
                else "any" if name in SIGNED else None,
                None if not base.startswith("Mapping") else
                "positive" if name in POSITIVE_MAPS else "non_negative" if name in NON_NEGATIVE_MAPS else None,
                LISTS.get(name) if base.startswith("tuple") else None))
        found = _SPECS[cls] = ({f.name: f for f in compiled}, tuple(compiled))
    return found


def _check_type(spec: _Field, value: Any) -> None:
    base, name = spec.base, spec.name
    if value is None and spec.nullable:
        return
    if base == "str":
        _text(value, name)
    elif base == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise EdgeError(422, name, f"expected an integer, got {type(value).__name__}")
        if value < 0:
            raise EdgeError(422, name, f"must not be negative, got {value}")
    elif base == "bool":
        if not isinstance(value, bool):
            raise EdgeError(422, name, f"expected true or false, got {type(value).__name__}")
    elif base.startswith("Mapping"):
        if not isinstance(value, dict):
            raise EdgeError(422, name, f"expected an object, got {type(value).__name__}")
        if base == "Mapping[str, str]":
            for key, item in value.items():
                _text(key, f"{name}.{key}")
                if not isinstance(item, str):
                    raise EdgeError(422, f"{name}.{key}", f"expected a decimal string, got {type(item).__name__}")
    elif base.startswith("tuple"):
        if not isinstance(value, list):
            raise EdgeError(422, name, f"expected an array, got {type(value).__name__}")
        for index, item in enumerate(value):
            _text(item, f"{name}[{index}]")


def parse_command(data: Any) -> Command:
    """A command from a decoded JSON body, or :class:`EdgeError` naming the offending field."""
    try:
        _walk(data, "")
    except RecursionError:
        raise EdgeError(422, None, "nested too deeply") from None
    if not isinstance(data, dict):
        raise EdgeError(422, None, "the body must be a JSON object: {\"kind\": ..., ...}")
    kind = data.get("kind")
    if kind not in COMMANDS:
        raise EdgeError(422, "kind", f"unknown command {kind!r} (known: {', '.join(sorted(COMMANDS))})")
    if kind in ("register_key", "revoke_key"):
        raise EdgeError(422, "kind", f"{kind} is logged by /v1/keys, not submitted")
    cls = COMMANDS[kind]
    by_name, spec = _spec(cls)
    for name in data:
        if name != "kind" and name not in by_name:
            raise EdgeError(422, name, f"not a field of {kind}")
    for field in spec:
        name = field.name
        if name not in data:
            if field.required:
                raise EdgeError(422, name, f"missing (required by {kind})")
            continue
        value = data[name]
        if not (field.base == "str" and type(value) is str and len(value) <= MAX_TEXT):  # else: a valid text
            _check_type(field, value)
        if value is None:
            continue
        if field.sign is not None:
            _decimal(value, name, sign=field.sign)
        elif field.map_sign is not None:
            if not value:
                raise EdgeError(422, name, "empty")
            for key, item in value.items():
                _decimal(item, f"{name}.{key}", sign=field.map_sign)
        elif field.list_sign is not None:
            for index, item in enumerate(value):
                _decimal(item, f"{name}[{index}]", sign=field.list_sign)
    try:
        return cls(**{key: tuple(value) if type(value) is list else value
                      for key, value in data.items() if key != "kind"})
    except TypeError as error:  # pragma: no cover - the checks above cover the signature
        raise EdgeError(422, None, str(error)) from None


def venue_exists(engine: Engine, name: str) -> bool:
    return name in engine.venues or name in lending_registry(engine)


class _Fields:
    """A command's fields read as a mapping (``get`` and ``[]``), without copying them."""

    __slots__ = ("command",)

    def __init__(self, command: Command) -> None:
        self.command = command

    def get(self, name: str, default: Any = None) -> Any:
        return getattr(self.command, name, default)

    def __getitem__(self, name: str) -> Any:
        return getattr(self.command, name)


_ACCOUNT_FIELDS_OF: dict[type, tuple[str, ...] | None] = {}


def _account_fields(cls: type) -> tuple[str, ...] | None:
    """The fields of a command class that name an existing account (cached per class); None if
    it also has a list of them (``accounts``), which only the general checks read."""
    found: tuple[str, ...] | None = _ACCOUNT_FIELDS_OF.get(cls, ())
    if found == ():
        names = {f.name for f in fields(cls)}
        found = _ACCOUNT_FIELDS_OF[cls] = (None if "accounts" in names
                                          else tuple(name for name in ACCOUNT_FIELDS if name in names))
    return found


def check_references(engine: Engine, command: Command) -> None:
    """Unknown ids (404), duplicates and out-of-order time (409), against the live engine."""
    if isinstance(command, ApplyFill):  # the hot path: let a fill whose ids all exist through at once
        venue = engine.venues.get(command.venue)
        names = _account_fields(type(command))
        if venue is not None and names is not None and command.market in venue.markets:
            accounts = engine.ledger.accounts
            for name in names:
                value = getattr(command, name)
                if isinstance(value, str) and value not in accounts:
                    break
            else:
                return
    _check_references(engine, command)  # the general checks (and the error of a fill that fails them)


def _check_references(engine: Engine, command: Command) -> None:
    data = _Fields(command)
    kind = command.kind
    venue = data.get("venue")
    if kind == "create_venue":
        if venue_exists(engine, venue):
            raise EdgeError(409, "venue", f"venue {venue!r} already exists")
    elif venue is not None and not venue_exists(engine, venue):
        raise EdgeError(404, "venue", f"unknown venue {venue!r}")
    if kind == "fund_insurance" and data.get("backstop") is not None and data["backstop"] not in engine.backstops:
        raise EdgeError(404, "backstop", f"unknown backstop {data['backstop']!r}")
    if kind == "create_backstop":
        for index, name in enumerate(data["venues"]):
            if name not in engine.venues:
                raise EdgeError(404, f"venues[{index}]", f"unknown venue {name!r}")
    if kind in ("apply_fill", "update_oracle", "adjust_isolated_margin", "set_isolated_leverage") and venue in engine.venues:
        markets = engine.venues[venue].markets
        symbols = [(f"prices.{s}", s) for s in data["prices"]] if kind == "update_oracle" else [("market", data["market"])]
        for field, symbol in symbols:
            if symbol not in markets:
                raise EdgeError(404, field, f"unknown market {symbol!r} of {venue}")
    if kind in ("update_oracle", "update_prices", "advance_time"):
        now = engine.timestamp if venue is None else engine.time_of(venue)  # each venue keeps its own clock
        if data["timestamp"] < now:
            raise EdgeError(409, "timestamp", f"{data['timestamp']} is before the engine's time {now}")
    accounts = engine.ledger.accounts
    if kind in CREATES_ACCOUNT:
        if kind == "open_account" and data["account"] in accounts:
            raise EdgeError(409, "account", f"account {data['account']!r} already exists")
    else:
        for field in ACCOUNT_FIELDS:
            name = data.get(field)
            if isinstance(name, str) and name not in accounts:
                raise EdgeError(404, field, f"unknown account {name!r}")
        for index, name in enumerate(data.get("accounts") or ()):
            if name not in accounts:
                raise EdgeError(404, f"accounts[{index}]", f"unknown account {name!r}")
