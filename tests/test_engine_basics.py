"""Engine basics: the documented examples, commands as data, presets recombined without engine code."""

import json
from pathlib import Path

import pytest

from solvent.engine import CommandRejected, Engine
from solvent.engine import commands as c
from solvent.engine.commands import command_from_dict

ENGINE_DOC = Path(__file__).resolve().parents[1] / "docs" / "engine.md"


def test_documented_engine_example_runs_as_written():
    text = ENGINE_DOC.read_text()
    start = text.index("```python\nfrom solvent.engine import Engine")
    code = text[start + len("```python\n"): text.index("```", start + 10)]
    namespace: dict = {}
    exec(compile(code, "docs/engine.md", "exec"), namespace)
    assert namespace["engine"].conservation().holds


def setup(engine: Engine, venue: str = "v", preset: str = "binance", settle: str = "USDT", market: str = "BTCUSDT"):
    engine.apply(c.CreateVenue(venue, preset))
    engine.apply(c.Deposit(f"{venue}/book", settle, "100000000"))
    for account, amount in (("t", "1000"), ("mm", "1000000")):
        engine.apply(c.OpenAccount(account, venue))
        engine.apply(c.Deposit(account, settle, amount))
    engine.apply(c.UpdateOracle(venue, {market: "60000"}, 1))
    engine.apply(c.ApplyFill(venue, market, "t", "mm", "0.5", "60000"))


def test_commands_round_trip_through_json():
    commands = [c.CreateVenue("v", "binance", {"execution": {"fee": "0.01"}}), c.OpenAccount("a", "v"),
                c.Deposit("a", "USDT", "10"), c.UpdateOracle("v", {"BTCUSDT": "1"}, 5), c.AdvanceTime(9, 2, 77)]
    for command in commands:
        again = command_from_dict(json.loads(json.dumps(command.to_dict())))
        assert again == command or again.to_dict() == command.to_dict()
    with pytest.raises(Exception, match="unknown command"):
        command_from_dict({"kind": "teleport"})


def test_a_user_preset_recombining_parts_needs_no_engine_code(tmp_path):
    # Binance's margin, GMX's keeper execution and Drift's socialized loss: one data file.
    path = tmp_path / "my_venue.toml"
    path.write_text('extends = "binance"\ntitle = "My venue"\n'
                    '[execution]\nmethod = "keeper"\nfee = "0"\n'
                    '[waterfall]\nlayers = ["insurance", "socialize"]\n')
    engine = Engine()
    setup(engine, preset=str(path))
    events = engine.apply(c.UpdateOracle("v", {"BTCUSDT": "57000"}, 2))
    kinds = [event.kind for event in events]
    assert "position_liquidated" in kinds and "loss_socialized" in kinds
    liquidated = next(event for event in events if event.kind == "position_liquidated")
    assert liquidated.method == "keeper" and liquidated.price == "57000"
    assert engine.conservation().holds


def test_rejections_name_the_field_and_change_nothing():
    engine = Engine()
    setup(engine)
    before = json.dumps({a: dict(acct.balances) for a, acct in engine.ledger.accounts.items()}, sort_keys=True)
    cases = [
        (c.UpdateOracle("v", {"BTCUSDT": "-1"}, 3), "prices.BTCUSDT"),
        (c.UpdateOracle("v", {"BTCUSDT": "nan"}, 3), "prices.BTCUSDT"),
        (c.UpdateOracle("v", {"BTCUSDT": "61000"}, 0), "timestamp"),
        (c.ApplyFill("v", "BTCUSDT", "t", "ghost", "1", "60000"), None),
        (c.ApplyFill("v", "NOPE", "t", "mm", "1", "60000"), None),
        (c.Deposit("t", "USDT", "0.000000001"), "amount"),
        (c.CreateVenue("v2", "nonexistent"), None),
        (c.Withdraw("t", "USDT", "900"), "amount"),  # would leave less than the initial margin
    ]
    for command, field in cases:
        with pytest.raises(CommandRejected) as error:
            engine.apply(command)
        if field is not None:
            assert error.value.field == field, error.value
    after = json.dumps({a: dict(acct.balances) for a, acct in engine.ledger.accounts.items()}, sort_keys=True)
    assert before == after and engine.marks["v/BTCUSDT"] == 60000


def test_venues_must_agree_on_asset_units():
    engine = Engine()
    engine.apply(c.CreateVenue("a", "hyperliquid"))  # USDC in 1e-6
    with pytest.raises(CommandRejected, match="USDC"):
        engine.apply(c.CreateVenue("b", "hyperliquid", {"assets": {"USDC": 8}}))
    assert list(engine.venues) == ["a"]


def test_set_params_changes_the_rules_of_a_running_venue():
    engine = Engine()
    setup(engine)
    engine.apply(c.SetParams("v", {"execution": {"fee": "0"}}))
    events = engine.apply(c.UpdateOracle("v", {"BTCUSDT": "58100"}, 2))
    assert "liquidation_fee_charged" not in [event.kind for event in events]
    with pytest.raises(CommandRejected):
        engine.apply(c.SetParams("v", {"execution": {"method": "magic"}}))


def test_create_market_lists_a_market_with_its_own_margin_table():
    engine = Engine()
    setup(engine)
    events = engine.apply(c.CreateMarket("v", "ETHUSDT", "ETH", "USDT", "USDT", size_decimals=2,
                                         margin={"tiers": [{"floor": "0", "mmr": "0.01", "max_leverage": "50"}]}))
    assert [event.kind for event in events] == ["market_listed"]
    assert engine.model("v/ETHUSDT").maintenance_margin(__import__("decimal").Decimal(1000)) == 10
    with pytest.raises(CommandRejected):
        engine.apply(c.CreateMarket("v", "ETHUSDT", "ETH", "USDT", "USDT"))
    with pytest.raises(CommandRejected):  # a malformed margin table names its field, and nothing is listed
        engine.apply(c.CreateMarket("v", "XRPUSDT", "XRP", "USDT", "USDT", margin={"tiers": [{"floor": "0"}]}))
    assert "XRPUSDT" not in engine.venues["v"].markets


def test_cross_venue_collateral_is_liquidated_on_each_venue():
    engine = Engine()
    for venue in ("a", "b"):
        engine.apply(c.CreateVenue(venue, "binance"))
        engine.apply(c.Deposit(f"{venue}/book", "USDT", "100000000"))
        engine.apply(c.FundInsurance("USDT", "10000", venue=venue))
        engine.apply(c.UpdateOracle(venue, {"BTCUSDT": "60000"}, 1))
    engine.apply(c.OpenAccount("t", "a", cross_venues=("b",)))
    engine.apply(c.OpenAccount("mm", "a", cross_venues=("b",)))
    engine.apply(c.Deposit("t", "USDT", "2000"))
    engine.apply(c.Deposit("mm", "USDT", "10000000"))
    engine.apply(c.ApplyFill("a", "BTCUSDT", "t", "mm", "0.5", "60000"))
    engine.apply(c.ApplyFill("b", "BTCUSDT", "t", "mm", "0.5", "60000"))
    # One collateral pool backs both: a fall on both venues liquidates through each venue's book.
    engine.apply(c.UpdateOracle("a", {"BTCUSDT": "58100"}, 2))
    events = engine.apply(c.UpdateOracle("b", {"BTCUSDT": "58100"}, 2))
    liquidated = {event.venue: event.counterparty for event in events if event.kind == "position_liquidated"}
    assert set(liquidated) == {"a", "b"}
    assert all(counterparty.startswith(venue + "/") for venue, counterparty in liquidated.items())
    assert engine.conservation().holds
    with pytest.raises(CommandRejected):  # an account not opted in cannot trade on another venue
        engine.apply(c.OpenAccount("solo", "a"))
        engine.apply(c.Deposit("solo", "USDT", "1000"))
        engine.apply(c.ApplyFill("b", "BTCUSDT", "solo", "mm", "0.01", "58300"))


def test_documented_lending_example_runs_as_written():
    text = ENGINE_DOC.read_text()
    start = text.index("```python\nfrom solvent.engine import Engine, commands as c, lending as l")
    code = text[start + len("```python\n"): text.index("```", start + 10)]
    namespace: dict = {}
    exec(compile(code, "docs/engine.md", "exec"), namespace)
    engine = namespace["engine"]
    assert engine.conservation().holds
    assert engine.ledger.accounts["keeper"].balance("WETH") > 0
