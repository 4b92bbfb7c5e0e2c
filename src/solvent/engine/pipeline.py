"""The liquidation pipeline: margin calls, trigger, sizing, execution, fees and the loss waterfall.

Run by the engine after a command moves prices, fills or time, over the accounts it may affect
(sorted, so the order of events is a function of the commands alone). Every step is a part of the
venue's preset (:class:`~solvent.engine.config.VenueRules`):

1. margin call when MM/equity reaches the warning ratio, cleared when it falls back;
2. trigger: equity below (or at) maintenance; once in liquidation an account stays there until
   equity is back above maintenance plus the exit buffer (Drift's hysteresis);
3. sizing: the whole position, Hyperliquid's fraction above a notional with a cooldown, or dYdX's
   per-block portion, minimum and cap;
4. execution: an IOC against the venue's book (a depth model: the price moves linearly with the
   notional) within a limit (none, the bankruptcy price, dYdX's fillable price); a liquidator taking
   over at the mark ∓ a fee that ramps with blocks (Drift); a keeper closing at the mark against
   the pool (GMX); the backstop vault taking the whole account below a fraction of maintenance
   (Hyperliquid); the insurance fund taking over at the bankruptcy price what the book did not
   fill (Binance, BitMEX, Bybit);
5. fees on the notional closed, capped by what the account has left, to the receivers the preset
   names; the margin left above bankruptcy to the fund where the venue says so;
6. the waterfall for what is left below zero: insurance fund (with a cap), shared backstop (with
   a per-venue cap), the pool, socialized over open positions (Drift); auto-deleveraging happens
   before execution when the fill would lose more than the fund and backstop can pay. Whatever no
   layer absorbs is a ``BadDebt`` event with its amount.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import replace
from decimal import ROUND_CEILING, ROUND_DOWN, ROUND_FLOOR, ROUND_UP, Decimal
from typing import TYPE_CHECKING

from ..core.domain import ContractKind, MarginMode, Side
from ..core.errors import InvalidInput, SolventError
from ..core.ledger import Position
from ..core.numbers import ZERO
from ..policies import adl
from ..policies.account import PoolMargin, _margin_at_mark, _pool, cross_margins, position_entry_price
from ..policies.liquidation_price import Leg, solve_price
from ..policies.margin import LiquidityTier
from . import events as e
from .pricing import liquidation_pause

if TYPE_CHECKING:  # pragma: no cover
    from .engine import Engine, VenueState

PRICE_QUANTUM = Decimal("1e-8")


# --------------------------------------------------------------------------------------------
# Valuation
# --------------------------------------------------------------------------------------------


def cross_pools(engine: Engine, account: str) -> list[PoolMargin]:
    return cross_margins(engine.ledger, account, models=engine.model, marks=engine.marks)


def cross_pool(engine: Engine, account: str, settle: str) -> PoolMargin | None:
    """The account's cross pool in ``settle``. The liquidation bookkeeping keys every pool as
    ``(account, pool)``: a settle asset for a cross pool, an isolated pool's id (see
    :func:`isolated_pool_id`) for an isolated position, so ``cross_pool(engine, *key)`` revalues
    whichever pool a key names."""
    if ISOLATED_MARK in settle:
        return isolated_pool(engine, account, settle)
    return next((pool for pool in cross_pools(engine, account) if pool.settle == settle), None)


# --------------------------------------------------------------------------------------------
# Isolated pools
# --------------------------------------------------------------------------------------------

ISOLATED_MARK = "/"  # in every market key ("venue/SYMBOL"), in no settle asset: an isolated pool's id
HEDGE_MARK = "#"


def isolated_pool_id(market: str, hedge_side: Side | None) -> str:
    """The bookkeeping id of an isolated position's pool: its market key, and its leg in hedge mode."""
    return market if hedge_side is None else f"{market}{HEDGE_MARK}{hedge_side}"


def is_isolated(pool_id: str) -> bool:
    return ISOLATED_MARK in pool_id


def _slot(pool_id: str) -> tuple[str, Side | None]:
    """(market key, hedge side) of an isolated pool id."""
    market, _, leg = pool_id.partition(HEDGE_MARK)
    return market, (Side.parse(leg) if leg else None)


def _isolated_position(engine: Engine, account: str, pool_id: str) -> Position | None:
    position = engine.ledger.accounts[account].positions.get(_slot(pool_id))
    if position is None or position.margin_mode is not MarginMode.ISOLATED:
        return None
    return position


def isolated_pool(engine: Engine, account: str, pool_id: str) -> PoolMargin | None:
    """One isolated position's pool: its isolated margin and that position alone, valued at the
    mark. The maintenance margin follows the venue's convention (Bybit values it at the entry
    price: ``MM = entry value × MMR``, which is what makes its isolated formula
    ``LP = EP ∓ (IM − MM)/Q`` the price where equity meets it). A closed position whose margin
    the liquidation has not settled yet is a pool without positions; None when the account has
    no isolated position there."""
    position = _isolated_position(engine, account, pool_id)
    if position is None:
        return None
    ledger = engine.ledger
    market = ledger.markets[position.market]
    collateral = ledger.amount(market.settle, position.isolated_margin)
    if not position.lots:
        return _pool(account, market.settle, position.market, collateral, [])
    margin = _margin_at_mark(ledger, position, engine.marks, engine.model)
    if engine.venue_of_market(position.market).preset.liquidation_price_rule.maintenance_at == "entry":
        entry_value = ledger.amount(market.settle, position.cost)  # quote value (linear), coin value (inverse)
        margin = replace(margin, maintenance_margin=engine.model(position.market).maintenance_margin(
            entry_value, margin.size))
    return _pool(account, market.settle, position.market, collateral, [margin])


def isolated_pools(engine: Engine, account: str) -> list[tuple[tuple[str, str], PoolMargin | None]]:
    """(key, pool) of every isolated pool of the account the pipeline must look at: open isolated
    positions, and closed ones still held in a margin call or in liquidation (sorted by id)."""
    found = []
    for (market, hedge_side), position in engine.ledger.accounts[account].positions.items():
        if position.margin_mode is not MarginMode.ISOLATED:
            continue
        key = (account, isolated_pool_id(market, hedge_side))
        if position.lots or position.isolated_margin or key in engine.margin_called or key in engine.liquidating:
            found.append(key)
    return [(key, isolated_pool(engine, account, key[1])) for key in sorted(found)]


def margin_funding_refused(engine: Engine, account: str, asset: str, units: int) -> str | None:
    """Why the wallet cannot move ``units`` of ``asset`` into an isolated position, or None: it
    must hold them, and, as for a withdrawal, the cross pool must not be in liquidation and the
    cross positions the wallet backs must keep their initial margin (an isolated position in
    liquidation may still be given margin: it may cure it)."""
    ledger = engine.ledger
    cash = ledger.accounts[account].balance(asset)
    if cash < units:
        return (f"the wallet of {account!r} holds {_text(ledger.amount(asset, cash))} {asset}: not enough to move "
                f"{_text(ledger.amount(asset, units))} {asset} into an isolated position")
    if any(key[0] == account and not is_isolated(key[1]) for key in engine.liquidating):
        return f"margin cannot leave the wallet while account {account!r} is being liquidated"
    return _leaving_cross_refused(engine, account, asset, units)


def _leaving_cross_refused(engine: Engine, account: str, asset: str, units: int) -> str | None:
    """Why ``units`` of ``asset`` may not leave the account's cross pool (a withdrawal, margin into
    an isolated position), or None: what stays must cover what the venue asks of the open positions."""
    pool = cross_pool(engine, account, asset)
    if pool is None or not pool.positions:
        return None
    if pool.equity <= 0:
        return f"account {account!r} has non-positive equity ({_text(pool.equity)} {asset})"
    amount = engine.ledger.amount(asset, units)
    venue = engine.venues[engine.home_venue[account]]
    required, what = transfer_requirement(venue, pool)
    if pool.equity - amount < required:
        return (f"moving {_text(amount)} {asset} would leave the cross equity {_text(pool.equity - amount)} {asset} "
                f"below {what} of the cross positions ({_text(required)} {asset})")
    return _cash_short_of_maintenance(venue, pool, amount, asset)


def _cash_short_of_maintenance(venue: VenueState, pool: PoolMargin, amount: Decimal, asset: str) -> str | None:
    """Binance: what leaves a pool must leave its balance, unrealized profit not counted, at or above
    the maintenance margin; why it would not, or None."""
    if venue.rules.transfer_cash_covers_maintenance and pool.collateral - amount < pool.maintenance_margin:
        return (f"moving {_text(amount)} {asset} would leave a balance of {_text(pool.collateral - amount)} {asset}, "
                f"unrealized PnL aside, below the maintenance margin {_text(pool.maintenance_margin)} {asset}")
    return None


def transfer_requirement(venue: VenueState, pool: PoolMargin) -> tuple[Decimal, str]:
    """What money leaving the pool (a withdrawal, margin moved out) must leave in it, and what that
    is called: its initial margin, or, where the venue sets a floor (Hyperliquid: 10% of the
    position value), the larger of the two."""
    floor = venue.rules.transfer_floor * sum((margin.notional for margin in pool.positions), Decimal(0))
    if floor > pool.initial_margin:
        return floor, f"{_text((venue.rules.transfer_floor * 100).normalize())}% of the position value"
    return pool.initial_margin, "the initial margin"


def _liquidatable(engine: Engine, venue: VenueState, pool: PoolMargin) -> bool:
    if pool.maintenance_margin <= 0:
        return False
    if venue.rules.trigger == "at_or_below":
        return pool.equity <= pool.maintenance_margin
    return pool.equity < pool.maintenance_margin


def _recovered(engine: Engine, venue: VenueState, pool: PoolMargin) -> bool:
    if not pool.positions:
        return True
    liability = sum((position.notional for position in pool.positions), Decimal(0))
    return pool.equity >= pool.maintenance_margin + venue.rules.exit_buffer * liability and not _liquidatable(
        engine, venue, pool)


def withdrawal_allowed(engine: Engine, account: str, asset: str, units: int) -> str | None:
    """Why a withdrawal must be refused, or None. Blocked in liquidation, below zero equity, or
    when it would leave less than the initial margin of the open positions."""
    if any(key[0] == account for key in engine.liquidating):
        return f"withdrawals are blocked while account {account!r} is being liquidated"
    return _leaving_cross_refused(engine, account, asset, units)


# --------------------------------------------------------------------------------------------
# The pipeline
# --------------------------------------------------------------------------------------------


MAX_ROUNDS = 4  # accounts hit by another's liquidation (ADL, socialized loss) are re-checked


def evaluate(engine: Engine, accounts, *, screened: bool = False) -> list[e.Event]:
    """Run the pipeline over ``accounts`` (sorted), then over whoever their liquidations hit.
    ``screened``: the accounts come from the screen, which picked them as near a threshold, so
    the float pre-check would rarely spare one; they go to the exact path directly."""
    events: list[e.Event] = []
    queue = sorted(accounts)
    for _ in range(MAX_ROUNDS):
        hit_by_others: set[str] = set()
        changed = engine.ledger.changed
        for account in queue:
            if engine.is_protocol(account) or account not in engine.home_venue:
                continue
            changed.clear()
            events += _evaluate_account(engine, account, precheck=not screened)
            if changed:
                changed.discard(account)
                hit_by_others |= changed
        queue = sorted(a for a in hit_by_others if not engine.is_protocol(a) and a in engine.home_venue)
        screened = False
        if not queue:
            break
    return events


SAFE_MARGIN = 1e-9  # relative: a float valuation this far from the warning ratio is not re-checked


def _clearly_safe(engine: Engine, venue: VenueState, account: str) -> bool:
    """True when floats show every cross pool of the account well inside its warning ratio and
    the engine holds it neither in a margin call nor in liquidation: valuing it exactly would
    change nothing. Anything the floats do not cover (isolated positions, a size-dependent rate)
    answers False and goes to the exact path."""
    holder = engine.ledger.accounts[account]
    if account in engine.isolated_accounts:
        return False
    if not holder.positions or ((engine.margin_called or engine.liquidating) and any(
            (account, settle) in engine.margin_called or (account, settle) in engine.liquidating
            for settle in engine.ledger.settle_assets)):
        return False
    ledger = engine.ledger
    pools: dict[str, list[float]] = {}  # settle → [equity, maintenance, scale]
    for position in holder.positions.values():
        if not position.lots:
            continue
        if position.margin_mode is not MarginMode.CROSS:
            return False
        market = ledger.markets[position.market]
        schedule = engine.schedule(position.market)
        if schedule.size_dependent:
            return False
        settle = market.settle
        scale = 10.0 ** ledger.assets[settle].decimals
        pool = pools.get(settle)
        if pool is None:
            pool = pools[settle] = [holder.balances.get(settle, 0) / scale, 0.0, 0.0]
        quantity = position.lots / 10.0 ** market.size_decimals * float(market.contract_size)
        x = float(engine.marks[position.market])
        x = 1.0 / x if schedule.inverse else x
        notional = abs(quantity) * x
        tier = max(bisect_right(schedule.floor_list, notional) - 1, 0)
        maintenance = notional * schedule.rates[tier] - schedule.deductions[tier]
        pool[0] += quantity * (-x if schedule.inverse else x) - ledger.signed_cost(position) / scale
        pool[1] += maintenance
        pool[2] += notional + abs(maintenance)
    warning = min(float(venue.rules.warning_ratio), 1.0)
    for equity, maintenance, scale in pools.values():
        if maintenance > 0 and maintenance >= warning * equity - SAFE_MARGIN * (scale + abs(equity) + 1.0):
            return False
    return True


def _evaluate_account(engine: Engine, account: str, precheck: bool = True) -> list[e.Event]:
    venue = engine.venues[engine.home_venue[account]]
    if precheck and _clearly_safe(engine, venue, account):
        return []
    events: list[e.Event] = []
    for pool in cross_pools(engine, account):
        events += _evaluate_pool(engine, venue, (account, pool.settle), pool)
    if account in engine.isolated_accounts:
        events += _evaluate_isolated(engine, account)
    return events


def _evaluate_pool(engine: Engine, venue: VenueState, key, pool: PoolMargin) -> list[e.Event]:
    """Margin call, then liquidation if the pool is (or still is) below maintenance."""
    events = _margin_call(engine, venue, key, pool)
    if key in engine.liquidating or _liquidatable(engine, venue, pool):
        try:
            events += _liquidate(engine, venue, key, pool)
        except (ArithmeticError, ValueError, KeyError, SolventError) as error:  # a defect, reported
            events.append(e.LiquidationFailed(key[0], venue.name, f"{type(error).__name__}: {error}"))
    return events


def _evaluate_isolated(engine: Engine, account: str) -> list[e.Event]:
    """Each isolated position is a pool of its own, under the rules of the venue listing its
    market: margin call, trigger, sizing, execution, fee, remainder and waterfall, against its
    isolated margin alone (the wallet neither pays its loss nor backs it)."""
    events: list[e.Event] = []
    pools = isolated_pools(engine, account)
    for key, pool in pools:
        if pool is None:  # the position is gone (or no longer isolated): forget its bookkeeping
            engine.margin_called.discard(key)
            engine.liquidating.pop(key, None)
            continue
        assert pool.isolated_market is not None  # an isolated pool names its market
        events += _evaluate_pool(engine, engine.venue_of_market(pool.isolated_market), key, pool)
    after = isolated_pools(engine, account) if events else pools  # no event: no pool changed
    if not after or not any((pool is not None and (pool.positions or pool.collateral)) or key in engine.margin_called
                            or key in engine.liquidating for key, pool in after):
        engine.isolated_accounts.discard(account)
        engine.ledger.touched.add(account)  # the screen files it again with the cross-only accounts
    return events


def _margin_call(engine: Engine, venue: VenueState, key, pool: PoolMargin) -> list[e.Event]:
    account, _ = key
    if pool.maintenance_margin <= 0 and key not in engine.margin_called:
        return []
    ratio = pool.margin_ratio  # None when equity <= 0
    called = pool.maintenance_margin > 0 and (ratio is None or ratio >= venue.rules.warning_ratio)
    if called and key not in engine.margin_called:
        engine.margin_called.add(key)
        return [e.MarginCallIssued(account, venue.name, "inf" if ratio is None else _text(ratio),
                                   _text(pool.equity), _text(pool.maintenance_margin))]
    if not called and key in engine.margin_called:
        engine.margin_called.discard(key)
        return [e.MarginCallCleared(account, venue.name, "0" if ratio is None else _text(ratio))]
    return []


MAX_STEPS_PER_COMMAND = 64  # a bound on liquidation steps per account per command


def _liquidate(engine: Engine, venue: VenueState, key, pool: PoolMargin) -> list[e.Event]:
    account, settle = key
    rules = venue.rules
    events: list[e.Event] = []
    if key not in engine.liquidating:
        engine.liquidating[key] = engine.block
        events.append(e.LiquidationStarted(account, venue.name, _text(pool.equity), _text(pool.maintenance_margin)))
    elif _recovered(engine, venue, pool):
        ended: PoolMargin | None = pool
        if not pool.positions:  # closed by a TakeOver: settle what is left (a deficit to the waterfall) first
            events += _settle_closed_account(engine, venue, key)
            ended = cross_pool(engine, account, settle)
        return events + _end(engine, venue, key, ended)

    if rules.method == "backstop_vault" and rules.backstop_below is not None and (
            pool.equity < rules.backstop_below * pool.maintenance_margin):
        events += _vault_takeover(engine, venue, key, pool)
        current: PoolMargin | None = cross_pool(engine, account, settle)
    else:
        # Step by step, the largest position first, until the pool is healthy again (or a rule
        # says to wait). Each position is closed through the venue that lists its market (its
        # book, its fees, its fund): collateral that backs several venues is liquidated on each.
        current = pool
        for step in range(MAX_STEPS_PER_COMMAND):
            if current is None or not current.positions or _recovered(engine, venue, current):
                break
            position = _positions_to_liquidate(engine, current, account, settle)[0]
            market_venue = engine.venue_of_market(position.market)
            if _awaits_liquidators(market_venue, current):
                break  # liquidators take it over with TakeOver; the venue steps in only once it is bankrupt
            step_events, notional, stop = _liquidate_position(engine, market_venue, key, position, current)
            events += step_events
            if notional:  # the fee is part of the step: recovery is judged after it
                events += _charge_fee(engine, market_venue, key, notional)
            current = cross_pool(engine, account, settle)
            if stop:
                if stop != "paused" and current is not None and current.positions and not _recovered(
                        engine, venue, current):
                    events.append(e.LiquidationPaused(account, venue.name, stop))
                break
        else:
            events.append(e.LiquidationPaused(account, venue.name,
                                              f"step limit of {MAX_STEPS_PER_COMMAND} per command reached"))
    # ``current`` is the pool as the last step left it.
    if current is not None and not current.positions:
        settled = _settle_closed_account(engine, venue, key)
        if settled or is_isolated(settle):  # a cross pool that settled nothing (no event) is unchanged
            current = cross_pool(engine, account, settle)
        events += settled
    if current is None or _recovered(engine, venue, current):
        events += _end(engine, venue, key, current)
    return events


def _end(engine: Engine, venue: VenueState, key, pool: PoolMargin | None) -> list[e.Event]:
    engine.liquidating.pop(key, None)
    engine.last_liquidated.pop(key, None)
    if pool is not None:
        equity = pool.equity
    elif is_isolated(key[1]):
        equity = Decimal(0)
    else:
        equity = engine.ledger.amount(key[1], engine.ledger.accounts[key[0]].balance(key[1]))
    events: list[e.Event] = [e.LiquidationEnded(key[0], venue.name, _text(equity))]
    if pool is not None:
        events += _margin_call(engine, venue, key, pool)
    return events


def _positions_to_liquidate(engine: Engine, pool: PoolMargin, account: str, settle: str) -> list[Position]:
    """Open cross positions of the pool, the largest notional first (then by market, for order);
    an isolated pool's (``settle`` is then its id) is its one position."""
    ledger = engine.ledger
    if is_isolated(settle):
        position = _isolated_position(engine, account, settle)
        return [position] if position is not None and position.lots else []
    notional = {margin.market: margin.notional for margin in pool.positions}
    positions = [p for p in ledger.accounts[account].open_positions()
                 if ledger.markets[p.market].settle == settle and p.margin_mode.value == "cross"]
    return sorted(positions, key=lambda p: (-notional.get(p.market, Decimal(0)), p.market,
                                            0 if p.hedge_side is None else int(p.hedge_side)))


# --------------------------------------------------------------------------------------------
# One position
# --------------------------------------------------------------------------------------------


def _model_notional(market, size: Decimal, mark: Decimal) -> Decimal:
    """The notional a margin model sees: quote value (linear) or coin value (inverse)."""
    quantity = size * market.contract_size
    return quantity * mark if market.kind is ContractKind.LINEAR else quantity / mark


def _size_of_notional(market, notional: Decimal, mark: Decimal) -> Decimal:
    """Contracts worth ``notional`` in the model's unit (the inverse of :func:`_model_notional`)."""
    per_contract = _model_notional(market, Decimal(1), mark)
    return notional / per_contract


def _liquidate_position(engine: Engine, venue: VenueState, key, position: Position, pool: PoolMargin,
                        taker: str | None = None, most: Decimal | None = None):
    """Close (part of) a position through ``venue`` (at most ``most``; ``taker``: the liquidator
    taking it over, on venues where liquidators do).

    Returns (events, notional closed, stop) where ``stop`` is None to keep stepping, "paused"
    when a pause event was already emitted, or the reason to report if the account is still
    liquidatable (a partial step that waits for the next block).
    """
    account = key[0]
    rules = venue.rules
    ledger = engine.ledger
    market = ledger.markets[position.market]
    settle = market.settle
    mark = engine.marks[position.market]
    side = position.side
    assert side is not None  # a position being liquidated is open (non-zero lots)
    size = market.size_of(abs(position.lots))
    symbol = _symbol(position.market)
    events: list[e.Event] = []

    if rules.once_per_block and engine.liquidated_in_block.get((account, position.market)) == engine.block:
        return [e.LiquidationPaused(account, venue.name, f"{symbol} was already liquidated in block {engine.block}")], \
            Decimal(0), "paused"
    guarded = liquidation_pause(engine, position.market)  # an oracle guard (engine/pricing.py)
    if guarded is not None:
        return [e.LiquidationPaused(account, venue.name, guarded)], Decimal(0), "paused"
    close_size, stop = _size_to_close(engine, venue, key, position, market, size, mark, pool)
    if most is not None:
        close_size = min(close_size, most)
    if close_size <= 0:
        return [e.LiquidationPaused(account, venue.name, "per-block liquidation cap reached")], Decimal(0), "paused"
    if rules.once_per_block:
        engine.liquidated_in_block[(account, position.market)] = engine.block
    bankruptcy = _bankruptcy_price(engine, pool, position)
    price, fill_size, counterparty, method = _execution(engine, venue, key, position, close_size, mark, bankruptcy,
                                                        taker)
    if fill_size > 0 and "adl" in rules.layers and _shortfall(market, side, fill_size, price, bankruptcy) > (
            _waterfall_capacity(engine, venue, settle)):
        fill_size = Decimal(0)  # filling would lose more than the fund and backstop can pay: deleverage
    delta = None
    capped = False  # dYdX: the fill would take the fund past what it may lose for this subaccount this block
    if fill_size > 0 and rules.fee_rule == "insurance_fund_delta":
        delta = _insurance_fund_delta(engine, venue, account, position, price, fill_size)
        if delta is not None and delta < 0 and rules.max_insurance_lost_per_block is not None:
            lost = engine.insurance_lost_this_block.get(key, Decimal(0)) + ledger.amount(settle, -delta)
            if lost > rules.max_insurance_lost_per_block:
                fill_size, delta, capped = Decimal(0), None, True
            else:
                engine.insurance_lost_this_block[key] = lost
    if fill_size > 0:
        if_rate = Decimal(0)
        if method == "takeover" and rules.if_liquidation_fee and not is_isolated(key[1]) and (
                market.kind is ContractKind.LINEAR):
            terms = _drift_terms(engine, venue, key, position, size, mark, pool)
            if_rate = terms[3] if terms is not None else Decimal(0)
        _close(engine, venue, account, counterparty, position, fill_size, price)
        events.append(e.PositionLiquidated(account, venue.name, symbol, str(side), _text(fill_size), _text(price),
                                           _text(bankruptcy), method, counterparty, _text(size - fill_size)))
        if delta:
            events += _settle_fund_delta(engine, venue, account, settle, delta)
        if if_rate:  # Drift's IF fee: of the base value taken over, to the fund
            events += _charge_fee(engine, venue, key, fill_size * market.contract_size * mark, if_rate,
                                  (("insurance", Decimal(1)),))
    remainder = close_size - fill_size
    if remainder > 0 and rules.method == "insurance_takeover" and bankruptcy is not None:
        if _fund_can_hold(engine, venue, market, remainder, mark):
            # The fund takes over at the bankruptcy price what the book could not fill within it.
            _close(engine, venue, account, venue.insurance, position, remainder, bankruptcy)
            events.append(e.PositionLiquidated(account, venue.name, symbol, str(side), _text(remainder),
                                               _text(bankruptcy), _text(bankruptcy), "insurance", venue.insurance,
                                               _text(size - close_size)))
            remainder = Decimal(0)
        else:
            # The fund cannot hold it: sell into the book at any price if the cash layers (fund,
            # shared backstop) can pay the loss beyond bankruptcy; otherwise deleverage.
            book_price = _book_price(venue, market, side, remainder, mark)
            if _shortfall(market, side, remainder, book_price, bankruptcy) <= _waterfall_capacity(engine, venue, settle):
                _close(engine, venue, account, venue.book, position, remainder, book_price)
                events.append(e.PositionLiquidated(account, venue.name, symbol, str(side), _text(remainder),
                                                   _text(book_price), _text(bankruptcy), "book", venue.book,
                                                   _text(size - close_size)))
                remainder = Decimal(0)
    if remainder > 0:
        current = cross_pool(engine, *key)
        may_deleverage = "adl" in rules.layers and (
            rules.adl_when == "unfilled" or (current is not None and current.equity < 0))
        if may_deleverage:
            events += _auto_deleverage(engine, venue, account, position, remainder, bankruptcy)
            remainder = market.size_of(abs(position.lots)) - (size - close_size)
        if remainder > 0:
            reason = f"no fill within the limit for {symbol}" if not may_deleverage else \
                f"no counterparty for the rest of {symbol}"
            if capped and not may_deleverage:
                reason = (f"the insurance fund may lose at most {_text(rules.max_insurance_lost_per_block)} {settle} "
                          f"for {account!r} per block: the rest of {symbol} waits for the next block")
            events.append(e.LiquidationPaused(account, venue.name, reason))
            stop = "paused"
    closed = close_size - max(remainder, Decimal(0))
    if closed > 0:
        engine.last_liquidated[key] = position.market
    engine._track_holders(position.market, {account, counterparty, venue.insurance, venue.book})
    notional = closed * market.contract_size * (mark if market.kind is ContractKind.LINEAR else 1)
    if closed > 0:
        engine.notional_this_block[key] = engine.notional_this_block.get(key, Decimal(0)) + notional
    elif stop is None:
        stop = "paused"
    return events, notional, stop


def _size_to_close(engine: Engine, venue: VenueState, key, position: Position, market, size: Decimal,
                   mark: Decimal, pool: PoolMargin) -> tuple[Decimal, str | None]:
    """How much of the position this step closes, and why to stop stepping afterwards (or None)."""
    rules = venue.rules
    lot = Decimal(1).scaleb(-market.size_decimals)
    quote_notional = size * market.contract_size * (mark if market.kind is ContractKind.LINEAR else 1)
    if rules.partial_fraction is not None:
        # Hyperliquid: above the threshold only a fraction, once per block; for the cooldown
        # that follows, liquidation orders are for the entire position.
        now = engine.time_of(venue.name)
        in_cooldown = engine.full_until.get(key, -1) > now
        if quote_notional > rules.partial_above_notional and not in_cooldown:
            engine.full_until[key] = now + rules.cooldown_seconds
            part = min(size, max(lot, (size * rules.partial_fraction).quantize(lot, rounding=ROUND_UP)))
            return part, "partial liquidation: the rest waits for the next block"
        return size, None
    if rules.step_down_tiers and pool.equity > 0:
        # Binance, Bybit, BitMEX: bring the position under its bracket's floor, one tier at a time
        # (a bankrupt account is closed whole). Brackets are in the model's notional unit.
        notional = _model_notional(market, size, mark)
        floors = [row[0] for row in engine.model(position.market).maintenance_table(size)]
        tier = max(bisect_right(floors, notional) - 1, 0)
        if tier == 0:
            return size, None
        excess = _size_of_notional(market, notional - floors[tier], mark).quantize(lot, rounding=ROUND_DOWN) + lot
        return min(size, excess), None
    if rules.method == "liquidator":
        return _drift_size(engine, venue, key, position, market, size, mark, pool), None
    if rules.max_portion_per_block is None and rules.max_notional_per_block is None:
        return size, None
    # dYdX: at most a portion of the position (but at least the minimum notional) per block, and
    # at most the subaccount's notional cap per block.
    unit_value = market.contract_size * (mark if market.kind is ContractKind.LINEAR else 1)
    allowed = size
    if rules.max_portion_per_block is not None:
        allowed = max(size * rules.max_portion_per_block, rules.min_notional_per_block / unit_value)
    if rules.max_notional_per_block is not None:
        left = rules.max_notional_per_block - engine.notional_this_block.get(key, Decimal(0))
        allowed = min(allowed, max(left, Decimal(0)) / unit_value)
    allowed = min(size, allowed.quantize(lot, rounding=ROUND_DOWN))
    return allowed, "liquidated once this block: the rest waits for the next block"


def _drift_terms(engine: Engine, venue: VenueState, key, position: Position, size: Decimal, mark: Decimal,
                 pool: PoolMargin) -> tuple[Decimal, Decimal, Decimal, Decimal, Decimal] | None:
    """Drift's liquidation terms for a position of the pool, at Drift's precisions: (margin
    shortage, margin ratio with the buffer, liquidator fee, insurance-fund fee rate, oracle price), or None when
    nothing is short. The IF fee is ``min(if_liquidation_fee, 19/20·(MR − liq_fee −
    shortage/(base·price)))`` (:func:`solvent.policies.drift.if_fee`)."""
    from ..policies import drift

    rules = venue.rules
    quote = Decimal("0.000001")  # Drift's QUOTE_PRECISION: valued against the account
    liability = sum((margin.notional for margin in pool.positions), Decimal(0)).quantize(quote, rounding=ROUND_CEILING)
    shortage = drift.margin_shortage(pool.equity.quantize(quote, rounding=ROUND_FLOOR),
                                     pool.maintenance_margin.quantize(quote, rounding=ROUND_CEILING),
                                     rules.exit_buffer, liability).quantize(quote, rounding=ROUND_CEILING)
    if shortage <= 0:
        return None
    rate, _ = engine.model(position.market).maintenance_line(size * mark, size)
    ratio = (rate + rules.exit_buffer).quantize(Decimal("0.0001"), ROUND_CEILING)
    fee = _ramped_fee(rules, engine.block - engine.liquidating.get(key, engine.block)).quantize(quote, rounding=ROUND_FLOOR)
    price = mark.quantize(quote, rounding=ROUND_FLOOR)
    insurance_fee = drift.if_fee(shortage, size, price, ratio, fee, rules.if_liquidation_fee) \
        if rules.if_liquidation_fee else Decimal(0)
    return shortage, ratio, fee, insurance_fee, price


def _drift_size(engine: Engine, venue: VenueState, key, position: Position, market, size: Decimal, mark: Decimal,
                pool: PoolMargin) -> Decimal:
    """Drift: take over just enough base to cure the margin shortage (plus the buffer), the
    liquidator's discount and the insurance-fund fee counted against what each unit frees."""
    from ..policies import drift

    lot = Decimal(1).scaleb(-market.size_decimals)
    terms = _drift_terms(engine, venue, key, position, size, mark, pool)
    if terms is None or market.kind is not ContractKind.LINEAR:
        return size
    base = drift.base_to_cover_shortage(*terms, "1")
    if base is None:
        return size
    return min(size, max(lot, base.quantize(lot, rounding=ROUND_UP)))


def _bankruptcy_price(engine: Engine, pool: PoolMargin, position: Position) -> Decimal | None:
    """Price of this position at which the pool's equity is zero, other positions at their marks
    (``pool``: the position's cross pool as it stands)."""
    ledger = engine.ledger
    market = ledger.markets[position.market]
    view = next((m for m in pool.positions if m.market == position.market and m.side == position.side), None)
    if view is None:  # not in the pool's valuation: from the ledger, none of the pool's PnL its own
        size, entry, own_pnl = market.size_of(abs(position.lots)), position_entry_price(ledger, position), ZERO
    else:  # the pool valued it: the same size and entry price, already computed
        size, entry, own_pnl = view.size, view.entry_price, view.unrealized_pnl
    assert position.side is not None  # a position being liquidated is open (non-zero lots)
    leg = Leg(position.side, size, entry, engine.model(position.market), market.contract_size)
    return solve_price(market.kind, pool.collateral, [leg], other_pnl=pool.unrealized_pnl - own_pnl,
                       bankruptcy=True).price


def _book_price(venue: VenueState, market, side: Side, size: Decimal, mark: Decimal) -> Decimal:
    notional = size * market.contract_size * (mark if market.kind is ContractKind.LINEAR else 1)
    impact = venue.rules.book_half_spread + notional / venue.rules.book_depth
    # Closing a long sells into the bids (below the mark); closing a short buys the asks.
    raw = mark * (1 - impact) if side is Side.LONG else mark * (1 + impact)
    return max(raw, PRICE_QUANTUM).quantize(PRICE_QUANTUM, rounding=ROUND_FLOOR if side is Side.LONG else ROUND_CEILING)


def _execution(engine: Engine, venue: VenueState, key, position: Position, size: Decimal, mark: Decimal,
               bankruptcy: Decimal | None, taker: str | None = None) -> tuple[Decimal, Decimal, str, str]:
    """(price, size filled, counterparty, method) of the venue's execution for ``size``."""
    rules = venue.rules
    market = engine.ledger.markets[position.market]
    side = position.side
    assert side is not None  # a position being liquidated is open (non-zero lots)
    if rules.method == "keeper":
        return mark, size, venue.book, "keeper"
    if rules.method == "liquidator":
        return takeover_price(engine, venue, key, side, mark), size, taker or venue.liquidator, "takeover"
    limit = None
    if rules.limit == "bankruptcy" or rules.method == "insurance_takeover":
        limit = bankruptcy
    elif rules.limit == "fillable":
        limit = _fillable_price(engine, venue, key[0], position)
    price = _book_price(venue, market, side, size, mark)
    if limit is None or (side is Side.LONG and price >= limit) or (side is Side.SHORT and price <= limit):
        return price, size, venue.book, "book"
    # Only part of the order fills within the limit: the notional at which the price reaches it.
    room = (1 - limit / mark) if side is Side.LONG else (limit / mark - 1)
    room -= rules.book_half_spread
    lot = Decimal(1).scaleb(-market.size_decimals)
    unit_value = market.contract_size * (mark if market.kind is ContractKind.LINEAR else 1)
    fillable = (room * rules.book_depth / unit_value).quantize(lot, rounding=ROUND_DOWN) if room > 0 else Decimal(0)
    fillable = min(fillable, size)
    if fillable <= 0:
        return limit, Decimal(0), venue.book, "book"
    return _book_price(venue, market, side, fillable, mark), fillable, venue.book, "book"


def takeover_price(engine: Engine, venue: VenueState, key, side: Side, mark: Decimal) -> Decimal:
    """Drift: a liquidator takes over at the oracle ∓ the fee, ramped since the liquidation began."""
    fee = _ramped_fee(venue.rules, engine.block - engine.liquidating.get(key, engine.block))
    price = mark * (1 - fee) if side is Side.LONG else mark * (1 + fee)
    return price.quantize(PRICE_QUANTUM, rounding=ROUND_FLOOR if side is Side.LONG else ROUND_CEILING)


def _awaits_liquidators(venue: VenueState, pool: PoolMargin) -> bool:
    """On a venue open to liquidators, a solvent account waits for their TakeOver commands."""
    return venue.rules.method == "liquidator" and venue.rules.takeover == "open" and pool.equity > 0


def take_over(engine: Engine, venue: VenueState, liquidator: str, account: str, market_key: str,
              size: Decimal) -> list[e.Event]:
    """A liquidator takes over at most ``size`` of an account's position in liquidation, at the
    venue's takeover price, within what the venue lets it take this step (Drift: the base that
    cures the shortage). Refused, changing nothing, if the account is not being liquidated or the
    liquidator's own margin could not carry the position (its equity after the discount must
    cover its initial margin plus that of the position taken)."""
    rules = venue.rules
    if rules.method != "liquidator" or rules.takeover != "open":
        raise InvalidInput("venue", f"{venue.name} does not take liquidators' takeovers "
                           "(its [execution] needs method = \"liquidator\" and takeover = \"open\")")
    ledger = engine.ledger
    market = ledger.markets[market_key]
    key = (account, market.settle)
    position = next((p for p in ledger.accounts[account].open_positions()
                     if p.market == market_key and p.margin_mode.value == "cross"), None)
    if position is None or key not in engine.liquidating:  # or its isolated position there, if in liquidation
        isolated = next((p for p in ledger.accounts[account].open_positions() if p.market == market_key
                         and p.margin_mode is MarginMode.ISOLATED
                         and (account, isolated_pool_id(market_key, p.hedge_side)) in engine.liquidating), None)
        if isolated is not None:
            position, key = isolated, (account, isolated_pool_id(market_key, isolated.hedge_side))
    if key not in engine.liquidating:
        raise InvalidInput("account", f"{account!r} is not being liquidated")
    if position is None:
        raise InvalidInput("market", f"{account!r} holds no cross position on {_symbol(market_key)}")
    pool = cross_pool(engine, *key)
    assert pool is not None
    mark = engine.marks[market_key]
    held = market.size_of(abs(position.lots))
    allowed, _ = _size_to_close(engine, venue, key, position, market, held, mark, pool)
    take = min(size, allowed)
    if take <= 0:
        raise InvalidInput("size", f"nothing of {account!r}'s {_symbol(market_key)} may be taken over now")
    assert position.side is not None  # some of it may be taken over: the position is open
    price = takeover_price(engine, venue, key, position.side, mark)
    gain = take * market.contract_size * abs(mark - price) if market.kind is ContractKind.LINEAR else \
        take * market.contract_size * abs(1 / price - 1 / mark)
    own = cross_pool(engine, liquidator, market.settle)
    equity = own.equity if own is not None else Decimal(0)
    required = (own.initial_margin if own is not None else Decimal(0)) + engine.model(market_key).initial_margin(
        _model_notional(market, take, mark), take)
    if equity + gain < required:
        raise InvalidInput("liquidator", f"{liquidator!r} has equity {_text(equity)} {market.settle}: not enough "
                           f"to carry {_text(take)} {_symbol(market_key)} (needs {_text(required - gain)})")
    events, notional, _ = _liquidate_position(engine, venue, key, position, pool, taker=liquidator, most=take)
    if notional:
        events += _charge_fee(engine, venue, key, notional)
    return events + evaluate(engine, sorted({account, liquidator}))


def _ramped_fee(rules, blocks: int) -> Decimal:
    """Drift: the base fee during the grace period, then rising per block up to the maximum."""
    if blocks <= rules.fee_grace_blocks:
        return rules.liquidator_fee
    return min(rules.liquidator_max_fee, rules.liquidator_fee + rules.fee_increase_per_block * blocks)


def _dydx_subaccount(engine: Engine, venue: VenueState, account: str, settle: str):
    """The account as a dYdX subaccount: quote balance (cash − signed cost bases) and positions."""
    from ..policies import dydx

    ledger = engine.ledger
    holdings = [p for p in ledger.accounts[account].open_positions() if p.market.startswith(venue.name + "/")]
    models = [engine.model(p.market) for p in holdings]
    if not all(isinstance(model, LiquidityTier) for model in models):
        return None
    tiers = [model for model in models if isinstance(model, LiquidityTier)]  # all of them (checked above)
    quote = ledger.accounts[account].balance(settle) - sum(ledger.signed_cost(p) for p in holdings)
    return dydx.Subaccount(quote, tuple(
        dydx.DydxPosition(p.market, ledger.markets[p.market].size_of(p.lots), engine.marks[p.market], model)
        for p, model in zip(holdings, tiers)))


def _fillable_price(engine: Engine, venue: VenueState, account: str, position: Position) -> Decimal | None:
    """dYdX's fillable price from the subaccount's TNC/TMMR (policies.dydx)."""
    from ..policies import dydx

    subaccount = _dydx_subaccount(engine, venue, account, engine.ledger.markets[position.market].settle)
    if subaccount is None:
        return None
    config = dydx.DydxLiquidationConfig.from_table(venue.preset.section("liquidation"))
    return dydx.fillable_price(subaccount, position.market, config)


def _insurance_fund_delta(engine: Engine, venue: VenueState, account: str, position: Position,
                          price: Decimal, size: Decimal) -> int | None:
    """dYdX: quantums the fill pays to (positive) or takes from (negative) the insurance fund."""
    from ..policies import dydx

    subaccount = _dydx_subaccount(engine, venue, account, engine.ledger.markets[position.market].settle)
    if subaccount is None:
        return None
    config = dydx.DydxLiquidationConfig.from_table(venue.preset.section("liquidation"))
    return dydx.insurance_fund_delta(subaccount, position.market, price, size, config)


def _settle_fund_delta(engine: Engine, venue: VenueState, account: str, settle: str, delta: int) -> list[e.Event]:
    """Apply a per-fill insurance-fund delta: the fee to the fund, or the fund covering the fill."""
    ledger = engine.ledger
    if delta > 0:
        ledger.transfer(account, venue.insurance, settle, delta, allow_overdraft=True)
        return [e.LiquidationFeeCharged(account, venue.name, _text(ledger.amount(settle, delta)), venue.insurance)]
    pay = min(-delta, max(ledger.accounts[venue.insurance].balance(settle), 0))
    if pay <= 0:
        return []
    ledger.transfer(venue.insurance, account, settle, pay)
    return [e.InsuranceFundDrawn(venue.name, account, _text(ledger.amount(settle, pay)),
                                 _text(ledger.amount(settle, ledger.accounts[venue.insurance].balance(settle))))]


def _shortfall(market, side: Side, size: Decimal, price: Decimal, bankruptcy: Decimal | None) -> Decimal:
    """Loss beyond the account's margin if ``size`` fills at ``price`` (0 when at or better than bankruptcy)."""
    if bankruptcy is None:
        return Decimal(0)
    value = size * market.contract_size
    if market.kind is ContractKind.LINEAR:
        gap = (bankruptcy - price) if side is Side.LONG else (price - bankruptcy)
        return max(gap * value, Decimal(0))
    gap = (1 / price - 1 / bankruptcy) if side is Side.LONG else (1 / bankruptcy - 1 / price)
    return max(gap * value, Decimal(0))


def _fund_can_hold(engine: Engine, venue: VenueState, market, size: Decimal, mark: Decimal) -> bool:
    """Binance: the insurance fund may hold a net notional up to a ratio of its balance."""
    balance = engine.ledger.amount(market.settle, engine.ledger.accounts[venue.insurance].balance(market.settle))
    if balance <= 0:
        return False
    ratio = venue.rules.insurance_max_position_ratio
    if ratio is None:
        return True
    held = sum((abs(p.lots) for p in engine.ledger.accounts[venue.insurance].open_positions()), 0)
    notional = (market.size_of(held) + size) * market.contract_size * (mark if market.kind is ContractKind.LINEAR else 1)
    return notional <= ratio * balance


def _close(engine: Engine, venue: VenueState, account: str, counterparty: str, position: Position,
           size: Decimal, price: Decimal) -> None:
    buyer, seller = (counterparty, account) if position.side is Side.LONG else (account, counterparty)
    buyer_hedge = position.hedge_side if buyer == account else _hedge_for(engine, counterparty, Side.LONG)
    seller_hedge = position.hedge_side if seller == account else _hedge_for(engine, counterparty, Side.SHORT)
    if not engine.isolated_accounts:  # the common case: every position is cross
        engine.ledger.apply_trade(buyer, seller, position.market, size, price, buyer_hedge_side=buyer_hedge,
                                  seller_hedge_side=seller_hedge, fee_pool=venue.fee_pool)
        return
    # The liquidated position trades in its own mode and, if isolated, keeps its margin when it
    # closes (the pipeline settles it); the counterparty trades its position there in its mode.
    modes = []
    for trader, hedge_side in ((buyer, buyer_hedge), (seller, seller_hedge)):
        held = position if trader == account else engine.ledger.accounts[trader].positions.get(
            (position.market, hedge_side))
        isolated = held is not None and held.margin_mode is MarginMode.ISOLATED and (
            held.lots or held.isolated_margin or held is position)
        modes.append(MarginMode.ISOLATED if isolated else MarginMode.CROSS)
    engine.ledger.apply_trade(
        buyer, seller, position.market, size, price, buyer_hedge_side=buyer_hedge, seller_hedge_side=seller_hedge,
        buyer_mode=modes[0], seller_mode=modes[1], fee_pool=venue.fee_pool,
        hold_isolated=account if position.margin_mode is MarginMode.ISOLATED else None,
    )


def _hedge_for(engine: Engine, account: str, side: Side) -> Side | None:
    return side if engine.ledger.accounts[account].position_mode.value == "hedge" else None


# --------------------------------------------------------------------------------------------
# Whole-account takeover (Hyperliquid's liquidator vault)
# --------------------------------------------------------------------------------------------


def _vault_takeover(engine: Engine, venue: VenueState, key, pool: PoolMargin) -> list[e.Event]:
    account, settle = key
    ledger = engine.ledger
    vault = venue.liquidator
    events: list[e.Event] = []
    for position in _positions_to_liquidate(engine, pool, account, settle):
        size = ledger.markets[position.market].size_of(abs(position.lots))
        mark = engine.marks[position.market]
        side = position.side
        assert side is not None  # a position being liquidated is open (non-zero lots)
        _close(engine, venue, account, vault, position, size, mark)
        engine._track_holders(position.market, (account, vault))
        events.append(e.PositionLiquidated(account, venue.name, _symbol(position.market), str(side), _text(size),
                                           _text(mark), "-", "backstop", vault, "0"))
    if is_isolated(settle):  # an isolated position goes to the vault with its margin alone
        return events + _vault_takes_isolated_margin(engine, venue, account, settle)
    # The vault keeps the margin (it is not returned), and pays for a negative balance.
    balance = ledger.accounts[account].balance(settle)
    if balance > 0:
        ledger.transfer(account, vault, settle, balance)
    elif balance < 0 and venue.rules.backstop_deleveraged_below is not None:
        # A margined vault takes the loss onto its own account, which may go negative: then its
        # positions are deleveraged (deleverage_backstop), as any account's would be.
        ledger.transfer(vault, account, settle, -balance, allow_overdraft=True)
        events.append(e.BackstopDrawn(vault, venue.name, account, _text(ledger.amount(settle, -balance)), "0"))
    elif balance < 0:
        pay = min(-balance, max(ledger.accounts[vault].balance(settle), 0))
        if pay:
            ledger.transfer(vault, account, settle, pay)
            events.append(e.BackstopDrawn(vault, venue.name, account, _text(ledger.amount(settle, pay)), "0"))
        if pay < -balance:
            events.append(e.BadDebt(venue.name, account, _text(ledger.amount(settle, -balance - pay))))
    return events + deleverage_backstop(engine, venue)


def deleverage_backstop(engine: Engine, venue: VenueState) -> list[e.Event]:
    """A margined backstop vault (``execution.backstop_deleveraged_below``) whose equity fell below
    that fraction of its own maintenance margin: its positions, the largest first, are
    auto-deleveraged against the opposite side at the ADL price until it is above it again.
    Hyperliquid's ADL page: "backstop liquidated positions have no special treatment"; on 10 Oct
    2025 its liquidator vaults were the bankrupt side of 95.1% of ADL fills (reference
    perp-venues.md §4.5 and the incident table)."""
    rules = venue.rules
    if rules.backstop_deleveraged_below is None or "adl" not in rules.layers:
        return []
    ledger = engine.ledger
    vault = venue.liquidator
    threshold = rules.backstop_deleveraged_below
    settles = sorted({ledger.markets[key].settle for key in venue.markets.values()})
    events: list[e.Event] = []
    for settle in settles:
        for _ in range(MAX_STEPS_PER_COMMAND):
            pool = cross_pool(engine, vault, settle)
            if pool is None or not pool.positions or pool.equity >= threshold * pool.maintenance_margin:
                break
            position = _positions_to_liquidate(engine, pool, vault, settle)[0]
            market = ledger.markets[position.market]
            size = market.size_of(abs(position.lots))
            margin = next(m for m in pool.positions if m.market == position.market and m.side == position.side)
            mark = engine.marks[position.market]
            price = engine.previous_marks.get(position.market, mark) if rules.adl_price == "previous_mark" else mark
            per_base = margin.notional / size  # the model's notional per base unit at the mark
            gross = sum((m.notional for m in pool.positions), Decimal(0))
            rate = pool.maintenance_margin / gross if gross > 0 else Decimal(0)
            # Closing q at ``price`` moves equity by side·q·(price − mark)·(notional per base / mark)
            # and lowers the maintenance margin by about q·per_base·rate.
            assert position.side is not None  # a position being liquidated is open (non-zero lots)
            gain = int(position.side) * (price - mark) * per_base / mark
            per_unit = gain + threshold * per_base * rate
            shortfall = threshold * pool.maintenance_margin - pool.equity
            lot = Decimal(1).scaleb(-market.size_decimals)
            need = size if per_unit <= 0 else min(size, (shortfall / per_unit).quantize(lot, rounding=ROUND_UP) + lot)
            before = position.lots
            events += _auto_deleverage(engine, venue, vault, position, need, None)
            after = ledger.accounts[vault].positions.get((position.market, position.hedge_side))
            if after is not None and after.lots == before:
                break  # no one to deleverage against
    return events


def _vault_takes_isolated_margin(engine: Engine, venue: VenueState, account: str, pool_id: str) -> list[e.Event]:
    ledger = engine.ledger
    vault = venue.liquidator
    market, hedge_side = _slot(pool_id)
    position = _isolated_position(engine, account, pool_id)
    if position is None:
        return []
    settle = ledger.markets[market].settle
    margin = position.isolated_margin
    events: list[e.Event] = []
    if margin > 0:
        ledger.pay_from_isolated(account, market, hedge_side, vault, margin)
    elif margin < 0:
        pay = min(-margin, max(ledger.accounts[vault].balance(settle), 0))
        if pay:
            ledger.pay_into_isolated(vault, account, market, hedge_side, pay)
            events.append(e.BackstopDrawn(vault, venue.name, account, _text(ledger.amount(settle, pay)), "0"))
        if pay < -margin:
            events.append(e.BadDebt(venue.name, account, _text(ledger.amount(settle, -margin - pay))))
            ledger.write_off_isolated(account, market, hedge_side)
    return events


# --------------------------------------------------------------------------------------------
# Fees and the waterfall
# --------------------------------------------------------------------------------------------


def _receiver(venue: VenueState, name: str) -> str:
    return {"insurance": venue.insurance, "protocol": venue.fee_pool, "liquidator": venue.liquidator,
            "pool": venue.book}[name]


def _charge_fee(engine: Engine, venue: VenueState, key, notional: Decimal, rate: Decimal | None = None,
                receivers: tuple[tuple[str, Decimal], ...] | None = None) -> list[e.Event]:
    """``rate`` (the venue's liquidation fee unless given) of ``notional``, capped by the pool's
    equity and cash (floored at the asset's unit), split among ``receivers`` (the venue's
    ``fee_to`` unless given)."""
    account, settle = key
    rules = venue.rules
    rate = rules.fee_rate if rate is None else rate
    receivers = rules.fee_to if receivers is None else receivers
    if notional <= 0 or rate == 0:
        return []
    pool = cross_pool(engine, account, settle)
    equity = pool.equity if pool is not None else Decimal(0)
    ledger = engine.ledger
    slot = None
    if is_isolated(settle):  # charged from the isolated margin, capped by what it holds
        slot = _slot(settle)
        position = _isolated_position(engine, account, settle)
        if position is None:
            return []
        settle = ledger.markets[slot[0]].settle
        cash = position.isolated_margin
    else:
        cash = ledger.accounts[account].balance(settle)
    fee = min(rate * notional, max(equity, Decimal(0)))
    units = min(int((fee.scaleb(ledger.assets[settle].decimals)).to_integral_value(rounding=ROUND_FLOOR)), max(cash, 0))
    events: list[e.Event] = []
    paid = 0
    for index, (name, share) in enumerate(receivers):
        part = units - paid if index == len(receivers) - 1 else int(units * share)
        if part <= 0:
            continue
        target = _receiver(venue, name)
        if slot is not None:
            ledger.pay_from_isolated(account, slot[0], slot[1], target, part,
                                     pool=venue.fee_pool if target == venue.fee_pool else None)
        elif target == venue.fee_pool:
            ledger.pay_to_pool(account, venue.fee_pool, settle, part)
        else:
            ledger.transfer(account, target, settle, part)
        paid += part
        events.append(e.LiquidationFeeCharged(account, venue.name, _text(ledger.amount(settle, part)), target))
    return events


def _settle_closed_account(engine: Engine, venue: VenueState, key) -> list[e.Event]:
    """Everything is closed: hand the rest to the fund (where the venue says so) or cover the hole."""
    account, settle = key
    if is_isolated(settle):
        return _settle_closed_isolated(engine, venue, key)
    ledger = engine.ledger
    balance = ledger.accounts[account].balance(settle)
    if balance > 0 and venue.rules.remainder_to_insurance:
        ledger.transfer(account, venue.insurance, settle, balance)
        return [e.LiquidationFeeCharged(account, venue.name, _text(ledger.amount(settle, balance)), venue.insurance)]
    if balance < 0:
        return _waterfall(engine, venue, account, settle, -balance, market=engine.last_liquidated.get(key))
    return []


def _settle_closed_isolated(engine: Engine, venue: VenueState, key) -> list[e.Event]:
    """A closed isolated position: the margin left goes to the fund where the venue says so, else
    back to the wallet, as on any close; a deficit goes down the waterfall into the position's
    margin, and what no layer absorbs is bad debt, written off (never charged to the wallet)."""
    account, pool_id = key
    position = _isolated_position(engine, account, pool_id)
    if position is None:
        return []
    ledger = engine.ledger
    market, hedge_side = _slot(pool_id)
    settle = ledger.markets[market].settle
    margin = position.isolated_margin
    if margin > 0:
        if venue.rules.remainder_to_insurance:
            ledger.pay_from_isolated(account, market, hedge_side, venue.insurance, margin)
            return [e.LiquidationFeeCharged(account, venue.name, _text(ledger.amount(settle, margin)), venue.insurance)]
        ledger.pay_from_isolated(account, market, hedge_side, account, margin)
        return []
    if margin < 0:
        return _waterfall(engine, venue, account, settle, -margin, slot=(market, hedge_side))
    return []


def _pay_in(engine: Engine, source: str, account: str, settle: str, units: int, slot, *,
            allow_overdraft: bool = False) -> None:
    """Pay ``account``'s deficit: into its wallet, or into its isolated position's margin (``slot``)."""
    if slot is None:
        engine.ledger.transfer(source, account, settle, units, allow_overdraft=allow_overdraft)
    else:
        engine.ledger.pay_into_isolated(source, account, slot[0], slot[1], units, allow_overdraft=allow_overdraft)


def _waterfall_capacity(engine: Engine, venue: VenueState, settle: str) -> Decimal:
    """How much the cash layers (fund, backstop, pool) could pay now, in the settle asset."""
    ledger = engine.ledger
    total = 0
    for layer in venue.rules.layers:
        if layer == "insurance":
            available = max(ledger.accounts[venue.insurance].balance(settle), 0)
            if venue.rules.insurance_cap is not None:
                available = min(available, ledger.units(settle, venue.rules.insurance_cap.quantize(
                    Decimal(1).scaleb(-ledger.assets[settle].decimals), rounding=ROUND_FLOOR)))
            total += available
        elif layer == "backstop":
            total += _backstop_available(engine, venue, settle)
        elif layer == "pool":
            total += max(ledger.accounts[venue.book].balance(settle), 0)
    return ledger.amount(settle, total)


def _backstop_available(engine: Engine, venue: VenueState, settle: str) -> int:
    if venue.backstop is None:
        return 0
    backstop = engine.backstops[venue.backstop]
    if backstop.asset != settle:
        return 0
    balance = max(engine.ledger.accounts[backstop.account].balance(settle), 0)
    cap = backstop.caps.get(venue.name)
    left = balance if cap is None else min(balance, cap - backstop.drawn.get(venue.name, 0))
    return max(left, 0)


def _waterfall(engine: Engine, venue: VenueState, account: str, settle: str, deficit: int,
               slot: tuple[str, Side | None] | None = None, market: str | None = None) -> list[e.Event]:
    """Cover ``deficit`` units of ``account``'s loss, layer by layer, into its wallet or, with
    ``slot`` (market, hedge side), into that isolated position's margin. ``market``: the market the
    loss is charged to where the fund's payouts are capped per market (Drift's contract tiers: the
    isolated position's, else the one the liquidation closed last)."""
    ledger = engine.ledger
    events: list[e.Event] = []
    remaining = deficit
    market = slot[0] if slot is not None else market
    for layer in venue.rules.layers:
        if remaining <= 0:
            break
        if layer == "insurance":
            available = max(ledger.accounts[venue.insurance].balance(settle), 0)
            if venue.rules.insurance_cap is not None:
                available = min(available, ledger.units(settle, venue.rules.insurance_cap))
            tier = venue.preset.contract_tier(_symbol(market)) if venue.rules.insurance_tiers and market else None
            if tier is not None:
                assert market is not None  # a tier is only looked up for a market
                available = min(available, _tier_room(engine, venue, settle, market, tier, remaining))
            pay = min(remaining, available)
            if pay > 0:
                _pay_in(engine, venue.insurance, account, settle, pay, slot)
                remaining -= pay
                if tier is not None:
                    assert market is not None  # a tier is only looked up for a market
                    engine.insurance_paid[market] = engine.insurance_paid.get(market, 0) + pay
                events.append(e.InsuranceFundDrawn(venue.name, account, _text(ledger.amount(settle, pay)), _text(
                    ledger.amount(settle, ledger.accounts[venue.insurance].balance(settle)))))
        elif layer == "backstop":
            pay = min(remaining, _backstop_available(engine, venue, settle))
            if pay > 0:
                backstop = engine.backstops[venue.backstop]  # type: ignore[index]
                _pay_in(engine, backstop.account, account, settle, pay, slot)
                backstop.drawn[venue.name] = backstop.drawn.get(venue.name, 0) + pay
                remaining -= pay
                events.append(e.BackstopDrawn(backstop.name, venue.name, account, _text(ledger.amount(settle, pay)),
                                              _text(ledger.amount(settle, backstop.drawn[venue.name]))))
        elif layer == "pool":
            pay = min(remaining, max(ledger.accounts[venue.book].balance(settle), 0))
            if pay > 0:
                _pay_in(engine, venue.book, account, settle, pay, slot)
                remaining -= pay
                events.append(e.BackstopDrawn(venue.book, venue.name, account, _text(ledger.amount(settle, pay)), "0"))
        elif layer == "socialize":
            paid, per_base_events = _socialize(engine, venue, account, settle, remaining, slot)
            remaining -= paid
            events += per_base_events
    if remaining > 0:
        events.append(e.BadDebt(venue.name, account, _text(ledger.amount(settle, remaining))))
        if slot is not None:
            ledger.write_off_isolated(account, slot[0], slot[1])
    return events


def _tier_room(engine: Engine, venue: VenueState, settle: str, market: str, tier: str, loss: int) -> int:
    """Drift: what the fund may pay toward a loss on ``market`` (units): min(loss, vault − 1 unit,
    its contract tier's cap − what it paid for that market so far) (:func:`policies.drift.insurance_fund_payout`)."""
    from ..policies import drift

    ledger = engine.ledger
    config = drift.DriftLiquidationConfig.from_table(venue.preset.section("liquidation"))
    payout = drift.insurance_fund_payout(ledger.amount(settle, loss),
                                         ledger.amount(settle, ledger.accounts[venue.insurance].balance(settle)),
                                         tier, ledger.amount(settle, engine.insurance_paid.get(market, 0)), config=config)
    return ledger.units(settle, payout)


def _socialize(engine: Engine, venue: VenueState, account: str, settle: str, loss: int, slot=None):
    """Drift: the loss is paid by every open position of the venue's markets in this settle asset,
    pro rata to its size, through cumulative funding; each payment is rounded up, and what the
    rounding collects beyond the loss goes to the insurance fund."""
    from ..policies.drift import socialized_loss_funding_delta

    ledger = engine.ledger
    markets = [key for key in venue.markets.values() if ledger.markets[key].settle == settle]
    payers = []
    for key in markets:
        for holder in sorted(engine.holders[key] - {account}):
            for position in ledger.accounts[holder].positions.values():
                if position.market == key and position.lots:
                    payers.append((holder, key, abs(position.lots)))
    if not payers:
        return 0, []
    total_lots = sum(lots for _, _, lots in payers)
    decimals = ledger.assets[settle].decimals
    events: list[e.Event] = []
    collected = 0
    for key in markets:
        rows = [(holder, lots) for holder, market, lots in payers if market == key]
        if not rows:
            continue
        market = ledger.markets[key]
        share = loss * sum(lots for _, lots in rows) // total_lots if len(markets) > 1 else loss
        long = sum((market.size_of(lots) for holder, lots in rows), Decimal(0))
        per_base = socialized_loss_funding_delta(ledger.amount(settle, share), long, Decimal(0))
        for holder, lots in rows:
            units = int((per_base * market.size_of(lots)).scaleb(decimals).to_integral_value(rounding=ROUND_CEILING))
            _pay_in(engine, holder, account, settle, units, slot, allow_overdraft=True)
            collected += units
        events.append(e.LossSocialized(venue.name, _symbol(key), _text(ledger.amount(settle, share)), _text(per_base)))
    excess = collected - loss
    if excess > 0 and slot is not None:
        ledger.pay_from_isolated(account, slot[0], slot[1], venue.insurance, excess)
    elif excess > 0:
        ledger.transfer(account, venue.insurance, settle, excess)
    return min(collected, loss), events


# --------------------------------------------------------------------------------------------
# Auto-deleveraging
# --------------------------------------------------------------------------------------------


def _auto_deleverage(engine: Engine, venue: VenueState, account: str, position: Position, size: Decimal,
                     bankruptcy: Decimal | None) -> list[e.Event]:
    ledger = engine.ledger
    market = ledger.markets[position.market]
    rules = venue.rules
    price = engine.previous_marks.get(position.market, engine.marks[position.market]) \
        if rules.adl_price == "previous_mark" else bankruptcy
    if price is None or price <= 0:
        return [e.LiquidationPaused(account, venue.name, "no bankruptcy price to deleverage at")]
    opposite = Side.SHORT if position.side is Side.LONG else Side.LONG
    candidates = []
    for holder in sorted(engine.holders[position.market] - {account}):
        if engine.is_protocol(holder) and holder != venue.liquidator:
            continue  # the book and the fund are not ranked; the backstop vault is (Hyperliquid)
        for other in ledger.accounts[holder].open_positions():
            if other.market != position.market or other.side is not opposite:
                continue
            candidate = _candidate(engine, holder, other, rules.adl_rule)
            if candidate is not None:
                candidates.append(candidate)
    if not candidates:
        return [e.LiquidationPaused(account, venue.name, f"no counterparty to deleverage on {_symbol(position.market)}")]
    lot = Decimal(1).scaleb(-market.size_decimals)
    result = adl.deleverage(rules.adl_rule, candidates, size, offset=engine.seed if rules.adl_rule == "dydx" else None,
                            lot=lot if rules.adl_rule in adl.BENCHMARKS else None)
    events: list[e.Event] = [e.AdlQueueRanked(venue.name, _symbol(position.market), rules.adl_rule, tuple(
        (standing.account, standing.rank or 0, standing.lights or 0) for standing in result.standings),
        deficit_size=_text(size), lot=_text(lot), candidates=tuple(
            (candidate.account, _text(candidate.size), _text(candidate.upnl)) for candidate in candidates),
        account_values=tuple(_text(candidate.account_value) for candidate in candidates))]
    for close in result.closes:
        if close.size <= 0:
            continue
        counterparty_position = next(p for p in ledger.accounts[close.account].open_positions()
                                     if p.market == position.market and p.side is opposite)
        _close(engine, venue, account, close.account, position, close.size, price)
        standing = result.standing(close.account)
        events.append(e.PositionAutoDeleveraged(venue.name, _symbol(position.market), close.account, account,
                                                _text(close.size), _text(price), standing.rank or 0))
        del counterparty_position
    engine._track_holders(position.market, [account] + [close.account for close in result.closes])
    return events


def _candidate(engine: Engine, holder: str, position: Position, rule: str) -> adl.AdlCandidate | None:
    """The holder's position as the ADL ranking sees it, with its score under a ranked ``rule``.
    Kept for the rest of the command while the account is unchanged (one price update may
    deleverage many times against the same book). None for a position already past its own
    bankruptcy price under BitMEX's rule, whose effective leverage is then undefined: it awaits
    its own liquidation and is not a counterparty."""
    account = engine.ledger.accounts[holder]
    state = (tuple(account.balances.items()), tuple((p.market, p.lots, p.cost) for p in account.positions.values()))
    key = (holder, position.market, position.side)
    cached = engine._adl_candidates.get(key)
    if cached is not None and cached[0] == state:
        return cached[1]
    candidate = _rank_candidate(engine, holder, position)
    assert candidate.bankrupt_price is not None and candidate.mark_price is not None  # _rank_candidate sets both
    if rule == "bitmex" and (candidate.bankrupt_price >= candidate.mark_price if position.side is Side.LONG
                             else candidate.bankrupt_price <= candidate.mark_price):
        engine._adl_candidates[key] = (state, None)
        return None
    if rule in adl.RANKED_RULES:
        candidate = replace(candidate, score=adl.score(rule, candidate))
    engine._adl_candidates[key] = (state, candidate)
    return candidate


def _rank_candidate(engine: Engine, holder: str, position: Position) -> adl.AdlCandidate:
    ledger = engine.ledger
    market = ledger.markets[position.market]
    settle = market.settle
    if position.margin_mode is MarginMode.ISOLATED:  # ranked within its own pool: its isolated margin
        pool = isolated_pool(engine, holder, isolated_pool_id(position.market, position.hedge_side))
        assert pool is not None  # the holder holds this isolated position
        wallet = pool.collateral
    else:
        pool = cross_pool(engine, holder, settle)
        wallet = ledger.amount(settle, ledger.accounts[holder].balance(settle))
    assert pool is not None  # the holder has this position in the pool
    mark = engine.marks[position.market]
    entry = position_entry_price(ledger, position)
    size = market.size_of(abs(position.lots))
    margin = next(m for m in pool.positions if m.market == position.market and m.side == position.side)
    bankrupt = _bankruptcy_price(engine, pool, position)
    return adl.AdlCandidate(
        account=holder, size=size, side=position.side,
        upnl=margin.unrealized_pnl,
        wallet_balance=wallet,
        maintenance_margin=pool.maintenance_margin,
        mark_price=mark, entry_price=entry,
        # No bankruptcy price: the position cannot go bankrupt (a long backed by more than its
        # notional, a short by at least as much): rank it as if its bankruptcy price were out of reach.
        bankrupt_price=bankrupt if bankrupt is not None else (
            mark * Decimal("1e-30") if position.side is Side.LONG else mark * Decimal("1e30")),
        notional=margin.notional, account_value=pool.equity,
    )


# --------------------------------------------------------------------------------------------


def _symbol(market_key: str) -> str:
    return market_key.split("/", 1)[1]


def _text(value: Decimal | None) -> str:
    """Plain decimal notation for events (never ``0E-8``)."""
    return "-" if value is None else format(value, "f")
