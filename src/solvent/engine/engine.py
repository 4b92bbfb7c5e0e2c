"""The engine: a deterministic state machine over the exact ledger.

State: one :class:`~solvent.core.ledger.Ledger` holding every venue's markets (``venue/SYMBOL``),
accounts and protocol accounts (``venue/insurance``, ``venue/book``, ``venue/liquidator``,
``backstop/NAME``), the marks, the time, and the liquidation bookkeeping (margin calls, accounts
in liquidation, cooldowns, per-block caps).

Each command is validated in full before anything changes; a command that fails validation raises
:class:`CommandRejected` and changes nothing. After a command that moves prices, fills or time,
the liquidation pipeline (:mod:`solvent.engine.pipeline`) runs over the accounts it may affect,
in a fixed order, so that the same commands always produce the same events.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, Decimal
from typing import TYPE_CHECKING, Any

from ..core import bounds
from ..core.domain import ContractKind, MarginMode, Market, PositionMode, Side
from ..core.errors import InvalidInput, SolventError, UnknownName
from ..core.ledger import Ledger
from ..core.memory import cyclic_gc_paused
from ..core.numbers import positive, to_int, to_units
from ..policies.margin import MarginModel
from ..presets import Preset, load_preset
from ..screening.thresholds import MarketSchedule
from . import commands as c
from . import events as e
from .config import VenueRules

if TYPE_CHECKING:  # pragma: no cover
    from .lending import LendingVenue
    from .screen import EngineScreen

POSITION_LEGS = (None, Side.LONG, Side.SHORT)  # the hedge side in a position's key: one-way, then the legs

PROTOCOL_SEPARATOR = "/"


class CommandRejected(SolventError):
    """A command the engine refused; nothing changed. ``field`` names the offending field if known."""

    seq: int  # the log entry that recorded the refusal: set by the store (rejection_error), not the engine

    def __init__(self, kind: str, reason: str, field: str | None = None):
        self.kind = kind
        self.reason = reason
        self.field = field
        super().__init__(f"{kind} rejected: {reason}")


@dataclass
class VenueState:
    name: str
    preset: Preset
    rules: VenueRules
    markets: dict[str, str]  # venue symbol → ledger market key
    models: dict[str, MarginModel]  # ledger market key → margin model
    accounts: set[str] = field(default_factory=set)
    backstop: str | None = None

    @property
    def insurance(self) -> str:
        return f"{self.name}/insurance"

    @property
    def book(self) -> str:
        return f"{self.name}/book"

    @property
    def liquidator(self) -> str:
        return f"{self.name}/liquidator"

    @property
    def fee_pool(self) -> str:
        return f"{self.name}/fees"


@dataclass
class BackstopState:
    name: str
    asset: str
    venues: tuple[str, ...]
    caps: dict[str, int]
    drawn: dict[str, int] = field(default_factory=dict)

    @property
    def account(self) -> str:
        return f"backstop/{self.name}"


class Engine:
    """Commands in, events out. ``apply`` is the only way state changes."""

    lending: dict[str, LendingVenue]  # lending venues by name, set by lending.registry on first use

    def __init__(self, *, screen_above: int | None = 256) -> None:
        """``screen_above``: when a price update concerns more holders than this, the vectorized
        screen picks which of them to value exactly (None: always value every holder)."""
        self.ledger = Ledger()
        self.screen_above = screen_above
        self._screen: EngineScreen | None = None
        self.venues: dict[str, VenueState] = {}
        self.backstops: dict[str, BackstopState] = {}
        self.home_venue: dict[str, str] = {}  # account → venue whose rules liquidate it
        self.member_venues: dict[str, set[str]] = {}  # account → venues it may trade on
        self.marks: dict[str, Decimal] = {}
        self.previous_marks: dict[str, Decimal] = {}
        self.holders: dict[str, set[str]] = {}  # ledger market → accounts with a position
        self.timestamp = 0  # the engine's time (advance_time); each venue's may be later: see time_of
        self.clocks: dict[str, int] = {}  # venue → the time its own prices (or advance_time) brought
        self.block = 0
        self.seed = 0
        # Liquidation bookkeeping, keyed by (account, settle asset).
        self.margin_called: set[tuple[str, str]] = set()
        self.liquidating: dict[tuple[str, str], int] = {}  # → block the liquidation started
        self.full_until: dict[tuple[str, str], int] = {}  # after a partial: whole-position orders until then
        self.notional_this_block: dict[tuple[str, str], Decimal] = {}
        self.liquidated_in_block: dict[tuple[str, str], int] = {}  # (account, market) → block
        self.insurance_lost_this_block: dict[tuple[str, str], Decimal] = {}  # dYdX: fund payouts per pool this block
        self.insurance_paid: dict[str, int] = {}  # Drift: fund payouts per market so far (units), against its tier cap
        self.last_liquidated: dict[tuple[str, str], str] = {}  # pool in liquidation → market it last closed
        # Isolated positions: the bookkeeping above keys an isolated position's pool as (account,
        # pool id) (pipeline.isolated_pool_id); these accounts hold one, or its margin call or
        # liquidation is still open. The pipeline values their isolated pools; the screen files
        # each one in its threshold index, as a pool of its own.
        self.isolated_accounts: set[str] = set()
        self.api_keys: dict[str, tuple[str, str | None, str | None]] = {}  # key hash → (role, account, venue)
        self.commands_applied = 0
        self._adl_candidates: dict = {}  # ADL rankings valued during the current command (a cache)
        self._schedules: dict[str, MarketSchedule] = {}  # float maintenance schedules (a cache)
        # Undo (see apply and _roll_back): the commands applied since the base state, and the base.
        self._journal: list[c.Command] = []
        self._rollback_base: Callable[[], Engine] | None = None
        self._handlers = self._make_handlers()

    def _make_handlers(self) -> dict[type, Callable[[Any], list[e.Event]]]:
        # Each handler takes the command class it is filed under (apply dispatches on type(command)).
        handlers: dict[type, Callable[[Any], list[e.Event]]] = {
            c.CreateVenue: self._create_venue,
            c.CreateMarket: self._create_market,
            c.CreateBackstop: self._create_backstop,
            c.OpenAccount: self._open_account,
            c.Deposit: self._deposit,
            c.Withdraw: self._withdraw,
            c.FundInsurance: self._fund_insurance,
            c.ApplyFill: self._apply_fill,
            c.AdjustIsolatedMargin: self._adjust_isolated_margin,
            c.SetIsolatedLeverage: self._set_isolated_leverage,
            c.OpenPositions: self._open_positions,
            c.TakeOver: self._take_over,
            c.UpdateOracle: self._update_oracle,
            c.AdvanceTime: self._advance_time,
            c.SetParams: self._set_params,
            c.RegisterKey: self._register_key,
            c.RevokeKey: self._revoke_key,
        }
        from .lending import lending_handlers

        handlers.update(lending_handlers(self))
        from .options import options_handlers
        from .pricing import pricing_handlers  # source quotes → index and mark (engine/pricing.py)
        from .steward import steward_handlers  # bounded risk-parameter updates (engine/steward.py)

        handlers.update(options_handlers(self, handlers))  # after the general verbs: it wraps some of them
        handlers.update(pricing_handlers(self))
        handlers.update(steward_handlers(self))
        return handlers

    # ------------------------------------------------------------------ entry point

    def apply(self, command: c.Command) -> list[e.Event]:
        """Events, or :class:`CommandRejected` and nothing changed: never another exception.

        Handlers validate before they change anything, so a refusal they raise (any
        :class:`SolventError`) leaves the state as it was. Anything else (``decimal.Overflow``, a
        ``ZeroDivisionError``, a defect) may come after a change: then the state is put back as it
        was before the command (see :meth:`_roll_back`) and the command is refused with the
        error's type, which is the same on every run, so a replay records the same outcome."""
        handler = self._handlers.get(type(command))
        if handler is None:
            raise CommandRejected(getattr(command, "kind", type(command).__name__), "unknown command")
        self._adl_candidates.clear()  # valued at the previous command's marks
        try:
            events = handler(command)
        except CommandRejected:
            raise
        except SolventError as error:
            raise CommandRejected(command.kind, str(error), getattr(error, "field", None)) from error
        except MemoryError:
            raise  # not a property of the command: no outcome may be recorded for it
        except Exception as error:
            self._roll_back()
            raise CommandRejected(command.kind, f"the engine could not apply it ({type(error).__name__}); "
                                  "nothing changed", _blamed_field(command, error)) from error
        self.commands_applied += 1
        self._journal.append(command)
        return events

    # ------------------------------------------------------------------ undo

    def set_rollback_base(self, base: Callable[[], Engine]) -> None:
        """From now on, :meth:`_roll_back` starts from ``base()`` (an engine in the state this one is
        in now, e.g. loaded from the snapshot just taken) and replays the commands applied since.
        Called by the store after a snapshot; the commands before it are then no longer kept."""
        self._rollback_base = base
        self._journal = []

    def _roll_back(self) -> None:
        """Put the state back as it was before the command being applied: a fresh engine (or the
        base, see :meth:`set_rollback_base`) replays the commands applied since, which all succeed
        again (the engine is deterministic), and this engine takes its state. The cost is paid only
        here, on a defect; applying a command costs one list append."""
        base = self._rollback_base
        fresh = base() if base is not None else type(self)(screen_above=self.screen_above)
        journal = self._journal
        with cyclic_gc_paused():
            for command in journal:
                fresh.apply(command)
        state = vars(fresh)
        state["_journal"] = journal
        state["_rollback_base"] = base
        state["_screen"] = None  # a cache that refers to its engine: rebuilt on the next large update
        self.__dict__ = state
        self._handlers = self._make_handlers()  # bound to this engine, not the fresh one
        for venue in getattr(self, "lending", {}).values():
            if getattr(venue, "engine", None) is fresh:
                venue.engine = self

    # ------------------------------------------------------------------ lookups

    def venue(self, name: str) -> VenueState:
        if name not in self.venues:
            raise UnknownName("venue", name, list(self.venues))
        return self.venues[name]

    def market_key(self, venue: VenueState, symbol: str) -> str:
        if symbol not in venue.markets:
            raise UnknownName(f"market of {venue.name}", symbol, list(venue.markets))
        return venue.markets[symbol]

    def model(self, market_key: str) -> MarginModel:
        venue = self.venues[market_key.split(PROTOCOL_SEPARATOR, 1)[0]]
        return venue.models[market_key]

    def schedule(self, market_key: str) -> MarketSchedule:
        """The market's maintenance schedule as floats (for screening; rebuilt after SetParams)."""
        cached = self._schedules.get(market_key)
        if cached is None:
            cached = self._schedules[market_key] = MarketSchedule.of(
                self.model(market_key), self.ledger.markets[market_key].kind is ContractKind.INVERSE)
        return cached

    def venue_of_market(self, market_key: str) -> VenueState:
        return self.venues[market_key.split(PROTOCOL_SEPARATOR, 1)[0]]

    @staticmethod
    def is_protocol(account: str) -> bool:
        return PROTOCOL_SEPARATOR in account

    # ------------------------------------------------------------------ venues and accounts

    def _create_venue(self, command: c.CreateVenue) -> list[e.Event]:
        name = command.venue
        if not isinstance(name, str) or not name or PROTOCOL_SEPARATOR in name:
            raise InvalidInput("venue", f"must be non-empty without {PROTOCOL_SEPARATOR!r}")
        bounds.identifier(name, "venue")
        if name in self.venues:
            raise InvalidInput("venue", f"{name!r} already exists")
        preset = load_preset(command.preset)
        if preset.data.get("kind") == "lending":
            from .lending import create_lending_venue

            return create_lending_venue(self, name, preset, dict(command.overrides or {}))
        if preset.data.get("kind") == "options":
            from .options import create_options_venue

            return create_options_venue(self, name, preset, dict(command.overrides or {}))
        if command.overrides:
            preset = preset.with_overrides(command.overrides, name=f"{preset.name}+{name}")
        rules = VenueRules.from_preset(preset)
        for symbol, asset in preset.assets.items():
            known = self.ledger.assets.get(symbol)
            if known is not None and known.decimals != asset.decimals:
                raise InvalidInput(f"assets.{symbol}", f"{preset.name} counts {symbol} in 1e-{asset.decimals}, "
                                   f"another venue in 1e-{known.decimals}")
        # Validated: now change state.
        for asset in preset.assets.values():
            self.ledger.add_asset(asset)
        markets: dict[str, str] = {}
        models: dict[str, MarginModel] = {}
        for symbol, spec in preset.markets.items():
            key = f"{name}{PROTOCOL_SEPARATOR}{symbol}"
            market = Market(key, spec.base, spec.quote, spec.settle, spec.kind, spec.size_decimals, spec.contract_size)
            self.ledger.add_market(market)
            markets[symbol] = key
            models[key] = preset.margin_model(symbol)
            self.holders[key] = set()
        venue = VenueState(name, preset, rules, markets, models)
        self.venues[name] = venue
        for account in (venue.insurance, venue.book, venue.liquidator):
            self.ledger.open_account(account)
            self.home_venue[account] = name
            self.member_venues[account] = {name}
        return [e.VenueCreated(name, preset.name, tuple(markets))]

    def _create_market(self, command: c.CreateMarket) -> list[e.Event]:
        venue = self.venue(command.venue)
        bounds.identifier(command.symbol, "symbol")
        if command.symbol in venue.markets:
            raise InvalidInput("symbol", f"{command.symbol!r} is already listed on {venue.name}")
        entry = {"symbol": command.symbol, "base": command.base, "quote": command.quote, "settle": command.settle,
                 "kind": command.contract, "size_decimals": command.size_decimals,
                 "contract_size": command.contract_size, "margin": dict(command.margin)}
        if not isinstance(command.isolated_only, bool):
            raise InvalidInput("isolated_only", f"expected true or false, got {command.isolated_only!r}")
        if command.isolated_only:
            entry["isolated_only"] = True
        markets = list(venue.preset.data.get("markets", [])) + [entry]
        preset = venue.preset.with_overrides({"markets": markets}, name=venue.preset.name)  # validates it all
        self.ledger.asset(command.settle)
        spec = preset.markets[command.symbol]
        key = f"{venue.name}{PROTOCOL_SEPARATOR}{command.symbol}"
        self.ledger.add_market(Market(key, spec.base, spec.quote, spec.settle, spec.kind, spec.size_decimals,
                                      spec.contract_size))
        venue.preset = preset
        venue.markets[command.symbol] = key
        venue.models[key] = preset.margin_model(command.symbol)
        self.holders[key] = set()
        return [e.MarketListed(venue.name, command.symbol)]

    def _create_backstop(self, command: c.CreateBackstop) -> list[e.Event]:
        bounds.identifier(command.backstop, "backstop")
        if command.backstop in self.backstops:
            raise InvalidInput("backstop", f"{command.backstop!r} already exists")
        self.ledger.asset(command.asset)
        venues = tuple(command.venues)
        for venue in venues:
            state = self.venue(venue)
            if state.backstop is not None:
                raise InvalidInput("venues", f"{venue} already draws on backstop {state.backstop}")
        caps = {}
        for venue, amount in dict(command.caps).items():
            if venue not in venues:
                raise InvalidInput(f"caps.{venue}", "not one of the backstop's venues")
            caps[venue] = self.ledger.units(command.asset, positive(amount, f"caps.{venue}"), f"caps.{venue}")
        backstop = BackstopState(command.backstop, command.asset, venues, caps)
        self.ledger.open_account(backstop.account)
        self.backstops[command.backstop] = backstop
        for venue in venues:
            self.venues[venue].backstop = command.backstop
        return [e.BackstopCreated(command.backstop, venues)]

    def _open_account(self, command: c.OpenAccount) -> list[e.Event]:
        if not isinstance(command.account, str) or PROTOCOL_SEPARATOR in command.account:
            raise InvalidInput("account", f"account ids may not contain {PROTOCOL_SEPARATOR!r}")
        bounds.identifier(command.account, "account")
        venue = self.venue(command.venue)
        others = [self.venue(name) for name in command.cross_venues]
        mode = PositionMode.parse(command.position_mode, "position_mode")
        self.ledger.open_account(command.account, mode)
        self.home_venue[command.account] = venue.name
        self.member_venues[command.account] = {venue.name, *(other.name for other in others)}
        venue.accounts.add(command.account)
        return [e.AccountOpened(command.account, venue.name)]

    # ------------------------------------------------------------------ cash

    def _deposit(self, command: c.Deposit) -> list[e.Event]:
        self._require_user(command.account)
        units = self.ledger.deposit(command.account, command.asset, command.amount)
        return [e.Deposited(command.account, command.asset, str(self.ledger.amount(command.asset, units)))]

    def _withdraw(self, command: c.Withdraw) -> list[e.Event]:
        from .pipeline import withdrawal_allowed

        self._require_user(command.account)
        units = self.ledger.units(command.asset, positive(command.amount, "amount"))
        reason = withdrawal_allowed(self, command.account, command.asset, units)
        if reason:
            raise InvalidInput("amount", reason)
        self.ledger.withdraw(command.account, command.asset, command.amount)
        return [e.Withdrawn(command.account, command.asset, str(self.ledger.amount(command.asset, units)))]

    def _fund_insurance(self, command: c.FundInsurance) -> list[e.Event]:
        if (command.venue is None) == (command.backstop is None):
            raise InvalidInput("venue", "give exactly one of venue or backstop")
        if command.venue is not None:
            account = self.venue(command.venue).insurance
        else:
            if command.backstop not in self.backstops:
                raise UnknownName("backstop", command.backstop, list(self.backstops))
            account = self.backstops[command.backstop].account
        units = self.ledger.deposit(account, command.asset, command.amount)
        return [e.Deposited(account, command.asset, str(self.ledger.amount(command.asset, units)))]

    def _require_member(self, venue: VenueState, account: str, role: str) -> None:
        """A user account that may trade on ``venue`` (``role`` names the field when it may not)."""
        self._require_user(account)
        if venue.name not in self.member_venues.get(account, set()):
            raise InvalidInput(role, f"account {account!r} is not on venue {venue.name}")

    def _require_user(self, account: str) -> None:
        if account not in self.ledger.accounts:
            raise UnknownName("account", account)
        if self.is_protocol(account) and not account.endswith(("/book", "/liquidator")):
            raise InvalidInput("account", f"{account!r} is a protocol account")

    # ------------------------------------------------------------------ trading

    def _apply_fill(self, command: c.ApplyFill) -> list[e.Event]:
        from .pipeline import evaluate

        venue = self.venue(command.venue)
        key = self.market_key(venue, command.market)
        for role, account in (("buyer", command.buyer), ("seller", command.seller)):
            self._require_member(venue, account, role)
        modes = [MarginMode.parse(command.buyer_margin_mode, "buyer_margin_mode"),
                 MarginMode.parse(command.seller_margin_mode, "seller_margin_mode")]
        if venue.preset.isolated_only(command.market) and MarginMode.CROSS in modes:
            role = "buyer" if modes[0] is MarginMode.CROSS else "seller"
            raise InvalidInput(f"{role}_margin_mode", f"{command.market} is isolated-only on {venue.name}: "
                               "both sides trade in isolated margin")
        if MarginMode.ISOLATED in modes:
            return self._apply_isolated_fill(command, venue, key, modes)
        if command.buyer_leverage is not None or command.seller_leverage is not None:
            role = "buyer" if command.buyer_leverage is not None else "seller"
            raise InvalidInput(f"{role}_leverage", "a leverage is given for an isolated position only "
                               "(a cross position's margin is its pool's)")
        if key not in self.marks:
            raise InvalidInput("market", f"{command.market} has no oracle price yet: send update_oracle first")
        hedge = [None if side is None else Side.parse(side, f"{role}_hedge_side")
                 for role, side in (("buyer", command.buyer_hedge_side), ("seller", command.seller_hedge_side))]
        self.ledger.apply_trade(command.buyer, command.seller, key, command.size, command.price,
                                buyer_fee=command.buyer_fee, seller_fee=command.seller_fee,
                                buyer_hedge_side=hedge[0], seller_hedge_side=hedge[1], fee_pool=venue.fee_pool)
        self._track_holders(key, (command.buyer, command.seller))
        events: list[e.Event] = [e.FillApplied(venue.name, command.market, command.buyer, command.seller,
                                               command.size, command.price)]
        events += evaluate(self, sorted({command.buyer, command.seller}))
        return events

    def _apply_isolated_fill(self, command: c.ApplyFill, venue: VenueState, key: str,
                             modes: list[MarginMode]) -> list[e.Event]:
        """A fill with at least one side in isolated mode (the rules are in ApplyFill's docstring):
        validated in full, then traded, then each isolated side's initial margin moved in."""
        from .pipeline import evaluate, margin_funding_refused

        rules = venue.rules
        if rules.fee_rule == "insurance_fund_delta" or rules.limit == "fillable":
            role = "buyer" if modes[0] is MarginMode.ISOLATED else "seller"
            raise InvalidInput(f"{role}_margin_mode", f"{venue.name} ({venue.preset.name}) has no isolated margin "
                               "mode: its liquidation values the whole subaccount (an isolated market there is "
                               "a subaccount of its own: open another account)")
        if key not in self.marks:
            raise InvalidInput("market", f"{command.market} has no oracle price yet: send update_oracle first")
        ledger = self.ledger
        market = ledger.markets[key]
        settle = market.settle
        size = bounds.size(positive(command.size, "size"), "size")
        price = bounds.price(positive(command.price, "price"), "price")
        lots = market.lots(size, "size")
        hedge = [None if side is None else Side.parse(side, f"{role}_hedge_side")
                 for role, side in (("buyer", command.buyer_hedge_side), ("seller", command.seller_hedge_side))]
        model = self.model(key)
        funding: list[tuple[str, Side | None, int, Decimal | None, bool]] = []
        reduced: list[tuple[str, Side | None, int, int, int]] = []  # partial closes: margin, held, left (lots)
        pro_rata = rules.isolated_close == "pro_rata" or venue.preset.isolated_only(command.market)
        sides = (("buyer", command.buyer, 1, command.buyer_leverage),
                 ("seller", command.seller, -1, command.seller_leverage))
        for (role, account, sign, leverage_text), mode, hedge_side in zip(sides, modes, hedge):
            if mode is not MarginMode.ISOLATED:
                if leverage_text is not None:
                    raise InvalidInput(f"{role}_leverage", "a leverage is given for an isolated position only")
                continue
            position = ledger.accounts[account].positions.get((key, hedge_side))
            held = position.lots if position is not None and position.margin_mode is MarginMode.ISOLATED else 0
            leverage = None if leverage_text is None else bounds.leverage(
                positive(leverage_text, f"{role}_leverage"), f"{role}_leverage")
            if held and leverage is not None and leverage != position.leverage:  # type: ignore[union-attr]
                raise InvalidInput(f"{role}_leverage", f"the isolated position on {command.market} is at "
                                   f"{position.leverage or 'the market default'} leverage, not {leverage}x")  # type: ignore[union-attr]
            if held:
                leverage = position.leverage  # type: ignore[union-attr]
                fee = command.buyer_fee if sign > 0 else command.seller_fee
                after = ledger.isolated_margin_after(account, key, Side.LONG if sign > 0 else Side.SHORT, size, price,
                                                     fee, hedge_side)
                if after is not None and after < 0:  # the wallet would pay the isolated position's loss
                    raise InvalidInput(role, f"the fill would realize a loss beyond the isolated margin of "
                                       f"{account!r} on {command.market} (it would hold "
                                       f"{ledger.amount(settle, after)} {settle}): a bankrupt isolated position is "
                                       "closed by its liquidation")
            signed = sign * lots
            opened = lots if held == 0 or (held > 0) == (signed > 0) else max(0, lots - abs(held))
            if held and (held > 0) != (signed > 0) and lots < abs(held) and pro_rata:
                reduced.append((account, hedge_side, position.isolated_margin, abs(held), abs(held) - lots))  # type: ignore[union-attr]
            units = 0
            if opened:
                opened_size = market.size_of(opened)
                after_size = market.size_of(abs(held + signed))
                try:
                    if leverage is not None:  # within the bracket's maximum at the position's new notional
                        model.initial_margin(market.notional(after_size, price), after_size, leverage)
                    required = model.initial_margin(market.notional(opened_size, price), opened_size, leverage)
                except InvalidInput as error:
                    raise InvalidInput(f"{role}_leverage", error.message) from None
                units = to_units(required, ledger.assets[settle].decimals, rounding=ROUND_CEILING)
                reason = margin_funding_refused(self, account, settle, units)
                if reason:
                    raise InvalidInput(role, reason)
            funding.append((account, hedge_side, units, leverage, held == 0))
        ledger.apply_trade(command.buyer, command.seller, key, command.size, command.price,
                           buyer_fee=command.buyer_fee, seller_fee=command.seller_fee,
                           buyer_mode=modes[0], seller_mode=modes[1],
                           buyer_hedge_side=hedge[0], seller_hedge_side=hedge[1], fee_pool=venue.fee_pool)
        # Traded: nothing below can fail (the wallets were checked and an opening trade leaves them).
        self._track_holders(key, (command.buyer, command.seller))
        events: list[e.Event] = [e.FillApplied(venue.name, command.market, command.buyer, command.seller,
                                               command.size, command.price)]
        for account, hedge_side, units, leverage, fresh in funding:
            position = ledger.accounts[account].positions[(key, hedge_side)]
            if fresh:
                position.leverage = leverage
            if units:
                ledger.move_isolated_margin(account, key, ledger.amount(settle, units), hedge_side)
                events.append(_margin_moved(ledger, venue, command.market, account, units, position))
            self.isolated_accounts.add(account)
        for account, hedge_side, margin, held, left in reduced:
            # The margin goes down with the position (rounded up: what stays backs what is left);
            # the released share, realized PnL and fee included, goes to the wallet.
            position = ledger.accounts[account].positions[(key, hedge_side)]
            release = position.isolated_margin - -(-margin * left // held)
            if release > 0:
                ledger.pay_from_isolated(account, key, hedge_side, account, release)
                events.append(_margin_moved(ledger, venue, command.market, account, -release, position))
        events += evaluate(self, sorted({command.buyer, command.seller}))
        return events

    def _adjust_isolated_margin(self, command: c.AdjustIsolatedMargin) -> list[e.Event]:
        from dataclasses import replace

        from .pipeline import (
            _cash_short_of_maintenance,
            _liquidatable,
            evaluate,
            isolated_pool,
            margin_funding_refused,
            transfer_requirement,
        )

        venue, key, account, hedge_side, position, pool_id = self._isolated_position_of(command)
        ledger = self.ledger
        settle = ledger.markets[key].settle
        units = ledger.units(settle, command.amount, "amount")
        if units == 0:
            raise InvalidInput("amount", "must not be zero: positive moves margin in, negative takes it out")
        if units > 0:
            reason = margin_funding_refused(self, account, settle, units)
            if reason:
                raise InvalidInput("amount", reason)
        else:
            if venue.preset.isolated_only(command.market):
                raise InvalidInput("amount", f"{command.market} is isolated-only on {venue.name}: margin cannot be "
                                   "taken out of its positions (it leaves in proportion as they close)")
            if (account, pool_id) in self.liquidating:
                raise InvalidInput("amount", f"the isolated position on {command.market} is being liquidated: "
                                   "its margin cannot be taken out")
            removed = ledger.amount(settle, -units)
            if -units > position.isolated_margin:
                raise InvalidInput("amount", f"the isolated margin holds {ledger.amount(settle, position.isolated_margin)} "
                                   f"{settle}, less than {removed}")
            pool = isolated_pool(self, account, pool_id)
            assert pool is not None
            left = pool.collateral - removed
            listing = self.venue_of_market(key)
            counts_profit = listing.rules.transfer_counts_profit
            remaining = left + (pool.unrealized_pnl if counts_profit else min(pool.unrealized_pnl, Decimal(0)))
            required, what = transfer_requirement(listing, pool)
            if remaining < required:
                counted = "margin plus unrealized PnL" if counts_profit else "margin less any unrealized loss"
                raise InvalidInput("amount", f"taking out {removed} {settle} would leave the isolated position on "
                                   f"{command.market} {remaining} {settle} ({counted}), below {what} ({required} "
                                   f"{settle})")
            short = _cash_short_of_maintenance(listing, pool, removed, settle)
            if short:
                raise InvalidInput("amount", f"{short} of the isolated position on {command.market}")
            if _liquidatable(self, listing, replace(pool, collateral=left)):
                raise InvalidInput("amount", f"taking out {removed} {settle} would leave the isolated position on "
                                   f"{command.market} liquidatable")
        ledger.move_isolated_margin(account, key, ledger.amount(settle, units), hedge_side)
        self.isolated_accounts.add(account)
        return [_margin_moved(ledger, venue, command.market, account, units, position)] + evaluate(self, [account])

    def _isolated_position_of(self, command: c.AdjustIsolatedMargin | c.SetIsolatedLeverage):
        """(venue, market key, account, hedge side, position, pool id) of the open isolated position
        a command names, or InvalidInput naming the field at fault."""
        from .pipeline import isolated_pool_id

        venue = self.venue(command.venue)
        key = self.market_key(venue, command.market)
        self._require_member(venue, command.account, "account")
        account = command.account
        holder = self.ledger.accounts[account]
        hedge_side = None if command.hedge_side is None else Side.parse(command.hedge_side, "hedge_side")
        if (hedge_side is None) != (holder.position_mode is PositionMode.ONE_WAY):
            raise InvalidInput("hedge_side", "required in hedge mode (long or short leg)" if hedge_side is None
                               else "only accounts in hedge mode have legs")
        position = holder.positions.get((key, hedge_side))
        if position is None or position.margin_mode is not MarginMode.ISOLATED or not position.lots:
            raise InvalidInput("market", f"account {account!r} holds no open isolated position on {command.market}")
        return venue, key, account, hedge_side, position, isolated_pool_id(key, hedge_side)

    def _set_isolated_leverage(self, command: c.SetIsolatedLeverage) -> list[e.Event]:
        from dataclasses import replace

        from .pipeline import _liquidatable, evaluate, isolated_pool, margin_funding_refused

        venue, key, account, hedge_side, position, pool_id = self._isolated_position_of(command)
        ledger = self.ledger
        if (account, pool_id) in self.liquidating:
            raise InvalidInput("market", f"the isolated position on {command.market} is being liquidated")
        leverage = bounds.leverage(positive(command.leverage, "leverage"), "leverage")
        market = ledger.markets[key]
        settle = market.settle
        size = market.size_of(abs(position.lots))
        entry_value = ledger.amount(settle, position.cost)  # the model's notional at entry (quote or coin)
        try:
            required = self.model(key).initial_margin(entry_value, size, leverage)
        except InvalidInput as error:
            raise InvalidInput("leverage", error.message) from None
        units = to_units(required, ledger.assets[settle].decimals, rounding=ROUND_CEILING)
        delta = units - position.isolated_margin
        if delta > 0:
            reason = margin_funding_refused(self, account, settle, delta)
            if reason:
                raise InvalidInput("leverage", reason)
        elif delta < 0:
            if venue.preset.isolated_only(command.market):
                raise InvalidInput("leverage", f"{command.market} is isolated-only on {venue.name}: a higher leverage "
                                   "would take margin out of the position")
            pool = isolated_pool(self, account, pool_id)
            assert pool is not None
            if _liquidatable(self, self.venue_of_market(key), replace(pool, collateral=ledger.amount(settle, units))):
                raise InvalidInput("leverage", f"{leverage}x would leave the isolated position on {command.market} "
                                   f"with {ledger.amount(settle, units)} {settle} of margin: liquidatable")
        if delta:
            ledger.move_isolated_margin(account, key, ledger.amount(settle, delta), hedge_side)
        position.leverage = leverage
        events: list[e.Event] = [e.IsolatedLeverageChanged(
            account, venue.name, command.market, str(leverage), str(ledger.amount(settle, position.isolated_margin)),
            None if hedge_side is None else str(hedge_side))]
        return events + evaluate(self, [account])

    def _open_positions(self, command: c.OpenPositions) -> list[e.Event]:
        venue = self.venue(command.venue)
        key = self.market_key(venue, command.market)
        self._require_member(venue, command.counterparty, "counterparty")
        if key not in self.marks:
            raise InvalidInput("market", f"{command.market} has no oracle price yet: send update_oracle first")
        if venue.preset.isolated_only(command.market):
            raise InvalidInput("market", f"{command.market} is isolated-only on {venue.name}: open_positions opens "
                               "cross positions")
        columns = (command.accounts, command.deposits, command.sizes, command.prices)
        if not command.accounts or len({len(column) for column in columns}) != 1:
            raise InvalidInput("accounts", "accounts, deposits, sizes and prices must be non-empty and equally long")
        for account in command.accounts:
            if not isinstance(account, str) or PROTOCOL_SEPARATOR in account:
                raise InvalidInput("accounts", f"account ids are strings without {PROTOCOL_SEPARATOR!r}: {account!r}")
            bounds.identifier(account, "accounts")
        with cyclic_gc_paused():  # 100,000 accounts at once: see core.memory
            return self._opened_in_bulk(venue, key, command, columns)

    def _opened_in_bulk(self, venue: VenueState, key: str, command: c.OpenPositions, columns) -> list[e.Event]:
        from .pipeline import evaluate

        opened = self.ledger.open_funded_positions(key, command.counterparty, list(zip(*columns)))
        # Applied: register the accounts, then value exactly those that may be at risk (floats
        # pick them, with a margin; the pipeline decides).
        from .screen import EngineScreen, SinglePositionPools

        market = self.ledger.markets[key]
        for account in command.accounts:
            self.home_venue[account] = venue.name
            self.member_venues[account] = {venue.name}
        venue.accounts.update(command.accounts)
        # Cash less the signed cost basis (see Ledger.signed_cost): +cost for a linear long or an
        # inverse short.
        direction = 1 if market.kind is ContractKind.LINEAR else -1
        base_units = [units - (direction * cost if signed > 0 else -direction * cost) for units, signed, cost in opened]
        lots = [signed for _, signed, _ in opened]
        pools = SinglePositionPools(self, key, base_units, lots, [float(venue.rules.warning_ratio)] * len(lots))
        at_risk_accounts = [command.accounts[row] for row in pools.at_risk_now()]
        longs = market.size_of(sum(units for units in lots if units > 0))
        shorts = market.size_of(-sum(units for units in lots if units < 0))
        self.holders[key].update(command.accounts)
        self._track_holders(key, (command.counterparty,))
        if self.screen_above is not None and len(self.holders[key]) > self.screen_above:
            # A book the screen will watch: the new accounts go into its index now, in bulk.
            if self._screen is None:
                self._screen = EngineScreen(self)
            at_risk_accounts += self._screen.enter_opened(key, command.accounts, pools)
        events: list[e.Event] = [e.PositionsOpened(venue.name, command.market, command.counterparty,
                                                   len(command.accounts), str(longs), str(shorts))]
        return events + evaluate(self, sorted({command.counterparty, *at_risk_accounts}))

    def _take_over(self, command: c.TakeOver) -> list[e.Event]:
        from .pipeline import take_over

        venue = self.venue(command.venue)
        key = self.market_key(venue, command.market)
        self._require_member(venue, command.liquidator, "liquidator")
        self._require_user(command.account)
        if command.account == command.liquidator:
            raise InvalidInput("liquidator", "an account cannot take over its own position")
        size = bounds.size(positive(command.size, "size"), "size")
        self.ledger.markets[key].lots(size)  # a whole number of lots
        return take_over(self, venue, command.liquidator, command.account, key, size)

    def _track_holders(self, key: str, accounts) -> None:
        holders = self.holders[key]
        for account in accounts:
            positions = self.ledger.accounts[account].positions  # keyed (market, hedge side or None)
            if any(position.lots for leg in POSITION_LEGS if (position := positions.get((key, leg))) is not None):
                holders.add(account)
            else:
                holders.discard(account)

    # ------------------------------------------------------------------ prices and time

    def _update_oracle(self, command: c.UpdateOracle) -> list[e.Event]:
        from .pipeline import deleverage_backstop, evaluate

        venue = self.venue(command.venue)
        timestamp = bounds.timestamp(to_int(command.timestamp, "timestamp"))
        now = self.time_of(venue.name)
        if timestamp < now:
            raise InvalidInput("timestamp", f"{timestamp} is before the engine's time {now}")
        if not command.prices:
            raise InvalidInput("prices", "no price given")
        updates = {}
        for symbol, price in sorted(dict(command.prices).items()):
            key = self.market_key(venue, symbol)
            updates[key] = bounds.price(positive(price, f"prices.{symbol}"), f"prices.{symbol}")
        self.clocks[venue.name] = timestamp  # this venue's time only: no feeder moves another venue's clock
        events: list[e.Event] = []
        for key, mark in updates.items():
            if key in self.marks:
                self.previous_marks[key] = self.marks[key]
            self.marks[key] = mark
            events.append(e.OraclePriceUpdated(venue.name, key.split(PROTOCOL_SEPARATOR, 1)[1], str(mark), timestamp))
        holders = [self.holders[key] for key in updates]
        screened = None
        if self.screen_above is not None and sum(map(len, holders)) > self.screen_above:
            screened = self._screened(updates)
        if screened is None:  # value every holder of the markets that moved
            affected = set().union(*holders)
        else:  # the screen's candidates and the accounts in liquidation, if they hold a moved market
            screened |= {account for account, _ in self.liquidating}
            affected = {account for account in screened if any(account in held for held in holders)}
        events += evaluate(self, sorted(affected), screened=screened is not None)
        return events + deleverage_backstop(self, venue)

    def _advance_time(self, command: c.AdvanceTime) -> list[e.Event]:
        from .pipeline import evaluate

        timestamp = bounds.timestamp(to_int(command.timestamp, "timestamp"))
        if command.venue is not None:
            return self._advance_venue_time(command, timestamp)
        if timestamp < self.timestamp:
            raise InvalidInput("timestamp", f"{timestamp} is before the engine's time {self.timestamp}")
        block = self.block + 1 if command.block is None else bounds.block(to_int(command.block, "block"))
        if block < self.block:
            raise InvalidInput("block", f"{block} is before the engine's block {self.block}")
        seed = to_int(command.seed, "seed")
        if seed < 0:
            raise InvalidInput("seed", f"must not be negative, got {seed}")
        bounds.seed(seed)
        self.timestamp = timestamp
        if block != self.block:
            self.notional_this_block.clear()
            self.insurance_lost_this_block.clear()
        self.block = block
        self.seed = seed
        events: list[e.Event] = [e.TimeAdvanced(timestamp, block)]
        # Time alone changes what a liquidation may do (cooldowns end, fees ramp, caps reset).
        waiting = sorted({account for account, _ in self.liquidating})
        events += evaluate(self, waiting)
        return events

    def _advance_venue_time(self, command: c.AdvanceTime, timestamp: int) -> list[e.Event]:
        """AdvanceTime of one venue: its clock only (blocks and seeds are the engine's)."""
        from .pipeline import evaluate

        name = command.venue
        assert name is not None  # only an AdvanceTime that names a venue comes here
        if name not in self.venues and name not in getattr(self, "lending", {}):
            raise UnknownName("venue", name, [*self.venues, *getattr(self, "lending", {})])
        if command.block is not None or command.seed:
            raise InvalidInput("block", "a venue's advance_time moves its clock only: no block or seed")
        now = self.time_of(name)
        if timestamp < now:
            raise InvalidInput("timestamp", f"{timestamp} is before {name}'s time {now}")
        self.clocks[name] = timestamp
        events: list[e.Event] = [e.TimeAdvanced(timestamp, self.block)]
        venue = self.venues.get(name)
        if venue is not None:
            waiting = sorted({account for account, _ in self.liquidating if self.home_venue.get(account) == name})
            events += evaluate(self, waiting)
        return events

    def time_of(self, venue: str) -> int:
        """A venue's time: the engine's (advance_time without a venue), or later if the venue's
        own prices or advance_time brought it later. One venue's feeder never moves another's."""
        own = self.clocks.get(venue)
        return self.timestamp if own is None or own < self.timestamp else own

    def _register_key(self, command: c.RegisterKey) -> list[e.Event]:
        digest = command.key_hash
        if not isinstance(digest, str) or len(digest) != 64 or any(ch not in "0123456789abcdef" for ch in digest):
            raise InvalidInput("key_hash", "the SHA-256 of the key, 64 lowercase hex digits")
        if command.role not in ("admin", "operator", "account"):
            raise InvalidInput("role", "one of admin, operator, account")
        for name in ("account", "venue", "label"):
            value = getattr(command, name)
            if value is not None and (not isinstance(value, str) or len(value) > bounds.MAX_ID):
                raise InvalidInput(name, f"a string of at most {bounds.MAX_ID} characters")
        if command.role == "account" and not command.account:
            raise InvalidInput("account", "an account key needs its account")
        account = command.account if command.role == "account" else None
        venue = command.venue if command.role == "operator" else None
        if digest in self.api_keys:
            raise InvalidInput("key_hash", "this key is already registered")
        self.api_keys[digest] = (command.role, account, venue)
        return [e.KeyRegistered(digest[:16], command.role, account, venue)]

    def _revoke_key(self, command: c.RevokeKey) -> list[e.Event]:
        key_id = command.key_id
        if not isinstance(key_id, str) or len(key_id) != 16:
            raise InvalidInput("key_id", "16 lowercase hex digits")
        found = sorted(digest for digest in self.api_keys if digest.startswith(key_id))
        if not found:
            raise InvalidInput("key_id", f"no key with id {key_id!r}")
        for digest in found:
            del self.api_keys[digest]
        return [e.KeyRevoked(key_id)]

    def _set_params(self, command: c.SetParams) -> list[e.Event]:
        venue = self.venue(command.venue)
        preset = venue.preset.with_overrides(command.overrides, name=venue.preset.name)
        rules = VenueRules.from_preset(preset)
        models = {key: preset.margin_model(symbol) for symbol, key in venue.markets.items()}
        unknown = set(preset.markets) - set(venue.markets)
        if unknown:
            raise InvalidInput("overrides.markets", f"cannot add markets by set_params ({', '.join(sorted(unknown))})")
        venue.preset, venue.rules, venue.models = preset, rules, models
        self._schedules.clear()
        if self._screen is not None:  # margin tables may have changed: the screen starts over
            self._screen.invalidate()
        # New rules apply at once: every account of the venue is checked against them.
        from .pipeline import evaluate

        holders = set().union(*(self.holders[key] for key in venue.markets.values())) if venue.markets else set()
        return [e.ParamsSet(venue.name)] + evaluate(self, sorted(holders))

    def _screened(self, moved) -> set[str] | None:
        from .screen import EngineScreen

        if self._screen is None:
            self._screen = EngineScreen(self)
        return self._screen.candidates(moved)

    # ------------------------------------------------------------------ views

    def balance(self, account: str, asset: str) -> Decimal:
        return self.ledger.amount(asset, self.ledger.account(account).balance(asset))

    def conservation(self):
        return self.ledger.conservation()


def _blamed_field(command: c.Command, error: Exception) -> str | None:
    """The field an internal error most likely came from: the first numeric-looking field whose
    value is outside the ranges of :mod:`solvent.core.bounds` (None when none is)."""
    from dataclasses import fields
    from decimal import InvalidOperation

    from ..core.bounds import any_decimal

    for spec in fields(command):
        value = getattr(command, spec.name)
        values = value.items() if isinstance(value, Mapping) else [(None, value)]
        for key, item in values:
            if isinstance(item, (str, int)) and not isinstance(item, bool):
                try:
                    any_decimal(Decimal(item), spec.name)
                except InvalidInput:
                    return spec.name if key is None else f"{spec.name}.{key}"
                except (InvalidOperation, ValueError, TypeError):  # not a number: not this one
                    continue
    return None


def _margin_moved(ledger: Ledger, venue: VenueState, symbol: str, account: str, units: int, position) -> e.Event:
    """The event of ``units`` moved into (positive) or out of an isolated position's margin."""
    settle = ledger.markets[position.market].settle
    return e.IsolatedMarginMoved(account, venue.name, symbol, str(ledger.amount(settle, units)),
                                 str(ledger.amount(settle, position.isolated_margin)),
                                 None if position.hedge_side is None else str(position.hedge_side))
