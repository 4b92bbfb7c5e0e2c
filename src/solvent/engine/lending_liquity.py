"""Liquity v1 on the engine: troves, stability pool, liquidation with offset and redistribution.

Rules come from :mod:`solvent.policies.lending.liquity` with the preset's ``[trove_manager]``
table. Prices are the collateral's price in the stablecoin (18 decimals). No interest, base rate
0: the borrowing fee is the floor (``borrowing_fee_floor``, none in recovery mode).

Money. LUSD is minted on borrowing: ``<venue>/issuer`` holds minus the LUSD issued,
``<venue>/gas_pool`` the 200 LUSD liquidation reserve of every open trove (part of its debt),
``<venue>/treasury`` the borrowing fees, ``<venue>/stability_pool`` the pool's LUSD and its
collateral gains, ``<venue>/pool`` the troves' collateral (active and redistributed).

Simplifications, all exact: redistribution and pool losses are applied to the troves and
depositors at once (not lazily through the ``L_ETH``/``P``/``S`` accumulators), pro rata to
collateral (stakes equal to collateral), rounded down, the units rounding leaves kept for the next
redistribution (``pending``) or as stability-pool dust; a depositor's loss is rounded up. A
trove is opened by its first ``Borrow`` (collateral may be supplied first), closed by repaying
its net debt; the recovery-mode surplus is paid to the borrower at once. Identities:

- ``issued == Σ trove debt + pending debt``; ``pool == Σ trove collateral + pending collateral``;
- ``stability pool == Σ deposits + dust`` (LUSD) and ``Σ gains + dust`` (collateral);
- ``gas pool == 200 LUSD × open troves``; ``treasury == fees``.
"""

from __future__ import annotations

from typing import Any

from ..core.errors import InvalidInput
from ..policies.lending import ceil_div, from_units, liquity
from ..policies.lending import to_units as policy_units
from .lending import (
    BadDebtRecorded,
    Borrowed,
    LendingVenue,
    Moves,
    Repaid,
    StabilityDeposited,
    StabilityWithdrawn,
    SupplyAdded,
    SupplyWithdrawn,
    TroveLiquidated,
    decimal_or_max,
)

E18 = liquity.DECIMAL_PRECISION
MAX_RATIO = 2**256 - 1


class LiquityVenue(LendingVenue):
    protocol = "liquity"
    price_decimals = 18
    account_names = ("pool", "stability_pool", "gas_pool", "issuer", "treasury")

    def __init__(self, engine, name, preset) -> None:
        super().__init__(engine, name, preset)
        where = f"preset[{preset.name}]"
        table = preset.section("trove_manager")
        self.rules = liquity.LiquityConfig.from_table(table, f"{where}.trove_manager")
        self.fee_floor = policy_units(table.get("borrowing_fee_floor", "0.005"), 18,
                                      f"{where}.trove_manager.borrowing_fee_floor")
        self.coll = str(self.settings.get("collateral", "ETH"))
        self.lusd = str(self.settings.get("stablecoin", "LUSD"))
        for asset in (self.coll, self.lusd):
            if asset not in preset.assets or preset.assets[asset].decimals != 18:
                raise InvalidInput(f"{where}.assets.{asset}", "must be listed with 18 decimals")
        self.troves: dict[str, list[int]] = {}  # account → [coll, debt]; debt 0 = not opened
        # Σ collateral, Σ debt and the count of the open troves, kept as troves change (_change_trove):
        # the TCR is asked at every command.
        self.open_coll = self.open_debt = self.open_count = 0
        self.deposits: dict[str, int] = {}
        self.gains: dict[str, int] = {}
        self.sp_lusd_dust = 0
        self.sp_coll_dust = 0
        self.pending_debt = 0
        self.pending_coll = 0
        self.issued = 0
        self.fees = 0

    def assets(self) -> list[str]:
        return sorted({self.coll, self.lusd})

    def market_names(self) -> tuple[str, ...]:
        return (f"{self.coll}/{self.lusd}",)

    # ---------------------------------------------------------------- ratios

    def price_units(self) -> int:
        return int(self.price(self.coll) * E18)

    def open_troves(self) -> dict[str, list[int]]:
        return {account: trove for account, trove in self.troves.items() if trove[1] > 0}

    def _change_trove(self, account: str, coll: int = 0, debt: int = 0, *, remove: bool = False) -> None:
        """Add ``coll`` and ``debt`` to the account's trove (or remove it), keeping the open totals."""
        trove = self.troves.setdefault(account, [0, 0])
        if trove[1] > 0:
            self.open_coll, self.open_debt, self.open_count = (self.open_coll - trove[0], self.open_debt - trove[1],
                                                               self.open_count - 1)
        if remove:
            del self.troves[account]
            return
        trove[0] += coll
        trove[1] += debt
        if trove[1] > 0:
            self.open_coll, self.open_debt, self.open_count = (self.open_coll + trove[0], self.open_debt + trove[1],
                                                               self.open_count + 1)

    def tcr(self, coll_change: int = 0, debt_change: int = 0) -> int:
        coll = self.open_coll + self.pending_coll + coll_change
        debt = self.open_debt + self.pending_debt + debt_change
        return liquity.compute_cr(coll, debt, self.price_units())

    def recovery_mode(self) -> bool:
        return self.tcr() < self.rules.ccr

    def ratio_text(self, ratio: int) -> str | None:
        return None if ratio == MAX_RATIO else str(from_units(ratio, 18))

    def require_ratios(self, coll: int, debt: int, coll_change: int, debt_change: int, *, recovery: bool) -> None:
        icr = liquity.compute_cr(coll, debt, self.price_units())
        minimum = self.rules.ccr if recovery and debt_change > 0 else self.rules.mcr
        if icr < minimum:
            raise InvalidInput("amount", f"the trove's ICR would be {self.ratio_text(icr)}, below "
                               f"{from_units(minimum, 18)}")
        if not recovery and self.tcr(coll_change, debt_change) < self.rules.ccr:
            raise InvalidInput("amount", "the system's TCR would fall below the CCR (recovery mode)")

    # ---------------------------------------------------------------- troves

    def supply(self, command) -> list:
        self.require_member(command.account)
        self.require_asset(command.asset, (self.coll,))
        units = self.units(command.asset, command.amount)
        moves = Moves(self.ledger)
        moves.add(command.account, self.pool, self.coll, units)
        moves.apply()
        self._change_trove(command.account, coll=units)
        return [SupplyAdded(self.name, command.account, self.coll, self.text(self.coll, units))]

    def withdraw_supply(self, command) -> list:
        self.require_member(command.account)
        self.require_asset(command.asset, (self.coll,))
        coll, debt = self.troves.get(command.account, [0, 0])
        wanted = decimal_or_max(command.amount, "amount")
        units = coll if wanted is None else self.ledger.units(self.coll, wanted)
        if units == 0 or units > coll:
            raise InvalidInput("amount", f"the trove holds {self.text(self.coll, coll)} {self.coll}")
        if debt:
            if self.recovery_mode():
                raise InvalidInput("amount", "collateral withdrawal is not permitted in recovery mode")
            self.require_ratios(coll - units, debt, -units, 0, recovery=False)
        moves = Moves(self.ledger)
        moves.add(self.pool, command.account, self.coll, units)
        moves.apply()
        self._change_trove(command.account, coll=-units)
        return [SupplyWithdrawn(self.name, command.account, self.coll, self.text(self.coll, units))]

    def borrow(self, command) -> list:
        self.require_member(command.account)
        self.require_asset(command.asset, (self.lusd,))
        units = self.units(self.lusd, command.amount)
        coll, debt = self.troves.get(command.account, [0, 0])
        if coll == 0:
            raise InvalidInput("account", f"{command.account!r} has no collateral in a trove: supply {self.coll} first")
        recovery = self.recovery_mode()
        fee = 0 if recovery else units * self.fee_floor // E18
        gas = self.rules.lusd_gas_compensation if debt == 0 else 0
        if debt == 0 and units + fee < self.rules.min_net_debt:
            raise InvalidInput("amount", "a trove's net debt must be at least "
                               f"{from_units(self.rules.min_net_debt, 18)}")
        added = units + fee + gas
        self.require_ratios(coll, debt + added, coll if debt == 0 else 0, added, recovery=recovery)
        moves = Moves(self.ledger)
        moves.add(self.issuer, command.account, self.lusd, units, overdraft=True)
        moves.add(self.issuer, self.treasury, self.lusd, fee, overdraft=True)
        moves.add(self.issuer, self.gas_pool, self.lusd, gas, overdraft=True)
        moves.apply()
        self._change_trove(command.account, debt=added)
        self.issued += added
        self.fees += fee
        icr = liquity.compute_cr(coll, debt + added, self.price_units())
        return [Borrowed(self.name, command.account, self.lusd, self.text(self.lusd, units),
                         health=self.ratio_text(icr))]

    def repay(self, command) -> list:
        self.require_member(command.account)
        payer = command.payer or command.account
        self.require_caller(payer, "payer")
        self.require_asset(command.asset, (self.lusd,))
        coll, debt = self.troves.get(command.account, [0, 0])
        if debt == 0:
            raise InvalidInput("account", f"{command.account!r} has no open trove")
        net = debt - self.rules.lusd_gas_compensation
        wanted = decimal_or_max(command.amount, "amount")
        units = net if wanted is None else min(net, self.ledger.units(self.lusd, wanted))
        closing = units == net
        if not closing and net - units < self.rules.min_net_debt:
            raise InvalidInput("amount", f"would leave a net debt below {from_units(self.rules.min_net_debt, 18)}; "
                               "repay all of it to close the trove")
        if closing and self.open_count == 1:
            raise InvalidInput("amount", "the last trove cannot be closed (TroveManager: Only one trove in the system)")
        moves = Moves(self.ledger)
        moves.add(payer, self.issuer, self.lusd, units)
        if closing:
            moves.add(self.gas_pool, self.issuer, self.lusd, self.rules.lusd_gas_compensation)
        moves.apply()
        burned = units + (self.rules.lusd_gas_compensation if closing else 0)
        self._change_trove(command.account, debt=-burned)
        self.issued -= burned
        return [Repaid(self.name, command.account, payer, self.lusd, self.text(self.lusd, units))]

    @property
    def stability_pool(self) -> str:
        return self.protocol_account("stability_pool")

    @property
    def gas_pool(self) -> str:
        return self.protocol_account("gas_pool")

    @property
    def issuer(self) -> str:
        return self.protocol_account("issuer")

    # ---------------------------------------------------------------- stability pool

    def provide_to_stability_pool(self, command) -> list:
        self.require_member(command.account)
        units = self.units(self.lusd, command.amount)
        moves = Moves(self.ledger)
        moves.add(command.account, self.stability_pool, self.lusd, units)
        moves.apply()
        self.deposits[command.account] = self.deposits.get(command.account, 0) + units
        return [StabilityDeposited(self.name, command.account, self.text(self.lusd, units))]

    def withdraw_from_stability_pool(self, command) -> list:
        self.require_member(command.account)
        held, gain = self.deposits.get(command.account, 0), self.gains.get(command.account, 0)
        wanted = decimal_or_max(command.amount, "amount")
        units = held if wanted is None else self.ledger.units(self.lusd, wanted)
        if units > held or (units == 0 and gain == 0):
            raise InvalidInput("amount", f"{command.account!r} has {self.text(self.lusd, held)} {self.lusd} deposited")
        price = self.price_units()
        for account, (coll, debt) in sorted(self.open_troves().items()):
            if liquity.compute_cr(coll, debt, price) < self.rules.mcr:
                raise InvalidInput("amount", f"withdrawals are blocked while trove {account!r} is below the MCR")
        moves = Moves(self.ledger)
        moves.add(self.stability_pool, command.account, self.lusd, units)
        moves.add(self.stability_pool, command.account, self.coll, gain)
        moves.apply()
        if held - units:
            self.deposits[command.account] = held - units
        else:
            self.deposits.pop(command.account, None)
        self.gains.pop(command.account, None)
        return [StabilityWithdrawn(self.name, command.account, self.text(self.lusd, units), self.text(self.coll, gain))]

    # ---------------------------------------------------------------- liquidation

    def liquidate_trove(self, command) -> list:
        self.require_caller(command.liquidator, "liquidator")
        self.require_member(command.borrower, "borrower")
        coll, debt = self.troves.get(command.borrower, [0, 0])
        if debt == 0:
            raise InvalidInput("borrower", f"{command.borrower!r} has no open trove")
        troves = self.open_troves()
        if len(troves) < 2:
            raise InvalidInput("borrower", "the last trove cannot be liquidated (Only one trove in the system)")
        price = self.price_units()
        tcr = self.tcr()
        recovery = tcr < self.rules.ccr
        pool_lusd = sum(self.deposits.values())
        result = liquity.liquidate_units(coll, debt, price, pool_lusd, recovery_mode=recovery, tcr=tcr,
                                         config=self.rules)
        if not result.liquidated:
            raise InvalidInput("borrower", f"nothing to liquidate: ICR {self.ratio_text(result.icr)} "
                               f"({'recovery' if recovery else 'normal'} mode, TCR {self.ratio_text(tcr)})")
        # Stability pool: each deposit loses its share of the offset (rounded up), gains its share
        # of the collateral (rounded down).
        losses, gains = {}, {}
        for account, deposit in sorted(self.deposits.items()):
            losses[account] = ceil_div(result.offset_debt * deposit, pool_lusd) if result.offset_debt else 0
            gains[account] = result.coll_to_sp * deposit // pool_lusd if result.coll_to_sp else 0
        # Redistribution to the other open troves, pro rata to collateral.
        others = {a: t for a, t in troves.items() if a != command.borrower}
        total = sum(c for c, _ in others.values())
        share_debt = result.redistributed_debt + (self.pending_debt if result.redistributed_debt else 0)
        share_coll = result.redistributed_coll + (self.pending_coll if result.redistributed_debt else 0)
        if (share_debt or share_coll) and total == 0:
            raise InvalidInput("borrower", "no other trove holds collateral to take the redistribution")
        added = {a: (share_debt * t[0] // total, share_coll * t[0] // total) for a, t in sorted(others.items())} \
            if (share_debt or share_coll) else {}
        moves = Moves(self.ledger)
        moves.add(self.pool, command.liquidator, self.coll, result.gas_comp_coll)
        moves.add(self.gas_pool, command.liquidator, self.lusd, result.gas_comp_lusd)
        moves.add(self.stability_pool, self.issuer, self.lusd, result.offset_debt)
        moves.add(self.pool, self.stability_pool, self.coll, result.coll_to_sp)
        moves.add(self.pool, command.borrower, self.coll, result.surplus_coll)
        # Validated: now change state.
        moves.apply()
        self._change_trove(command.borrower, remove=True)
        self.issued -= result.offset_debt
        for account in losses:
            left = self.deposits[account] - losses[account]
            if left:
                self.deposits[account] = left
            else:
                del self.deposits[account]
            if gains[account]:
                self.gains[account] = self.gains.get(account, 0) + gains[account]
        self.sp_lusd_dust += sum(losses.values()) - result.offset_debt
        self.sp_coll_dust += result.coll_to_sp - sum(gains.values())
        if added:
            for account, (d, c) in added.items():
                self._change_trove(account, coll=c, debt=d)
            self.pending_debt = share_debt - sum(d for d, _ in added.values())
            self.pending_coll = share_coll - sum(c for _, c in added.values())
        events: list = [TroveLiquidated(
            self.name, command.liquidator, command.borrower, "recovery" if recovery else "normal", result.rule,
            str(from_units(result.icr, 18)), self.text(self.lusd, debt), self.text(self.coll, coll),
            self.text(self.lusd, result.offset_debt), self.text(self.coll, result.coll_to_sp),
            self.text(self.lusd, result.redistributed_debt), self.text(self.coll, result.redistributed_coll),
            self.text(self.lusd, result.gas_comp_lusd), self.text(self.coll, result.gas_comp_coll),
            self.text(self.coll, result.surplus_coll))]
        worth = coll * price // E18
        if worth < debt:
            bearer = "redistribution" if result.redistributed_debt else "stability_pool"
            events.append(BadDebtRecorded(self.name, command.borrower, self.lusd, self.text(self.lusd, debt - worth),
                                          bearer))
        return events

    # ---------------------------------------------------------------- views and checks

    def expected_balances(self) -> dict:
        open_count = self.open_count
        return {
            (self.pool, self.coll): sum(c for c, _ in self.troves.values()) + self.pending_coll,
            (self.stability_pool, self.lusd): sum(self.deposits.values()) + self.sp_lusd_dust,
            (self.stability_pool, self.coll): sum(self.gains.values()) + self.sp_coll_dust,
            (self.gas_pool, self.lusd): self.rules.lusd_gas_compensation * open_count,
            (self.issuer, self.lusd): -self.issued,
            (self.treasury, self.lusd): self.fees,
        }

    def identities(self) -> dict:
        return {"issued == Σ trove debt + pending debt": (self.issued,
                                                          sum(d for _, d in self.troves.values()) + self.pending_debt),
                "stability pool dust >= 0": (min(self.sp_lusd_dust, self.sp_coll_dust, 0), 0),
                "open totals == Σ open troves": ((self.open_coll, self.open_debt, self.open_count), (
                    sum(c for c, d in self.troves.values() if d > 0), sum(d for _, d in self.troves.values()),
                    sum(1 for _, d in self.troves.values() if d > 0)))}

    def account_state(self, account: str) -> dict[str, Any]:
        coll, debt = self.troves.get(account, [0, 0])
        state: dict[str, Any] = {"protocol": self.protocol, "collateral": self.text(self.coll, coll),
                                 "debt": self.text(self.lusd, debt),
                                 "stability_deposit": self.text(self.lusd, self.deposits.get(account, 0)),
                                 "stability_gain": self.text(self.coll, self.gains.get(account, 0))}
        try:
            state["icr"] = self.ratio_text(liquity.compute_cr(coll, debt, self.price_units())) if debt else None
            state["liquidatable"] = bool(debt) and liquity.compute_cr(coll, debt, self.price_units()) < (
                self.tcr() if self.recovery_mode() else self.rules.mcr)
        except InvalidInput:
            state["liquidatable"] = None
        return state

    def venue_state(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "protocol": self.protocol, "prices": {a: str(p) for a, p in sorted(self.prices.items())},
            "open_troves": self.open_count, "issued": self.text(self.lusd, self.issued),
            "stability_pool": self.text(self.lusd, sum(self.deposits.values())),
            "pending_redistribution": {"debt": self.text(self.lusd, self.pending_debt),
                                       "collateral": self.text(self.coll, self.pending_coll)},
        }
        try:
            state["tcr"] = self.ratio_text(self.tcr())
            state["recovery_mode"] = self.recovery_mode()
        except InvalidInput:
            pass
        return state
