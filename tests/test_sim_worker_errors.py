"""Errors raised in worker processes reach the command line as one clean line, not a traceback."""

import pickle

import pytest
from typer.testing import CliRunner

from solvent.cli.main import app
from solvent.core.errors import InsufficientFunds, InvalidInput, SolventError, UnknownName
from solvent.engine.engine import CommandRejected
from solvent.sim.run import SimConfig
from solvent.sim.sweep import LocalExecutor, compare

runner = CliRunner()


@pytest.mark.parametrize("error", [InvalidInput("positions[1].size", "must be positive"),
                                   UnknownName("preset", "nope", ["binance"]),
                                   CommandRejected("apply_fill", "no margin", "size"), InsufficientFunds("x")])
def test_every_solvent_error_pickles_as_itself(error):
    again = pickle.loads(pickle.dumps(error))
    assert type(again) is type(error) and str(again) == str(error) and again.__dict__ == error.__dict__


def test_an_unknown_preset_in_a_process_pool_is_raised_as_itself():
    with pytest.raises(UnknownName, match="nope"):
        compare(SimConfig(accounts=20, scenario="black_thursday_2020_03_12"), ["nope", "nope"], 1,
                LocalExecutor(workers=2))


@pytest.mark.parametrize("arguments, expected", [
    (["compare", "--presets", "binance,nope", "--paths", "2", "--accounts", "20"], "unknown preset 'nope'"),
    (["sweep", "--param", "insurance_fund=abc", "--paths", "2", "--accounts", "20"], "param.insurance_fund"),
])
def test_the_cli_reports_a_worker_error_in_one_line(arguments, expected):
    result = runner.invoke(app, arguments + ["--scenario", "black_thursday_2020_03_12", "--executor", "local",
                                             "--workers", "2"])
    assert result.exit_code == 2, result.output
    assert expected in result.output.replace("\n", " ")
    assert "Traceback" not in result.output and not isinstance(result.exception, SolventError)


def test_a_bad_amount_is_refused_naming_it_before_any_run():
    with pytest.raises(InvalidInput, match="insurance_fund"):
        from solvent.sim.run import run

        run(SimConfig(accounts=10, insurance_fund="abc"))
