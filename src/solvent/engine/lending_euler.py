"""Euler v2 (Euler Vault Kit) on the engine: vaults, controller, liquidation by debt takeover.

Rules come from :mod:`solvent.policies.lending.euler`; the vaults are the preset's
``[lending.vaults.<asset>]`` tables (one vault per asset; a vault with a ``collateral`` table
lends against those collaterals at their borrow / liquidation LTVs, with its own
``max_liquidation_discount`` and ``liquidation_cool_off_time``). Prices are mid prices in the unit
of account, 18 decimals; values are ``⌊assets·price⌋`` (collateral) and ``⌈debt·price⌉`` (liability).

State: each vault is a :class:`~solvent.engine.lending.SharePool` (deposits are shares; a loss
socialized to depositors lowers the share price). An account borrows from one vault at a time
(its controller); all its deposits in the collaterals its controller accepts count as collateral.
Identity per vault: ``cash + borrowed + lost == net supplied``, cash the pool's ledger balance.

- ``Borrow`` / ``WithdrawSupply`` need ``Σ value·borrowLTV > liability`` afterwards, and restart
  the account's liquidation cool-off.
- ``Liquidate``: the borrower is in violation iff ``Σ value·liquidationLTV ≤ liability``; the
  discount is ``1 − health`` capped at the vault's maximum; the liquidator takes over up to the
  whole liability and receives the chosen collateral's shares worth ``repay / (1 − discount)``
  (all of them, for a proportionally smaller repay, if they are worth less). By default the
  liquidator repays the debt from its wallet in the same command (an EVC batch).
- When the borrower has no collateral left and still owes at least the minimum socialization
  value, the rest of its debt is written off against the vault's depositors (unless the preset
  sets ``socialize_debt = false``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..core.errors import InvalidInput
from ..core.numbers import non_negative, to_decimal
from ..policies.lending import euler
from ..policies.lending import to_units as policy_units
from .lending import (
    BadDebtRecorded,
    Borrowed,
    LendingVenue,
    Liquidated,
    Moves,
    Repaid,
    SharePool,
    SupplyAdded,
    SupplyWithdrawn,
    decimal_or_max,
)

SCALE = euler.SCALE


@dataclass(frozen=True)
class VaultConfig:
    asset: str
    decimals: int
    liquidation: euler.EulerVaultConfig
    borrow_ltv: Mapping[str, int]  # collateral asset → CONFIG_SCALE
    liquidation_ltv: Mapping[str, int]

    @property
    def borrowable(self) -> bool:
        return bool(self.liquidation_ltv)


class EulerVenue(LendingVenue):
    protocol = "euler"
    price_decimals = 18

    def __init__(self, engine, name, preset) -> None:
        super().__init__(engine, name, preset)
        where = f"preset[{preset.name}].lending"
        defaults = preset.section("liquidation")
        self.socialize = self.settings.get("socialize_debt", True)
        if not isinstance(self.socialize, bool):
            raise InvalidInput(f"{where}.socialize_debt", "expected true or false")
        self.min_socialization = policy_units(defaults.get("min_socialization_liability_value", "0"), 18,
                                              f"preset[{preset.name}].liquidation.min_socialization_liability_value")
        tables = dict(self.settings.get("vaults", {}))
        if not tables:
            raise InvalidInput(f"{where}.vaults", "no vault defined")
        self.vaults: dict[str, VaultConfig] = {}
        for asset, table in sorted(tables.items()):
            at = f"{where}.vaults.{asset}"
            if asset not in preset.assets:
                raise InvalidInput(at, f"{asset} needs its decimals in [assets]")
            merged = {key: table.get(key, defaults.get(key)) for key in ("max_liquidation_discount",
                                                                         "liquidation_cool_off_time")}
            config = euler.EulerVaultConfig.from_table({k: v for k, v in merged.items() if v is not None}, at)
            borrow, liquidation = {}, {}
            for collateral, ltvs in dict(table.get("collateral", {})).items():
                spot = f"{at}.collateral.{collateral}"
                if collateral not in tables or collateral == asset:
                    raise InvalidInput(spot, "a collateral must be another vault of the venue")
                liquidation[collateral] = euler._config(ltvs.get("liquidation_ltv", "0"), f"{spot}.liquidation_ltv")
                borrow[collateral] = euler._config(ltvs.get("borrow_ltv", ltvs.get("liquidation_ltv", "0")),
                                                   f"{spot}.borrow_ltv")
                if borrow[collateral] > liquidation[collateral]:
                    raise InvalidInput(f"{spot}.borrow_ltv", "must not exceed the liquidation LTV")
            self.vaults[asset] = VaultConfig(asset, preset.assets[asset].decimals, config, borrow, liquidation)
        self.pools = {asset: SharePool(asset) for asset in self.vaults}
        self.last_status_check: dict[str, int] = {}

    def assets(self) -> list[str]:
        return sorted(self.vaults)

    def market_names(self) -> tuple[str, ...]:
        return tuple(self.vaults)

    # ---------------------------------------------------------------- values

    def vault(self, asset: str, field_name: str = "asset") -> SharePool:
        self.require_asset(asset, self.vaults, field_name)
        return self.pools[asset]

    def controller(self, account: str) -> str | None:
        for asset, pool in self.pools.items():
            if pool.debt_of(account):
                return asset
        return None

    def price_units(self, asset: str) -> int:
        return int(self.price(asset) * SCALE)

    def value(self, asset: str, assets: int, *, up: bool = False) -> int:
        product = assets * self.price_units(asset)
        unit = 10**self.vaults[asset].decimals
        return -((-product) // unit) if up else product // unit

    def share_value(self, asset: str, shares: int) -> int:
        pool = self.pools[asset]
        return self.value(asset, shares * pool.total_assets // pool.total_shares) if shares else 0

    def liquidity(self, account: str, controller: str, *, liquidation: bool, shares: Mapping[str, int] | None = None,
                  debt: int | None = None) -> tuple[int, int]:
        """(Σ value·LTV, liability value) for ``account`` under vault ``controller``; ``shares``
        overrides collateral share balances, ``debt`` the liability."""
        config = self.vaults[controller]
        ltvs = config.liquidation_ltv if liquidation else config.borrow_ltv
        adjusted = 0
        for collateral, ltv in sorted(ltvs.items()):
            held = (shares or {}).get(collateral, self.pools[collateral].shares.get(account, 0))
            adjusted += self.share_value(collateral, held) * ltv // euler.CONFIG_SCALE
        owed = self.pools[controller].debt_of(account) if debt is None else debt
        return adjusted, self.value(controller, owed, up=True)

    def require_healthy(self, account: str, controller: str | None, field_name: str = "amount", **changes) -> None:
        if controller is None:
            return
        adjusted, liability = self.liquidity(account, controller, liquidation=False, **changes)
        if liability and adjusted <= liability:
            raise InvalidInput(field_name, f"{account!r} would hold risk-adjusted collateral "
                               f"{euler.from_units(adjusted, 18)} for a liability of {euler.from_units(liability, 18)} "
                               "(E_AccountLiquidity)")

    # ---------------------------------------------------------------- positions

    def supply(self, command) -> list:
        self.require_member(command.account)
        pool = self.vault(command.asset)
        units = self.units(command.asset, command.amount)
        self.deposit_shares(command.account, command.asset, units, pool,
                            zero_shares="too small to mint a share (E_ZeroShares)")
        return [SupplyAdded(self.name, command.account, command.asset, self.text(command.asset, units))]

    def withdraw_supply(self, command) -> list:
        self.require_member(command.account)
        pool = self.vault(command.asset)
        held = pool.assets_of(command.account)
        wanted = decimal_or_max(command.amount, "amount")
        units = held if wanted is None else self.ledger.units(command.asset, wanted)
        if units == 0 or units > held:
            raise InvalidInput("amount", f"{command.account!r} can withdraw at most {self.text(command.asset, held)} "
                               f"{command.asset}")
        shares = pool.shares_for_withdrawal(units) if wanted is not None else pool.shares[command.account]
        controller = self.controller(command.account)
        left = pool.shares.get(command.account, 0) - shares
        self.require_healthy(command.account, controller, shares={command.asset: left})
        moves = Moves(self.ledger)
        moves.add(self.pool, command.account, command.asset, units)
        moves.apply()
        pool.withdraw(command.account, units, shares)
        if controller:
            self.last_status_check[command.account] = self.engine.time_of(self.name)
        return [SupplyWithdrawn(self.name, command.account, command.asset, self.text(command.asset, units))]

    def borrow(self, command) -> list:
        self.require_member(command.account)
        pool = self.vault(command.asset)
        if not self.vaults[command.asset].borrowable:
            raise InvalidInput("asset", f"the {command.asset} vault accepts no collateral: nothing to borrow against")
        controller = self.controller(command.account)
        if controller not in (None, command.asset):
            raise InvalidInput("asset", f"{command.account!r} already borrows from the {controller} vault "
                               "(one controller at a time)")
        units = self.units(command.asset, command.amount)
        self.require_healthy(command.account, command.asset, debt=pool.debt_of(command.account) + units)
        moves = Moves(self.ledger)
        moves.add(self.pool, command.account, command.asset, units)
        moves.apply()
        pool.add_debt(command.account, units)
        self.last_status_check[command.account] = self.engine.time_of(self.name)
        adjusted, liability = self.liquidity(command.account, command.asset, liquidation=True)
        return [Borrowed(self.name, command.account, command.asset, self.text(command.asset, units),
                         health=str(euler.from_units(adjusted * SCALE // liability, 18)))]

    def repay(self, command) -> list:
        self.require_member(command.account)
        payer, units = self.repay_debt(command, self.vault(command.asset), (
            "asset", f"{command.account!r} owes nothing to the {command.asset} vault"))
        return [Repaid(self.name, command.account, payer, command.asset, self.text(command.asset, units))]

    # ---------------------------------------------------------------- liquidation

    def liquidate(self, command) -> list:
        self.require_member(command.liquidator, "liquidator")  # it receives vault shares
        self.require_member(command.borrower, "borrower")
        if command.liquidator == command.borrower:
            raise InvalidInput("liquidator", "self-liquidation is forbidden (E_SelfLiquidation)")
        if command.seize is not None or command.market is not None:
            raise InvalidInput("seize" if command.seize is not None else "market",
                               "Euler liquidations name the collateral vault and the repay")
        if not isinstance(command.take_over_debt, bool):
            raise InvalidInput("take_over_debt", "expected true or false")
        controller = self.controller(command.borrower)
        if controller is None:
            raise InvalidInput("borrower", f"{command.borrower!r} has no debt")
        config = self.vaults[controller]
        collateral = command.collateral_asset
        if collateral is None or collateral not in config.liquidation_ltv:
            raise InvalidInput("collateral_asset", f"name a collateral the {controller} vault accepts "
                               f"({', '.join(sorted(config.liquidation_ltv))}) (E_BadCollateral)")
        cool_off = config.liquidation.liquidation_cool_off_time
        last = self.last_status_check.get(command.borrower)
        if cool_off and last is not None and last + cool_off > self.engine.time_of(self.name):
            raise InvalidInput("borrower", f"in liquidation cool-off until {last + cool_off} "
                               "(E_ViolatorLiquidityDeferred)")
        adjusted, liability = self.liquidity(command.borrower, controller, liquidation=True)
        if not euler.is_violator(adjusted, liability):
            raise InvalidInput("borrower", f"{command.borrower!r} is healthy: risk-adjusted collateral "
                               f"{euler.from_units(adjusted, 18)} > liability {euler.from_units(liability, 18)}")
        debt_pool, collateral_pool = self.pools[controller], self.pools[collateral]
        owed = debt_pool.debt_of(command.borrower)
        shares = collateral_pool.shares.get(command.borrower, 0)
        _, factor, max_repay_value, max_yield = euler.max_liquidation(
            adjusted, liability, config.liquidation.max_liquidation_discount, shares,
            self.share_value(collateral, shares))
        max_repay = owed if max_repay_value == liability else max_repay_value * owed // liability
        wanted = decimal_or_max(command.repay if command.repay is not None else "max", "repay")
        repay = max_repay if wanted is None else self.ledger.units(controller, wanted, "repay")
        if repay > max_repay:
            raise InvalidInput("repay", f"at most {self.text(controller, max_repay)} {controller} may be repaid "
                               "(E_ExcessiveRepayAmount)")
        taken = max_yield if repay == max_repay else (repay * max_yield // max_repay if max_repay else max_yield)
        minimum = self.ledger.units(collateral, non_negative(to_decimal(command.min_yield, "min_yield"), "min_yield"),
                                    "min_yield")
        taken_assets = taken * collateral_pool.total_assets // collateral_pool.total_shares if taken else 0
        if taken_assets < minimum:
            raise InvalidInput("min_yield", f"the yield {self.text(collateral, taken_assets)} is below the minimum "
                               "(E_MinYield)")
        if repay == 0 and taken == 0:
            raise InvalidInput("repay", "nothing to liquidate")
        moves = Moves(self.ledger)
        if command.take_over_debt:
            own = self.controller(command.liquidator)
            if own not in (None, controller):
                raise InvalidInput("liquidator", f"the liquidator already borrows from the {own} vault")
            held = self.pools[collateral].shares.get(command.liquidator, 0) + taken
            self.require_healthy(command.liquidator, controller, "liquidator", shares={collateral: held},
                                 debt=debt_pool.debt_of(command.liquidator) + repay)
        else:
            moves.add(command.liquidator, self.pool, controller, repay, field_name="liquidator")
        # Validated: now change state.
        moves.apply()
        debt_pool.reduce_debt(command.borrower, repay)
        if command.take_over_debt:
            debt_pool.add_debt(command.liquidator, repay)
            self.last_status_check[command.liquidator] = self.engine.time_of(self.name)
        collateral_pool.move_shares(command.borrower, command.liquidator, taken)
        events: list = [Liquidated(self.name, command.liquidator, command.borrower, collateral, controller,
                                   self.text(controller, repay), self.text(collateral, taken_assets),
                                   str(euler.from_units(SCALE - factor, 18)),
                                   self.text(controller, repay if command.take_over_debt else 0))]
        left = debt_pool.debt_of(command.borrower)
        no_collateral = all(not self.pools[a].shares.get(command.borrower) for a in config.liquidation_ltv)
        if (self.socialize and left and no_collateral
                and self.value(controller, left, up=True) >= self.min_socialization):
            debt_pool.write_off(command.borrower, left, against_suppliers=True)
            events.append(BadDebtRecorded(self.name, command.borrower, controller, self.text(controller, left),
                                          "vault_depositors"))
        return events

    # ---------------------------------------------------------------- views and checks

    def expected_balances(self) -> dict:
        return {(self.pool, asset): pool.cash for asset, pool in self.pools.items()}

    def identities(self) -> dict:
        return {f"vault[{asset}] cash+borrowed+lost == net supplied": pool.identity()
                for asset, pool in self.pools.items()}

    def account_state(self, account: str) -> dict[str, Any]:
        controller = self.controller(account)
        state: dict[str, Any] = {
            "protocol": self.protocol,
            "supplied": {a: self.text(a, p.assets_of(account)) for a, p in self.pools.items() if p.shares.get(account)},
            "borrowed": {a: self.text(a, p.debt_of(account)) for a, p in self.pools.items() if p.debt_of(account)},
            "controller": controller,
        }
        if controller:
            try:
                adjusted, liability = self.liquidity(account, controller, liquidation=True)
                state["health"] = str(euler.from_units(adjusted * SCALE // liability, 18))
                state["liquidatable"] = euler.is_violator(adjusted, liability)
            except InvalidInput:
                state["liquidatable"] = None
        else:
            state["liquidatable"] = False
        return state

    def venue_state(self) -> dict[str, Any]:
        return {"protocol": self.protocol, "prices": {a: str(p) for a, p in sorted(self.prices.items())},
                "vaults": {a: p.view(self.ledger) for a, p in self.pools.items()}}
