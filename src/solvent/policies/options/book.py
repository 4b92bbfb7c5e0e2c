"""A book of option accounts laid out in arrays, valued over the scenario grid at once.

:func:`book_from_portfolios` lays portfolios out (options sorted by account, expiry and strike);
:func:`evaluate_book` runs the :mod:`.grid_kernel` kernels over it, in chunks of options so that
memory stays bounded, and returns every account's IM, MM, MtM, contingencies, worst scenario and
scenario PnLs as arrays. The scalar path (:meth:`ScenarioGridModel.evaluate`) decides at the
boundary; this one screens (``docs/options.md``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ...core.errors import InvalidInput
from . import grid_kernel as k
from .black76 import SECONDS_PER_YEAR
from .scenario_grid import OptionPortfolio, ScenarioGridModel, VolShock

KIND_CODES = {VolShock.UP: k.KIND_UP, VolShock.DOWN: k.KIND_DOWN, VolShock.NONE: k.KIND_NONE,
              VolShock.LINEAR: k.KIND_LINEAR, VolShock.ABS: k.KIND_ABS}


@dataclass(frozen=True)
class OptionBook:
    """Struct of arrays. Options sorted by slot then strike; slots sorted by account."""

    # per account
    spot: np.ndarray
    spot_confidence: np.ndarray
    stable_price: np.ndarray
    cash: np.ndarray
    perp_amount: np.ndarray
    perp_price: np.ndarray
    perp_confidence: np.ndarray
    perp_value: np.ndarray
    # per slot (account × expiry)
    slot_account: np.ndarray
    seconds: np.ndarray
    forward_fixed: np.ndarray
    forward_variable: np.ndarray
    rate: np.ndarray
    slot_confidence: np.ndarray
    # per option
    option_slot: np.ndarray
    strike: np.ndarray
    is_call: np.ndarray
    amount: np.ndarray
    vol: np.ndarray
    # per collateral row
    collateral_account: np.ndarray
    collateral_value: np.ndarray       # in the stable unit
    collateral_confidence: np.ndarray  # already min(own, spot's)
    collateral_risk_cancelling: np.ndarray
    collateral_mm_haircut: np.ndarray
    collateral_im_haircut: np.ndarray

    @property
    def accounts(self) -> int:
        return len(self.spot)

    @property
    def nbytes(self) -> int:
        return sum(value.nbytes for value in vars(self).values() if isinstance(value, np.ndarray))


def book_from_portfolios(portfolios: Sequence[OptionPortfolio]) -> OptionBook:
    """Lay portfolios out in arrays (the order of accounts is kept)."""
    acc: dict[str, list] = {key: [] for key in ("spot", "spot_confidence", "stable_price", "cash", "perp_amount",
                                                "perp_price", "perp_confidence", "perp_value")}
    slots: dict[str, list] = {key: [] for key in ("slot_account", "seconds", "forward_fixed", "forward_variable",
                                                  "rate", "slot_confidence")}
    options: dict[str, list] = {key: [] for key in ("option_slot", "strike", "is_call", "amount", "vol")}
    coll: dict[str, list] = {key: [] for key in ("collateral_account", "collateral_value", "collateral_confidence",
                                                 "collateral_risk_cancelling", "collateral_mm_haircut",
                                                 "collateral_im_haircut")}
    for index, portfolio in enumerate(portfolios):
        acc["spot"].append(portfolio.spot)
        acc["spot_confidence"].append(portfolio.spot_confidence)
        acc["stable_price"].append(portfolio.stable_price)
        acc["cash"].append(portfolio.cash)
        acc["perp_amount"].append(portfolio.perp.amount)
        acc["perp_price"].append(portfolio.perp.price)
        acc["perp_confidence"].append(portfolio.perp.confidence)
        acc["perp_value"].append(portfolio.perp.value)
        for expiry in portfolio.expiries:
            slot = len(slots["seconds"])
            slots["slot_account"].append(index)
            slots["seconds"].append(expiry.seconds)
            slots["forward_fixed"].append(expiry.forward_fixed)
            slots["forward_variable"].append(expiry.forward_variable)
            slots["rate"].append(expiry.rate)
            slots["slot_confidence"].append(expiry.confidence)
            for option in sorted(expiry.options, key=lambda o: o.strike):
                options["option_slot"].append(slot)
                options["strike"].append(option.strike)
                options["is_call"].append(option.is_call)
                options["amount"].append(option.amount)
                options["vol"].append(option.vol)
        for collateral in portfolio.collaterals:
            coll["collateral_account"].append(index)
            coll["collateral_value"].append(portfolio.collateral_value(collateral))
            coll["collateral_confidence"].append(min(collateral.confidence, portfolio.spot_confidence))
            coll["collateral_risk_cancelling"].append(collateral.risk_cancelling)
            coll["collateral_mm_haircut"].append(collateral.mm_haircut)
            coll["collateral_im_haircut"].append(collateral.im_haircut)
    ints = {"slot_account", "option_slot", "collateral_account"}
    bools = {"is_call", "collateral_risk_cancelling"}
    arrays = {}
    for table in (acc, slots, options, coll):
        for key, values in table.items():
            dtype = np.int64 if key in ints else bool if key in bools else np.float64
            arrays[key] = np.asarray(values, dtype=dtype)
    return OptionBook(**arrays)


@dataclass(frozen=True)
class BookMargins:
    im: np.ndarray
    mm: np.ndarray
    mtm: np.ndarray
    option_mtm: np.ndarray
    basis_contingency: np.ndarray
    mm_contingency: np.ndarray
    im_contingency: np.ndarray
    min_span: np.ndarray
    worst_scenario: np.ndarray   # index into the grid, −1 when the basis contingency set min_span
    scenario_pnls: np.ndarray    # accounts × scenarios


def _starts(sorted_ids: np.ndarray) -> np.ndarray:
    if len(sorted_ids) == 0:
        return np.zeros(0, dtype=np.int64)
    return np.flatnonzero(np.r_[True, sorted_ids[1:] != sorted_ids[:-1]])


def evaluate_book(model: ScenarioGridModel, book: OptionBook, *, chunk_options: int = 32_768) -> BookMargins:
    """Every account's margin over the model's grid, in arrays (see :class:`BookMargins`)."""
    n_acc, n_slots = book.accounts, len(book.seconds)
    scenarios = model.scenarios
    spot_shocks = np.array([s.spot_shock for s in scenarios], dtype=np.float64)
    kinds = np.array([KIND_CODES[s.vol_shock] for s in scenarios], dtype=np.int64)
    dampening = np.array([s.dampening for s in scenarios], dtype=np.float64)
    # Columns to price: every distinct (spot shock, kind) of the grid, plus the MtM (no shock) and
    # the basis scenarios (vol unchanged) when the grid does not already hold them. Skew columns
    # do not move spot, whatever their shock says.
    basis = model.basis
    wanted = [(1.0 if kind in (k.KIND_LINEAR, k.KIND_ABS) else float(shock), int(kind))
              for shock, kind in zip(spot_shocks, kinds)]
    wanted += [(1.0, k.KIND_NONE), (basis.scenario_spot_up, k.KIND_NONE), (basis.scenario_spot_down, k.KIND_NONE)]
    distinct = list(dict.fromkeys(wanted))
    column_of = np.array([distinct.index(pair) for pair in wanted], dtype=np.int64)
    columns_shock = np.array([pair[0] for pair in distinct], dtype=np.float64)
    columns_kind = np.array([pair[1] for pair in distinct], dtype=np.int64)

    vs, mp, sk, c = model.vol_shock, model.margin, model.skew, model.contingency
    discount = np.exp(-book.rate * book.seconds / SECONDS_PER_YEAR)
    if vs.additive:
        scale = k.vol_shock_scale(book.seconds, vs.short_term_power, vs.long_term_power, vs.dte_floor_seconds)
        up, down = np.ones(n_slots), np.ones(n_slots)
        up_shift, down_shift = vs.vol_range_up * scale, -vs.vol_range_down * scale
    else:
        up, down = k.vol_shock_multipliers(book.seconds, vs.vol_range_up, vs.vol_range_down, vs.short_term_power,
                                           vs.long_term_power, vs.dte_floor_seconds)
    sd_pos, sd_neg = k.static_discounts(book.seconds, book.rate, discount, mp.long_base_static_discount,
                                        mp.short_base_static_discount, mp.long_rate_mult_scale, mp.long_rate_add_scale,
                                        mp.short_rate_mult_scale, mp.short_rate_add_scale)

    has_skew = any(s.vol_shock.is_skew for s in scenarios)
    if n_slots and has_skew:
        sqrt_tau = np.sqrt(book.seconds / SECONDS_PER_YEAR)
        k_star = np.maximum(sk.min_k_star, sqrt_tau * sk.width_scale * (sk.vol_param_static + sqrt_tau * sk.vol_param_scale))
        if np.any(k_star <= 0.0):
            raise InvalidInput("params.skew_shock.min_k_star", "k* is zero: the skew multiplier divides by it")

    slot_values = np.zeros((n_slots, len(columns_kind)))
    slot_starts = _starts(book.option_slot)
    # Chunks end on slot boundaries so each slot's options are summed in one piece.
    begin = 0
    n_opt = len(book.strike)
    while begin < n_opt:
        end_hint = min(begin + chunk_options, n_opt)
        boundary = np.searchsorted(slot_starts, end_hint, side="left")
        end = int(slot_starts[boundary]) if boundary < len(slot_starts) else n_opt
        if end <= begin:
            end = int(slot_starts[boundary + 1]) if boundary + 1 < len(slot_starts) else n_opt
        part = slice(begin, end)
        first, last = int(book.option_slot[begin]), int(book.option_slot[end - 1]) + 1
        slots = slice(first, last)  # the kernel sees only this chunk's slots: work stays linear in the book
        option_slot = book.option_slot[part] - first
        opt_seconds = book.seconds[slots][option_slot]
        forward = book.forward_fixed[slots][option_slot] + book.forward_variable[slots][option_slot]
        with np.errstate(divide="ignore", invalid="ignore"):
            log_strike = np.log(book.strike[part] / forward)
        if has_skew:
            linear = k.skew_multipliers(log_strike, opt_seconds, sk.linear_base_cap, sk.linear_c_base, sk.min_k_star,
                                        sk.width_scale, sk.vol_param_static, sk.vol_param_scale)
            absolute = k.skew_multipliers(np.abs(log_strike), opt_seconds, sk.abs_base_cap, sk.abs_c_base,
                                          sk.min_k_star, sk.width_scale, sk.vol_param_static, sk.vol_param_scale)
        else:
            linear = absolute = np.ones(len(log_strike))
        values = k.option_grid_values(option_slot, book.strike[part], book.is_call[part], book.amount[part],
                                      book.vol[part], book.seconds[slots], book.forward_fixed[slots],
                                      book.forward_variable[slots], discount[slots], up[slots], down[slots], linear,
                                      absolute, columns_shock, columns_kind, vs.min_vol_up_shock,
                                      up_shift[slots] if vs.additive else None,
                                      down_shift[slots] if vs.additive else None)
        slot_values[slots] = k.group_sums(values, option_slot, last - first)
        begin = end

    n_s = len(scenarios)
    slot_mtm = slot_values[:, column_of[n_s]]
    tau = book.seconds / SECONDS_PER_YEAR
    slot_basis = np.minimum(np.minimum(slot_values[:, column_of[n_s + 1]] - slot_mtm,
                                       slot_values[:, column_of[n_s + 2]] - slot_mtm), 0.0) * (
        basis.add_factor + basis.mult_factor * tau)
    slot_pnls = k.scenario_pnls(slot_values[:, column_of[:n_s]], slot_mtm, sd_pos, sd_neg, kinds, dampening)

    pnls = k.group_sums(slot_pnls, book.slot_account, n_acc)
    option_mtm = np.bincount(book.slot_account, weights=slot_mtm, minlength=n_acc)
    basis_total = np.bincount(book.slot_account, weights=slot_basis, minlength=n_acc)

    rc_value = np.bincount(book.collateral_account, weights=np.where(book.collateral_risk_cancelling,
                                                                     book.collateral_value, 0.0), minlength=n_acc)
    move = (spot_shocks - 1.0)[None, :] * dampening[None, :]
    held = book.perp_amount != 0.0
    pnls += np.where(held, book.perp_amount, 0.0)[:, None] * (spot_shocks - 1.0)[None, :] * book.perp_price[:, None] \
        * dampening[None, :]
    pnls += rc_value[:, None] * move

    # Contingencies.
    portfolio_confidence = np.where(held, np.minimum(book.spot_confidence, book.perp_confidence), book.spot_confidence)
    perp_notional = np.abs(book.perp_amount) * book.spot
    strike_groups = _group_starts(book)
    naked = k.naked_short_notional(book.amount, strike_groups, book.option_slot[strike_groups], n_slots)
    slot_spot = book.spot[book.slot_account]
    naked_notional = np.bincount(book.slot_account, weights=naked * slot_spot, minlength=n_acc)
    gross = np.bincount(book.option_slot, weights=np.abs(book.amount), minlength=n_slots)
    slot_conf = np.minimum(portfolio_confidence[book.slot_account], book.slot_confidence)
    conf_im = k.confidence_contingency(portfolio_confidence, perp_notional, c.conf_threshold, c.conf_margin)
    conf_im += np.bincount(book.slot_account, weights=k.confidence_contingency(
        slot_conf, gross * slot_spot, c.conf_threshold, c.conf_margin), minlength=n_acc)
    conf_im += np.bincount(book.collateral_account, weights=k.confidence_contingency(
        book.collateral_confidence, book.collateral_value, c.conf_threshold, c.conf_margin), minlength=n_acc)
    coll_mm = np.bincount(book.collateral_account, weights=book.collateral_value * book.collateral_mm_haircut,
                          minlength=n_acc)
    coll_im = np.bincount(book.collateral_account, weights=book.collateral_value * book.collateral_im_haircut,
                          minlength=n_acc)
    collateral_mtm = np.bincount(book.collateral_account, weights=book.collateral_value, minlength=n_acc)
    mm_cont = perp_notional * c.mm_perp_percent + naked_notional * c.mm_option_percent + coll_mm
    im_cont = perp_notional * c.im_perp_percent + naked_notional * c.im_option_percent + coll_im + conf_im

    if n_s:
        worst_index = np.argmin(pnls, axis=1)
        worst_pnl = pnls[np.arange(n_acc), worst_index]
    else:
        worst_index = np.zeros(n_acc, dtype=np.int64)
        worst_pnl = np.full(n_acc, np.inf)
    by_scenario = worst_pnl < basis_total
    min_span = np.where(by_scenario, worst_pnl, basis_total)
    worst = np.where(by_scenario, worst_index, -1)
    im_factor = np.where(book.stable_price < c.peg_loss_threshold,
                         mp.im_factor + (c.peg_loss_threshold - book.stable_price) * c.peg_loss_factor, mp.im_factor)
    mtm = book.perp_value + option_mtm + collateral_mtm + book.cash
    im, mm = k.margins(min_span, mtm, mm_cont, im_cont, im_factor, mp.mm_factor)
    return BookMargins(im=im, mm=mm, mtm=mtm, option_mtm=option_mtm, basis_contingency=basis_total,
                       mm_contingency=mm_cont, im_contingency=im_cont, min_span=min_span, worst_scenario=worst,
                       scenario_pnls=pnls)


def _group_starts(book: OptionBook) -> np.ndarray:
    """Starts of (slot, strike) groups: calls and puts of one strike net against each other."""
    if len(book.strike) == 0:
        return np.zeros(0, dtype=np.int64)
    same = (book.option_slot[1:] == book.option_slot[:-1]) & (book.strike[1:] == book.strike[:-1])
    return np.flatnonzero(np.r_[True, ~same])


def below_maintenance(model: ScenarioGridModel, book: OptionBook, portfolio_of: Callable[[int], OptionPortfolio], *,
                      margins: BookMargins | None = None, band: float = 1e-9) -> tuple[np.ndarray, int]:
    """Accounts whose MM surplus is negative: screened in arrays, decided by the scalar path.

    An account whose screened MM lies within ``band`` × max(1, |MtM|, |min SPAN|) of zero is
    re-valued exactly (``portfolio_of(account)`` gives its portfolio) and the exact sign decides.
    Returns the sorted account indices and how many were re-checked.
    """
    margins = margins if margins is not None else evaluate_book(model, book)
    scale = np.maximum(1.0, np.maximum(np.abs(margins.mtm), np.abs(margins.min_span)))
    close = np.flatnonzero(np.abs(margins.mm) <= band * scale)
    below = set(np.flatnonzero(margins.mm < 0).tolist()) - set(close.tolist())
    for account in close.tolist():
        if model.evaluate(portfolio_of(account)).mm < 0:
            below.add(account)
    return np.array(sorted(below), dtype=np.int64), len(close)
