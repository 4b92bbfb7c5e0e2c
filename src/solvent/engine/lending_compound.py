"""Compound v3 (Comet) on the engine: base supply and borrow, collateral, absorb, store front.

Rules come from :mod:`solvent.policies.lending.compound` with the preset's ``[comets.<market>]``
table; the venue runs one Comet market, ``[lending].market`` (default: ``liquidation.default_market``).
Prices are USD with 8 decimals (Comet's price feeds). Interest is not modelled (indices of 1).

State: each account's signed base ``principal`` (supply > 0, borrow < 0) and collateral
balances; the protocol's base ``reserves`` (may be negative) and the collateral it seized.
Identities: ``<venue>/pool`` holds ``Σ principal + reserves`` of the base asset and
``Σ collateral + seized collateral`` of each collateral asset.

- ``Borrow``: the new borrow must reach ``base_borrow_min`` and be collateralized at the borrow
  collateral factors (``isBorrowCollateralized``); withdrawing collateral must keep it so.
- ``Absorb``: every listed account must be liquidatable (liquidity at the liquidate CFs < 0);
  all its collateral becomes the protocol's, its balance is credited at the liquidation factors
  and floored at 0; the reserves pay the difference. Debt beyond the collateral's market value is
  reported as bad debt absorbed by the reserves. The absorber gets liquidator points only.
- ``BuyCollateral``: at ``P·(1 − SFPF·(1 − LF))`` while reserves are below target.
"""

from __future__ import annotations

from typing import Any

from ..core.errors import InvalidInput
from ..core.numbers import non_negative
from ..policies.lending import compound
from .lending import (
    Absorbed,
    BadDebtRecorded,
    Borrowed,
    CollateralBought,
    LendingVenue,
    Moves,
    Repaid,
    ReservesFunded,
    SupplyAdded,
    SupplyWithdrawn,
    decimal_or_max,
)


class CompoundVenue(LendingVenue):
    protocol = "compound"
    price_decimals = compound.PRICE_DECIMALS

    def __init__(self, engine, name, preset) -> None:
        super().__init__(engine, name, preset)
        where = f"preset[{preset.name}]"
        market = str(self.settings.get("market") or preset.section("liquidation").get("default_market", "cUSDCv3"))
        self.comet = compound.market_from_tables(preset.section("comets"), market, f"{where}.comets")
        decimals = {symbol: asset.decimals for symbol, asset in preset.assets.items()}
        wanted = {self.comet.base: self.comet.base_decimals,
                  **{a: spec.decimals for a, spec in self.comet.assets.items()}}
        for asset, count in wanted.items():
            if decimals.get(asset) != count:
                raise InvalidInput(f"{where}.assets.{asset}", f"must be listed with {count} decimals as in {market}")
        self.base = self.comet.base
        self.principal: dict[str, int] = {}
        self.collateral: dict[str, dict[str, int]] = {asset: {} for asset in sorted(self.comet.assets)}
        self.reserves = 0
        self.collateral_reserves: dict[str, int] = {asset: 0 for asset in sorted(self.comet.assets)}
        self.points: dict[str, int] = {}  # absorber → accounts absorbed

    def assets(self) -> list[str]:
        return sorted({self.base, *self.comet.assets})

    def market_names(self) -> tuple[str, ...]:
        return (self.comet.name,)

    # ---------------------------------------------------------------- health

    def price_units(self, asset: str) -> int:
        return int(self.price(asset) * compound.PRICE_SCALE)

    def holdings(self, account: str, changes: dict[str, int] | None = None) -> tuple[compound.CometHolding, ...]:
        rows = []
        for asset, balances in self.collateral.items():
            amount = balances.get(account, 0) + (changes or {}).get(asset, 0)
            if amount:
                rows.append(compound.CometHolding(self.comet.assets[asset], amount, self.price_units(asset)))
        return tuple(rows)

    def debt(self, account: str, principal: int | None = None) -> int:
        value = self.principal.get(account, 0) if principal is None else principal
        return max(-value, 0)

    def is_liquidatable(self, account: str) -> bool:
        debt = self.debt(account)
        if debt == 0:
            return False
        return compound.is_liquidatable(debt, self.price_units(self.base), self.holdings(account),
                                        self.comet.base_decimals)

    def require_collateralized(self, account: str, principal: int, changes: dict[str, int] | None = None) -> None:
        debt = self.debt(account, principal)
        if debt == 0:
            return
        if not compound.is_borrow_collateralized(debt, self.price_units(self.base), self.holdings(account, changes),
                                                 self.comet.base_decimals):
            raise InvalidInput("amount", "the borrow would not be collateralized at the borrow collateral "
                               "factors (NotCollateralized)")

    # ---------------------------------------------------------------- positions

    def supply(self, command) -> list:
        self.require_member(command.account)
        self.require_asset(command.asset, self.assets())
        units = self.units(command.asset, command.amount)
        moves = Moves(self.ledger)
        moves.add(command.account, self.pool, command.asset, units)
        moves.apply()
        if command.asset == self.base:
            self.principal[command.account] = self.principal.get(command.account, 0) + units
        else:
            balances = self.collateral[command.asset]
            balances[command.account] = balances.get(command.account, 0) + units
        return [SupplyAdded(self.name, command.account, command.asset, self.text(command.asset, units))]

    def withdraw_supply(self, command) -> list:
        self.require_member(command.account)
        self.require_asset(command.asset, self.assets())
        wanted = decimal_or_max(command.amount, "amount")
        if command.asset == self.base:
            held = max(self.principal.get(command.account, 0), 0)
        else:
            held = self.collateral[command.asset].get(command.account, 0)
        units = held if wanted is None else self.ledger.units(command.asset, wanted)
        if units == 0 or units > held:
            raise InvalidInput("amount", f"{command.account!r} supplied {self.text(command.asset, held)} "
                               f"{command.asset}, cannot withdraw {self.text(command.asset, units)} (borrow the base "
                               "asset with borrow)")
        if command.asset != self.base:
            self.require_collateralized(command.account, self.principal.get(command.account, 0),
                                        {command.asset: -units})
        moves = Moves(self.ledger)
        moves.add(self.pool, command.account, command.asset, units)
        moves.apply()
        if command.asset == self.base:
            self.principal[command.account] -= units
        else:
            self.collateral[command.asset][command.account] -= units
        return [SupplyWithdrawn(self.name, command.account, command.asset, self.text(command.asset, units))]

    def borrow(self, command) -> list:
        self.require_member(command.account)
        if command.asset != self.base:
            raise InvalidInput("asset", f"only the base asset {self.base} can be borrowed from {self.comet.name}")
        units = self.units(command.asset, command.amount)
        after = self.principal.get(command.account, 0) - units
        if after < 0:
            if -after < self.comet.base_borrow_min:
                raise InvalidInput("amount", f"the borrow {self.text(self.base, -after)} is below the minimum "
                                   f"{self.text(self.base, self.comet.base_borrow_min)} (BorrowTooSmall)")
            self.require_collateralized(command.account, after)
        moves = Moves(self.ledger)
        moves.add(self.pool, command.account, self.base, units)
        moves.apply()
        self.principal[command.account] = after
        return [Borrowed(self.name, command.account, self.base, self.text(self.base, units), self.comet.name)]

    def repay(self, command) -> list:
        self.require_member(command.account)
        payer = command.payer or command.account
        self.require_caller(payer, "payer")
        if command.asset != self.base:
            raise InvalidInput("asset", f"debts on {self.comet.name} are in {self.base}")
        owed = self.debt(command.account)
        if owed == 0:
            raise InvalidInput("account", f"{command.account!r} owes no {self.base}")
        wanted = decimal_or_max(command.amount, "amount")
        units = owed if wanted is None else min(owed, self.ledger.units(self.base, wanted))
        moves = Moves(self.ledger)
        moves.add(payer, self.pool, self.base, units)
        moves.apply()
        self.principal[command.account] += units
        return [Repaid(self.name, command.account, payer, self.base, self.text(self.base, units), self.comet.name)]

    # ---------------------------------------------------------------- absorb and store front

    def absorb(self, command) -> list:
        self.require_caller(command.absorber, "absorber")
        if isinstance(command.accounts, str):
            raise InvalidInput("accounts", "expected a list of accounts")
        accounts = tuple(command.accounts)
        if not accounts:
            raise InvalidInput("accounts", "name at least one account")
        if len(set(accounts)) != len(accounts):
            raise InvalidInput("accounts", "an account is listed twice")
        base_price = self.price_units(self.base)
        results = []
        for index, account in enumerate(accounts):
            self.require_member(account, f"accounts[{index}]")
            if not self.is_liquidatable(account):
                raise InvalidInput(f"accounts[{index}]", f"{account!r} is not liquidatable (NotLiquidatable)")
            results.append(compound.absorb(self.debt(account), base_price, self.holdings(account),
                                           self.comet.base_decimals))
        events: list = []
        for account, result in zip(accounts, results):
            self.principal[account] = result.balance_after
            for asset, amount in result.seized.items():
                self.collateral[asset].pop(account, None)
                self.collateral_reserves[asset] += amount
            self.reserves -= result.balance_after - result.balance_before
            self.points[command.absorber] = self.points.get(command.absorber, 0) + 1
            debt = -result.balance_before
            events.append(Absorbed(
                self.name, command.absorber, account, self.text(self.base, debt),
                tuple((asset, self.text(asset, amount)) for asset, amount in sorted(result.seized.items())),
                self.text(self.base, result.credit), self.text(self.base, result.balance_after),
                self.text(self.base, self.reserves)))
            worth = compound.div_price(result.collateral_value, base_price, self.comet.base_scale)
            if worth < debt:
                events.append(BadDebtRecorded(self.name, account, self.base, self.text(self.base, debt - worth),
                                              "reserves", self.comet.name))
        return events

    def buy_collateral(self, command) -> list:
        self.require_caller(command.buyer, "buyer")
        self.require_asset(command.asset, self.comet.assets)
        paid = self.units(self.base, command.base_amount, "base_amount")
        minimum = self.ledger.units(command.asset, non_negative(command.min_amount, "min_amount"), "min_amount")
        spec = self.comet.assets[command.asset]
        quote = compound.quote_collateral_units(self.price_units(command.asset), self.price_units(self.base),
                                                spec.liquidation_factor, self.comet.store_front_price_factor,
                                                paid, spec.decimals, self.comet.base_decimals)
        bought = compound.buy_collateral(quote, reserves=self.reserves, target_reserves=self.comet.target_reserves,
                                         collateral_reserves=self.collateral_reserves[command.asset],
                                         min_amount=minimum)
        moves = Moves(self.ledger)
        moves.add(command.buyer, self.pool, self.base, paid, field_name="base_amount")
        moves.add(self.pool, command.buyer, command.asset, bought)
        moves.apply()
        self.reserves += paid
        self.collateral_reserves[command.asset] -= bought
        return [CollateralBought(self.name, command.buyer, command.asset, self.text(self.base, paid),
                                 self.text(command.asset, bought), self.text(self.base, self.reserves))]

    def fund_reserves(self, command) -> list:
        self.require_caller(command.account, "account")
        units = self.units(self.base, command.amount)
        moves = Moves(self.ledger)
        moves.add(command.account, self.pool, self.base, units)
        moves.apply()
        self.reserves += units
        return [ReservesFunded(self.name, command.account, self.base, self.text(self.base, units),
                               self.text(self.base, self.reserves))]

    # ---------------------------------------------------------------- views and checks

    def expected_balances(self) -> dict:
        expected = {(self.pool, self.base): sum(self.principal.values()) + self.reserves}
        for asset, balances in self.collateral.items():
            expected[(self.pool, asset)] = sum(balances.values()) + self.collateral_reserves[asset]
        return expected

    def account_state(self, account: str) -> dict[str, Any]:
        principal = self.principal.get(account, 0)
        state: dict[str, Any] = {
            "protocol": self.protocol, "market": self.comet.name,
            "supplied": {self.base: self.text(self.base, max(principal, 0))} if principal > 0 else {},
            "borrowed": {self.base: self.text(self.base, -principal)} if principal < 0 else {},
            "collateral": {a: self.text(a, b[account]) for a, b in self.collateral.items() if b.get(account)},
        }
        try:
            debt, price = self.debt(account), self.price_units(self.base)
            holdings = self.holdings(account)
            scale = self.comet.base_decimals
            state["liquidity"] = str(compound.from_units(compound.liquidity(debt, price, holdings, scale), 8))
            state["borrow_liquidity"] = str(compound.from_units(
                compound.liquidity(debt, price, holdings, scale, borrow=True), 8))
            state["liquidatable"] = self.is_liquidatable(account)
        except InvalidInput:
            state["liquidatable"] = None
        return state

    def venue_state(self) -> dict[str, Any]:
        return {
            "protocol": self.protocol, "market": self.comet.name, "base": self.base,
            "prices": {a: str(p) for a, p in sorted(self.prices.items())},
            "reserves": self.text(self.base, self.reserves),
            "target_reserves": self.text(self.base, self.comet.target_reserves),
            "store_front_open": self.reserves < self.comet.target_reserves,
            "collateral_reserves": {a: self.text(a, v) for a, v in self.collateral_reserves.items()},
            "total_supply": self.text(self.base, sum(v for v in self.principal.values() if v > 0)),
            "total_borrow": self.text(self.base, -sum(v for v in self.principal.values() if v < 0)),
            "liquidator_points": dict(sorted(self.points.items())),
        }
