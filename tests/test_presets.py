"""Presets are data: every shipped preset loads, cites sources and builds its models."""

from decimal import Decimal as D

import pytest

from solvent.core.errors import InvalidInput, UnknownName
from solvent.presets import list_presets, load_preset

EXPECTED = {"binance", "bybit", "bitmex", "hyperliquid", "dydx_v4", "drift_v2", "gmx_v2"}


def test_all_perpetual_presets_ship():
    assert set(list_presets()) >= EXPECTED


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_preset_loads_with_sources_and_models(name):
    preset = load_preset(name)
    assert preset.title and preset.sources and preset.markets
    for symbol, market in preset.markets.items():
        model = preset.margin_model(symbol)
        assert model.maintenance_margin(D(1000), D(1)) > 0
        assert market.settle in preset.assets


def test_user_preset_extends_a_shipped_one(tmp_path):
    path = tmp_path / "my_venue.toml"
    path.write_text('extends = "binance"\ntitle = "My venue"\n[liquidation_price]\nmaintenance_at = "entry"\n')
    preset = load_preset(path)
    assert preset.title == "My venue" and preset.name == "my_venue"
    assert preset.liquidation_price_rule.maintenance_at == "entry"
    assert preset.margin_model("BTCUSDT").maintenance_margin(D(100000)) == D(450)


def test_overrides_merge_tables_and_replace_lists():
    base = load_preset("hyperliquid")
    custom = base.with_overrides({"markets": [{"symbol": "X", "base": "X", "quote": "USD", "settle": "USDC",
                                               "margin": {"tiers": [{"floor": "0", "max_leverage": "5"}]}}]})
    assert list(custom.markets) == ["X"]
    assert custom.margin_model("X").tiers[0].maintenance_rate == D("0.1")
    assert list(base.markets) == ["BTC", "ETH", "SOL", "DOGE"]  # the original is untouched


def test_unknown_preset_lists_the_known_ones():
    with pytest.raises(UnknownName, match="binance"):
        load_preset("nope")


def test_broken_preset_fails_when_loaded_naming_the_field(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text('extends = "binance"\n[margin]\nmodel = "magic"\n')
    with pytest.raises(InvalidInput) as error:
        load_preset(path)
    assert error.value.field.endswith("margin.model")


def test_preset_oracle_rules_drive_the_index():
    from solvent.core.oracle import OracleStatus, SourceQuote

    quotes = [SourceQuote("a", D(100), D(1), 1000), SourceQuote("b", D(101), D(1), 1000),
              SourceQuote("c", D(150), D(1), 1000), SourceQuote("d", D(90), D(1), 600)]
    binance = load_preset("binance").index_price(quotes, 1000)  # weighted mean, 3% cap, 300 s
    assert binance.status is OracleStatus.DEVIATED  # c capped at 101·1.03; d is stale
    assert binance.price == (D(100) + D(101) + D(101) * D("1.03")) / 3
    hyperliquid = load_preset("hyperliquid").index_price(quotes[:3], 1000)  # weighted median
    assert hyperliquid.price == D(101)
    stale = load_preset("hyperliquid").index_price(quotes, 2000)
    assert stale.status is OracleStatus.STALE and not stale.usable_for_liquidation


def test_an_override_that_turns_the_markets_array_into_a_table_is_refused_naming_it():
    from solvent.presets import load_preset

    for name, override in (("morpho_blue", {"markets": {"WETH-USDC": {"lltv": "2"}}}),
                           ("hyperliquid", {"markets": {"BTC": {"size_decimals": 3}}})):
        with pytest.raises(InvalidInput) as raised:
            load_preset(name).with_overrides(override)
        assert raised.value.field == f"preset[{name}+overrides].markets" and "array of market tables" in str(raised.value)


# ------------------------------------------------------------------------------ the schema


@pytest.mark.parametrize("overrides, path", [
    ({"execution": {"fe": "0.05"}}, "execution.fe"),
    ({"trigger": {"warning_ratioo": "0.9"}}, "trigger.warning_ratioo"),
    ({"waterfall": {"adl_rul": "pro_rata"}}, "waterfall.adl_rul"),
    ({"markets": [{"symbol": "BTC", "margin": {"tierz": []}}]}, "markets[BTC].margin.tierz"),
    ({"nonsense": {"a": "1"}}, "nonsense"),
])
def test_an_unknown_key_is_refused_naming_its_path_and_the_keys_its_table_knows(overrides, path):
    with pytest.raises(InvalidInput) as error:
        load_preset("hyperliquid").with_overrides(overrides)
    assert error.value.field == f"preset[hyperliquid+overrides].{path}"
    assert "unknown key" in str(error.value)
    if path.startswith("execution."):
        assert "fee" in str(error.value) and "partial_fraction" in str(error.value)  # the table's keys listed


def test_an_unknown_key_in_a_lending_protocol_table_is_refused():
    with pytest.raises(InvalidInput) as error:
        load_preset("aave_v3").with_overrides({"reserves": {"WETH": {"liquidation_treshold": "0.8"}}})
    assert error.value.field == "preset[aave_v3+overrides].reserves.WETH.liquidation_treshold"


def test_create_venue_refuses_a_misspelt_override_and_changes_nothing():
    from solvent.engine import Engine
    from solvent.engine import commands as c
    from solvent.engine.engine import CommandRejected

    engine = Engine()
    with pytest.raises((CommandRejected, InvalidInput)) as error:
        engine.apply(c.CreateVenue("v", "binance", {"trigger": {"warning_ratioo": "0.9"}}))
    assert "trigger.warning_ratioo" in str(error.value)
    engine.apply(c.CreateVenue("v", "binance"))  # the name was not taken by the refused command


def test_a_float_is_refused_with_the_decimal_to_write_instead():
    with pytest.raises(InvalidInput) as error:
        load_preset("binance").with_overrides({"execution": {"fee": 0.1}})
    assert error.value.field.endswith("execution.fee") and "'0.1'" in str(error.value)


def test_every_shipped_preset_validates_against_the_schema_and_the_schema_prints():
    from solvent.presets.schema import PresetSchema, preset_json_schema

    for name in list_presets():
        PresetSchema.model_validate(load_preset(name).data)
    schema = preset_json_schema()
    assert schema["additionalProperties"] is False
    assert "warning_ratio" in schema["$defs"]["Trigger"]["properties"]
