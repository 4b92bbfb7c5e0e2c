"""What one cascade run cost, and what many runs cost at the tail.

Per run, :class:`RunMetrics` holds the numbers reference/simulation.md §6 asks every scenario
to emit; :func:`summarize` reduces Monte Carlo runs to mean, p95 and p99 of each, and names the
two Gauntlet headline figures (reference §1.2): **VaR**, the 95th percentile of insolvent
(bad) debt, and **LaR**, "liquidations at risk", the 95th percentile of liquidated notional.

Percentiles are ``numpy.percentile`` with its default ``method="linear"`` (Hyndman & Fan type
7): for ``n`` sorted values ``v_0 … v_(n−1)`` the q-th percentile sits at position
``(n − 1)·q/100`` and interpolates linearly between its neighbours. With 100 runs of 1…100 the
p95 is 95.05.

Definitions the simulator must follow when it fills a :class:`RunMetrics`:

- ``bad_debt``: losses no one absorbed, i.e. negative equity left after the waterfall
  (socialised, or left on the books), in USD.
- ``insurance_drawdown`` / ``backstop_drawdown``: the most the insurance fund, and the backstop
  (the venue's liquidator vault, or the shared backstop), stood below its starting balance over the
  run, in USD (a draw counted in the fund's own asset, valued at the price of the step).
- ``liquidated_notional`` / ``liquidations``: notional closed by liquidation and the count of
  liquidation events (partial steps count one each).
- ``adl_events`` / ``adl_notional``: auto-deleveraging fills and their notional;
  ``adl_excess_over_pro_rata``: Chitra's "excess haircut vs benchmark" (reference §2.2 item 11),
  in USD, summed over ADL episodes by :func:`adl_excess_over_pro_rata`. A haircut, not a
  notional: the reference (and the paper) measures the winners' *profit* taken beyond the
  benchmark ($45.0–51.7M on 10 Oct 2025), the notional closed ($653.6M) being its translation.
- ``price_overshoot``: per asset, :func:`price_overshoot` of the simulated path against the
  exogenous one (RiskDAO's "max drop" relative to the unimpacted path, reference §1.5).
- ``cascade_depth``: :func:`cascade_depth`. ``time_to_stability_steps``:
  :func:`time_to_stability`.
- ``toxic_liquidations``: liquidations of accounts past the toxic frontier, see
  :func:`is_toxic` (reference §2.2 item 9).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from decimal import Decimal
from typing import Any

import numpy as np

from ..core.errors import InvalidInput
from ..policies import adl

PERCENTILES = (95.0, 99.0)


@dataclass(frozen=True)
class RunMetrics:
    """The outcome of one simulated run. Money in USD, prices as fractions, time in steps."""

    bad_debt: float = 0.0
    insurance_drawdown: float = 0.0
    backstop_drawdown: float = 0.0
    liquidated_notional: float = 0.0
    liquidations: int = 0
    adl_events: int = 0
    adl_notional: float = 0.0
    adl_excess_over_pro_rata: float = 0.0
    price_overshoot: Mapping[str, float] = field(default_factory=dict)
    cascade_depth: int = 0
    time_to_stability_steps: int = 0
    toxic_liquidations: int = 0

    def scalars(self) -> dict[str, float]:
        """Every metric as a flat ``name -> number``; overshoots become ``price_overshoot.<asset>``."""
        values: dict[str, float] = {}
        for spec in fields(self):
            value = getattr(self, spec.name)
            if spec.name == "price_overshoot":
                for asset, overshoot in value.items():
                    values[f"price_overshoot.{asset}"] = float(overshoot)
            else:
                values[spec.name] = float(value)
        return values


def summarize(runs: Sequence[RunMetrics]) -> dict[str, dict[str, float | None]]:
    """Mean, p95 and p99 of every metric over Monte Carlo runs, plus Gauntlet's VaR and LaR.

    Returns ``{metric: {"mean", "p95", "p99"}}`` for each field of :class:`RunMetrics` (per-asset
    overshoots as ``price_overshoot.<asset>``, over the runs that report that asset), and
    ``"VaR"`` (bad debt) and ``"LaR"`` (liquidated notional) as ``{"p95", "p99"}``: Gauntlet
    quotes them at p95, p99 is there for the deeper tail. VaR and LaR also carry ``paths`` (how
    many runs) and 95% bootstrap intervals ``p95_low``/``p95_high``, ``p99_low``/``p99_high``
    (:func:`percentile_interval`; None under two runs).
    """
    if not runs:
        raise InvalidInput("runs", "need at least one run")
    columns: dict[str, list[float]] = {}
    for run in runs:
        for name, value in run.scalars().items():
            columns.setdefault(name, []).append(value)
    summary: dict[str, dict[str, float | None]] = {name: dict(_stats(values)) for name, values in columns.items()}
    for headline, metric in (("VaR", "bad_debt"), ("LaR", "liquidated_notional")):
        summary[headline] = {key: summary[metric][key] for key in ("p95", "p99")}
        summary[headline]["paths"] = len(runs)
        for q in PERCENTILES:
            low, high = percentile_interval(columns[metric], q)
            summary[headline][f"p{q:g}_low"], summary[headline][f"p{q:g}_high"] = low, high
    return summary


#: Paths a percentile needs before one path lies beyond it: 20 for p95, 100 for p99.
def paths_needed(q: float) -> int:
    return int(math.ceil(100.0 / (100.0 - q) - 1e-9))


def percentile_interval(values: Sequence[float], q: float, confidence: float = 0.95,
                        resamples: int = 999) -> tuple[float | None, float | None]:
    """A bootstrap confidence interval of the q-th percentile (``scipy.stats.bootstrap``, percentile
    method, a fixed seed so one set of paths gives one interval). ``(None, None)`` under two paths.

    With fewer paths than :func:`paths_needed` the interval cannot reach beyond the worst path seen:
    read it as a floor on the uncertainty, not a bound (the CLI warns).
    """
    array = np.asarray(values, dtype=np.float64)
    if array.size < 2:
        return None, None
    if np.all(array == array[0]):
        return float(array[0]), float(array[0])
    from scipy.stats import bootstrap

    result = bootstrap((array,), lambda sample, axis: np.percentile(sample, q, axis=axis), n_resamples=resamples,
                       confidence_level=confidence, method="percentile", vectorized=True,
                       random_state=np.random.default_rng(0))
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def tail_warnings(paths: int) -> list[str]:
    """What a reader of p95/p99 over ``paths`` paths must be told."""
    return [f"{paths} paths are too few for a stable p{q:g} (it needs at least {paths_needed(q)} for one path to lie "
            f"beyond it): VaR/LaR p{q:g} is an interpolation between the worst paths seen"
            for q in PERCENTILES if paths < paths_needed(q)]


def _stats(values: Sequence[float]) -> dict[str, float]:
    array = np.asarray(values, dtype=np.float64)
    p95, p99 = np.percentile(array, PERCENTILES)
    return {"mean": float(array.mean()), "p95": float(p95), "p99": float(p99)}


# --------------------------------------------------------------------------- per-run helpers


def price_overshoot(simulated: Sequence[float] | np.ndarray, exogenous: Sequence[float] | np.ndarray) -> float:
    """How far forced flow pushed the low below the exogenous path's low: ``1 − min(sim)/min(exo)``.

    0.05 means the simulated minimum is 5% under the exogenous minimum; negative when the
    simulated path never got as low (a market model that absorbed the flow and then some).
    """
    sim = np.asarray(simulated, dtype=np.float64)
    exo = np.asarray(exogenous, dtype=np.float64)
    if sim.size == 0 or exo.size == 0:
        raise InvalidInput("paths", "need non-empty paths")
    return float(1.0 - sim.min() / exo.min())


def cascade_depth(liquidation_steps: Sequence[int], impact_caused: Sequence[bool] | None = None) -> int:
    """Cascade depth: the longest chain of consecutive steps in which forced sales fed liquidations.

    A chain starts at any step with a liquidation and extends to the next step if that step has
    at least one *impact-caused* liquidation: one that would not have triggered at the
    exogenous price, i.e. was triggered because the previous steps' forced sales moved the
    price. Depth counts the steps of the chain: liquidations that never feed back give depth 1,
    no liquidations depth 0. ``liquidation_steps`` holds the step of each liquidation and
    ``impact_caused`` flags each one; without flags every liquidation counts as impact-caused,
    so the depth is simply the longest run of consecutive steps with liquidations.
    """
    steps = [int(step) for step in liquidation_steps]
    if impact_caused is None:
        flags = [True] * len(steps)
    else:
        flags = [bool(flag) for flag in impact_caused]
        if len(flags) != len(steps):
            raise InvalidInput("impact_caused", "needs one flag per liquidation")
    if not steps:
        return 0
    any_step = set(steps)
    fed_step = {step for step, flag in zip(steps, flags) if flag}
    best = 0
    for start in any_step:
        if start - 1 in any_step and start in fed_step:
            continue  # not the start of a chain: the previous step extends into this one
        length = 1
        while start + length in fed_step:
            length += 1
        best = max(best, length)
    return best


def time_to_stability(forced_steps: Sequence[int], last_step: int) -> int:
    """Steps from the first forced close (liquidation or ADL) through the last one, inclusive.

    0 when nothing was forced. A run whose forced closes continue to ``last_step`` has not
    stabilised inside the horizon; the value is then censored at the horizon (it counts up to
    ``last_step``), so read it as "at least".
    """
    steps = sorted(int(step) for step in forced_steps)
    if not steps:
        return 0
    if steps[-1] > last_step:
        raise InvalidInput("forced_steps", f"step {steps[-1]} is past the last step {last_step}")
    return steps[-1] - steps[0] + 1


def is_toxic(loan_to_value: float, liquidation_incentive: float) -> bool:
    """Whether liquidating this account makes it worse: LTV > 1/(1 + LI) (reference §2.2 item 9).

    Repaying debt ``d`` seizes ``d·(1 + LI)`` of collateral, so the LTV after is
    ``(D − d)/(C − d(1 + LI))``, above the LTV before exactly when LTV > 1/(1 + LI) (92.6% for
    an 8% incentive). For a perp, read LTV as the position's loss-adjusted debt over collateral.
    """
    return loan_to_value > 1.0 / (1.0 + liquidation_incentive)


def adl_excess_over_leverage_draining(events: Iterable[Any]) -> Decimal:
    """As :func:`adl_excess_over_pro_rata`, against the leverage-draining benchmark (Campbell et
    al. 2026: the same deficit taken from the most levered candidates down, every candidate
    eligible), from the account values the ``adl_queue_ranked`` events carry."""
    return adl_excess_over_pro_rata(events, benchmark="leverage_draining")


def adl_excess_over_pro_rata(events: Iterable[Any], benchmark: str = "pro_rata") -> Decimal:
    """The PnL haircut ADL took beyond the pro-rata benchmark, summed over the episodes in
    ``events`` (engine events, in order), in the settle asset.

    An episode is one ``adl_queue_ranked`` event (one bankrupt position whose remaining
    ``deficit_size`` the venue deleveraged) and the ``position_auto_deleveraged`` closes after it.
    Following Chitra (2025), haircuts fall on positive unrealized PnL only: a winner closed for
    ``c`` of its ``s`` base units gives up ``c/s`` of its positive uPnL (at the marks of the
    moment), a loser nothing (:func:`solvent.policies.adl.pnl_haircut`). The benchmark is the ADL
    module's own pro-rata rule covering the same ``deficit_size`` across the eligible winners (the
    opposing positions with positive uPnL), in whole lots of the market. Per episode

        excess = max(0, haircut(venue's closes) − haircut(pro-rata closes))

    (:func:`solvent.policies.adl.overshoot`); a rule that took less profit than the benchmark
    (e.g. dYdX's offset landing on small winners) has no overshoot. Both allocations close the
    same base units at the same price, so the USD loss socialized is the same: the excess is the
    profit the queue took from the winners it picked beyond a fair share. Under the pro-rata rule
    it is 0 when every opposing position is a winner (the two allocations are the same); with
    losers among them the venue's pro-rata gives the winners less than the benchmark, so it is 0
    up to one lot of rounding. Episodes whose event does not list its candidates (an older
    producer) count 0.
    """
    total = Decimal(0)
    episode: tuple[Any, list[adl.AdlClose]] | None = None
    episodes = []
    for event in events:
        kind = getattr(event, "kind", None)
        if kind == "adl_queue_ranked":
            episode = (event, [])
            episodes.append(episode)
        elif kind == "position_auto_deleveraged" and episode is not None:
            episode[1].append(adl.AdlClose(event.account, Decimal(event.size)))
    for ranked, closes in episodes:
        if not ranked.candidates:
            continue
        if benchmark == "pro_rata":
            candidates = [adl.AdlCandidate(account, Decimal(size), upnl=Decimal(upnl))
                          for account, size, upnl in ranked.candidates]
        else:
            values = getattr(ranked, "account_values", ())
            if len(values) != len(ranked.candidates):
                continue  # an older producer: no account values to level leverage with
            candidates = [adl.AdlCandidate(account, Decimal(size), upnl=Decimal(upnl), account_value=Decimal(value))
                          for (account, size, upnl), value in zip(ranked.candidates, values)]
        total += adl.overshoot(closes, candidates, ranked.deficit_size,
                               lot=None if ranked.lot == "-" else ranked.lot, benchmark=benchmark).excess
    return total
