"""OpenPositions: a book opened in bulk ends exactly as one opened account by account."""

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from solvent.core.domain import Asset, ContractKind, Market
from solvent.core.ledger import Ledger, Position
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


# ------------------------------------------------------------------ the ledger's bulk path, row by row



def _ledger(kind: ContractKind) -> Ledger:
    ledger = Ledger()
    ledger.add_asset(Asset("USD", 6))
    ledger.add_market(Market("M", "B", "USD", "USD", kind=kind, size_decimals=2))
    ledger.open_account("maker")
    ledger.deposit("maker", "USD", "1000000")
    return ledger


_rows = st.lists(st.tuples(st.integers(1, 100_000), st.integers(-500, 500).filter(bool), st.integers(9_000, 11_000)),
                 min_size=1, max_size=30)


@settings(max_examples=150, deadline=None)
@given(rows=_rows, kind=st.sampled_from([ContractKind.LINEAR, ContractKind.INVERSE]),
       start=st.integers(-300, 300), leverage=st.booleans())
def test_open_funded_positions_equals_deposits_and_trades_row_by_row(rows, kind, start, leverage):
    """Whatever the counterparty held before (long, short, flat, with a leverage set) and however
    the rows reduce, flatten or flip it, the bulk path leaves the same integers as row by row."""
    bulk, single = _ledger(kind), _ledger(kind)
    for ledger in (bulk, single):
        ledger.open_account("seed")
        ledger.deposit("seed", "USD", "1000000")
        if start:
            buyer, seller = ("maker", "seed") if start > 0 else ("seed", "maker")
            ledger.apply_trade(buyer, seller, "M", Decimal(abs(start)).scaleb(-2), "10000")
        if leverage:
            ledger.accounts["maker"].positions.setdefault(("M", None), Position("M")).leverage = Decimal(5)
    # Sizes chosen to flatten the counterparty exactly along the way, too.
    table = [(f"t{i}", f"{cash / 100:.2f}", str(Decimal(size).scaleb(-2)), f"{price / 10:.1f}")
             for i, (cash, size, price) in enumerate(rows)]
    if start:
        table.insert(0, ("flat", "10", str(Decimal(start).scaleb(-2)), "1000.0"))
    bulk.open_funded_positions("M", "maker", table)
    for account, deposit, size, price in table:
        single.open_account(account)
        single.deposit(account, "USD", deposit)
        buyer, seller = (account, "maker") if Decimal(size) > 0 else ("maker", account)
        single.apply_trade(buyer, seller, "M", abs(Decimal(size)), price)
    assert bulk.accounts == single.accounts
    assert bulk.net_deposits == single.net_deposits
    assert bulk.conservation().holds


def test_a_bulk_open_pauses_the_cyclic_collector_and_restores_it(monkeypatch):
    """OpenPositions allocates a whole book at once: the cyclic garbage collector is paused for it
    (solvent.core.memory) and left as it was found, on or off, even when the command is refused."""
    import gc

    from solvent.core import ledger as ledger_module

    seen = []
    original = ledger_module.Ledger.open_funded_positions
    monkeypatch.setattr(ledger_module.Ledger, "open_funded_positions",
                        lambda self, *args: seen.append(gc.isenabled()) or original(self, *args))
    for enabled in (True, False):
        (gc.enable if enabled else gc.disable)()
        try:
            engine = Engine()
            venue(engine)
            engine.apply(bulk())
            assert gc.isenabled() is enabled
            with pytest.raises(CommandRejected):
                engine.apply(bulk())  # the same accounts again
            assert gc.isenabled() is enabled
        finally:
            gc.enable()
    assert seen == [False] * 4
