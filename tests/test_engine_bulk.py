"""OpenPositions: a book opened in bulk ends exactly as one opened account by account."""

from decimal import Decimal

import pytest

from solvent.engine import CommandRejected, Engine
from solvent.engine import commands as c
from solvent.store.snapshots import state_digest

ROWS = [("a", "1000", "0.5", "60000"), ("b", "250.5", "-0.25", "60010"), ("c", "90", "0.031", "59990"),
        ("d", "5000", "-1.2", "60000")]


def venue(engine: Engine, preset="binance", market="BTCUSDT", settle="USDT") -> None:
    engine.apply(c.CreateVenue("v", preset))
    engine.apply(c.OpenAccount("maker", "v"))
    engine.apply(c.Deposit("maker", settle, "100000000"))
    engine.apply(c.UpdateOracle("v", {market: "60000"}, 1))


def bulk(rows=ROWS, market="BTCUSDT") -> c.OpenPositions:
    accounts, deposits, sizes, prices = zip(*rows)
    return c.OpenPositions("v", market, "maker", accounts, deposits, sizes, prices)


def one_by_one(engine: Engine, rows=ROWS, market="BTCUSDT", settle="USDT") -> None:
    for account, deposit, size, price in rows:
        engine.apply(c.OpenAccount(account, "v"))
        engine.apply(c.Deposit(account, settle, deposit))
        buyer, seller = (account, "maker") if Decimal(size) > 0 else ("maker", account)
        engine.apply(c.ApplyFill("v", market, buyer, seller, str(abs(Decimal(size))), price))


@pytest.mark.parametrize("preset,market,settle", [("binance", "BTCUSDT", "USDT"), ("bitmex", "XBTUSD", "XBT"),
                                                   ("hyperliquid", "BTC", "USDC")])
def test_bulk_ledger_equals_account_by_account(preset, market, settle):
    rows = ROWS if preset != "bitmex" else [(a, str(Decimal(d) / 60000)[:10], str(int(Decimal(s) * 60000)), p)
                                            for a, d, s, p in ROWS]
    bulk_engine, single = Engine(), Engine()
    venue(bulk_engine, preset, market, settle)
    venue(single, preset, market, settle)
    events = bulk_engine.apply(bulk(rows, market))
    one_by_one(single, rows, market, settle)
    assert events[0].kind == "positions_opened" and events[0].accounts == len(rows)
    for name in ("maker", *(row[0] for row in rows)):
        assert bulk_engine.ledger.accounts[name] == single.ledger.accounts[name]
    assert bulk_engine.holders == single.holders
    assert bulk_engine.conservation().holds
    # The next price move treats both books alike.
    move = c.UpdateOracle("v", {market: "52000"}, 2)
    assert [e.to_dict() for e in bulk_engine.apply(move)] == [e.to_dict() for e in single.apply(move)]


def test_a_row_below_maintenance_is_liquidated_in_the_same_command():
    engine = Engine()
    venue(engine)
    engine.apply(c.FundInsurance("USDT", "100000", venue="v"))
    events = engine.apply(bulk([("ok", "1000", "0.1", "60000"), ("thin", "100", "0.5", "61000")]))
    kinds = [(event.kind, getattr(event, "account", None)) for event in events]
    assert ("liquidation_started", "thin") in kinds
    assert not any(account == "ok" for kind, account in kinds if kind != "positions_opened")
    assert engine.conservation().holds


@pytest.mark.parametrize("change,field", [
    ({"accounts": ("a", "a")}, "rows[1].account"),
    ({"accounts": ("a", "maker")}, "rows[1].account"),
    ({"deposits": ("1000", "-1")}, "rows[1].deposit"),
    ({"deposits": ("1000", "nan")}, "rows[1].deposit"),
    ({"sizes": ("0.5", "0")}, "rows[1].size"),
    ({"sizes": ("0.5", "0.0001")}, "rows[1].size"),
    ({"prices": ("60000", "0")}, "rows[1].price"),
    ({"accounts": ("a",)}, "accounts"),
    ({"accounts": ("a", "x/y")}, "accounts"),
    ({"counterparty": "nobody"}, None),
    ({"market": "NOPE"}, None),
])
def test_bad_rows_are_refused_and_change_nothing(change, field):
    engine = Engine()
    venue(engine)
    before = state_digest(engine)
    command = c.OpenPositions(**{**bulk(ROWS[:2]).__dict__, **change})
    with pytest.raises(CommandRejected) as refused:
        engine.apply(command)
    if field is not None:
        assert refused.value.field == field
    assert state_digest(engine) == before
