"""The scenario-grid portfolio margin (Derive PMRM_2): the report explains itself, the margin
moves the right way with its shocks, long-only books never need more than they are worth, the
array path equals the scalar path, and bad input is refused by field.

Derive's own 138 portfolio cases run from tests/vectors/derive_pmrm2_cases.json
(test_conformance_vector_files.py); here they seed the properties.
"""

import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from solvent.core.errors import InvalidInput
from solvent.policies.options import (
    CollateralHolding,
    ExpiryFeed,
    ExpiryHolding,
    OptionHolding,
    OptionPortfolio,
    OptionPosition,
    PerpHolding,
    SviSlice,
    margin_model,
    margin_report,
    margin_report_from_json,
    parse_portfolio,
)
from solvent.policies.options.book import book_from_portfolios, evaluate_book
from solvent.policies.options.scenario_grid import Scenario, VolShock

VECTORS = json.loads((Path(__file__).parent / "vectors" / "derive_pmrm2_cases.json").read_text())["cases"]
CASES = {case["id"]: case for case in VECTORS}
HARNESS = CASES["derive-pmrm2-012-risk-cancelling-naked-short-call"]["input"]["params"]  # Derive's test defaults
DAY = 86400.0


def test_worked_case_explains_itself():
    """test_12 (reference §3.5): a short BTC call, 9.2 days, worst scenario +18% with vol up."""
    case = CASES["derive-pmrm2-012-risk-cancelling-naked-short-call"]["input"]
    report = margin_report_from_json(case)
    assert report.im == pytest.approx(-14604.0481, abs=1e-4)
    assert report.mm == pytest.approx(-11824.8587, abs=1e-4)
    assert report.mtm == pytest.approx(-1186.4186, abs=1e-4)
    worst = report.scenarios[report.worst_scenario]
    assert (worst.spot_shock, worst.vol_shock, worst.group) == (1.18, VolShock.UP, "regular")
    assert report.worst_by_group["regular"].pnl == pytest.approx(-12939.3120, abs=1e-4)
    tail = report.worst_by_group["tail"]
    assert (tail.scenario.spot_shock, tail.pnl) == (4.0, pytest.approx(-3383.0433, abs=1e-4))
    assert report.worst_loss("skew") == pytest.approx(-43.4340, abs=1e-4)
    assert report.basis_contingency == pytest.approx(-947.2098, abs=1e-4)
    assert report.contingencies["option_mm"] == pytest.approx(286.9905, abs=1e-4)
    assert report.expiries[0].vol_up_multiplier == pytest.approx(1.71281, abs=1e-5)
    assert report.expiries[0].static_discount_negative == pytest.approx(1.003788, abs=1e-6)
    assert report.greeks.delta < 0 and report.greeks.gamma < 0 and report.greeks.vega < 0
    data = report.as_dict()
    assert len(data["scenario_pnls"]) == len(report.scenarios) and data["worst_by_group"]["tail"]["spot_shock"] == 4.0
    json.dumps(data)  # plain values only


def test_requirement_is_mtm_minus_surplus():
    report = margin_report_from_json(CASES["derive-pmrm2-062-general-random-2"]["input"])
    assert report.initial_margin_requirement == pytest.approx(report.mtm - report.im)
    assert report.initial_margin_requirement >= report.maintenance_margin_requirement


# --------------------------------------------------------------------------- random portfolios


def random_portfolio(rng: np.random.Generator, *, long_only: bool = False, short_only: bool = False,
                     extras: bool = True) -> OptionPortfolio:
    spot = float(rng.uniform(500, 100_000))
    expiries = []
    for _ in range(int(rng.integers(1, 4))):
        seconds = float(rng.choice([0.0, 600.0, rng.uniform(1, 3 * 365) * DAY]))
        forward = spot * float(rng.uniform(0.97, 1.08))
        fixed = forward * (1800 - seconds) / 1800 if seconds < 1800 else 0.0
        options = []
        for strike in sorted(set(np.round(spot * rng.uniform(0.5, 1.8, size=int(rng.integers(1, 6))), 0))):
            for is_call in (True, False):
                if rng.random() < 0.5:
                    continue
                amount = float(rng.uniform(0.1, 20))
                if short_only or (not long_only and rng.random() < 0.5):
                    amount = -amount
                options.append(OptionHolding(float(strike), is_call, amount, float(rng.uniform(0.2, 1.5))))
        if not options:
            options.append(OptionHolding(round(spot, 0), True, -1.0 if short_only else 1.0, 0.8))
        if options:
            expiries.append(ExpiryHolding(seconds, fixed, forward - fixed, float(rng.uniform(0, 0.3)),
                                          float(rng.choice([1.0, 0.9, 0.4])), tuple(options)))
    if not extras:
        return OptionPortfolio(spot=spot, expiries=tuple(expiries))
    perp = PerpHolding(float(rng.choice([0.0, rng.uniform(-30, 30)])), spot * float(rng.uniform(0.99, 1.01)),
                       float(rng.choice([1.0, 0.3])), float(rng.uniform(-1000, 1000)), float(rng.uniform(-50, 50)))
    collaterals = tuple(CollateralHolding(f"C{i}", float(rng.uniform(0, 10)), float(rng.uniform(1, 5000)),
                                          float(rng.choice([1.0, 0.5])), bool(rng.random() < 0.5),
                                          float(rng.uniform(0, 0.3)), float(rng.uniform(0, 0.3)))
                        for i in range(int(rng.integers(0, 3))))
    return OptionPortfolio(spot=spot, expiries=tuple(expiries), perp=perp, collaterals=collaterals,
                           cash=float(rng.uniform(-5000, 50_000)), spot_confidence=float(rng.choice([1.0, 0.5])),
                           stable_price=float(rng.choice([1.0, 0.97])))


@pytest.mark.parametrize("params", [None, HARNESS], ids=["mainnet", "harness"])
def test_vectorized_book_equals_scalar_path(params):
    model = margin_model("derive", params)
    rng = np.random.default_rng(15)
    portfolios = [random_portfolio(rng) for _ in range(60)] + [OptionPortfolio(spot=100.0)]
    book = evaluate_book(model, book_from_portfolios(portfolios), chunk_options=37)
    for index, portfolio in enumerate(portfolios):
        report = model.evaluate(portfolio)
        scale = max(1.0, abs(report.mtm), max(map(abs, report.scenario_pnls)))
        for name in ("im", "mm", "mtm", "option_mtm", "basis_contingency", "mm_contingency", "im_contingency",
                     "min_span"):
            assert getattr(book, name)[index] == pytest.approx(getattr(report, name), abs=1e-10 * scale), name
        np.testing.assert_allclose(book.scenario_pnls[index], report.scenario_pnls, rtol=0, atol=1e-10 * scale)
        # Ties within rounding may pick another index; the loss it names is the same.
        chosen = book.worst_scenario[index]
        named = report.basis_contingency if chosen < 0 else report.scenario_pnls[chosen]
        assert named == pytest.approx(report.min_span, abs=1e-10 * scale)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**32 - 1), st.floats(0.0, 2.0), st.floats(0.0, 2.0))
def test_margin_falls_as_the_vol_up_shock_widens(seed, range_a, range_b):
    """Short options only: every option gains value when vol rises, so a wider vol-up range can only
    deepen the losses and lower both surpluses."""
    portfolio = random_portfolio(np.random.default_rng(seed), short_only=True, extras=False)
    low, high = sorted((range_a, range_b))
    narrow = margin_model("derive", {**HARNESS, "vol_shock": {**HARNESS["vol_shock"], "vol_range_up": str(low)}})
    wide = margin_model("derive", {**HARNESS, "vol_shock": {**HARNESS["vol_shock"], "vol_range_up": str(high)}})
    a, b = narrow.evaluate(portfolio), wide.evaluate(portfolio)
    assert b.im <= a.im + 1e-9 * max(1.0, abs(a.im)) and b.mm <= a.mm + 1e-9 * max(1.0, abs(a.mm))


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**32 - 1), st.floats(1.0, 1.5), st.floats(1.0, 1.5))
def test_margin_falls_as_the_spot_shock_widens_for_short_calls(seed, up_a, up_b):
    """Short calls lose more the further spot rises: a wider up-move lowers the surpluses."""
    rng = np.random.default_rng(seed)
    portfolio = random_portfolio(rng, short_only=True, extras=False)
    portfolio = replace(portfolio, expiries=tuple(replace(e, options=tuple(replace(o, is_call=True) for o in e.options))
                                                  for e in portfolio.expiries))
    low, high = sorted((up_a, up_b))
    grid = [{"spot_shock": str(s), "vol_shock": v, "dampening": "1", "group": "regular"}
            for s in ("1", "0.9") for v in ("up", "none")]
    narrow = margin_model("derive", {**HARNESS, "scenarios": grid + [
        {"spot_shock": str(low), "vol_shock": "up", "dampening": "1", "group": "regular"}]})
    wide = margin_model("derive", {**HARNESS, "scenarios": grid + [
        {"spot_shock": str(high), "vol_shock": "up", "dampening": "1", "group": "regular"}]})
    a, b = narrow.evaluate(portfolio), wide.evaluate(portfolio)
    assert b.mm <= a.mm + 1e-9 * max(1.0, abs(a.mm))


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 30))
def test_more_scenarios_never_raise_the_margin(seed, keep):
    portfolio = random_portfolio(np.random.default_rng(seed))
    full = margin_model("derive", HARNESS)
    fewer = margin_model("derive", {**HARNESS, "scenarios": HARNESS["scenarios"][:keep]})
    a, b = fewer.evaluate(portfolio), full.evaluate(portfolio)
    assert b.im <= a.im + 1e-9 * max(1.0, abs(a.im)) and b.mm <= a.mm + 1e-9 * max(1.0, abs(a.mm))


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from(["mainnet", "harness"]))
def test_long_only_portfolio_never_below_its_mtm_floor(seed, which):
    """Long options can lose at most what they are worth: no spot/vol scenario loses more than the
    MtM, so with MM factor ≤ 1 and the basis factor ≤ 1 a paid-for long book is never liquidatable.

    Skew scenarios are left out on purpose: PMRM_2 counts each expiry's skew PnL as −|PnL|, so a
    far out-of-the-money long whose value more than doubles under the twist shows a "loss" above
    its own value (Derive's rule, kept; see docs/options.md)."""
    base = margin_model("derive", None if which == "mainnet" else HARNESS)
    grid = [{"spot_shock": repr(s.spot_shock), "vol_shock": s.vol_shock.value, "dampening": repr(s.dampening),
             "group": s.group} for s in base.scenarios if not s.vol_shock.is_skew]
    params = {"scenarios": grid} if which == "mainnet" else {**HARNESS, "scenarios": grid}
    portfolio = random_portfolio(np.random.default_rng(seed), long_only=True, extras=False)
    portfolio = replace(portfolio, expiries=tuple(replace(e, seconds=min(e.seconds, 0.2 * 365 * DAY))
                                                  for e in portfolio.expiries))
    report = margin_model("derive", params).evaluate(portfolio)
    floor = -report.mtm - 1e-9 * max(1.0, report.mtm)
    assert all(pnl >= floor for pnl in report.scenario_pnls)
    assert report.min_span >= floor
    assert report.mm >= -1e-9 * max(1.0, report.mtm)
    assert report.maintenance_margin_requirement <= report.mtm * (1 + 1e-12)


def test_risk_cancelling_collateral_offsets_a_short_call():
    """A covered deep in-the-money call: base collateral that moves with spot cancels the call's
    upside loss, which the same collateral counted as a stable value does not."""
    spot = 3000.0
    option = OptionHolding(2000.0, True, -1.0, 0.6)
    expiry = ExpiryHolding(20 * DAY, 0.0, 3010.0, 0.05, 1.0, (option,))
    naked = OptionPortfolio(spot=spot, expiries=(expiry,))
    base = CollateralHolding("ETH", 1.0, spot, risk_cancelling=True, mm_haircut=0.015, im_haircut=0.005)
    covered = replace(naked, collaterals=(base,))
    plain = replace(naked, collaterals=(replace(base, risk_cancelling=False),))
    model = margin_model("derive", HARNESS)
    assert model.evaluate(covered).mm > model.evaluate(plain).mm
    assert model.evaluate(plain).mm - model.evaluate(naked).mm == pytest.approx(spot * (1 - 0.015))


def test_perp_moves_with_its_own_price_and_low_confidence_costs_im():
    model = margin_model("derive", HARNESS)
    base = OptionPortfolio(spot=3000.0, perp=PerpHolding(amount=2.0, price=3100.0, confidence=1.0))
    report = model.evaluate(base)
    assert report.scenario_pnls[0] == pytest.approx(2.0 * 0.18 * 3100.0)
    shaky = model.evaluate(replace(base, perp=replace(base.perp, confidence=0.3)))
    assert shaky.im == pytest.approx(report.im - 0.7 * 2 * 3000.0)
    assert shaky.mm == pytest.approx(report.mm)


def test_stable_depeg_raises_im_only():
    model = margin_model("derive", HARNESS)
    portfolio = random_portfolio(np.random.default_rng(3), extras=False)
    pegged, depegged = model.evaluate(portfolio), model.evaluate(replace(portfolio, stable_price=0.95))
    assert depegged.im_factor == pytest.approx(1 + (0.98 - 0.95) * 2)
    assert depegged.mm == pytest.approx(pegged.mm)
    assert depegged.im < pegged.im


# --------------------------------------------------------------------------- API and bad input


def test_margin_report_from_positions_and_a_surface():
    svi = SviSlice(a=0.02, b=0.1, rho=-0.4, m=0.0, sigma=0.2, forward=3050.0, tau=30 / 365)
    feeds = [ExpiryFeed(seconds=30 * DAY, forward=3050.0, rate=0.05, svi=svi),
             ExpiryFeed(seconds=90 * DAY, forward=3100.0, rate=-0.02, vol=0.7)]
    positions = [OptionPosition(30 * DAY, 3200.0, True, -2.0), OptionPosition(30 * DAY, 3200.0, True, 1.0),
                 OptionPosition(90 * DAY, 2800.0, False, 1.5)]
    report = margin_report(positions, feeds, 3000.0, params=HARNESS, cash=10_000)
    assert len(report.expiries) == 2 and report.expiries[1].discount == 1.0  # a negative rate is floored at 0
    assert report.expiries[0].naked_shorts == 1.0  # the two 3200 calls were merged
    assert report.cash == 10_000 and report.mtm == pytest.approx(10_000 + report.option_mtm)


@pytest.mark.parametrize("patch, field", [
    ({"feeds": [{"expiry_seconds": "86400", "forward": "100", "vol": "-0.1"}]}, "feeds[0].vol"),
    ({"spot": "NaN"}, "spot"),
    ({"options": [{"expiry_seconds": "86400", "strike": "0", "kind": "call", "amount": "1"}]}, "options[0].strike"),
    ({"options": [{"expiry_seconds": "-60", "strike": "100", "kind": "call", "amount": "1"}]},
     "options[0].expiry_seconds"),
    ({"options": [{"expiry_seconds": "3600", "strike": "100", "kind": "call", "amount": "1"}]},
     "options[0].expiry_seconds"),
    ({"options": [{"expiry_seconds": "86400", "strike": "100", "kind": "call", "amount": "NaN"}]},
     "options[0].amount"),
    ({"feeds": [{"expiry_seconds": "86400", "forward": "100", "svi": {
        "a": "-0.05", "b": "0.1", "rho": "-0.9", "m": "0", "sigma": "0.6", "forward": "100", "tau": "0.1"}}],
      "options": [{"expiry_seconds": "86400", "strike": "300", "kind": "put", "amount": "1"}]}, "feeds[0].svi"),
    ({"feeds": [{"expiry_seconds": "86400", "forward": "100", "svi": {
        "a": "0.02", "b": "0.1", "rho": "0", "m": "0", "sigma": "0.1", "forward": "100", "tau": "0"}}]},
     "feeds[0].svi.tau"),
    ({"collaterals": [{"name": "X", "amount": "1", "price": "-3"}]}, "collaterals[0].price"),
    ({"perp": {"amount": "1", "price": "100", "confidence": "1.5"}}, "perp.confidence"),
])
def test_bad_portfolios_are_refused_naming_the_field(patch, field):
    data = {"spot": "100", "feeds": [{"expiry_seconds": "86400", "forward": "100", "vol": "0.5"}],
            "options": [{"expiry_seconds": "86400", "strike": "100", "kind": "call", "amount": "-1"}], **patch}
    with pytest.raises(InvalidInput) as error:
        parse_portfolio(data)
    assert error.value.field == field


@pytest.mark.parametrize("patch, field", [
    ({"scenarios": [{"spot_shock": "1.1", "vol_shock": "linear"}]}, "params.scenarios[0].spot_shock"),
    ({"scenarios": [{"spot_shock": "1.1", "vol_shock": "sideways"}]}, "params.scenarios[0].vol_shock"),
    ({"scenarios": []}, "params.scenarios"),
    ({"vol_shock": {"vol_range_up": "-1"}}, "params.vol_shock.vol_range_up"),
    ({"margin": {"im_factor": "NaN"}}, "params.margin.im_factor"),
])
def test_bad_parameters_are_refused_naming_the_field(patch, field):
    with pytest.raises(InvalidInput) as error:
        margin_model("derive", patch)
    assert error.value.field == field


def test_zero_k_star_is_refused_rather_than_divided_by():
    params = {**HARNESS, "skew_shock": {**HARNESS["skew_shock"], "min_k_star": "0", "width_scale": "0"}}
    portfolio = random_portfolio(np.random.default_rng(1), extras=False)
    with pytest.raises(InvalidInput) as error:
        margin_model("derive", params).evaluate(portfolio)
    assert error.value.field == "params.skew_shock.min_k_star"
    with pytest.raises(InvalidInput) as error:
        evaluate_book(margin_model("derive", params), book_from_portfolios([portfolio]))
    assert error.value.field == "params.skew_shock.min_k_star"


def test_preset_is_an_options_preset_with_sources():
    from solvent.presets import load_preset

    preset = load_preset("derive")
    assert preset.data["kind"] == "options" and preset.sources
    model = margin_model(preset)
    assert len(model.scenarios) == 33 and model.vol_shock.min_vol_up_shock == 0.4
    assert [s.group for s in model.scenarios].count("tail") == 8
    for scenario in model.scenarios:
        if scenario.group == "tail":
            assert scenario.dampening * abs(scenario.spot_shock - 1) == pytest.approx(0.1386)
    with pytest.raises(InvalidInput):
        margin_model("binance")


def test_single_scenario_label_and_dataclass():
    scenario = Scenario(1.18, VolShock.UP)
    assert "1.18" in scenario.label and math.isclose(scenario.dampening, 1.0)


# --------------------------------------------------------------------------- CLI


def test_cli_margin_prints_the_report_and_json(tmp_path):
    from typer.testing import CliRunner

    from solvent.cli.main import app

    example = Path(__file__).parent.parent / "docs" / "options_portfolio_example.json"
    runner = CliRunner()
    table = runner.invoke(app, ["margin", "--preset", "derive", "--portfolio", str(example), "--scenarios"])
    assert table.exit_code == 0, table.output
    assert "worst scenario of each group" in table.output and "the margin is set by" in table.output
    result = runner.invoke(app, ["margin", "--portfolio", str(example), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    api = margin_report_from_json(json.loads(example.read_text()))
    assert data["im"] == pytest.approx(api.im) and data["mm"] == pytest.approx(api.mm)
    assert set(data["worst_by_group"]) == {"regular", "tail", "skew"}
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"spot": "100", "feeds": [], "options": [
        {"expiry_seconds": "86400", "strike": "100", "kind": "call", "amount": "1"}]}))
    refused = runner.invoke(app, ["margin", "--portfolio", str(bad)])
    assert refused.exit_code == 2 and "options[0].expiry_seconds" in refused.output


SHARED = Path(__file__).resolve().parents[2] / "shared" / "conformance" / "options.json"


@pytest.mark.skipif(not SHARED.is_file(), reason="shared/conformance is not beside the project")
def test_every_shared_pmrm2_vector_passes():
    from solvent.conformance.runner import run_paths

    results = [r for r in run_paths([SHARED]) if r.check == "derive.pmrm2"]
    assert len(results) >= 35
    assert not [f"{r.id}: {r.message}" for r in results if not r.passed]


def test_screen_decides_close_calls_exactly():
    from solvent.policies.options.book import below_maintenance

    model = margin_model("derive", HARNESS)
    rng = np.random.default_rng(7)
    portfolios = [random_portfolio(rng) for _ in range(40)]
    # Put one account exactly on the boundary: cash that brings its MM surplus to (float) zero.
    edge = model.evaluate(portfolios[0])
    portfolios[0] = replace(portfolios[0], cash=portfolios[0].cash - edge.mm)
    book = book_from_portfolios(portfolios)
    accounts, rechecked = below_maintenance(model, book, lambda i: portfolios[i], band=1e-6)
    exact = [i for i, p in enumerate(portfolios) if model.evaluate(p).mm < 0]
    assert accounts.tolist() == exact and rechecked >= 1


def test_options_benchmark_runs_on_a_small_book():
    from solvent.bench.options import moved, portfolio_of, run_options_benchmark, synthetic_option_book

    result = run_options_benchmark(40, repeat=1, naive_budget_seconds=5.0)
    assert result.accounts == 40 and result.scenarios == 33 and result.options >= 40
    assert result.grid_seconds > 0 and result.naive_seconds > 0 and result.memory_pass_seconds > 0
    # The synthetic book's accounts read back as portfolios the exact path agrees with.
    model = margin_model("derive")
    book = moved(synthetic_option_book(12, seed=3), 1.04, 1.1)
    margins = evaluate_book(model, book)
    for account in range(12):
        report = model.evaluate(portfolio_of(book, account))
        assert margins.mm[account] == pytest.approx(report.mm, rel=1e-9, abs=1e-6)


def test_preset_pricing_constants_are_the_code_s():
    from solvent.policies.options import black76, portfolio, svi
    from solvent.presets import load_preset

    pricing = load_preset("derive").section("pricing")
    assert pricing["year_days"] * 86400 == black76.SECONDS_PER_YEAR
    assert float(pricing["black76_max_total_vol"]) == black76.MAX_TOTAL_VOL
    assert float(pricing["svi_total_variance_cap"]) == svi.TOTAL_VARIANCE_CAP
    assert float(pricing["svi_log_strike_scale"]) == svi.LOG_STRIKE_SCALE
    assert pricing["settlement_window_seconds"] == portfolio.SETTLEMENT_WINDOW_SECONDS


def test_settlement_split_is_the_harness_one():
    from decimal import Decimal

    from solvent.policies.options import settlement_forward_split

    feed = CASES["derive-pmrm2-060-settlement-near-expiry"]["input"]["feeds"][0]
    fixed, variable = settlement_forward_split(float(feed["forward"]), float(feed["expiry_seconds"]))
    assert fixed == pytest.approx(float(Decimal(feed["forward_fixed"])), rel=1e-14)
    assert fixed + variable == pytest.approx(float(feed["forward"]), rel=1e-15)
    assert settlement_forward_split(100.0, 3600.0) == (0.0, 100.0)
    assert settlement_forward_split(100.0, 0.0) == (100.0, 0.0)


# --------------------------------------------------------------------------- additive vol shocks (SPAN16)


def test_span16_reference_design_is_sixteen_additive_scenarios():
    model = margin_model("span16")
    assert len(model.scenarios) == 16 and model.vol_shock.additive
    extreme = [s for s in model.scenarios if s.group == "extreme"]
    assert [(s.spot_shock, s.dampening) for s in extreme] == [(1.3, 0.35), (0.7, 0.35)]
    # A short call: the margin is the worst of the 16 PnLs, nothing else (no contingency, no discount).
    option = OptionHolding(3000.0, True, -1.0, 0.5)
    portfolio = OptionPortfolio(spot=3000.0, expiries=(ExpiryHolding(30 * DAY, 0.0, 3000.0, 0.0, 1.0, (option,)),))
    report = model.evaluate(portfolio)
    assert report.mm == pytest.approx(report.mtm + min(report.scenario_pnls))
    assert report.im == pytest.approx(report.mm) and report.mm_contingency == report.im_contingency == 0
    from solvent.policies.options import black76_price

    up = -black76_price("call", 3450.0, 3000.0, 0.6, 30 * DAY)  # +15%, vol +10 points
    assert report.scenario_pnls[10] == pytest.approx(up - report.option_mtm, rel=1e-12)
    assert report.worst_by_group["regular"].index == 10


def test_additive_down_shock_floors_vol_at_zero():
    params = {"vol_shock": {"vol_range_down": "5"}}  # 500 vol points down: every vol hits 0
    model = margin_model("span16", params)
    option = OptionHolding(2900.0, False, 2.0, 0.5)
    portfolio = OptionPortfolio(spot=3000.0, expiries=(ExpiryHolding(30 * DAY, 0.0, 3000.0, 0.0, 1.0, (option,)),))
    report = model.evaluate(portfolio)
    assert report.scenario_pnls[1] == pytest.approx(2.0 * 0.0 - report.option_mtm)  # OTM put at zero vol
    assert report.scenario_pnls[5] == pytest.approx(2.0 * (2900.0 - 2850.0) - report.option_mtm)  # −5%: intrinsic
    book = evaluate_book(model, book_from_portfolios([portfolio]))
    np.testing.assert_allclose(book.scenario_pnls[0], report.scenario_pnls, rtol=1e-12, atol=1e-9)


def test_vectorized_book_equals_scalar_path_with_additive_shocks():
    model = margin_model("span16", {"vol_shock": {"short_term_power": "0.3", "long_term_power": "0.13",
                                                  "min_vol_up_shock": "0.45"}})
    rng = np.random.default_rng(16)
    portfolios = [random_portfolio(rng) for _ in range(30)]
    book = evaluate_book(model, book_from_portfolios(portfolios), chunk_options=23)
    for index, portfolio in enumerate(portfolios):
        report = model.evaluate(portfolio)
        scale = max(1.0, abs(report.mtm), max(map(abs, report.scenario_pnls)))
        np.testing.assert_allclose(book.scenario_pnls[index], report.scenario_pnls, rtol=0, atol=1e-10 * scale)
        assert book.mm[index] == pytest.approx(report.mm, abs=1e-10 * scale)


def test_unknown_vol_shock_mode_is_refused():
    with pytest.raises(InvalidInput) as error:
        margin_model("span16", {"vol_shock": {"mode": "exponential"}})
    assert error.value.field == "params.vol_shock.mode"
