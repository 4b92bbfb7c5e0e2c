"""Source quotes → index and mark in the engine (engine/pricing.py), guards and their replay."""

import json
from decimal import Decimal

import pytest

from solvent.engine import CommandRejected, Engine
from solvent.engine import commands as c
from solvent.engine.commands import command_from_dict
from solvent.engine.pricing import UpdateSourceQuotes
from solvent.store.snapshots import dump_engine, load_engine, state_digest


def quotes(*prices, at=0, sources=("binance", "okx", "coinbase")):
    return [{"source": s, "price": str(p), "timestamp": at} for s, p in zip(sources[:len(prices)], prices, strict=True)]


def setup_commands(preset="binance", overrides=None):
    return [c.CreateVenue("v", preset, overrides or {}), c.Deposit("v/book", "USDT", "100000000"),
            c.OpenAccount("t", "v"), c.Deposit("t", "USDT", "1000"),
            c.OpenAccount("mm", "v"), c.Deposit("mm", "USDT", "1000000"),
            UpdateSourceQuotes("v", {"BTCUSDT": quotes(60000, 60000, 60000, at=1)}, 1),
            c.ApplyFill("v", "BTCUSDT", "t", "mm", "0.5", "60000")]


def run(commands):
    engine = Engine()
    out = [[ev.to_dict() for ev in engine.apply(cmd)] for cmd in commands]
    return engine, out


def test_binance_index_and_mark_follow_the_preset_rule():
    engine, _ = run(setup_commands())
    book = {"BTCUSDT": {"bid": "60090", "ask": "60110", "last": "60200", "funding_rate": "0.0001"}}
    events = engine.apply(UpdateSourceQuotes("v", {"BTCUSDT": quotes(60000, 60010, 59990, at=10)}, 10, book))
    computed = next(ev for ev in events if ev.kind == "mark_computed")
    assert Decimal(computed.index) == Decimal(60000)  # equal weights: the mean
    price1 = Decimal(60000) * (1 + Decimal("0.0001") * (28800 - 10) / 28800)
    price2 = Decimal(60000) + Decimal(100)  # one basis sample in the 30 s window: mid − index
    assert Decimal(computed.mark) == sorted([price1, price2, Decimal(60200)])[1]
    assert engine.marks["v/BTCUSDT"] == Decimal(computed.mark)
    assert any(ev.kind == "oracle_price_updated" for ev in events)


def test_a_manipulated_source_inside_the_cap_moves_the_mark_only_within_the_cap():
    engine, _ = run(setup_commands())
    fair = Decimal(60000)
    for at, pumped in ((5, 61500), (6, 90000), (7, 600000)):  # inside the 3% cap, then far beyond it
        events = engine.apply(UpdateSourceQuotes("v", {"BTCUSDT": quotes(60000, 60000, pumped, at=at)}, at))
        mark = Decimal(next(ev for ev in events if ev.kind == "mark_computed").mark)
        assert mark > fair  # the pump does move it ...
        assert abs(mark - fair) <= fair * Decimal("0.03")  # ... but never beyond the deviation cap
    # a pump far beyond the cap is capped at median·1.03: one third of it in the mean
    assert mark == (60000 + 60000 + Decimal(60000) * Decimal("1.03")) / 3


def test_stale_sources_trip_the_guard_and_hold_the_mark():
    engine, _ = run(setup_commands())
    events = engine.apply(UpdateSourceQuotes("v", {"BTCUSDT": quotes(50000, 50000, 50000, at=1)}, 400))
    kinds = [ev.kind for ev in events]
    assert "oracle_guard_tripped" in kinds and "oracle_price_updated" not in kinds
    tripped = next(ev for ev in events if ev.kind == "oracle_guard_tripped")
    assert tripped.guard == "stale" and "399s ago" in tripped.reason
    assert engine.marks["v/BTCUSDT"] == Decimal(60000)  # a stale price never liquidates anyone


def test_circuit_breaker_pauses_liquidations_and_the_pause_ends_by_rule_and_replays():
    overrides = {"oracle": {"circuit_breaker": "0.03", "resume_after_seconds": 60}}
    commands = [
        *setup_commands(overrides=overrides),
        UpdateSourceQuotes("v", {"BTCUSDT": quotes(57000, 57000, 57000, at=10)}, 10),  # a 5% drop: breaker
        c.AdvanceTime(20),
        UpdateSourceQuotes("v", {"BTCUSDT": quotes(57000, 57010, 56990, at=30)}, 30),  # clean, but too soon
        UpdateSourceQuotes("v", {"BTCUSDT": quotes(57000, 57000, 57000, at=80)}, 80),  # clean, 70 s after: clears
    ]
    engine, out = run(commands)
    drop, _, soon, clear = out[-4:]
    kinds = [ev["kind"] for ev in drop]
    assert "oracle_guard_tripped" in kinds and "position_liquidated" not in kinds
    assert any(ev["kind"] == "liquidation_paused" and "circuit_breaker" in ev["reason"] for ev in drop)
    assert engine.marks["v/BTCUSDT"] == Decimal(57000)  # the mark moved: only liquidations wait
    assert not any(ev["kind"] in ("oracle_guard_cleared", "position_auto_deleveraged") for ev in soon)
    kinds = [ev["kind"] for ev in clear]  # the account is bankrupt at 57000: closed by ADL once the guard clears
    assert kinds.index("oracle_guard_cleared") < kinds.index("position_auto_deleveraged") < kinds.index(
        "liquidation_ended")
    # the same commands on a fresh engine give the same events and the same state, also through JSON
    again, out_again = run([command_from_dict(json.loads(json.dumps(cmd.to_dict()))) for cmd in commands])
    assert out_again == out and state_digest(again) == state_digest(engine)


def test_hold_mark_keeps_the_last_good_mark_while_guarded():
    engine, _ = run(setup_commands(overrides={"oracle": {"circuit_breaker": "0.03", "guard_action": "hold_mark"}}))
    events = engine.apply(UpdateSourceQuotes("v", {"BTCUSDT": quotes(57000, 57000, 57000, at=10)}, 10))
    computed = next(ev for ev in events if ev.kind == "mark_computed")
    assert computed.mark == "57000" and computed.applied is False
    assert engine.marks["v/BTCUSDT"] == Decimal(60000)


def test_hyperliquid_mark_is_the_median_of_its_three_components():
    engine = Engine()
    engine.apply(c.CreateVenue("h", "hyperliquid"))
    symbol = next(iter(engine.venues["h"].markets))
    sources = ("binance", "okx", "bybit")
    book = {symbol: {"bid": "100", "ask": "102", "last": "104", "cex_perp_mids": {"binance": "99", "okx": "98"}}}
    events = engine.apply(UpdateSourceQuotes("h", {symbol: quotes(100, 100, 100, sources=sources, at=5)}, 5, book))
    computed = next(ev for ev in events if ev.kind == "mark_computed")
    # component 1: oracle + basis (no time observed yet: today's basis, 101 − 100); 2: median(100, 102, 104);
    # 3: weighted median of CEX mids (99 weight 3, 98 weight 2) = 99
    assert Decimal(computed.mark) == sorted([Decimal(101), Decimal(102), Decimal(99)])[1]
    # without book or CEX mids there is no mark to stand behind: a stale guard, not a made-up price
    later = engine.apply(UpdateSourceQuotes("h", {symbol: quotes(100, 100, 100, sources=sources, at=6)}, 6))
    assert any(ev.kind == "oracle_guard_tripped" and ev.guard == "stale" for ev in later)


def test_pricing_state_is_snapshotted_and_digested():
    engine, _ = run(setup_commands())
    engine.apply(UpdateSourceQuotes("v", {"BTCUSDT": quotes(60000, 60000, 60000, at=5)}, 5,
                                    {"BTCUSDT": {"bid": "60100", "ask": "60120", "last": "60000"}}))
    before = state_digest(engine)
    restored = load_engine(dump_engine(engine))
    assert state_digest(restored) == before and restored.pricing == engine.pricing
    engine.apply(UpdateSourceQuotes("v", {"BTCUSDT": quotes(60000, 60000, 60000, at=6)}, 6,
                                    {"BTCUSDT": {"bid": "60300", "ask": "60320", "last": "60000"}}))
    assert state_digest(engine) != before  # the basis average is state


@pytest.mark.parametrize("quotes_, book, field", [
    ({"BTCUSDT": [{"source": "a", "price": "1", "timestamp": 99}]}, None, "quotes.BTCUSDT[0].timestamp"),
    ({"BTCUSDT": [{"source": "a", "price": "x", "timestamp": 1}]}, None, "quotes.BTCUSDT[0].price"),
    ({"BTCUSDT": [{"source": "a", "price": "1", "timestamp": 1, "size": 3}]}, None, "quotes.BTCUSDT[0].size"),
    ({"BTCUSDT": []}, None, "quotes.BTCUSDT"),
    ({"BTCUSDT": quotes(1, 1)}, {"BTCUSDT": {"bid": "2", "ask": "1"}}, "book.BTCUSDT.bid"),
    ({"NOPE": quotes(1)}, None, None),
])
def test_bad_quotes_are_refused_naming_the_field_and_change_nothing(quotes_, book, field):
    engine, _ = run(setup_commands())
    before = state_digest(engine)
    with pytest.raises(CommandRejected) as refused:
        engine.apply(UpdateSourceQuotes("v", quotes_, 10, book))
    if field is not None:
        assert refused.value.field == field
    assert state_digest(engine) == before


def test_a_preset_without_a_computed_mark_rule_is_refused():
    engine = Engine()
    engine.apply(c.CreateVenue("b", "bitmex"))
    symbol = next(iter(engine.venues["b"].markets))
    with pytest.raises(CommandRejected) as refused:
        engine.apply(UpdateSourceQuotes("b", {symbol: quotes(1, at=1)}, 1))
    assert refused.value.field == "preset.mark.rule"


def test_an_index_out_of_the_preset_bounds_trips_a_guard_and_is_never_applied():
    engine, _ = run(setup_commands(overrides={"oracle": {"bounds": {"BTCUSDT": ["10000", "1000000"]}}}))
    events = engine.apply(UpdateSourceQuotes("v", {"BTCUSDT": quotes(5000, 5000, 5000, at=5)}, 5))
    assert [ev.guard for ev in events if ev.kind == "oracle_guard_tripped"] == ["out_of_bounds"]
    assert engine.marks["v/BTCUSDT"] == Decimal(60000)
    assert not any(ev.kind in ("oracle_price_updated", "liquidation_started") for ev in events)
    cleared = engine.apply(UpdateSourceQuotes("v", {"BTCUSDT": quotes(60000, 60000, 60000, at=6)}, 6))
    assert [ev.kind for ev in cleared][:3] == ["mark_computed", "oracle_guard_cleared", "oracle_price_updated"]


def test_drift_twap_guards_on_the_engine_path():
    engine = Engine()
    engine.apply(c.CreateVenue("d", "drift_v2"))
    symbol = next(iter(engine.venues["d"].markets))
    feed = [(1, 100), (100, 101), (200, 160), (250, 600), (400, 150), (700, 150)]
    guards = []
    for at, price in feed:
        events = engine.apply(UpdateSourceQuotes("d", {symbol: quotes(price, at=at)}, at))
        computed = next(ev for ev in events if ev.kind == "mark_computed")
        guards.append((computed.status, computed.applied,
                       [ev.guard for ev in events if ev.kind == "oracle_guard_tripped"],
                       [ev.guard for ev in events if ev.kind == "oracle_guard_cleared"], engine.marks[f"d/{symbol}"]))
    assert guards[2] == ("divergent", True, ["twap_divergence"], [], 160)  # +58% vs its TWAP: margin yes, liquidation no
    assert guards[3] == ("invalid", False, ["invalid"], [], 160)  # a 5x move: not even margin, the mark holds
    assert guards[4] == ("ok", True, [], ["invalid"], 150)  # back within the bands of its TWAP: cleared
