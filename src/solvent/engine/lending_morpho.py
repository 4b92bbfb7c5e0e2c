"""Morpho Blue on the engine: isolated markets, LLTV-derived incentive, bad debt realized.

Rules come from :mod:`solvent.policies.lending.morpho` with the preset's ``[liquidation]`` table;
the markets are ``[lending.markets.<id>]`` tables (``loan``, ``collateral``, ``lltv``, an LLTV the
preset lists in ``liquidation.enabled_lltvs``). Prices are per asset in one common unit (at most
18 decimals); a market's oracle price is ``⌊collateral price / loan price⌋`` at Morpho's
``1e36`` scale adjusted by the tokens' decimals.

State per market: the loan side as a :class:`~solvent.engine.lending.SharePool` (supply shares;
borrow at par, interest not modelled) and the borrowers' collateral. Identities per market:
``cash + borrowed + lost == net supplied``; ``<venue>/pool`` holds, per asset, the cash of the
markets lending it plus the collateral of the markets taking it.

- ``Borrow`` / withdrawing collateral: the position must stay healthy (``⌊⌊coll·price⌋·LLTV⌋ ≥ borrowed``).
- ``Liquidate(market=…)``: only when unhealthy; exactly one of ``seize`` (collateral) or ``repay``
  (loan assets, ``"max"``: everything the collateral allows); ``repaid = seized·price/LIF`` rounded
  up, ``seized = repaid·LIF/price`` rounded down. When the collateral reaches zero the remaining
  debt is written off against the market's suppliers at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..core.errors import InvalidInput
from ..policies.lending import ceil_div, morpho
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


@dataclass(frozen=True)
class MarketConfig:
    id: str
    loan: str
    collateral: str
    lltv: int  # wad
    loan_decimals: int
    collateral_decimals: int


class MorphoVenue(LendingVenue):
    protocol = "morpho"
    price_decimals = 18

    def __init__(self, engine, name, preset) -> None:
        super().__init__(engine, name, preset)
        where = f"preset[{preset.name}]"
        table = preset.section("liquidation")
        self.morpho = morpho.MorphoConfig.from_table(table, f"{where}.liquidation")
        enabled = {morpho._lltv(value, f"{where}.liquidation.enabled_lltvs")
                   for value in table.get("enabled_lltvs", [])}
        self.markets: dict[str, MarketConfig] = {}
        for market, spec in sorted(dict(self.settings.get("markets", {})).items()):
            at = f"{where}.lending.markets.{market}"
            for key in ("loan", "collateral", "lltv"):
                if key not in spec:
                    raise InvalidInput(f"{at}.{key}", "missing")
            loan, collateral = str(spec["loan"]), str(spec["collateral"])
            for key, asset in (("loan", loan), ("collateral", collateral)):
                if asset not in preset.assets:
                    raise InvalidInput(f"{at}.{key}", f"{asset} needs its decimals in [assets]")
            if loan == collateral:
                raise InvalidInput(f"{at}.collateral", "must differ from the loan asset")
            lltv = morpho._lltv(spec["lltv"], f"{at}.lltv")
            if enabled and lltv not in enabled:
                raise InvalidInput(f"{at}.lltv", "not an LLTV governance enabled (liquidation.enabled_lltvs)")
            self.markets[market] = MarketConfig(market, loan, collateral, lltv, preset.assets[loan].decimals,
                                                preset.assets[collateral].decimals)
        if not self.markets:
            raise InvalidInput(f"{where}.lending.markets", "no market defined")
        self.pools = {market: SharePool(config.loan) for market, config in self.markets.items()}
        self.collateral: dict[str, dict[str, int]] = {market: {} for market in self.markets}
        self.bad_debt: dict[str, int] = {market: 0 for market in self.markets}

    def assets(self) -> list[str]:
        return sorted({a for m in self.markets.values() for a in (m.loan, m.collateral)})

    def market_names(self) -> tuple[str, ...]:
        return tuple(self.markets)

    # ---------------------------------------------------------------- helpers

    def market(self, command) -> MarketConfig:
        if command.market is None:
            raise InvalidInput("market", f"name a market of {self.name} ({', '.join(self.markets)})")
        self.require_asset(command.market, self.markets, "market")
        return self.markets[command.market]

    def oracle_price(self, config: MarketConfig) -> int:
        collateral = int(self.price(config.collateral) * 10**18)
        loan = int(self.price(config.loan) * 10**18)
        return collateral * 10 ** (36 + config.loan_decimals - config.collateral_decimals) // loan

    def healthy(self, config: MarketConfig, collateral: int, borrowed: int) -> bool:
        return borrowed == 0 or morpho.is_healthy(collateral, borrowed, self.oracle_price(config), config.lltv)

    # ---------------------------------------------------------------- positions

    def supply(self, command) -> list:
        self.require_member(command.account)
        config = self.market(command)
        self.require_asset(command.asset, (config.loan, config.collateral))
        units = self.units(command.asset, command.amount)
        if command.asset == config.loan:
            self.deposit_shares(command.account, command.asset, units, self.pools[config.id],
                                zero_shares="too small to mint a share")
        else:
            moves = Moves(self.ledger)
            moves.add(command.account, self.pool, command.asset, units)
            moves.apply()
            held = self.collateral[config.id]
            held[command.account] = held.get(command.account, 0) + units
        return [SupplyAdded(self.name, command.account, command.asset, self.text(command.asset, units), config.id)]

    def withdraw_supply(self, command) -> list:
        self.require_member(command.account)
        config = self.market(command)
        self.require_asset(command.asset, (config.loan, config.collateral))
        pool, collateral = self.pools[config.id], self.collateral[config.id]
        wanted = decimal_or_max(command.amount, "amount")
        held = pool.assets_of(command.account) if command.asset == config.loan else collateral.get(command.account, 0)
        units = held if wanted is None else self.ledger.units(command.asset, wanted)
        if units == 0 or units > held:
            raise InvalidInput("amount", f"{command.account!r} can withdraw at most {self.text(command.asset, held)} "
                               f"{command.asset} from {config.id}")
        if command.asset == config.collateral and not self.healthy(config, held - units, pool.debt_of(command.account)):
            raise InvalidInput("amount", "the position would be unhealthy (insufficient collateral)")
        moves = Moves(self.ledger)
        moves.add(self.pool, command.account, command.asset, units, field_name="amount")
        if command.asset == config.loan:
            if units > pool.cash:
                raise InvalidInput("amount", f"the market lends out all but {self.text(config.loan, pool.cash)} "
                                   "(insufficient liquidity)")
            shares = pool.shares[command.account] if wanted is None else pool.shares_for_withdrawal(units)
            moves.apply()
            pool.withdraw(command.account, units, shares)
        else:
            moves.apply()
            collateral[command.account] = held - units
        return [SupplyWithdrawn(self.name, command.account, command.asset, self.text(command.asset, units), config.id)]

    def borrow(self, command) -> list:
        self.require_member(command.account)
        config = self.market(command)
        self.require_asset(command.asset, (config.loan,))
        pool = self.pools[config.id]
        units = self.units(command.asset, command.amount)
        borrowed = pool.debt_of(command.account) + units
        if not self.healthy(config, self.collateral[config.id].get(command.account, 0), borrowed):
            raise InvalidInput("amount", "the position would be unhealthy (insufficient collateral)")
        if units > pool.cash:
            raise InvalidInput("amount", f"only {self.text(config.loan, pool.cash)} is available "
                               "(insufficient liquidity)")
        moves = Moves(self.ledger)
        moves.add(self.pool, command.account, command.asset, units)
        moves.apply()
        pool.add_debt(command.account, units)
        return [Borrowed(self.name, command.account, command.asset, self.text(command.asset, units), config.id,
                         self.ltv_text(config, command.account))]

    def repay(self, command) -> list:
        self.require_member(command.account)
        config = self.market(command)
        self.require_asset(command.asset, (config.loan,))
        payer, units = self.repay_debt(command, self.pools[config.id], (
            "account", f"{command.account!r} owes nothing on {config.id}"))
        return [Repaid(self.name, command.account, payer, command.asset, self.text(command.asset, units), config.id)]

    # ---------------------------------------------------------------- liquidation

    def liquidate(self, command) -> list:
        self.require_caller(command.liquidator, "liquidator")
        self.require_member(command.borrower, "borrower")
        config = self.market(command)
        if command.collateral_asset not in (None, config.collateral):
            raise InvalidInput("collateral_asset", f"the collateral of {config.id} is {config.collateral}")
        pool, holdings = self.pools[config.id], self.collateral[config.id]
        collateral, borrowed = holdings.get(command.borrower, 0), pool.debt_of(command.borrower)
        if borrowed == 0:
            raise InvalidInput("borrower", f"{command.borrower!r} owes nothing on {config.id}")
        price = self.oracle_price(config)
        if morpho.is_healthy(collateral, borrowed, price, config.lltv):
            raise InvalidInput("borrower", f"{command.borrower!r} is healthy: LTV "
                               f"{self.ltv_text(config, command.borrower)}"
                               f" is not above the LLTV {morpho.from_units(config.lltv, 18)}")
        seize_given = command.seize is not None
        if seize_given and command.repay not in (None, "max"):
            raise InvalidInput("seize", "give exactly one of seize and repay")
        if seize_given:
            seized, repaid = self.ledger.units(config.collateral, command.seize, "seize"), 0
            if seized <= 0:
                raise InvalidInput("seize", "must be positive")
        else:
            wanted = decimal_or_max(command.repay if command.repay is not None else "max", "repay")
            if wanted is None:  # everything the collateral allows, at most the whole debt
                lif = morpho.lif_units(config.lltv, self.morpho)
                for_all = morpho.w_div_up(ceil_div(collateral * price, morpho.ORACLE_PRICE_SCALE), lif)
                seized, repaid = (collateral, 0) if for_all <= borrowed else (0, borrowed)
            else:
                seized, repaid = 0, self.ledger.units(config.loan, wanted, "repay")
        result = morpho.liquidate_units(collateral, borrowed, price, config.lltv, seized=seized, repaid=repaid,
                                        config=self.morpho)
        if result.seized == 0:
            raise InvalidInput("repay", "too small to seize any collateral")
        moves = Moves(self.ledger)
        moves.add(command.liquidator, self.pool, config.loan, result.repaid, field_name="liquidator")
        moves.add(self.pool, command.liquidator, config.collateral, result.seized)
        # Validated: now change state.
        moves.apply()
        pool.reduce_debt(command.borrower, result.repaid)
        if result.collateral_after:
            holdings[command.borrower] = result.collateral_after
        else:
            holdings.pop(command.borrower, None)
        events: list = [Liquidated(self.name, command.liquidator, command.borrower, config.collateral, config.loan,
                                   self.text(config.loan, result.repaid), self.text(config.collateral, result.seized),
                                   str(morpho.from_units(result.lif, 18)), "0", config.id)]
        if result.bad_debt:
            pool.write_off(command.borrower, result.bad_debt, against_suppliers=True)
            self.bad_debt[config.id] += result.bad_debt
            events.append(BadDebtRecorded(self.name, command.borrower, config.loan,
                                          self.text(config.loan, result.bad_debt), "market_suppliers", config.id))
        return events

    # ---------------------------------------------------------------- views and checks

    def ltv_text(self, config: MarketConfig, account: str) -> str | None:
        borrowed = self.pools[config.id].debt_of(account)
        collateral = self.collateral[config.id].get(account, 0)
        worth = collateral * self.oracle_price(config) // morpho.ORACLE_PRICE_SCALE
        return None if worth == 0 else str(morpho.from_units(borrowed * 10**18 // worth, 18))

    def expected_balances(self) -> dict:
        expected: dict = {}
        for market, config in self.markets.items():
            loan, collateral = (self.pool, config.loan), (self.pool, config.collateral)
            expected[loan] = expected.get(loan, 0) + self.pools[market].cash
            expected[collateral] = expected.get(collateral, 0) + sum(self.collateral[market].values())
        return expected

    def identities(self) -> dict:
        result = {}
        for market, pool in self.pools.items():
            result[f"market[{market}] cash+borrowed+bad debt == net supplied"] = pool.identity()
            result[f"market[{market}] bad debt realized"] = (pool.lost, self.bad_debt[market])
        return result

    def account_state(self, account: str) -> dict[str, Any]:
        positions = {}
        for market, config in self.markets.items():
            pool, collateral = self.pools[market], self.collateral[market].get(account, 0)
            if not (pool.shares.get(account) or pool.debt_of(account) or collateral):
                continue
            row: dict[str, Any] = {"supplied": self.text(config.loan, pool.assets_of(account)),
                                   "borrowed": self.text(config.loan, pool.debt_of(account)),
                                   "collateral": self.text(config.collateral, collateral)}
            try:
                row["ltv"] = self.ltv_text(config, account)
                row["liquidatable"] = not self.healthy(config, collateral, pool.debt_of(account))
            except InvalidInput:
                row["liquidatable"] = None
            positions[market] = row
        return {"protocol": self.protocol, "markets": positions}

    def venue_state(self) -> dict[str, Any]:
        return {"protocol": self.protocol, "prices": {a: str(p) for a, p in sorted(self.prices.items())},
                "markets": {m: {**self.pools[m].view(self.ledger), "loan": c.loan, "collateral": c.collateral,
                                "lltv": str(morpho.from_units(c.lltv, 18)),
                                "lif": str(morpho.from_units(morpho.lif_units(c.lltv, self.morpho), 18)),
                                "total_collateral": self.text(c.collateral, sum(self.collateral[m].values()))}
                            for m, c in self.markets.items()}}
