"""Property tests of the engine over random command streams.

Streams of deposits, withdrawals, fills between a few accounts (and the venue's book), some of
them opening or trading isolated positions, margin moved into and out of isolated positions,
oracle moves (crashes included), time and block advances, and a few invalid commands, against one or two
venues under the binance, bybit (linear), hyperliquid, dydx_v4, drift_v2 and gmx_v2 presets. After every command:

- conservation: ``engine.conservation().holds``;
- a rejected command (``CommandRejected``) changed nothing: a deep snapshot of the ledger
  (balances, positions, pools, net deposits), the marks, the clock and the liquidation bookkeeping
  is equal before and after;
- no silent liquidatable account (``Stream.check_liquidatable``): every non-protocol account whose cross
  pool is liquidatable under its home venue's trigger and still holds positions (or whose isolated
  position is, under its market's venue's trigger) is in
  ``engine.liquidating``, and the last liquidation event about it says why it was left so — a
  ``LiquidationPaused`` (with its reason) or a partial step (``PositionLiquidated`` or
  ``PositionAutoDeleveraged`` leaving a remaining size), with no ``LiquidationEnded`` after it —
  including accounts charged someone else's loss (ADL, socialized loss) in the same command;
- an accepted withdrawal came from an account not in liquidation and left it at or above its
  initial margin;

and at the end, replaying the same command log (through JSON, as the store keeps it) in a fresh
engine gives identical events and identical rejections.

The pipeline never fails: a ``liquidation_failed`` event (the engine's report of an internal
error) fails the test.

The streams are built by interpreting drawn integers against the engine's current state (marks,
clock), so every drawn stream is valid enough to reach the liquidation pipeline.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, replace
from decimal import ROUND_DOWN
from decimal import Decimal as D

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

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
from solvent.engine.commands import AdjustIsolatedMargin, SetIsolatedLeverage, command_from_dict
from solvent.engine.pipeline import cross_pool, cross_pools, isolated_pools
from solvent.policies.account import account_margin

# ============================================================================================
# The venues and markets a stream may use
# ============================================================================================


@dataclass(frozen=True)
class MarketSpec:
    symbol: str
    price: D
    lot_decimals: int
    tick: D


VENUE_SPECS: dict[str, tuple[str, tuple[MarketSpec, ...]]] = {
    "binance": ("USDT", (MarketSpec("BTCUSDT", D(60000), 3, D("0.1")), MarketSpec("ZECUSDT", D(50), 3, D("0.01")))),
    "bybit": ("USDT", (MarketSpec("BTCUSDT", D(60000), 3, D("0.1")),)),
    "hyperliquid": ("USDC", (MarketSpec("BTC", D(60000), 5, D(1)), MarketSpec("ETH", D(3000), 4, D("0.1")))),
    "dydx_v4": ("USDC", (MarketSpec("BTC-USD", D(60000), 4, D(1)), MarketSpec("ETH-USD", D(3000), 3, D("0.1")))),
    "drift_v2": ("USDC", (MarketSpec("SOL-PERP", D(150), 2, D("0.001")),)),
    "gmx_v2": ("USDC", (MarketSpec("ETH/USD", D(3000), 6, D("0.01")),)),
}
PRESETS = sorted(VENUE_SPECS)
TRADERS = ("a", "b", "c")
# Oracle moves: multiplicative factors, crashes and squeezes included.
FACTORS = (D("0.5"), D("0.7"), D("0.9"), D("0.95"), D("0.98"), D("0.99"), D("0.995"), D(1), D("1.005"),
           D("1.01"), D("1.02"), D("1.05"), D("1.1"), D("1.3"), D(2))
NOTIONALS = (D(50), D(500), D(2000), D(10000), D(50000), D(200000))
DEPOSITS = (D(20), D(200), D(1000), D(5000), D(20000), D(100000))
FILL_OFFSETS = (D(0), D(0), D("0.001"), D("-0.001"), D("0.01"), D("-0.01"), D("0.05"), D("-0.05"))
FUNDS = ("0", "1000", "1000000000")


# ============================================================================================
# Snapshots and invariants
# ============================================================================================

BOOKKEEPING_ATTRIBUTES = ("marks", "previous_marks", "holders", "timestamp", "block", "seed", "margin_called",
                          "liquidating", "full_until", "cooldown_until", "notional_this_block", "insurance_lost_this_block",
                          "liquidated_in_block", "home_venue", "member_venues", "commands_applied",
                          "isolated_accounts")


def snapshot(engine: Engine):
    ledger = engine.ledger
    return copy.deepcopy((
        ledger.accounts, ledger.pools, ledger.net_deposits, ledger.markets, ledger.assets,
        {name: getattr(engine, name) for name in BOOKKEEPING_ATTRIBUTES if hasattr(engine, name)},
        {name: (b.caps, b.drawn) for name, b in engine.backstops.items()},
        {name: (v.rules, sorted(v.accounts), v.backstop) for name, v in engine.venues.items()},
    ))


def liquidatable_pools(engine: Engine):
    """(account, settle) of every non-protocol account whose cross pool is liquidatable under its
    home venue's trigger while it still holds positions."""
    found = []
    for account in sorted(engine.home_venue):
        if engine.is_protocol(account):
            continue
        rule = engine.venues[engine.home_venue[account]].rules.trigger
        for pool in cross_pools(engine, account):
            if not pool.positions or pool.maintenance_margin <= 0:
                continue
            below = pool.equity <= pool.maintenance_margin if rule == "at_or_below" else (
                pool.equity < pool.maintenance_margin)
            if below:
                found.append((account, pool.settle))
        for key, pool in isolated_pools(engine, account):
            if pool is None or not pool.positions or pool.maintenance_margin <= 0:
                continue
            rule = engine.venue_of_market(pool.isolated_market).rules.trigger
            if pool.equity <= pool.maintenance_margin if rule == "at_or_below" else (
                    pool.equity < pool.maintenance_margin):
                found.append(key)
    return found


# Liquidation events that leave an account liquidatable on purpose (a rule says to wait).
def explains_waiting(event: dict) -> bool:
    if event["kind"] == "liquidation_paused":
        return bool(event["reason"])
    if event["kind"] == "position_liquidated":
        return D(event["remaining_size"]) != 0
    return event["kind"] == "position_auto_deleveraged"


def about(event: dict) -> str | None:
    """The account a liquidation event is about (the liquidated one), or None."""
    if event["kind"] in ("liquidation_started", "position_liquidated", "liquidation_fee_charged",
                         "insurance_fund_drawn", "backstop_drawn", "bad_debt", "liquidation_paused",
                         "liquidation_ended"):
        return event["account"]
    if event["kind"] == "position_auto_deleveraged":
        return event["against"]
    return None


# ============================================================================================
# Streams
# ============================================================================================

deposit_op = st.tuples(st.just("deposit"), st.integers(0, 2), st.integers(0, len(DEPOSITS) - 1))
withdraw_op = st.tuples(st.just("withdraw"), st.integers(0, 2), st.integers(0, 5))
fill_op = st.tuples(st.just("fill"), st.integers(0, 3), st.integers(0, 3), st.integers(0, 7),
                    st.integers(0, len(NOTIONALS) - 1), st.integers(0, len(FILL_OFFSETS) - 1))
# A fill with the buyer (0), the seller (1) or both (2) isolated, at a leverage (or the market's rate).
LEVERAGES = (None, "2", "5", "10", "20", "50")
iso_fill_op = st.tuples(st.just("iso_fill"), st.integers(0, 3), st.integers(0, 3), st.integers(0, 7),
                        st.integers(0, len(NOTIONALS) - 1), st.integers(0, len(FILL_OFFSETS) - 1),
                        st.integers(0, 2), st.integers(0, len(LEVERAGES) - 1))
margin_op = st.tuples(st.just("margin"), st.integers(0, 2), st.integers(0, 7), st.integers(0, 5), st.booleans())
leverage_op = st.tuples(st.just("leverage"), st.integers(0, 2), st.integers(0, 7), st.integers(1, len(LEVERAGES) - 1))
oracle_op = st.tuples(st.just("oracle"), st.integers(0, 7), st.integers(0, len(FACTORS) - 1), st.integers(0, 40))
time_op = st.tuples(st.just("time"), st.integers(0, 60), st.integers(0, 5))
invalid_op = st.tuples(st.just("invalid"), st.integers(0, 7), st.integers(0, 7))
# Fills and oracle moves three times as often as the rest.
ops = st.lists(st.one_of(deposit_op, withdraw_op, fill_op, fill_op, fill_op, oracle_op, oracle_op, oracle_op,
                         time_op, invalid_op, iso_fill_op, iso_fill_op, margin_op, leverage_op), min_size=4, max_size=40)

worlds = st.tuples(
    st.lists(st.sampled_from(PRESETS), min_size=1, max_size=2),  # venue presets
    st.lists(st.sampled_from(FUNDS), min_size=2, max_size=2),  # their insurance funds
    st.lists(st.booleans(), min_size=2, max_size=2),  # book / liquidator funded
    st.lists(st.integers(0, len(DEPOSITS) - 1), min_size=3, max_size=3),  # first deposits
    st.integers(0, 1),  # traders' home venues: all on v0, or spread
)


class Stream:
    """Builds commands from drawn integers against the engine's state and applies them, checking
    the invariants after each one; records every command and its outcome for the replay."""

    def __init__(self, presets, funds, funded, deposits, spread):
        self.engine = Engine()
        self.log: list = []  # (command, events or reason)
        self.venues = [f"v{index}" for index in range(len(presets))]
        self.presets = dict(zip(self.venues, presets))
        self.clock = 1
        self.home = {trader: self.venues[index % len(self.venues)] if spread else self.venues[0]
                     for index, trader in enumerate(TRADERS)}
        self.last_word: dict[str, list[dict]] = {}  # account → the events about it, last command with any
        self.rejections = 0
        setup = []
        for venue, fund, money in zip(self.venues, funds, funded):
            settle, markets = VENUE_SPECS[self.presets[venue]]
            setup.append(CreateVenue(venue, self.presets[venue]))
            if fund != "0":
                setup.append(FundInsurance(settle, fund, venue=venue))
            if money:
                setup += [Deposit(f"{venue}/book", settle, "1000000000"),
                          Deposit(f"{venue}/liquidator", settle, "1000000000")]
            setup.append(UpdateOracle(venue, {m.symbol: str(m.price) for m in markets}, self.clock))
        for trader, deposit in zip(TRADERS, deposits):
            venue = self.home[trader]
            # A trader whose venue shares the settle asset with the other venue may trade on both.
            others = tuple(v for v in self.venues if v != venue
                           and VENUE_SPECS[self.presets[v]][0] == VENUE_SPECS[self.presets[venue]][0])
            setup += [OpenAccount(trader, venue, cross_venues=others),
                      Deposit(trader, VENUE_SPECS[self.presets[venue]][0], str(DEPOSITS[deposit]))]
        for command in setup:
            self.apply(command)

    # ---------------------------------------------------------------- building commands

    def market(self, index: int) -> tuple[str, MarketSpec]:
        pairs = [(venue, spec) for venue in self.venues for spec in VENUE_SPECS[self.presets[venue]][1]]
        return pairs[index % len(pairs)]

    def mark(self, venue: str, spec: MarketSpec) -> D:
        return self.engine.marks[f"{venue}/{spec.symbol}"]

    def settle(self, trader: str) -> str:
        return VENUE_SPECS[self.presets[self.home[trader]]][0]

    def tick(self, dt: int) -> int:
        self.clock += dt
        return self.clock

    def build(self, op):
        kind = op[0]
        if kind == "deposit":
            trader = TRADERS[op[1]]
            return Deposit(trader, self.settle(trader), str(DEPOSITS[op[2]]))
        if kind == "withdraw":
            trader = TRADERS[op[1]]
            units = self.engine.ledger.accounts[trader].balance(self.settle(trader))
            share = (D(1), D("0.5"), D("0.1"), D("0.9"), D("0.01"), D(2))[op[2]]
            amount = (D(max(units, 1)) * share).quantize(D(1), rounding=ROUND_DOWN)
            decimals = self.engine.ledger.assets[self.settle(trader)].decimals
            return Withdraw(trader, self.settle(trader), str(max(amount, D(1)).scaleb(-decimals)))
        if kind == "fill":
            _, buyer_index, seller_index, market_index, notional, offset = op
            venue, spec = self.market(market_index)
            people = [t for t in TRADERS if venue in (self.home[t],) or venue in self._cross(t)] + [f"{venue}/book"]
            buyer, seller = people[buyer_index % len(people)], people[seller_index % len(people)]
            if buyer == seller:
                seller = people[(seller_index + 1) % len(people)]
            mark = self.mark(venue, spec)
            lot = D(1).scaleb(-spec.lot_decimals)
            size = max(lot, (NOTIONALS[notional] / mark).quantize(lot, rounding=ROUND_DOWN))
            price = max(spec.tick, (mark * (1 + FILL_OFFSETS[offset])).quantize(spec.tick))
            return ApplyFill(venue, spec.symbol, buyer, seller, str(size), str(price))
        if kind == "iso_fill":
            fill = self.build(("fill",) + op[1:6])
            which, leverage = op[6], LEVERAGES[op[7]]
            isolated = {}
            for index, role in enumerate(("buyer", "seller")):
                if which in (index, 2) and not getattr(fill, role).endswith("/book"):
                    isolated[f"{role}_margin_mode"] = "isolated"
                    isolated[f"{role}_leverage"] = leverage
            return replace(fill, **isolated)
        if kind == "margin":
            # Into or out of one of the trader's isolated positions (if it holds one): a share of
            # its isolated margin out, or of its wallet in.
            _, trader_index, market_index, share_index, out = op
            trader = TRADERS[trader_index]
            ledger = self.engine.ledger
            held = sorted(p.market for p in ledger.accounts[trader].open_positions() if p.margin_mode.value == "isolated")
            if held:
                market = held[market_index % len(held)]
                venue, symbol = market.split("/", 1)
            else:
                venue, spec = self.market(market_index)
                market, symbol = f"{venue}/{spec.symbol}", spec.symbol
            settle = ledger.markets[market].settle
            position = ledger.accounts[trader].positions.get((market, None))
            units = position.isolated_margin if out and position is not None else ledger.accounts[trader].balance(settle)
            share = (D("0.01"), D("0.1"), D("0.3"), D("0.5"), D("0.9"), D(2))[share_index]
            amount = max(D(1), (D(max(units, 1)) * share).quantize(D(1), rounding=ROUND_DOWN))
            amount = amount.scaleb(-ledger.assets[settle].decimals)
            return AdjustIsolatedMargin(venue, trader, symbol, str(-amount if out else amount))
        if kind == "leverage":
            # A new leverage for one of the trader's isolated positions (any market if it holds none).
            _, trader_index, market_index, leverage = op
            trader = TRADERS[trader_index]
            held = sorted(p.market for p in self.engine.ledger.accounts[trader].open_positions()
                          if p.margin_mode.value == "isolated")
            if held:
                venue, symbol = held[market_index % len(held)].split("/", 1)
            else:
                venue, spec = self.market(market_index)
                symbol = spec.symbol
            return SetIsolatedLeverage(venue, trader, symbol, LEVERAGES[leverage])
        if kind == "oracle":
            _, market_index, factor, dt = op
            venue, spec = self.market(market_index)
            price = max(spec.tick, (self.mark(venue, spec) * FACTORS[factor]).quantize(spec.tick))
            return UpdateOracle(venue, {spec.symbol: str(price)}, self.tick(dt))
        if kind == "time":
            return AdvanceTime(self.tick(op[1] + 1), seed=op[2])
        # Invalid on purpose: each must be rejected and change nothing.
        _, which, index = op
        venue, spec = self.market(index)
        trader = TRADERS[index % 3]
        return [
            UpdateOracle(venue, {spec.symbol: str(spec.price)}, self.clock - 1),  # time going back
            AdvanceTime(self.clock - 1),
            Withdraw(trader, self.settle(trader), "1000000000000"),
            ApplyFill(venue, spec.symbol, trader, trader, "1", str(spec.price)),  # with itself
            ApplyFill(venue, spec.symbol, trader, f"{venue}/book", str(D(1).scaleb(-spec.lot_decimals - 1)),
                      str(spec.price)),  # finer than a lot
            Deposit(trader, self.settle(trader), "-5"),
            UpdateOracle(venue, {spec.symbol: "0"}, self.clock),
            AdjustIsolatedMargin(venue, trader, spec.symbol, "0"),
        ][which]

    def _cross(self, trader: str) -> set[str]:
        return self.engine.member_venues.get(trader, set())

    # ---------------------------------------------------------------- applying and checking

    def apply(self, command) -> None:
        engine = self.engine
        before = snapshot(engine)
        try:
            events = [event.to_dict() for event in engine.apply(command)]
        except CommandRejected as rejected:
            assert rejected.reason, command
            self.log.append((command, ("rejected", rejected.reason)))
            self.rejections += 1
            assert snapshot(engine) == before, f"{command} was rejected ({rejected.reason}) but changed state"
            assert engine.conservation().holds
            return
        self.log.append((command, events))
        if isinstance(command, Withdraw):
            assert not any(key[0] == command.account for key in before[5]["liquidating"]), command
            pool = cross_pool(engine, command.account, command.asset)
            assert pool is None or not pool.positions or pool.equity >= pool.initial_margin, command
        if isinstance(command, AdjustIsolatedMargin) and D(command.amount) < 0:
            key = (command.account, f"{command.venue}/{command.market}")
            assert key not in before[5]["liquidating"], command
            pool = cross_pool(engine, *key)  # the isolated pool the key names
            assert pool.collateral + min(pool.unrealized_pnl, D(0)) >= pool.initial_margin, command
        report = engine.conservation()
        assert report.holds, f"after {command}:\n{report.describe()}"
        # The engine's direct cross valuation is account_margin's cross pools, to the last digit.
        for account in engine.home_venue:
            full = account_margin(engine.ledger, account, models=engine.model, marks=engine.marks,
                                  with_liquidation_prices=False)
            assert cross_pools(engine, account) == [pool for pool in full if pool.isolated_market is None], account
        # A closed isolated position holds no margin: what was left went to the wallet or the fund,
        # a deficit was covered or written off (never left for the wallet to pay later).
        for account in engine.ledger.accounts.values():
            for position in account.positions.values():
                assert position.lots or not position.isolated_margin, (command, account.id, position)
        self.check_liquidatable(command, events)

    def check_liquidatable(self, command, events) -> None:
        engine = self.engine
        said: dict[str, list[dict]] = {}
        for event in events:
            assert event["kind"] != "liquidation_failed", f"the pipeline failed after {command}: {event}"
            who = about(event)
            if who is not None:
                said.setdefault(who, []).append(event)
        self.last_word.update(said)
        for account, settle in liquidatable_pools(engine):
            assert (account, settle) in engine.liquidating, (
                f"{account} is liquidatable after {command} but not in liquidation; events: {events}")
            words = self.last_word.get(account, [])
            explained = any(explains_waiting(event) for event in words) and not any(
                event["kind"] == "liquidation_ended" for event in words)
            assert explained, (
                f"{account} left liquidatable after {command}; the last liquidation events about it: {words}")

    def replay_matches(self) -> None:
        """The command log, through JSON and back, replayed in a fresh engine: the same events."""
        fresh = Engine()
        for command, outcome in self.log:
            command = command_from_dict(json.loads(json.dumps(command.to_dict())))
            try:
                got = [event.to_dict() for event in fresh.apply(command)]
            except CommandRejected as rejected:
                got = ("rejected", rejected.reason)
            assert got == outcome, f"replay differs at {command}"


FAST = settings(max_examples=500, deadline=None, database=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@FAST
@given(worlds, ops)
def test_random_command_streams_keep_conservation_atomicity_liquidation_and_replay_invariants(world, stream_ops):
    presets, funds, funded, deposits, spread = world
    stream = Stream(presets, funds, funded, deposits, spread)
    for op in stream_ops:
        stream.apply(stream.build(op))
    stream.replay_matches()
