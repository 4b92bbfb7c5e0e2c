"""The engine is total: any command, with any values, gives events or a CommandRejected.

Hypothesis throws commands of every kind at a venue of every preset (perpetual and lending), with
fields drawn from sane values and from hostile ones: the whole decimal exponent range, huge
integers, control characters, wrong types, time jumps. After each command: no exception but
CommandRejected, a refusal changed nothing (state digest), value is conserved. At the end a
fresh engine replaying the same commands gives the same outcomes and the same state.
"""

from __future__ import annotations

import os
from dataclasses import fields
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from solvent.engine import CommandRejected, Engine
from solvent.engine import commands as c
from solvent.engine import lending as L
from solvent.engine.commands import COMMANDS
from solvent.presets import load_preset
from solvent.store.snapshots import state_digest

PERP_PRESETS = ("binance", "bitmex", "bybit", "hyperliquid", "dydx_v4", "drift_v2", "gmx_v2")
LENDING_PRESETS = ("aave_v3", "compound_v3", "maker", "liquity_v1", "euler_v2", "morpho_blue")
LENDING_KINDS = {cls.kind for cls in COMMANDS.values() if cls.__module__ == L.__name__} | {"deposit", "withdraw",
                                                                                             "advance_time"}
PERP_KINDS = {kind for kind in COMMANDS if kind not in LENDING_KINDS} | {"deposit", "withdraw", "advance_time"}

ACCOUNTS = ("alice", "bob", "carol")

hostile_decimals = st.one_of(
    st.builds(lambda mantissa, exponent: f"{mantissa}E{exponent}", st.integers(-99, 99),
              st.integers(-999_999_999, 999_999_999)),
    st.sampled_from(["1E-999999999", "1E+24", "1E-400", "-1", "0", "NaN", "-Infinity", "sNaN", "1e999999",
                     "9" * 5000, "0." + "0" * 300 + "1", "", " ", "1_000", "\x00", "1\x00", "max", "MAX"]),
    st.decimals(allow_nan=False, allow_infinity=False).map(str),
)
hostile_ints = st.one_of(st.integers(), st.integers(-(2 ** 200), 2 ** 200), st.just(10 ** 5000),
                         st.sampled_from([2 ** 53, 2 ** 63, 2 ** 64, -1, 0]))
hostile_text = st.one_of(st.text(max_size=8), st.sampled_from(["\x00", "a/b", "/", "\n", "bob\x07", "x" * 300]))
hostile_any = st.one_of(hostile_decimals, hostile_ints, hostile_text, st.none(), st.booleans(),
                        st.floats(allow_nan=True), st.lists(st.integers(), max_size=3),
                        st.dictionaries(st.text(max_size=4), hostile_decimals, max_size=2))

sane_decimals = st.sampled_from(["0.001", "0.5", "1", "2", "10", "100", "1000", "30000", "65000", "20", "125"])


def _setup(preset: str) -> tuple[Engine, list, dict[str, list[str]]]:
    """A venue of ``preset`` with three funded accounts, priced, and (perpetuals) a position."""
    engine = Engine()
    data = load_preset(preset)
    commands: list = [c.CreateVenue("v", preset)]
    lending = data.data.get("kind") == "lending"
    names = {"venue": ["v"], "account": list(ACCOUNTS)}
    if lending:
        engine.apply(commands[0])
        venue = L.lending_venue(engine, "v")
        assets = sorted(venue.assets())
        names.update(asset=assets, market=list(venue.market_names()) or [""])
        commands += [L.OpenLendingAccount(account, "v") for account in ACCOUNTS]
        commands.append(L.UpdatePrices("v", {asset: "1" for asset in assets}, 10))
        commands += [c.Deposit(account, asset, "1000") for account in ACCOUNTS for asset in assets]
        rest = commands[1:]
    else:
        symbols = sorted(data.markets)
        settle = data.markets[symbols[0]].settle
        names.update(asset=[settle], market=symbols)
        commands += [c.OpenAccount(account, "v") for account in ACCOUNTS]
        commands += [c.Deposit(account, settle, "100000") for account in ACCOUNTS]
        commands += [c.FundInsurance(settle, "100000", venue="v"), c.Deposit("v/book", settle, "1000000")]
        commands.append(c.UpdateOracle("v", {symbols[0]: "100"}, 10))
        commands.append(c.ApplyFill("v", symbols[0], "alice", "bob", "1", "100"))
        rest = commands
    for command in rest:
        _outcome(engine, command)
    return engine, commands, names


def _outcome(engine: Engine, command) -> object:
    try:
        return [event.to_dict() for event in engine.apply(command)]
    except CommandRejected as rejected:
        return ("rejected", rejected.reason, rejected.field)


def _sane(name: str, base: str, names: dict[str, list[str]]):
    if name in ("venue",):
        return st.sampled_from(names["venue"])
    if name in ("account", "buyer", "seller", "borrower", "liquidator", "absorber", "keeper", "payer",
                "counterparty"):
        return st.sampled_from(names["account"])
    if name in ("market", "symbol"):
        return st.sampled_from(names["market"])
    if name in ("asset", "settle", "collateral_asset", "debt_asset"):
        return st.sampled_from(names["asset"])
    if name == "prices":
        keys = names["asset"] if "market" not in names or names["market"] == [""] else names["market"]
        return st.dictionaries(st.sampled_from(keys + names["asset"]), st.one_of(sane_decimals, hostile_decimals),
                               min_size=1, max_size=2)
    if name == "timestamp":
        return st.one_of(st.integers(0, 10 ** 6), st.just(2 ** 53), st.just(253402300799))
    if name in ("accounts", "venues"):
        return st.lists(st.sampled_from(names["account"]), max_size=2).map(tuple)
    if base.startswith("int"):
        return st.integers(0, 5)
    if base.startswith("bool"):
        return st.booleans()
    if base.startswith("Mapping"):
        return st.just({})
    if base.startswith("tuple"):
        return st.lists(sane_decimals, max_size=2).map(tuple)
    if "margin_mode" in name:
        return st.sampled_from(["cross", "isolated"])
    if "leverage" in name:
        return st.one_of(st.none(), sane_decimals)
    if name.endswith("hedge_side"):
        return st.one_of(st.none(), st.sampled_from(["long", "short"]))
    return sane_decimals


@st.composite
def hostile_command(draw, kinds: list[str], names: dict[str, list[str]]):
    cls = COMMANDS[draw(st.sampled_from(kinds))]
    values = {}
    for spec in fields(cls):
        sane = _sane(spec.name, str(spec.type), names)
        values[spec.name] = draw(st.one_of(sane, sane, hostile_any))  # two in three sane
    return cls(**values)


def _check_conserved(engine: Engine) -> None:
    report = engine.conservation()
    assert report.holds, report.describe()
    for name, lending in L.all_lending_conservation(engine).items():
        assert lending.holds, f"{name}:\n{lending.describe()}"


def _throw(preset: str, data) -> None:
    engine, setup, names = _setup(preset)
    lending = preset in LENDING_PRESETS
    kinds = sorted((LENDING_KINDS if lending else PERP_KINDS) - {"create_venue", "create_backstop"})
    commands = data.draw(st.lists(hostile_command(kinds, names), min_size=1, max_size=8))
    outcomes = []
    for command in commands:
        before = state_digest(engine)
        try:
            outcome = _outcome(engine, command)
        except Exception as error:
            pytest.fail(f"{command!r} raised {type(error).__name__}: {error}")
        if isinstance(outcome, tuple):
            assert state_digest(engine) == before, f"the refused {command!r} changed the state"
        _check_conserved(engine)
        outcomes.append(outcome)
    replayed, _, _ = _setup(preset)
    assert [_outcome(replayed, command) for command in commands] == outcomes
    assert state_digest(replayed) == state_digest(engine)


@pytest.mark.parametrize("preset", PERP_PRESETS + LENDING_PRESETS)
@settings(max_examples=int(os.environ.get("SOLVENT_TOTAL_EXAMPLES", "12")), deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_hostile_commands_are_refused_or_applied_never_raise(preset: str, data) -> None:
    _throw(preset, data)


def test_the_poison_request_of_issue_14_is_a_clean_rejection() -> None:
    engine, _, names = _setup("binance")
    symbol = names["market"][0]
    engine.apply(c.ApplyFill("v", symbol, "carol", "bob", "1", "100", buyer_margin_mode="isolated",
                             buyer_leverage="10"))
    before = state_digest(engine)
    for command, field in [
        (c.SetIsolatedLeverage("v", "carol", symbol, "1E-999999999"), "leverage"),
        (c.ApplyFill("v", symbol, "carol", "bob", "1", "100", buyer_margin_mode="isolated",
                     buyer_leverage="1E-999999999"), "buyer_leverage"),
        (c.UpdateOracle("v", {symbol: "1E-400"}, 20), f"prices.{symbol}"),
        (c.UpdateOracle("v", {symbol: "1E+24"}, 20), f"prices.{symbol}"),
        (c.AdvanceTime(2 ** 53), "timestamp"),
        (c.Deposit("alice", "USDT", "9" * 5000), "amount"),
    ]:
        with pytest.raises(CommandRejected) as refused:
            engine.apply(command)
        assert refused.value.field == field, (command, refused.value)
        assert "out of range" in refused.value.reason or "at most" in refused.value.reason, refused.value
        assert state_digest(engine) == before


def test_an_internal_error_after_a_change_is_rolled_back(monkeypatch) -> None:
    """A defect that raises half-way through a command (after changing the ledger) is refused and
    the state is put back exactly: the digest, and later commands, are those of a clean run."""
    engine, _, names = _setup("binance")
    symbol = names["market"][0]
    before = state_digest(engine)
    original = engine._handlers[c.Deposit]

    def half_then_crash(command):
        original(command)  # the deposit is credited...
        raise ZeroDivisionError("a defect")  # ...then something breaks

    engine._handlers[c.Deposit] = half_then_crash
    with pytest.raises(CommandRejected) as refused:
        engine.apply(c.Deposit("alice", "USDT", "5"))
    assert "ZeroDivisionError" in refused.value.reason and "nothing changed" in refused.value.reason
    assert state_digest(engine) == before
    # The engine keeps working, bound to itself (not to the engine used to rebuild it).
    engine.apply(c.Deposit("alice", "USDT", "5"))
    engine.apply(c.UpdateOracle("v", {symbol: "90"}, 30))
    clean, _, _ = _setup("binance")
    clean.apply(c.Deposit("alice", "USDT", "5"))
    clean.apply(c.UpdateOracle("v", {symbol: "90"}, 30))
    assert state_digest(clean) == state_digest(engine)
    assert engine.balance("alice", "USDT") == clean.balance("alice", "USDT") != Decimal(0)


def test_one_venues_feeder_cannot_move_another_venues_clock() -> None:
    engine = Engine()
    for venue in ("a", "b"):
        engine.apply(c.CreateVenue(venue, "binance"))
    engine.apply(c.UpdateOracle("a", {"BTCUSDT": "100"}, 253402300799))  # venue a's feeder jumps to year 9999
    events = engine.apply(c.UpdateOracle("b", {"BTCUSDT": "100"}, 20))  # b's time is its own
    assert events[0].timestamp == 20
    assert engine.time_of("a") == 253402300799 and engine.time_of("b") == 20
    engine.apply(c.AdvanceTime(30, venue="b"))
    with pytest.raises(CommandRejected):
        engine.apply(c.UpdateOracle("b", {"BTCUSDT": "100"}, 25))  # still monotone per venue
    with pytest.raises(CommandRejected) as refused:
        engine.apply(c.UpdateOracle("a", {"BTCUSDT": "100"}, 253402300800))  # past year 9999
    assert refused.value.field == "timestamp"
