"""Aave v3 on the engine: reserves, health factor, e-mode, liquidation call, deficit.

Rules come from :mod:`solvent.policies.lending.aave` with the preset's ``[liquidation]``,
``[reserves.*]`` and ``[emodes.*]`` tables (the version, 3.0 … 3.7, is ``liquidation.version``).
Prices are in the pool's base currency (USD, ``base_currency_decimals`` = 8).

State: one :class:`~solvent.engine.lending.SharePool` per reserve (aToken balances are supply
shares, one per unit of the asset: interest is not modelled), per-account e-mode and disabled
collaterals. Identity per reserve: ``cash + borrowed + deficit == net supplied``, with cash the
``<venue>/pool`` ledger balance of the asset; the treasury's protocol fees are supply shares.

Borrow rule (``ValidationLogic.validateBorrow``): HF ≥ 1 before, and the debt after, divided by
the account's average LTV (``percentDiv``), must not exceed its collateral. Withdrawals and
collateral/e-mode switches must leave HF ≥ 1.
"""

from __future__ import annotations

from typing import Any

from ..core.errors import InvalidInput
from ..core.numbers import to_int
from ..policies.lending import WAD, aave
from .lending import (
    BadDebtRecorded,
    Borrowed,
    CollateralEnabledSet,
    EModeSet,
    LendingVenue,
    LiquidationCall,
    LiquidationCalled,
    Moves,
    Repaid,
    SharePool,
    SupplyAdded,
    SupplyWithdrawn,
    decimal_or_max,
    fraction_text,
)


class AaveVenue(LendingVenue):
    protocol = "aave"

    def __init__(self, engine, name, preset) -> None:
        super().__init__(engine, name, preset)
        where = f"preset[{preset.name}]"
        self.market = aave.AaveMarket.from_tables(preset.section("liquidation"), preset.section("reserves"),
                                                  preset.section("assets"), preset.section("emodes"), where)
        self.price_decimals = self.market.config.base_currency_decimals
        for asset in self.market.reserves:
            if asset not in preset.assets:
                raise InvalidInput(f"{where}.assets.{asset}", "a reserve needs its token decimals in [assets]")
        self.reserves = {asset: SharePool(asset) for asset in sorted(self.market.reserves)}
        self.emode: dict[str, int] = {}
        self.disabled: set[tuple[str, str]] = set()

    @property
    def config(self) -> aave.AaveConfig:
        return self.market.config

    def market_names(self) -> tuple[str, ...]:
        return tuple(self.reserves)

    # ---------------------------------------------------------------- accounts as the policy sees them

    def reserve(self, asset: str, field_name: str = "asset") -> SharePool:
        self.require_asset(asset, self.reserves, field_name)
        return self.reserves[asset]

    def balances(self, account: str) -> tuple[dict[str, int], dict[str, int]]:
        supplies = {asset: pool.assets_of(account) for asset, pool in self.reserves.items()}
        debts = {asset: pool.debt_of(account) for asset, pool in self.reserves.items()}
        return ({a: v for a, v in supplies.items() if v}, {a: v for a, v in debts.items() if v})

    def policy_account(self, account: str, supplies: dict[str, int], debts: dict[str, int], *, emode: int | None = None,
                       disabled: set[tuple[str, str]] | None = None, include: tuple[tuple[str, str], ...] = ()
                       ) -> aave.AaveAccount:
        category = self.emode.get(account, 0) if emode is None else emode
        off = self.disabled if disabled is None else disabled
        unit = 10**self.price_decimals

        def holding(asset: str, amount: int, enabled: bool = True) -> aave.AaveHolding:
            price = self.price(asset)
            return aave.AaveHolding(self.market.reserve(asset, emode=category), amount, int(price * unit), enabled)

        collateral = {asset: amount for asset, amount in supplies.items() if amount}
        debt = {asset: amount for asset, amount in debts.items() if amount}
        for side, asset in include:
            (collateral if side == "collateral" else debt).setdefault(asset, 0)
        return aave.AaveAccount(
            tuple(holding(a, v, (account, a) not in off) for a, v in sorted(collateral.items())),
            tuple(holding(a, v) for a, v in sorted(debt.items())),
        )

    def data(self, account: str, **changes) -> aave.AccountData:
        supplies, debts = self.balances(account)
        for asset, delta in changes.get("supply", {}).items():
            supplies[asset] = supplies.get(asset, 0) + delta
        for asset, delta in changes.get("debt", {}).items():
            debts[asset] = debts.get(asset, 0) + delta
        policy = self.policy_account(account, supplies, debts, emode=changes.get("emode"),
                                     disabled=changes.get("disabled"))
        return aave.account_data(policy, self.config)

    def require_healthy(self, data: aave.AccountData, what: str, field_name: str = "amount") -> None:
        if data.total_debt_base and data.health_factor_wad < WAD:
            raise InvalidInput(field_name, f"{what} would leave the health factor at {data.health_factor} (below 1)")

    # ---------------------------------------------------------------- positions

    def supply(self, command) -> list:
        self.require_member(command.account)
        pool = self.reserve(command.asset)
        units = self.units(command.asset, command.amount)
        self.deposit_shares(command.account, command.asset, units, pool)
        return [SupplyAdded(self.name, command.account, command.asset, self.text(command.asset, units))]

    def withdraw_supply(self, command) -> list:
        self.require_member(command.account)
        pool = self.reserve(command.asset)
        held = pool.assets_of(command.account)
        wanted = decimal_or_max(command.amount, "amount")
        units = held if wanted is None else self.ledger.units(command.asset, wanted)
        if units == 0 or units > held:
            raise InvalidInput("amount", f"{command.account!r} supplied {self.text(command.asset, held)} "
                               f"{command.asset}, cannot withdraw {self.text(command.asset, units)}")
        if (command.account, command.asset) not in self.disabled and self.balances(command.account)[1]:
            self.require_healthy(self.data(command.account, supply={command.asset: -units}), "the withdrawal")
        moves = Moves(self.ledger)
        moves.add(self.pool, command.account, command.asset, units, field_name="amount")
        shares = pool.shares_for_withdrawal(units)
        moves.apply()
        pool.withdraw(command.account, units, shares)
        return [SupplyWithdrawn(self.name, command.account, command.asset, self.text(command.asset, units))]

    def borrow(self, command) -> list:
        self.require_member(command.account)
        pool = self.reserve(command.asset)
        units = self.units(command.asset, command.amount)
        category = self.emode.get(command.account, 0)
        if category and command.asset not in self.market.emodes[category].assets:
            raise InvalidInput("asset", f"{command.asset} is outside e-mode category {category} "
                               "(INCONSISTENT_EMODE_CATEGORY)")
        before = self.data(command.account)
        if before.total_collateral_base == 0:
            raise InvalidInput("amount", "no collateral (COLLATERAL_BALANCE_IS_ZERO)")
        if before.total_debt_base and before.health_factor_wad < WAD:
            raise InvalidInput("amount", f"health factor {before.health_factor} is below 1 "
                               "(HEALTH_FACTOR_LOWER_THAN_LIQUIDATION_THRESHOLD)")
        supplies, debts = self.balances(command.account)
        policy = self.policy_account(command.account, supplies, debts)
        weighted_ltv = sum(h.value() * h.reserve.ltv_bps for h in policy.collateral if h.collateral_enabled)
        average_ltv = weighted_ltv // before.total_collateral_base
        if average_ltv == 0:
            raise InvalidInput("amount", "the collateral has LTV 0 (LTV_VALIDATION_FAILED)")
        added = aave.AaveHolding(self.market.reserve(command.asset, emode=category), units,
                                 int(self.price(command.asset) * 10**self.price_decimals))
        debt_after = before.total_debt_base + added.value(round_up=self.config.version.pessimistic_valuation)
        needed = aave.percent_div(debt_after, average_ltv)
        if needed > before.total_collateral_base:
            raise InvalidInput("amount", f"needs {self.config.base_to_decimal(needed)} of collateral, has "
                               f"{self.config.base_to_decimal(before.total_collateral_base)} "
                               "(COLLATERAL_CANNOT_COVER_NEW_BORROW)")
        moves = Moves(self.ledger)
        moves.add(self.pool, command.account, command.asset, units, field_name="amount")
        after = self.data(command.account, debt={command.asset: units})
        moves.apply()
        pool.add_debt(command.account, units)
        return [Borrowed(self.name, command.account, command.asset, self.text(command.asset, units),
                         health=fraction_text(after.health_factor))]

    def repay(self, command) -> list:
        self.require_member(command.account)
        payer, units = self.repay_debt(command, self.reserve(command.asset), (
            "asset", f"{command.account!r} owes no {command.asset} (NO_DEBT_OF_SELECTED_TYPE)"))
        return [Repaid(self.name, command.account, payer, command.asset, self.text(command.asset, units))]

    def set_emode(self, command) -> list:
        self.require_member(command.account)
        category = to_int(command.category, "category")
        if category and category not in self.market.emodes:
            raise InvalidInput("category", f"unknown e-mode category {category} "
                               f"(known: {', '.join(str(c) for c in sorted(self.market.emodes))})")
        _, debts = self.balances(command.account)
        if category:
            outside = sorted(a for a in debts if a not in self.market.emodes[category].assets)
            if outside:
                raise InvalidInput("category", f"borrowed {', '.join(outside)} outside the category "
                                   "(NOT_BORROWABLE_IN_EMODE)")
        if debts:
            self.require_healthy(self.data(command.account, emode=category), "the e-mode change", "category")
        if category:
            self.emode[command.account] = category
        else:
            self.emode.pop(command.account, None)
        return [EModeSet(self.name, command.account, category)]

    def set_collateral_enabled(self, command) -> list:
        self.require_member(command.account)
        self.reserve(command.asset)
        if not isinstance(command.enabled, bool):
            raise InvalidInput("enabled", "expected true or false")
        key = (command.account, command.asset)
        disabled = set(self.disabled)
        (disabled.discard if command.enabled else disabled.add)(key)
        if not command.enabled and self.balances(command.account)[1]:
            self.require_healthy(self.data(command.account, disabled=disabled), "disabling the collateral", "enabled")
        self.disabled = disabled
        return [CollateralEnabledSet(self.name, command.account, command.asset, command.enabled)]

    # ---------------------------------------------------------------- liquidation

    def liquidation_call(self, command: LiquidationCall) -> list:
        self.require_caller(command.liquidator, "liquidator")
        self.require_member(command.borrower, "borrower")
        collateral_pool = self.reserve(command.collateral_asset, "collateral_asset")
        debt_pool = self.reserve(command.debt_asset, "debt_asset")
        if self.config.version.minor >= 4 and command.liquidator == command.borrower:
            raise InvalidInput("liquidator", "self-liquidation is forbidden from v3.4 (SELF_LIQUIDATION)")
        if not isinstance(command.receive_a_token, bool):
            raise InvalidInput("receive_a_token", "expected true or false")
        if command.receive_a_token:
            self.require_member(command.liquidator, "liquidator")  # it receives a supply position
        if collateral_pool.assets_of(command.borrower) == 0:
            raise InvalidInput("collateral_asset", f"{command.borrower!r} has no {command.collateral_asset} "
                               "supplied (COLLATERAL_CANNOT_BE_LIQUIDATED)")
        cover = decimal_or_max(command.debt_to_cover, "debt_to_cover")
        supplies, debts = self.balances(command.borrower)
        account = self.policy_account(command.borrower, supplies, debts,
                                      include=(("collateral", command.collateral_asset), ("debt", command.debt_asset)))
        result = aave.liquidation_call(account, command.collateral_asset, command.debt_asset,
                                       None if cover is None else str(cover), self.config)
        received = result.liquidator_received
        moves = Moves(self.ledger)
        moves.add(command.liquidator, self.pool, command.debt_asset, result.debt_repaid, field_name="liquidator")
        if not command.receive_a_token:
            moves.add(self.pool, command.liquidator, command.collateral_asset, received, field_name="receive_a_token")
        bonus = account.holding("collateral", command.collateral_asset).reserve.liquidation_bonus_bps
        toxic = aave.liquidation_worsens_health(result.before.total_collateral_base, result.before.total_debt_base,
                                                aave.from_units(bonus, aave.BPS_DECIMALS))
        # Validated: now change state.
        moves.apply()
        debt_pool.reduce_debt(command.borrower, result.debt_repaid)
        collateral_pool.move_shares(command.borrower, self.treasury, result.protocol_fee)
        if command.receive_a_token:
            collateral_pool.move_shares(command.borrower, command.liquidator, received)
        else:
            collateral_pool.withdraw(command.borrower, received, received)
        events: list = [LiquidationCalled(
            self.name, command.liquidator, command.borrower, command.collateral_asset, command.debt_asset,
            self.text(command.debt_asset, result.debt_repaid),
            self.text(command.collateral_asset, result.collateral_seized),
            self.text(command.collateral_asset, result.protocol_fee),
            self.text(command.collateral_asset, received),
            fraction_text(result.before.health_factor), fraction_text(result.after.health_factor), toxic)]
        for asset, amount in sorted(result.deficits.items()):
            self.reserves[asset].write_off(command.borrower, amount, against_suppliers=False)
            events.append(BadDebtRecorded(self.name, command.borrower, asset, self.text(asset, amount),
                                          "reserve_deficit"))
        return events

    # ---------------------------------------------------------------- views and checks

    def expected_balances(self) -> dict:
        return {(self.pool, asset): pool.cash for asset, pool in self.reserves.items()}

    def identities(self) -> dict:
        result = {}
        for asset, pool in self.reserves.items():
            result[f"reserve[{asset}] cash+borrowed+deficit == net supplied"] = pool.identity()
            result[f"reserve[{asset}] aToken shares == supplied assets"] = (pool.total_shares, pool.total_assets)
        return result

    def health(self, account: str) -> aave.AccountData | None:
        try:
            return self.data(account)
        except InvalidInput:  # a price is missing
            return None

    def account_state(self, account: str) -> dict[str, Any]:
        supplies, debts = self.balances(account)
        data = self.health(account)
        return {
            "protocol": self.protocol,
            "supplied": {a: self.text(a, v) for a, v in supplies.items()},
            "borrowed": {a: self.text(a, v) for a, v in debts.items()},
            "collateral_disabled": sorted(a for (who, a) in self.disabled if who == account),
            "emode": self.emode.get(account, 0),
            "health_factor": None if data is None else fraction_text(data.health_factor),
            "liquidatable": None if data is None else data.liquidatable,
        }

    def venue_state(self) -> dict[str, Any]:
        return {"protocol": self.protocol, "version": str(self.config.version),
                "prices": {a: str(p) for a, p in sorted(self.prices.items())},
                "reserves": {a: pool.view(self.ledger) for a, pool in self.reserves.items()}}
