"""Array kernels of the scenario-grid margin: whole books valued at once.

Every function here takes NumPy arrays and plain numbers only, never a model or a portfolio
object (vectorbt's ``nb.py`` discipline); :mod:`.book` is the friendly layer that lays a book out
and calls them. The layout is flat and sorted:

- options (one row each) sorted by slot, then strike: ``option_slot``, ``strike``, ``is_call``,
  ``amount``, ``vol``;
- slots (one per account and expiry) sorted by account: ``slot_account``, ``seconds``,
  ``forward_fixed``, ``forward_variable``, ``rate``, ``confidence``;
- scenarios: ``spot_shock``, ``kind`` (codes below), ``dampening``.

The rules are the scalar path's (:mod:`.scenario_grid`), limits included; only the venue's caps
of a price at F·D and K·D, which bind at rounding level, are left out here. The two agree to
~1e-11 relative; the differential test holds them to it on random books.
"""

from __future__ import annotations

import numpy as np
from scipy.sparse import csr_matrix
from scipy.special import ndtr

from .black76 import MAX_TOTAL_VOL, SECONDS_PER_YEAR, prices_array

KIND_UP, KIND_DOWN, KIND_NONE, KIND_LINEAR, KIND_ABS = 0, 1, 2, 3, 4
THIRTY_DAYS = 30 * 86400.0


def vol_shock_scale(seconds: np.ndarray, short_term_power: float, long_term_power: float,
                    dte_floor_seconds: float) -> np.ndarray:
    """(30 days / max(T, floor))^power per slot, the power by whether T is at most 30 days."""
    floor = np.maximum(seconds, dte_floor_seconds)
    power = np.where(seconds <= THIRTY_DAYS, short_term_power, long_term_power)
    return (THIRTY_DAYS / floor) ** power


def vol_shock_multipliers(seconds: np.ndarray, vol_range_up: float, vol_range_down: float, short_term_power: float,
                          long_term_power: float, dte_floor_seconds: float) -> tuple[np.ndarray, np.ndarray]:
    """(up, down) multipliers per slot: 1 ± range·scale, down floored at 0."""
    scale = vol_shock_scale(seconds, short_term_power, long_term_power, dte_floor_seconds)
    return 1.0 + vol_range_up * scale, np.maximum(0.0, 1.0 - vol_range_down * scale)


def static_discounts(seconds: np.ndarray, rate: np.ndarray, discount: np.ndarray, long_base: float, short_base: float,
                     long_mult: float, long_add: float, short_mult: float, short_add: float
                     ) -> tuple[np.ndarray, np.ndarray]:
    tau = seconds / SECONDS_PER_YEAR
    positive = long_base * np.exp(-tau * (rate * long_mult + long_add))
    negative = np.minimum(1.0 / discount, short_base * np.exp(tau * (rate * short_mult + short_add)))
    return positive, negative


def skew_multipliers(log_strike: np.ndarray, seconds: np.ndarray, base_cap: float, c_base: float, min_k_star: float,
                     width_scale: float, vol_param_static: float, vol_param_scale: float) -> np.ndarray:
    """Per option, max(0, 1 + clamp(k·cap/k*, ±cap)) with cap and k* of the option's slot (``seconds`` per option)."""
    sqrt_tau = np.sqrt(seconds / SECONDS_PER_YEAR)
    cap = c_base * sqrt_tau + base_cap
    k_star = np.maximum(min_k_star, sqrt_tau * width_scale * (vol_param_static + sqrt_tau * vol_param_scale))
    x = log_strike * cap / k_star
    twist = np.where(log_strike >= 0.0, np.minimum(cap, x), np.maximum(-cap, x))
    return np.maximum(1.0 + twist, 0.0)


def group_sums(values: np.ndarray, groups: np.ndarray, n_groups: int) -> np.ndarray:
    """Row sums of ``values`` per group id (rows × columns → groups × columns).

    A sparse indicator matrix times the values: one pass, about a nanosecond per element, where
    ``np.add.reduceat`` along rows costs close to a hundred.
    """
    if values.shape[0] == 0:
        return np.zeros((n_groups,) + values.shape[1:])
    indicator = csr_matrix((np.ones(len(groups)), (groups, np.arange(len(groups)))), shape=(n_groups, len(groups)))
    return np.asarray(indicator @ values)


def option_grid_values(option_slot: np.ndarray, strike: np.ndarray, is_call: np.ndarray, amount: np.ndarray,
                       vol: np.ndarray, slot_seconds: np.ndarray, slot_fixed: np.ndarray, slot_variable: np.ndarray,
                       slot_discount: np.ndarray, slot_up: np.ndarray, slot_down: np.ndarray,
                       skew_linear: np.ndarray, skew_abs: np.ndarray, spot_shocks: np.ndarray, kinds: np.ndarray,
                       min_vol_up: float, slot_up_shift: np.ndarray | None = None,
                       slot_down_shift: np.ndarray | None = None) -> np.ndarray:
    """amount × Black-76 value of every option under every column (options × columns).

    Columns are scenarios given by (spot shock, kind); skew kinds keep the forward unshocked and
    twist the vol by the option's precomputed ``skew_linear`` / ``skew_abs`` multiplier. Additive vol
    shocks come as per-slot shifts (vol points) for the up and down columns; vols never go below 0.

    Speed: whatever depends only on the slot and the column (forward, its log, the vol factor, √τ,
    D) is computed on the small slots × columns matrix and gathered; per element there remain a
    few multiplications, two normal CDFs and the payoff. Elements at the venues' limits (v = 0:
    expired or zero vol; v ≥ 24) are rare and recomputed by :func:`prices_array`, which holds
    every edge rule.
    """
    skew = (kinds == KIND_LINEAR) | (kinds == KIND_ABS)
    shocks = np.where(skew, 1.0, spot_shocks)
    slot_forward = slot_variable[:, None] * shocks[None, :] + slot_fixed[:, None]          # slots × columns
    slot_factor = np.select([kinds == KIND_UP, kinds == KIND_DOWN],
                            [np.broadcast_to(slot_up[:, None], slot_forward.shape),
                             np.broadcast_to(slot_down[:, None], slot_forward.shape)], default=1.0)
    sqrt_tau = np.sqrt(slot_seconds / SECONDS_PER_YEAR)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        slot_log_forward = np.log(slot_forward)
        total_vol = vol[:, None] * slot_factor[option_slot]                                  # options × columns
        if skew.any():
            twist = np.where(kinds[skew] == KIND_LINEAR, 0, 1)
            total_vol[:, skew] *= np.stack([skew_linear, skew_abs], axis=1)[:, twist]
        if slot_up_shift is not None and slot_down_shift is not None:
            shift = np.select([kinds == KIND_UP, kinds == KIND_DOWN],
                              [np.broadcast_to(slot_up_shift[:, None], slot_forward.shape),
                               np.broadcast_to(slot_down_shift[:, None], slot_forward.shape)], default=0.0)
            total_vol += shift[option_slot]
        # Vol-up columns never price below their floor, no column below 0 (additive down shocks).
        np.maximum(total_vol, np.where(kinds == KIND_UP, min_vol_up, 0.0)[None, :], out=total_vol)
        total_vol *= sqrt_tau[option_slot, None]
        d1 = slot_log_forward[option_slot]
        d1 -= np.log(strike)[:, None]
        d1 /= total_vol
        half = 0.5 * total_vol
        d2 = d1 - half
        d1 += half
        del half
        forward = slot_forward[option_slot]
        strike_col = strike[:, None]
        # C = D·(F·N(d1) − K·N(d2)); at v = 0, d1 = d2 = ±inf and this is already the intrinsic value.
        values = ndtr(d1, out=d1)
        values *= forward
        d2 = ndtr(d2, out=d2)
        d2 *= strike_col
        values -= d2
        del d2
        # Puts by parity: P = C + D·(K − F), so value/D = C/D + (is_call − 1)·(F − K).
        forward -= strike_col
        forward *= (is_call - 1.0)[:, None]
        values += forward
        del forward
        # The venues' limits (v ≥ 24: the call is worth F·D) and the undefined points (v = 0 at
        # the money, F = 0) are rare: recompute those elements by the full rule.
        edge = np.isnan(values)
        if total_vol.max(initial=0.0) >= MAX_TOTAL_VOL:
            edge |= total_vol >= MAX_TOTAL_VOL
        values *= (slot_discount[option_slot] * amount)[:, None]  # discount and amount folded per option
        if edge.any():
            rows, cols = np.nonzero(edge)
            slot = option_slot[rows]
            values[rows, cols] = amount[rows] * prices_array(
                slot_forward[slot, cols], strike[rows], np.where(total_vol[rows, cols] > 0.0, total_vol[rows, cols], 0.0),
                SECONDS_PER_YEAR, slot_discount[slot], is_call[rows])
    return values


def scenario_pnls(slot_values: np.ndarray, slot_mtm: np.ndarray, sd_positive: np.ndarray, sd_negative: np.ndarray,
                  kinds: np.ndarray, dampening: np.ndarray) -> np.ndarray:
    """Per slot and scenario: (static-discounted shocked value − MtM)·δ, −|·| for skew kinds."""
    discounted = slot_values * np.where(slot_values >= 0.0, sd_positive[:, None], sd_negative[:, None])
    pnl = (discounted - slot_mtm[:, None]) * dampening[None, :]
    skew = (kinds == KIND_LINEAR) | (kinds == KIND_ABS)
    return np.where(skew[None, :], -np.abs(pnl), pnl)


def naked_short_notional(amount: np.ndarray, group_starts: np.ndarray, group_slot: np.ndarray, n_slots: int
                         ) -> np.ndarray:
    """Per slot, Σ over strikes of max(0, −net amount at the strike) (options sorted by slot, then strike)."""
    net = np.add.reduceat(amount, group_starts) if len(amount) else np.zeros(0)
    return np.bincount(group_slot, weights=np.maximum(0.0, -net), minlength=n_slots)


def confidence_contingency(confidence: np.ndarray, notional: np.ndarray, threshold: float, margin: float
                           ) -> np.ndarray:
    return np.where(confidence < threshold, (1.0 - confidence) * margin * notional, 0.0)


def margins(min_span: np.ndarray, mtm: np.ndarray, mm_contingency: np.ndarray, im_contingency: np.ndarray,
            im_factor: np.ndarray, mm_factor: float) -> tuple[np.ndarray, np.ndarray]:
    """(IM, MM) surpluses: minSPAN·factor − contingencies + MtM (cash included in ``mtm``)."""
    return (min_span * im_factor - im_contingency - mm_contingency + mtm,
            min_span * mm_factor - mm_contingency + mtm)
