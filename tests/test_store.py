"""The store: command log, hash chain, snapshots, crash safety, replay and verify.

Every test runs against both backends: an SQLite file and PostgreSQL (127.0.0.1:5432, database
``test``, one fresh schema per test, dropped afterwards; skipped only if the server is
unreachable). The liquidation log is built by submitting commands through a DurableEngine: every
kind of liquidation the presets produce (Binance insurance takeover and ADL, the Hyperliquid
vault, dYdX partial per block with a fund draw, Drift socialized loss, GMX keeper, pool draw and
bad debt, Aave liquidation call, Maker bark/take, Compound absorb, Euler and Morpho liquidate,
Liquity trove liquidation) plus a refused command.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime
from decimal import Decimal as D

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from conftest import postgres_schema
from solvent.cli.main import app
from solvent.engine import (
    AdvanceTime,
    ApplyFill,
    CommandRejected,
    CreateVenue,
    Deposit,
    Engine,
    FundInsurance,
    OpenAccount,
    UpdateOracle,
    Withdraw,
)
from solvent.engine import commands as c
from solvent.engine import lending as L
from solvent.store import (
    GENESIS,
    CommandLog,
    DurableEngine,
    IdempotencyConflict,
    LogMismatch,
    PendingEntry,
    StoreError,
    check_chain,
    replay_log,
    state_digest,
    verify_log,
)
from solvent.store.canonical import canonical, command_hash, entry_hash
from solvent.store.schema import commands as commands_table
from solvent.store.schema import snapshots as snapshots_table
from solvent.store.snapshots import dump_engine, load_engine

WHEN = "2025-10-10T21:15:00+00:00"
runner = CliRunner()


# ============================================================================================
# Backends
# ============================================================================================


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path):
    """A fresh, empty log URL on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/log.db"
        return
    with postgres_schema("store") as url:
        yield url


@pytest.fixture
def open_log(url):
    """Open logs on the test's URL; every one is closed (connections returned) at the end."""
    logs: list[CommandLog] = []

    def opener(**kwargs) -> CommandLog:
        log = CommandLog(url, **kwargs)
        logs.append(log)
        return log

    yield opener
    for log in logs:
        log.close()


# ============================================================================================
# The liquidation log
# ============================================================================================

BIG = "100000000"
ETH18 = {"assets": {"ETH": 18}}  # Maker (and Liquity) count ETH in wad; Binance's default is 1e-8
OTHER_LENDING = (("cp", "compound_v3", "WETH", "USDC", None), ("eu", "euler_v2", "WETH", "USDC", None),
                 ("mo", "morpho_blue", "WETH", "USDC", "WETH-USDC"), ("lq", "liquity_v1", "ETH", "LUSD", None))


def perp_venue(name, preset, settle, market, traders, *, fund="100000", book=BIG, overrides=None, price="60000"):
    commands = [CreateVenue(name, preset, overrides or {})]
    if fund != "0":
        commands.append(FundInsurance(settle, fund, venue=name))
    if book != "0":
        commands.append(Deposit(f"{name}/book", settle, book))
    commands.append(Deposit(f"{name}/liquidator", settle, BIG))
    for account, amount in traders:
        commands += [OpenAccount(account, name), Deposit(account, settle, amount)]
    return commands + [UpdateOracle(name, {market: price}, 1)]


def liquidation_commands() -> list:
    """Every kind of liquidation the presets produce, in one engine (see the module docstring)."""
    commands = []
    commands += perp_venue("bn", "binance", "USDT", "BTCUSDT", [("bn_t", "1000"), ("bn_mm", BIG)], overrides=ETH18)
    commands += perp_venue("ba", "binance", "USDT", "BTCUSDT", [("dave", "2000"), ("erin", "50000"),
                                                               ("frank", "5000")], fund="0", overrides=ETH18)
    commands += perp_venue("hl", "hyperliquid", "USDC", "BTC", [("hl_t", "1000"), ("hl_mm", BIG)])
    commands += perp_venue("dy", "dydx_v4", "USDC", "BTC-USD", [("dy_t", "5000"), ("dy_mm", BIG)])
    commands += perp_venue("dr", "drift_v2", "USDC", "SOL-PERP", [("dr_t", "300"), ("dr_w", BIG), ("dr_mm", BIG)],
                           fund="0", price="150")
    commands += perp_venue("gx", "gmx_v2", "USDC", "ETH/USD", [("gx_t", "2500"), ("gx_u", "3500"), ("gx_mm", BIG)],
                           price="2000")
    commands += perp_venue("g0", "gmx_v2", "USDC", "ETH/USD", [("g0_t", "2500"), ("g0_mm", BIG)], book="0",
                           price="2000")
    commands += perp_venue("do", "drift_v2", "USDC", "SOL-PERP", [("do_liq", BIG), ("do_mm", BIG)], price="150",
                           overrides={"execution": {"takeover": "open"}})  # liquidators take over
    commands += [
        ApplyFill("bn", "BTCUSDT", "bn_t", "bn_mm", "0.5", "60000"),
        ApplyFill("ba", "BTCUSDT", "dave", "erin", "0.6", "60000"),
        ApplyFill("ba", "BTCUSDT", "dave", "frank", "0.4", "60000"),
        ApplyFill("hl", "BTC", "hl_t", "hl_mm", "0.5", "60000"),
        ApplyFill("dy", "BTC-USD", "dy_t", "dy_mm", "1", "60000"),
        ApplyFill("dr", "SOL-PERP", "dr_t", "dr_mm", "20", "150"),
        ApplyFill("dr", "SOL-PERP", "dr_w", "dr_mm", "10", "150"),
        ApplyFill("gx", "ETH/USD", "gx_t", "gx_mm", "50", "2000"),
        ApplyFill("gx", "ETH/USD", "gx_u", "gx_mm", "50", "2000"),
        ApplyFill("g0", "ETH/USD", "g0_t", "g0_mm", "50", "2000"),
        c.OpenPositions("do", "SOL-PERP", "do_mm", ("do_t", "do_u"), ("300", "1000"), ("20", "-5"), ("150", "150")),
    ]
    commands.append(CreateVenue("aave", "aave_v3"))
    for account, asset, amount in (("alice", "WETH", "10"), ("lender", "USDC", "100000"), ("liq", "USDC", "50000")):
        commands += [L.OpenLendingAccount(account, "aave"), Deposit(account, asset, amount)]
    commands += [L.UpdatePrices("aave", {"WETH": "2000", "USDC": "1"}, 1), L.Supply("aave", "alice", "WETH", "10"),
                 L.Supply("aave", "lender", "USDC", "100000"), L.Borrow("aave", "alice", "USDC", "16000")]
    commands.append(CreateVenue("mk", "maker"))
    for account, asset, amount in (("owner", "ETH", "10"), ("keeper", "DAI", "100000")):
        commands += [L.OpenLendingAccount(account, "mk"), Deposit(account, asset, amount)]
    commands += [L.UpdatePrices("mk", {"ETH": "2000"}, 1), L.Supply("mk", "owner", "ETH", "10"),
                 L.Borrow("mk", "owner", "DAI", "13000")]
    for name, preset, collateral, loan, market in OTHER_LENDING:
        commands.append(CreateVenue(name, preset, {"assets": {"USDT": 8}} if name == "cp" else {}))
        commands += [L.OpenLendingAccount(f"{name}_{who}", name) for who in ("b", "o", "l", "k")]
        prices = {collateral: "2000"} if name == "lq" else {collateral: "2000", loan: "1"}
        commands += [L.UpdatePrices(name, prices, 1), Deposit(f"{name}_b", collateral, "10"),
                     Deposit(f"{name}_o", collateral, "100"), L.Supply(name, f"{name}_o", collateral, "100", market),
                     L.Supply(name, f"{name}_b", collateral, "10", market)]
        if name == "lq":
            commands.append(L.Borrow(name, f"{name}_o", loan, "20000", market))
        else:
            commands += [Deposit(f"{name}_l", loan, "100000"), L.Supply(name, f"{name}_l", loan, "100000", market)]
        commands += [L.Borrow(name, f"{name}_b", loan, "12000", market), Deposit(f"{name}_k", loan, "50000")]
    commands.append(Withdraw("bn_t", "USDT", "999999"))  # refused: recorded with its reason
    commands += [
        UpdateOracle("bn", {"BTCUSDT": "57000"}, 2),  # insurance takeover at the bankruptcy price
        UpdateOracle("ba", {"BTCUSDT": "55000"}, 2),  # empty fund: ADL
        UpdateOracle("hl", {"BTC": "58300"}, 2),  # the vault takes the account
        UpdateOracle("dy", {"BTC-USD": "56400"}, 2),  # 10% per block
        UpdateOracle("dr", {"SOL-PERP": "120"}, 2),  # empty fund: socialized loss
        UpdateOracle("gx", {"ETH/USD": "1960"}, 2),  # keeper, fee split
        UpdateOracle("gx", {"ETH/USD": "1900"}, 2),  # insolvent close: the pool pays
        UpdateOracle("g0", {"ETH/USD": "1940"}, 2),  # empty pool: bad debt
        UpdateOracle("do", {"SOL-PERP": "137"}, 2), c.TakeOver("do", "do_liq", "do_t", "SOL-PERP", "20"),
        AdvanceTime(3), AdvanceTime(4),
        L.UpdatePrices("aave", {"WETH": "1900"}, 5), L.LiquidationCall("aave", "liq", "alice", "WETH", "USDC"),
        L.UpdatePrices("mk", {"ETH": "1800"}, 6), L.Bark("mk", "keeper", "owner"), AdvanceTime(906),
        L.Take("mk", "keeper", 1, "3", "2000"), L.Take("mk", "keeper", 1, "10", "2000"),
        UpdateOracle("dy", {"BTC-USD": "54000"}, 907), AdvanceTime(908),  # below bankruptcy: the fund pays
    ]
    commands += [L.UpdatePrices(name, {collateral: "1000"}, 908) for name, _, collateral, _, _ in OTHER_LENDING]
    commands += [L.Absorb("cp", "cp_k", ("cp_b",)), L.Liquidate("eu", "eu_k", "eu_b", "WETH"),
                 L.Liquidate("mo", "mo_k", "mo_b", market="WETH-USDC"), L.LiquidateTrove("lq", "lq_k", "lq_b")]
    return commands


EXPECTED_KINDS = {
    "liquidation_started", "position_liquidated", "liquidation_fee_charged", "insurance_fund_drawn", "backstop_drawn",
    "adl_queue_ranked", "position_auto_deleveraged", "loss_socialized", "bad_debt", "liquidation_paused",
    "liquidation_ended", "liquidation_called", "auction_started", "auction_taken", "auction_settled", "absorbed",
    "liquidated", "trove_liquidated", "bad_debt_recorded"}


def build(log: CommandLog, commands=None, **options) -> DurableEngine:
    durable = DurableEngine(log, **options)
    for index, command in enumerate(liquidation_commands() if commands is None else commands):
        try:
            durable.submit(command, recorded_at=WHEN, key=f"k{index}")
        except CommandRejected:
            pass
    return durable


def seq_of(log: CommandLog, predicate) -> int:
    return next(entry.seq for entry in log.entries() if predicate(entry))


def update_row(log: CommandLog, seq: int, **values) -> None:
    with log.db.begin() as connection:
        connection.execute(commands_table.update().where(commands_table.c.seq == seq).values(**values))


def rehash_from(log: CommandLog, seq: int) -> None:
    """What a forger would do: recompute every hash from ``seq`` on so that the chain links again."""
    previous = log.entry(seq - 1).hash if seq > 1 else GENESIS
    for entry in log.entries(seq):
        first = command_hash(previous, entry.seq, entry.recorded_at, entry.idempotency_key, entry.kind, entry.payload)
        last = entry_hash(first, entry.outcome)
        update_row(log, entry.seq, prev_hash=previous, command_hash=first, hash=last)
        previous = last


# ============================================================================================
# The log
# ============================================================================================


def test_append_and_read_back(open_log):
    log = open_log()
    assert log.last() is None and log.count() == 0
    deposit = Deposit("a", "USDC", "10.5")
    first = log.append(CreateVenue("v", "hyperliquid", {"liquidation": {"fee": "0.01"}}), WHEN, "create")
    assert (first.seq, first.prev_hash, first.pending, first.hash) == (1, GENESIS, True, None)
    assert first.command() == CreateVenue("v", "hyperliquid", {"liquidation": {"fee": "0.01"}})
    with pytest.raises(PendingEntry):
        log.append(deposit, WHEN)
    done = log.record_outcome(1, {"events": [{"kind": "venue_created", "venue": "v", "markets": ("BTC",)}]})
    assert done.hash == entry_hash(done.command_hash, done.outcome) and done.events[0]["markets"] == ["BTC"]
    second = log.append(deposit, "2025-10-10T21:15:01+00:00")
    assert (second.seq, second.prev_hash, second.kind) == (2, done.hash, "deposit")
    assert second.payload == '{"account":"a","amount":"10.5","asset":"USDC","kind":"deposit"}'  # canonical
    log.record_outcome(2, {"rejected": {"kind": "deposit", "reason": "unknown account 'a'", "field": None}})
    again = CommandLog(log.url)  # a second connection sees exactly what was written
    try:
        rows = list(again.entries())
        assert [row.seq for row in rows] == [1, 2] and rows[0] == done
        assert rows[1].command() == deposit and rows[1].recorded_at == "2025-10-10T21:15:01+00:00"
        assert rows[1].rejection == {"kind": "deposit", "reason": "unknown account 'a'", "field": None}
        assert [row.seq for row in again.entries(2)] == [2] and again.by_key("create").seq == 1
        assert again.last().seq == 2 and again.count() == 2
    finally:
        again.close()
    with pytest.raises(StoreError, match="timezone"):
        log.append(deposit, datetime(2025, 10, 10))


def test_hash_chain_links_every_command_and_outcome(open_log):
    log = open_log()
    durable = DurableEngine(log)
    for command in perp_venue("v", "hyperliquid", "USDC", "BTC", [("t", "1000"), ("mm", BIG)]):
        durable.submit(command, WHEN)
    entries = list(log.entries())
    previous = GENESIS
    for entry in entries:
        assert entry.prev_hash == previous
        assert entry.command_hash == command_hash(previous, entry.seq, entry.recorded_at, None, entry.kind,
                                                  entry.payload)
        assert entry.hash == entry_hash(entry.command_hash, entry.outcome)
        previous = entry.hash
    assert check_chain(log).chain_head == entries[-1].hash


def test_an_idempotency_key_returns_the_original_and_applies_nothing(open_log):
    log = open_log()
    durable = DurableEngine(log)
    for command in perp_venue("v", "hyperliquid", "USDC", "BTC", [("t", "1000")]):
        durable.submit(command, WHEN)
    count = log.count()
    first = durable.submit(Deposit("t", "USDC", "5"), WHEN, key="pay-1")
    again = durable.submit(Deposit("t", "USDC", "5"), "2025-10-11T00:00:00+00:00", key="pay-1")
    assert again == first
    assert first.events == [{"kind": "deposited", "account": "t", "asset": "USDC", "amount": "5.000000"}]
    assert log.count() == count + 1 and durable.engine.balance("t", "USDC") == D(1005)
    assert log.append(Deposit("t", "USDC", "5"), WHEN, "pay-1").seq == first.seq
    with pytest.raises(IdempotencyConflict, match="pay-1"):
        durable.submit(Deposit("t", "USDC", "6"), WHEN, key="pay-1")
    # A refused command is recorded with its reason; its retry is refused the same way, once.
    with pytest.raises(CommandRejected) as refused:
        durable.submit(Withdraw("t", "USDC", "5000"), WHEN, key="take-1")
    with pytest.raises(CommandRejected) as retried:
        durable.submit(Withdraw("t", "USDC", "5000"), WHEN, key="take-1")
    assert refused.value.seq == retried.value.seq == count + 2 and retried.value.reason == refused.value.reason
    assert "cannot withdraw" in log.entry(count + 2).rejection["reason"]
    assert log.count() == count + 2


# ============================================================================================
# Replay and verify on the liquidation log
# ============================================================================================


def test_a_snapshot_another_version_took_is_reported_not_compared(open_log):
    # Its digest hashes that version's engine state (other bookkeeping fields): replay and verify
    # leave it aside and say so, and still recompute every outcome.
    log = open_log()
    durable = build(log, snapshot_every=60)
    durable.snapshot()
    first = min(log.snapshot_digests())
    with log.db.begin() as connection:
        connection.execute(snapshots_table.update().where(snapshots_table.c.seq == first)
                           .values(format="pickle-5/solvent-0.1.0", digest="0" * 64))
    _, replayed = replay_log(log)
    assert replayed.snapshots_of_other_versions == [first] and first not in replayed.snapshots_checked
    assert replayed.snapshots_checked  # the others still are
    assert verify_log(log).snapshots_of_other_versions == [first]


def test_replay_and_verify_a_log_of_every_liquidation_kind(open_log):
    log = open_log()
    durable = build(log, snapshot_every=60)
    durable.snapshot()
    commands = liquidation_commands()
    assert log.count() == len(commands) and not any(entry.pending for entry in log.entries())
    engine, replayed = replay_log(log)
    assert replayed.final_digest == state_digest(durable.engine) == state_digest(engine)
    assert replayed.snapshots_checked == [*range(60, len(commands), 60), len(commands)]
    assert (replayed.entries, replayed.rejected) == (len(commands), 1)
    report = verify_log(log)
    assert set(report.liquidation_events) >= EXPECTED_KINDS
    assert report.perp_triggers_checked == report.liquidation_events["liquidation_started"] == 9
    assert report.lending_triggers_checked == 6  # aave, maker, compound, euler, morpho, liquity
    assert report.chain_head == log.last().hash and report.conservation_checked > 0
    # The same commands straight into an engine give the same state: the log adds nothing, loses nothing.
    direct = Engine()
    for command in commands:
        try:
            direct.apply(command)
        except CommandRejected:
            pass
    assert state_digest(direct) == replayed.final_digest


def test_a_tampered_command_fails_verify_naming_its_seq(open_log):
    log = open_log()
    build(log)
    seq = seq_of(log, lambda e: e.kind == "update_oracle" and '"57000"' in e.payload)
    entry = log.entry(seq)
    update_row(log, seq, payload=entry.payload.replace('"57000"', '"57500"'))
    with pytest.raises(LogMismatch) as failed:
        verify_log(log)
    assert failed.value.seq == seq and "hash chain broken" in failed.value.message
    with pytest.raises(LogMismatch) as replayed:  # replay alone sees the outcome change at the same entry
        replay_log(log)
    assert replayed.value.seq == seq


def test_a_tampered_event_amount_fails_verify_even_with_the_chain_rewritten(open_log):
    log = open_log()
    build(log)
    seq = seq_of(log, lambda e: "insurance_fund_drawn" in (e.outcome or ""))
    outcome = json.loads(log.entry(seq).outcome)
    drawn = next(event for event in outcome["events"] if event["kind"] == "insurance_fund_drawn")
    drawn["amount"] = str(D(drawn["amount"]) - 1)
    update_row(log, seq, outcome=canonical(outcome))
    with pytest.raises(LogMismatch) as failed:
        verify_log(log)
    assert failed.value.seq == seq and "outcome" in failed.value.message
    rehash_from(log, seq)  # a forger relinks the chain: the replay still recomputes the true amount
    assert check_chain(log).chain_head == log.last().hash
    with pytest.raises(LogMismatch) as failed:
        verify_log(log)
    assert failed.value.seq == seq
    assert "insurance_fund_drawn" in failed.value.message and "amount recorded" in failed.value.message


def test_verify_rederives_that_each_liquidated_account_was_liquidatable(open_log, monkeypatch):
    """A pipeline defect that liquidates a healthy account (recorded and replayed by the same faulty
    code, so every outcome matches) is caught by verify's own valuation under the venue's trigger."""
    from solvent.engine import pipeline

    log = open_log()
    commands = perp_venue("v", "gmx_v2", "USDC", "ETH/USD", [("t", "2500"), ("mm", BIG)], price="2000") + [
        ApplyFill("v", "ETH/USD", "t", "mm", "50", "2000"), UpdateOracle("v", {"ETH/USD": "1985"}, 2)]
    healthy = pipeline._liquidatable
    monkeypatch.setattr(pipeline, "_liquidatable",
                        lambda engine, venue, pool: pool.equity < 2 * pool.maintenance_margin)
    monkeypatch.setattr(pipeline, "_clearly_safe", lambda engine, venue, account: False)  # reach the defect
    build(log, commands)
    assert "liquidation_started" in log.last().outcome
    with pytest.raises(LogMismatch) as failed:
        verify_log(log)
    assert failed.value.seq == log.last().seq and "was not liquidatable" in failed.value.message
    monkeypatch.setattr(pipeline, "_liquidatable", healthy)
    with pytest.raises(LogMismatch):  # with the right code the recorded outcome does not even replay
        replay_log(log)


def test_verify_checks_lending_liquidations_against_the_protocol_rule(open_log, monkeypatch):
    log = open_log()
    build(log)
    verify_log(log)
    healthy = {"protocol": "aave", "health_factor": "1.2", "liquidatable": False}
    real = L.lending_account
    monkeypatch.setattr(L, "lending_account", lambda engine, venue, account: healthy if venue == "aave"
                        else real(engine, venue, account))
    with pytest.raises(LogMismatch) as failed:
        verify_log(log)
    assert failed.value.seq == seq_of(log, lambda e: e.kind == "liquidation_call")
    assert "liquidation_call of alice on aave" in failed.value.message and "health_factor 1.2" in failed.value.message


# ============================================================================================
# Snapshots and crash safety
# ============================================================================================


def test_restart_from_a_snapshot_gives_the_state_of_a_full_replay(open_log):
    log = open_log()
    commands = liquidation_commands()
    build(log, commands[:150], snapshot_every=100)
    restarted = DurableEngine(open_log())
    assert restarted.restored_from == 100 and restarted.seq == 150
    for index, command in enumerate(commands[150:], start=150):
        try:
            restarted.submit(command, WHEN, key=f"k{index}")
        except CommandRejected:
            pass
    _, full = replay_log(log)
    assert state_digest(restarted.engine) == full.final_digest
    assert state_digest(DurableEngine(log, use_snapshots=False).engine) == full.final_digest
    # The snapshot's pickle round-trips to the same state; a corrupt one is not used.
    assert state_digest(load_engine(dump_engine(restarted.engine))) == full.final_digest
    with log.db.begin() as connection:
        connection.execute(sa.text("UPDATE snapshots SET digest = :bad"), {"bad": "0" * 64})
    with pytest.warns(RuntimeWarning, match="replaying the whole log"):
        fallback = DurableEngine(log)
    assert fallback.restored_from is None and state_digest(fallback.engine) == full.final_digest
    with pytest.raises(LogMismatch, match="snapshot"):
        replay_log(log)


def test_a_crash_between_append_and_outcome_reapplies_the_entry_exactly_once(open_log, monkeypatch):
    log = open_log()
    durable = DurableEngine(log)
    for command in perp_venue("v", "hyperliquid", "USDC", "BTC", [("t", "1000")]):
        durable.submit(command, WHEN)

    class Crash(BaseException):
        pass

    def die(self, seq, outcome):
        raise Crash  # the process stops after the append committed, before the outcome is written

    monkeypatch.setattr(CommandLog, "record_outcome", die)
    with pytest.raises(Crash):
        durable.submit(Deposit("t", "USDC", "7"), WHEN, key="pay-7")
    monkeypatch.undo()
    pending = log.last()
    assert pending.pending and pending.idempotency_key == "pay-7"
    with pytest.raises(StoreError, match="stopped at entry"):
        durable.submit(Deposit("t", "USDC", "1"), WHEN)  # this instance's state is not to be trusted
    with pytest.raises(PendingEntry):
        log.append(Deposit("t", "USDC", "1"), WHEN)
    reopened = DurableEngine(open_log())
    assert reopened.completed == [pending.seq] and reopened.seq == pending.seq
    assert reopened.engine.balance("t", "USDC") == D(1007)
    done = log.entry(pending.seq)
    assert done.events == [{"kind": "deposited", "account": "t", "asset": "USDC", "amount": "7.000000"}]
    # The client's retry gets the recorded outcome; nothing is applied twice, now or on restart.
    assert reopened.submit(Deposit("t", "USDC", "7"), WHEN, key="pay-7").seq == pending.seq
    again = DurableEngine(open_log())
    assert again.completed == [] and again.engine.balance("t", "USDC") == D(1007)
    assert verify_log(log).entries == pending.seq


CHILD = """
import os, sys
from solvent.engine import CreateVenue, Deposit, OpenAccount
from solvent.store import CommandLog, DurableEngine

crash_at = int(sys.argv[2])
record = CommandLog.record_outcome

def record_or_die(self, seq, outcome):
    if seq == crash_at:
        os._exit(3)  # killed after the append committed, before the outcome: no cleanup at all
    return record(self, seq, outcome)

CommandLog.record_outcome = record_or_die
durable = DurableEngine(sys.argv[1])
commands = [CreateVenue("v", "hyperliquid"), OpenAccount("t", "v")]
commands += [Deposit("t", "USDC", str(amount)) for amount in (1, 2, 4, 8, 16)]
for index, command in enumerate(commands):
    print(durable.submit(command, key=f"c{index}").seq, flush=True)  # acknowledged
"""


def test_a_killed_process_loses_no_acknowledged_command_and_applies_none_twice(open_log, url):
    crash_at = 6  # the fourth deposit (8)
    child = subprocess.run([sys.executable, "-c", CHILD, url, str(crash_at)], capture_output=True, text=True,
                           timeout=120)
    assert child.returncode == 3, child.stderr
    acknowledged = [int(line) for line in child.stdout.split()]
    assert acknowledged == [1, 2, 3, 4, 5]
    log = open_log()
    assert all(not log.entry(seq).pending for seq in acknowledged) and log.entry(crash_at).pending
    restarted = DurableEngine(log)
    assert restarted.completed == [crash_at]
    assert restarted.engine.balance("t", "USDC") == 1 + 2 + 4 + 8
    assert DurableEngine(open_log()).engine.balance("t", "USDC") == 15  # reopened again: still once
    assert verify_log(log).entries == crash_at


# ============================================================================================
# The command line
# ============================================================================================


def test_cli_replay_and_verify(open_log, url):
    log = open_log()
    build(log, snapshot_every=100)
    result = runner.invoke(app, ["replay", url])
    assert result.exit_code == 0, result.output
    assert "snapshot digests: 1 checked (seq 100)" in result.output and "OK: replay matches" in result.output
    result = runner.invoke(app, ["verify", url])
    assert result.exit_code == 0, result.output
    for line in ("hash chain: ", "liquidatable when started: 9 perpetual liquidations", "6 lending accounts",
                 "position_auto_deleveraged", "loss_socialized", "auction_taken", "OK: the log verifies"):
        assert line in result.output
    seq = seq_of(log, lambda e: e.kind == "liquidation_call")
    update_row(log, seq, payload=log.entry(seq).payload.replace('"liq"', '"lender"'))
    result = runner.invoke(app, ["verify", url])
    assert result.exit_code == 1 and f"FAIL seq {seq}: hash chain broken" in result.output
    result = runner.invoke(app, ["replay", url])  # replay checks the chain as it reads: the edit is named
    assert result.exit_code == 1 and f"FAIL seq {seq}: hash chain broken" in result.output


def test_cli_on_a_missing_log_is_a_clear_error(tmp_path):
    result = runner.invoke(app, ["verify", str(tmp_path / "nothing.db")])
    assert result.exit_code == 2 and "no log at" in result.output
    assert not (tmp_path / "nothing.db").exists()


# ============================================================================================
# Group commit: a batch of commands, one transaction
# ============================================================================================


def test_a_batch_is_applied_in_order_and_written_in_one_transaction(open_log):
    from solvent.store import BatchItem

    log = open_log()
    durable = DurableEngine(log, snapshot_every=10)
    setup = perp_venue("v", "hyperliquid", "USDC", "BTC", [("t", "1000")])

    def no_unknown_accounts(engine, command):
        if getattr(command, "account", None) == "ghost":
            raise KeyError("ghost")

    items = [BatchItem(command, f"s{index}") for index, command in enumerate(setup)]
    items += [
        BatchItem(Deposit("t", "USDC", "5"), "dup"),
        BatchItem(Deposit("t", "USDC", "5"), "dup"),  # the same key and command in the same batch: once
        BatchItem(Deposit("t", "USDC", "6"), "dup"),  # the same key, another command: a conflict
        BatchItem(Deposit("ghost", "USDC", "1"), "ghost"),  # refused by the check: nothing written
        BatchItem(Withdraw("t", "USDC", "999999"), "broke"),  # refused by the engine: recorded
        BatchItem(Deposit("t", "USDC", "7")),
    ]
    results = durable.submit_batch(items, check=no_unknown_accounts)
    n = len(setup)
    assert [result.entry.seq for result in results[:n]] == list(range(1, n + 1))
    first, again, conflict, ghost, broke, last = results[n:]
    assert first.entry.seq == n + 1 and not first.replayed
    assert again.replayed and again.entry == first.entry
    assert isinstance(conflict.error, IdempotencyConflict)
    assert isinstance(ghost.error, KeyError) and ghost.entry is None
    assert broke.entry.rejection is not None and broke.entry.seq == n + 2
    with pytest.raises(CommandRejected):
        broke.submitted()
    assert last.submitted().seq == n + 3 == durable.seq == log.count()
    assert durable.engine.balance("t", "USDC") == D(1012)
    assert log.latest_snapshot().seq == 10  # taken mid-batch, of the state right after entry 10
    assert verify_log(log).entries == n + 3
    # The batch and the one-command path write the same log: a restart replays it to the same state.
    assert durable.submit(Deposit("t", "USDC", "1"), key="one").seq == n + 4
    [replayed] = durable.submit_batch([BatchItem(Deposit("t", "USDC", "1"), "one")])
    assert replayed.replayed and replayed.entry.seq == n + 4
    reopened = DurableEngine(open_log(), use_snapshots=False)
    assert state_digest(reopened.engine) == state_digest(durable.engine) and reopened.completed == []


def test_a_failed_batch_write_answers_nothing_and_rebuilds_the_engine(open_log, monkeypatch):
    from solvent.store import BatchItem

    log = open_log()
    durable = DurableEngine(log)
    durable.submit_batch([BatchItem(command) for command in perp_venue("v", "hyperliquid", "USDC", "BTC",
                                                                         [("t", "1000")])])
    before = (log.count(), state_digest(durable.engine))

    def fail(self, entries, after, snapshot_rows=()):
        raise sa.exc.OperationalError("INSERT", {}, Exception("disk I/O error"))

    monkeypatch.setattr(CommandLog, "write_entries", fail)
    results = durable.submit_batch([BatchItem(Deposit("t", "USDC", "5"), "a"), BatchItem(Deposit("t", "USDC", "6"))])
    assert all(isinstance(result.error, StoreError) for result in results)
    monkeypatch.undo()
    assert (log.count(), state_digest(durable.engine)) == before  # nothing written, nothing applied
    [retry] = durable.submit_batch([BatchItem(Deposit("t", "USDC", "5"), "a")])
    assert retry.entry.seq == before[0] + 1 and durable.engine.balance("t", "USDC") == D(1005)


def test_a_defect_in_a_batch_leaves_its_entry_pending_and_a_restart_applies_it_once(open_log, monkeypatch):
    from solvent.store import BatchItem

    log = open_log()
    durable = DurableEngine(log)
    durable.submit_batch([BatchItem(command) for command in perp_venue("v", "hyperliquid", "USDC", "BTC",
                                                                         [("t", "1000")])])
    n = log.count()
    original = Engine.apply

    def apply(self, command):
        if getattr(command, "amount", None) == "7":
            raise RuntimeError("a defect")
        return original(self, command)

    monkeypatch.setattr(Engine, "apply", apply)
    results = durable.submit_batch([BatchItem(Deposit("t", "USDC", "5")), BatchItem(Deposit("t", "USDC", "7"), "k7"),
                                    BatchItem(Deposit("t", "USDC", "9"))])
    monkeypatch.undo()
    assert results[0].entry.seq == n + 1 and isinstance(results[1].error, RuntimeError)
    assert isinstance(results[2].error, StoreError)
    assert log.count() == n + 2 and log.last().pending and log.last().idempotency_key == "k7"
    with pytest.raises(StoreError, match="stopped at entry"):
        durable.submit(Deposit("t", "USDC", "1"))
    reopened = DurableEngine(open_log())
    assert reopened.completed == [n + 2] and reopened.engine.balance("t", "USDC") == D(1012)
    assert DurableEngine(open_log()).engine.balance("t", "USDC") == D(1012)
    assert verify_log(log).entries == n + 2


def test_a_group_stops_at_its_first_refused_command_and_other_groups_go_on(open_log):
    from solvent.store import BatchItem
    from solvent.store.durable import NotAttempted

    log = open_log()
    durable = DurableEngine(log)
    durable.submit_batch([BatchItem(command) for command in perp_venue("v", "hyperliquid", "USDC", "BTC",
                                                                         [("t", "1000")])])
    n = log.count()

    def no_ghosts(engine, command):
        if getattr(command, "account", None) == "ghost":
            raise KeyError("ghost")

    results = durable.submit_batch([
        BatchItem(Deposit("t", "USDC", "1"), group=0),
        BatchItem(Withdraw("t", "USDC", "999999"), group=0),  # refused by the engine: recorded, the group goes on
        BatchItem(Deposit("ghost", "USDC", "1"), group=0),  # refused by the check: the group stops here
        BatchItem(Deposit("t", "USDC", "2"), group=0),
        BatchItem(Deposit("t", "USDC", "4"), group=1),  # another client's batch is not affected
        BatchItem(Deposit("t", "USDC", "8")),
    ], check=no_ghosts)
    applied, rejected, ghost, skipped, other, alone = results
    assert applied.entry.seq == n + 1 and rejected.entry.rejection is not None and rejected.entry.seq == n + 2
    assert isinstance(ghost.error, KeyError)
    assert isinstance(skipped.error, NotAttempted) and skipped.error.index == 2 and skipped.entry is None
    assert other.entry.seq == n + 3 and alone.entry.seq == n + 4
    assert durable.engine.balance("t", "USDC") == D(1000 + 1 + 4 + 8) and log.count() == n + 4
    # An idempotency conflict stops a group too; a replayed command does not.
    results = durable.submit_batch([BatchItem(Deposit("t", "USDC", "16"), "k", group=0)])
    assert results[0].entry.seq == n + 5
    replay, conflict, after = durable.submit_batch([
        BatchItem(Deposit("t", "USDC", "16"), "k", group=3), BatchItem(Deposit("t", "USDC", "32"), "k", group=3),
        BatchItem(Deposit("t", "USDC", "64"), group=3)])
    assert replay.replayed and isinstance(conflict.error, IdempotencyConflict)
    assert isinstance(after.error, NotAttempted) and log.count() == n + 5
    assert verify_log(log).entries == n + 5


def test_the_latest_entries_are_read_from_memory_in_order(open_log):
    from solvent.store import BatchItem

    log = open_log()
    durable = DurableEngine(log, remember=8)
    assert durable.recent(1) is None or durable.recent(1) == []
    durable.submit_batch([BatchItem(command) for command in perp_venue("v", "hyperliquid", "USDC", "BTC",
                                                                         [("t", "1000")])])
    durable.submit(Deposit("t", "USDC", "1"))
    durable.submit_batch([BatchItem(Deposit("t", "USDC", str(amount))) for amount in range(2, 6)])
    last = log.count()
    kept = durable.recent(last - 7)
    assert [entry.seq for entry in kept] == list(range(last - 7, last + 1))
    assert kept == list(log.entries(last - 7))  # the same entries as stored
    assert durable.recent(last - 8) is None  # older than what is kept: read the log
    assert durable.recent(last + 1) == [] and [entry.seq for entry in durable.recent(last - 2, limit=2)] == [
        last - 2, last - 1]


def test_record_gives_the_canonical_text_of_to_dict_for_every_command_and_event():
    from solvent.store.canonical import _flat_list, record

    engine = Engine()
    for command in liquidation_commands():
        assert canonical(record(command)) == canonical(command.to_dict())
        try:
            events = engine.apply(command)
        except CommandRejected:
            continue
        for event in events:
            assert canonical(record(event)) == canonical(event.to_dict())
    for items in (["solvent-log/1", "a\"b\\c\u2028é\x00", 12, None, ""], [10 ** 30, -1, "日本"]):
        assert _flat_list(items) == canonical(items)


def test_sqlite_checkpoints_in_the_background_and_commits_stay_durable(tmp_path):
    from solvent.store import BatchItem

    url = f"sqlite:///{tmp_path}/log.db"
    log = CommandLog(url)
    log.checkpoint_in_background(interval=0.01)
    durable = DurableEngine(log)
    durable.submit_batch([BatchItem(command) for command in perp_venue("v", "hyperliquid", "USDC", "BTC",
                                                                         [("t", "1000")])])
    for amount in range(1, 40):
        durable.submit_batch([BatchItem(Deposit("t", "USDC", str(amount)))])
    with log.db.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 0
        assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    import time

    time.sleep(0.1)
    count, digest = log.count(), state_digest(durable.engine)
    log.close()
    assert log._checkpointer is None
    with CommandLog(url) as again:
        assert again.count() == count
        assert state_digest(DurableEngine(again).engine) == digest


def test_a_batch_is_staged_while_the_one_before_is_written(open_log, monkeypatch):
    from solvent.store import BatchItem

    log = open_log()
    durable = DurableEngine(log)
    durable.submit_batch([BatchItem(command) for command in perp_venue("v", "hyperliquid", "USDC", "BTC",
                                                                         [("t", "1000")])])
    n = log.count()
    first = durable.stage([BatchItem(Deposit("t", "USDC", "1"), "a")])
    # Staged, not written: the next batch sees its state and its key.
    second = durable.stage([BatchItem(Deposit("t", "USDC", "1"), "a"), BatchItem(Deposit("t", "USDC", "2"), "b")])
    assert log.count() == n and durable.engine.balance("t", "USDC") == D(1003)
    [one] = durable.commit(first)
    replay, two = durable.commit(second)
    assert one.entry.seq == n + 1 and replay.replayed and replay.entry == one.entry and two.entry.seq == n + 2
    assert log.count() == n + 2 == durable.seq and verify_log(log).entries == n + 2

    # A failed write fails every batch staged after it, and the engine is rebuilt from the log.
    original = CommandLog.write_entries

    def fail_once(self, entries, after, snapshot_rows=()):
        monkeypatch.setattr(CommandLog, "write_entries", original)
        raise sa.exc.OperationalError("INSERT", {}, Exception("disk I/O error"))

    monkeypatch.setattr(CommandLog, "write_entries", fail_once)
    lost = durable.stage([BatchItem(Deposit("t", "USDC", "4"), "c")])
    after = durable.stage([BatchItem(Deposit("t", "USDC", "8"), "d")])
    assert isinstance(durable.commit(lost)[0].error, StoreError)
    assert isinstance(durable.commit(after)[0].error, StoreError)  # staged on a state that was not written
    durable.settle()
    assert log.count() == n + 2 and durable.engine.balance("t", "USDC") == D(1003)
    [retry] = durable.submit_batch([BatchItem(Deposit("t", "USDC", "4"), "c")])
    assert retry.entry.seq == n + 3 and durable.engine.balance("t", "USDC") == D(1007)
    reopened = DurableEngine(open_log(), use_snapshots=False)
    assert state_digest(reopened.engine) == state_digest(durable.engine)


def test_settle_waits_for_the_commit_in_flight(open_log):
    import threading
    import time

    from solvent.store import BatchItem

    log = open_log()
    durable = DurableEngine(log)
    staged = durable.stage([BatchItem(command) for command in perp_venue("v", "hyperliquid", "USDC", "BTC",
                                                                           [("t", "1000")])])
    settled = threading.Event()
    waiter = threading.Thread(target=lambda: (durable.settle(), settled.set()))
    waiter.start()
    time.sleep(0.05)
    assert not settled.is_set()  # the engine holds a batch the log does not yet
    durable.commit(staged)
    waiter.join(5)
    assert settled.is_set() and durable.seq == log.count()
