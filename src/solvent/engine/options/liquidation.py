"""Margin calls, liquidation and Derive's Dutch auction for an options venue, and the loss waterfall.

- After a move (surface, spot, time, fill), every account concerned is valued by the venue's model:
  MM < 0 starts a liquidation (``LiquidationStarted``; on a venue whose preset has an ``[auction]``
  table, a Dutch auction with its start fee paid to the security module); IM < 0 ≤ MM is a margin call.
- A ``Bid`` takes a share of the account's whole portfolio (every position's lots and its cash but the
  reserved cash, rounded down to whole units) at the price :mod:`solvent.policies.options.auction` gives
  at that instant; an insolvent auction's negative price is paid by the security module, and what it
  cannot pay is socialized over the venue's other cash holders (pro rata, exact).
- A negative cash balance (an expiry a short could not pay) is covered the same way.

Design: docs/options-engine.md.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_DOWN, ROUND_FLOOR, Decimal
from typing import TYPE_CHECKING

from ...core.errors import InvalidInput
from ...policies.options import auction
from .. import events as e
from . import events as oe
from .venue import SEPARATOR, AccountMargin, AuctionRecord, Holding, OptionsVenue, decimal_of, with_holding

if TYPE_CHECKING:
    from ..engine import Engine


def cash_units(engine: Engine, venue: OptionsVenue, account: str) -> int:
    return engine.ledger.account(account).balance(venue.settle)


def account_margin(engine: Engine, venue: OptionsVenue, account: str) -> AccountMargin:
    return venue.margin(venue.holdings(account), cash_units(engine, venue, account), engine.time_of(venue.name))


def _text(value: float) -> str:
    return str(decimal_of(value))


def review(engine: Engine, venue: OptionsVenue, accounts: list[str]) -> list[e.Event]:
    """Margin calls, their clearing, liquidations and auction ends for ``accounts`` (in this order)."""
    events: list[e.Event] = []
    for account in accounts:
        if SEPARATOR in account:  # the security module's positions are not margined
            continue
        if not venue.holdings(account) and account not in venue.liquidating:
            if account in venue.margin_called:
                venue.margin_called.discard(account)
                events.append(e.MarginCallCleared(account, venue.name, "inf"))
            continue
        margin = account_margin(engine, venue, account)
        if account in venue.liquidating:
            events += _review_liquidation(engine, venue, account, margin)
            continue
        if margin.mm < 0:
            events += _start_liquidation(engine, venue, account, margin)
        elif margin.im < 0:
            if account not in venue.margin_called:
                venue.margin_called.add(account)
                events.append(e.MarginCallIssued(account, venue.name, _ratio(margin), _text(margin.mtm),
                                                 _text(margin.maintenance_requirement)))
        elif account in venue.margin_called:
            venue.margin_called.discard(account)
            events.append(e.MarginCallCleared(account, venue.name, _ratio(margin)))
    return events


def _ratio(margin: AccountMargin) -> str:
    requirement = margin.maintenance_requirement
    if margin.mtm <= 0:
        return "inf" if requirement > 0 else "0"
    return _text(requirement / margin.mtm)


def _start_liquidation(engine: Engine, venue: OptionsVenue, account: str, margin: AccountMargin) -> list[e.Event]:
    venue.margin_called.discard(account)
    venue.liquidating.add(account)
    events: list[e.Event] = [e.LiquidationStarted(account, venue.name, _text(margin.mtm),
                                                  _text(margin.maintenance_requirement))]
    params = venue.auction_params
    if params is None:  # the venue liquidates incrementally, at once
        return events + _review_liquidation(engine, venue, account, margin)
    mtm, mm = decimal_of(margin.mtm), decimal_of(margin.mm)
    state = auction.start_auction(params, mtm, mm)
    fee_units = min(venue.units_of(state.fee, ROUND_CEILING), max(cash_units(engine, venue, account), 0))
    if fee_units:
        engine.ledger.transfer(account, venue.insurance, venue.settle, fee_units)
    venue.auctions[account] = AuctionRecord(state, engine.time_of(venue.name))
    events.append(oe.OptionAuctionStarted(venue.name, account, state.insolvent, str(mtm), str(mm),
                                          str(venue.amount_of(fee_units))))
    return events


def _review_liquidation(engine: Engine, venue: OptionsVenue, account: str, margin: AccountMargin) -> list[e.Event]:
    record = venue.auctions.get(account)
    if record is None:  # no auction on this venue: reduce step by step until maintenance is met again
        steps = incremental_liquidation(engine, venue, account, margin)
        if account_margin(engine, venue, account).mm >= 0 or not venue.holdings(account):
            venue.liquidating.discard(account)
            steps.append(oe.LiquidationEnded(venue.name, account, "maintenance margin restored"
                                             if venue.holdings(account) else "no positions left"))
        return steps
    params = venue.auction_params
    assert params is not None
    elapsed = engine.time_of(venue.name) - record.started
    reason = auction.termination_reason(params, record.state, elapsed, decimal_of(margin.mtm), decimal_of(margin.mm))
    if reason is None and not venue.holdings(account):
        reason = "no positions left"
    if reason is None:
        return []
    restart = reason.startswith(("mark-to-market below zero", "reserved cash"))
    del venue.auctions[account]
    venue.liquidating.discard(account)
    events: list[e.Event] = [oe.OptionAuctionEnded(venue.name, account, reason)]
    if restart and margin.mm < 0:  # Derive's terminate-and-restart: insolvent when MtM < 0, else afresh
        events += _start_liquidation(engine, venue, account, margin)
    return events


# ------------------------------------------------------------------ screening


SCREEN_BAND = 1e-6  # relative to max(1, |MtM|, |min SPAN|): far beyond the kernel's agreement with the scalar path


def screened(engine: Engine, venue: OptionsVenue, underlying: str, accounts: list[str]) -> list[str]:
    """The accounts whose review may emit an event after a move of ``underlying``: every account with a
    margin call or liquidation open, every account holding other underlyings too, and those the vectorized
    grid (:mod:`solvent.policies.options.book`) finds within a band of IM ≤ 0 or MM ≤ 0. The others are
    comfortably above initial margin, so reviewing them would emit nothing. Scenario-grid venues only,
    and only above the engine's ``screen_above``."""
    limit = engine.screen_above
    venue.last_screened = len(accounts)
    if venue.grid is None or limit is None or len(accounts) <= limit:
        return accounts
    from ...policies.options.book import book_from_portfolios, evaluate_book

    keep: list[str] = []
    single: list[str] = []
    for account in accounts:
        held = venue.holdings(account)
        if (account in venue.margin_called or account in venue.liquidating or SEPARATOR in account or not held
                or any(venue.markets[symbol].underlying != underlying for symbol in held)):
            keep.append(account)
        else:
            single.append(account)
    if not single:
        return accounts
    portfolios = [venue.portfolio(venue.holdings(account), underlying, cash_units(engine, venue, account),
                                  engine.time_of(venue.name)) for account in single]
    margins = evaluate_book(venue.grid, book_from_portfolios(portfolios))
    import numpy as np

    scale = np.maximum(1.0, np.maximum(np.abs(margins.mtm), np.abs(margins.min_span)))
    near = (margins.im <= SCREEN_BAND * scale) | (margins.mm <= SCREEN_BAND * scale)
    keep += [account for account, flagged in zip(single, near.tolist(), strict=True) if flagged]
    venue.last_screened = len(keep)
    return sorted(keep)


# ------------------------------------------------------------------ incremental liquidation (Deribit-style)


def incremental_liquidation(engine: Engine, venue: OptionsVenue, account: str, margin: AccountMargin
                            ) -> list[e.Event]:
    """Close slices of short positions against the security module at the mark, the slice with the most
    maintenance relief per unit of underlying first, until MM ≥ 0 or no short is left. The account pays
    the mark (rounded up); what it cannot pay is a deficit the waterfall covers."""
    rules = venue.incremental
    events: list[e.Event] = []
    now = engine.time_of(venue.name)
    for _ in range(rules.max_steps):
        if margin.mm >= 0:
            break
        held = venue.holdings(account)
        cash = cash_units(engine, venue, account)
        best: tuple[float, str, int, int] | None = None
        for symbol, holding in sorted(held.items()):
            if holding.lots >= 0:
                continue
            market = venue.markets[symbol]
            lots = min(-holding.lots, max(1, int(Decimal(-holding.lots) * rules.step_fraction)))
            mark = venue.mark(market, now)
            cost = venue.units_of(decimal_of(mark) * market.underlying_per_lot * lots, ROUND_CEILING)
            after = venue.margin(with_holding(held, symbol, lots, cost), cash - cost, now)
            relief = (after.mm - margin.mm) / float(market.underlying_per_lot * lots)
            if best is None or relief > best[0]:
                best = (relief, symbol, lots, cost)
        if best is None or best[0] <= 0:
            break
        _, symbol, lots, cost = best
        market = venue.markets[symbol]
        venue.set_holdings(account, with_holding(held, symbol, lots, cost))
        # The fund takes the short over and is paid the mark: its cost basis is what it received.
        venue.set_holdings(venue.insurance, with_holding(venue.holdings(venue.insurance), symbol, -lots, -cost))
        if cost:
            engine.ledger.transfer(account, venue.insurance, venue.settle, cost, allow_overdraft=True)
        remaining = venue.holdings(account).get(symbol)
        events.append(e.PositionLiquidated(account, venue.name, symbol, "short",
                                           str(market.underlying_per_lot * lots),
                                           str(venue.amount_of(cost) / (market.underlying_per_lot * lots)), "",
                                           "insurance", venue.insurance,
                                           str(market.underlying_per_lot * -remaining.lots) if remaining else "0"))
        margin = account_margin(engine, venue, account)
    if cash_units(engine, venue, account) < 0:
        events += cover_deficits(engine, venue, "")
    return events


# ------------------------------------------------------------------ bids


def bid(engine: Engine, venue: OptionsVenue, account: str, bidder: str, percent: object) -> list[e.Event]:
    params = venue.auction_params
    if params is None:
        raise InvalidInput("venue", f"{venue.name} has no Dutch auction (its preset has no [auction] table)")
    record = venue.auctions.get(account)
    if record is None:
        raise InvalidInput("account", f"{account!r} is not in an auction on {venue.name}")
    venue.require_account(bidder, "bidder")
    if bidder == account:
        raise InvalidInput("bidder", "an account cannot bid in its own auction")
    if bidder in venue.liquidating:
        raise InvalidInput("bidder", f"{bidder!r} is itself being liquidated")
    now = engine.time_of(venue.name)
    margin = account_margin(engine, venue, account)
    mtm, mm = decimal_of(margin.mtm), decimal_of(margin.mm)
    state, started = record.state, record.started
    if not state.insolvent and (now - started >= params.solvent_length or mtm < 0):
        # The solvent phase is over (or the account is worth less than nothing): the insolvent phase starts now.
        state, started = auction.AuctionState(insolvent=True, reserved_cash=state.reserved_cash), now
    try:
        result = auction.place_bid(params, state, now - started, mtm, mm, percent, field="bid")
    except InvalidInput as error:
        renamed = {"bid.percent": "percent", "bid.elapsed": "timestamp"}.get(error.field, "account")
        raise InvalidInput(renamed, error.message) from None
    share = result.percent
    held = venue.holdings(account)
    taken: dict[str, int] = {}
    for symbol, holding in sorted(held.items()):
        lots = int((Decimal(holding.lots) * share).to_integral_value(ROUND_DOWN))
        if lots:
            taken[symbol] = lots
    cash = cash_units(engine, venue, account)
    free_cash = cash - record.reserved_units
    cash_taken = int((Decimal(free_cash) * share).to_integral_value(ROUND_DOWN if free_cash >= 0 else ROUND_FLOOR))
    if result.price >= 0:
        paid_units = venue.units_of(result.price, ROUND_CEILING)  # the bidder pays, rounded toward the account
        owed_to_bidder = 0
    else:
        paid_units = 0
        owed_to_bidder = venue.units_of(-result.price, ROUND_DOWN)
    # The bidder must afford the price and stay above initial margin with the share it takes.
    bidder_cash = cash_units(engine, venue, bidder)
    if bidder_cash + cash_taken < paid_units:
        raise InvalidInput("bidder", f"{bidder!r} holds {venue.amount_of(bidder_cash)} {venue.settle}, the bid "
                           f"costs {venue.amount_of(paid_units)}")
    bidder_after = dict(venue.holdings(bidder))
    account_after = dict(held)
    from .venue import with_holding

    for symbol, lots in taken.items():
        cost = int((Decimal(held[symbol].cost) * Decimal(lots) / Decimal(held[symbol].lots)).to_integral_value(
            ROUND_DOWN))
        bidder_after = with_holding(bidder_after, symbol, lots, cost)
        account_after = with_holding(account_after, symbol, -lots, -cost)
    after = venue.margin(bidder_after, bidder_cash + cash_taken - paid_units + owed_to_bidder, now)
    if after.im < 0:
        raise InvalidInput("bidder", f"{bidder!r} would be below initial margin after the bid (surplus "
                           f"{_text(after.im)})")
    # Validated: now move the share, the cash and the price.
    events: list[e.Event] = []
    venue.set_holdings(bidder, bidder_after)
    venue.set_holdings(account, account_after)
    if cash_taken > 0:
        engine.ledger.transfer(account, bidder, venue.settle, cash_taken, allow_overdraft=True)
    elif cash_taken < 0:
        engine.ledger.transfer(bidder, account, venue.settle, -cash_taken, allow_overdraft=True)
    if paid_units:
        engine.ledger.transfer(bidder, account, venue.settle, paid_units, allow_overdraft=True)
    if owed_to_bidder:
        events += pay_from_waterfall(engine, venue, bidder, owed_to_bidder, exclude={account, bidder})
    new_state = auction.AuctionState(insolvent=state.insolvent, reserved_cash=result.state.reserved_cash,
                                     fee=record.state.fee, ongoing=result.state.ongoing)
    venue.auctions[account] = AuctionRecord(new_state, started, record.reserved_units + paid_units)
    post = account_margin(engine, venue, account)
    events.insert(0, oe.OptionAuctionBid(venue.name, account, bidder, str(share), str(result.price),
                                         str(venue.amount_of(cash_taken)), str(result.f_max), _text(post.mtm),
                                         _text(post.mm)))
    if not result.state.ongoing or not venue.holdings(account):
        del venue.auctions[account]
        venue.liquidating.discard(account)
        events.append(oe.OptionAuctionEnded(venue.name, account, "largest share taken" if not state.insolvent
                                            else "whole portfolio taken"))
    events += review(engine, venue, [account, bidder])
    return events


# ------------------------------------------------------------------ the waterfall


def pay_from_waterfall(engine: Engine, venue: OptionsVenue, target: str, units: int, exclude: set[str],
                       market: str = "") -> list[e.Event]:
    """Pay ``units`` to ``target``: from the security module first, then socialized over the venue's
    other accounts holding positive cash, pro rata (largest remainders get the odd units)."""
    events: list[e.Event] = []
    fund = max(cash_units(engine, venue, venue.insurance), 0)
    drawn = min(fund, units)
    if drawn:
        engine.ledger.transfer(venue.insurance, target, venue.settle, drawn)
        events.append(e.InsuranceFundDrawn(venue.name, target, str(venue.amount_of(drawn)),
                                           str(venue.amount_of(fund - drawn))))
    rest = units - drawn
    if rest <= 0:
        return events
    holders = {account: cash_units(engine, venue, account) for account in sorted(venue.accounts - exclude - {target})}
    holders = {account: units for account, units in holders.items() if units > 0}
    total = sum(holders.values())
    if total <= 0:
        return events
    rest = min(rest, total)
    shares = {account: held * rest // total for account, held in holders.items()}
    left = rest - sum(shares.values())
    for account in sorted(holders, key=lambda name: (-(holders[name] * rest % total), name))[:left]:
        shares[account] += 1
    for account, share in shares.items():
        if share:
            engine.ledger.transfer(account, target, venue.settle, share)
    events.append(e.LossSocialized(venue.name, market, str(venue.amount_of(rest)),
                                   str(Decimal(rest) / Decimal(total))))
    return events


def cover_deficits(engine: Engine, venue: OptionsVenue, market: str) -> list[e.Event]:
    """Bring every negative cash balance on the venue back to zero through the waterfall."""
    events: list[e.Event] = []
    for account in sorted(venue.accounts):
        balance = cash_units(engine, venue, account)
        if balance < 0:
            events += pay_from_waterfall(engine, venue, account, -balance, exclude={account}, market=market)
    return events


__all__ = ["Holding", "account_margin", "bid", "cover_deficits", "pay_from_waterfall", "review"]
