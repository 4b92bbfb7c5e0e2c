"""The log proves itself (issue 14): signed checkpoints catch truncation and consistent rewrites,
the service refuses a chain that does not verify until an operator recovers it, replay refuses
reordered entries, snapshots are data (a malicious one runs nothing), and a log written by the
previous version (pickled snapshots, a poison entry left pending) still starts and verifies."""

from __future__ import annotations

import json
import os
import pickle
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from solvent.cli.main import app
from solvent.engine import commands as c
from solvent.store import CommandLog, DurableEngine, LogMismatch, replay_log, verify_log
from solvent.store.schema import commands as commands_table
from solvent.store.schema import snapshots as snapshots_table
from solvent.store.snapshots import FORMAT, SnapshotRefused, dump_engine, load_engine

runner = CliRunner()
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def history(amount: str = "500") -> list:
    return [c.CreateVenue("bn", "binance"), c.OpenAccount("alice", "bn"), c.OpenAccount("bob", "bn"),
            c.Deposit("alice", "USDT", "10000"), c.Deposit("bob", "USDT", "10000"),
            c.UpdateOracle("bn", {"BTCUSDT": "60000"}, 1), c.ApplyFill("bn", "BTCUSDT", "alice", "bob", "0.1", "60000"),
            c.Withdraw("alice", "USDT", amount), c.UpdateOracle("bn", {"BTCUSDT": "59000"}, 2),
            c.Deposit("bob", "USDT", "5"), c.UpdateOracle("bn", {"BTCUSDT": "58000"}, 3)]


def write(url: str, commands: list, **options) -> None:
    durable = DurableEngine(url, **options)
    for command in commands:
        try:
            durable.submit(command)
        except Exception:
            pass
    durable.close()


def delete_after(url: str, seq: int) -> None:
    with CommandLog(url) as log, log.db.begin() as connection:
        connection.execute(commands_table.delete().where(commands_table.c.seq > seq))


def test_signed_checkpoints_catch_truncation_and_a_consistent_rewrite(tmp_path):
    url = f"sqlite:///{tmp_path}/log.db"
    write(url, history())
    private, public, notary = tmp_path / "ck.pem", tmp_path / "ck.pub", tmp_path / "checkpoints.jsonl"
    assert runner.invoke(app, ["checkpoint-key", str(private), str(public)]).exit_code == 0
    result = runner.invoke(app, ["checkpoint", url, "--key", str(private), "--out", str(notary)])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["verify", url, "--checkpoint", str(notary), "--public-key", str(public)])
    assert result.exit_code == 0 and "checkpoints: 1 signed heads match the log (the latest at seq 11)" in result.output

    # A consistent rewrite: another history of the same length, every hash and outcome recomputed
    # (alice withdrew 5,000, not 500). The chain alone verifies; the signed head does not match.
    forged = f"sqlite:///{tmp_path}/forged.db"
    write(forged, history(amount="5000"))
    assert runner.invoke(app, ["verify", forged]).exit_code == 0
    result = runner.invoke(app, ["verify", forged, "--checkpoint", str(notary), "--public-key", str(public)])
    assert result.exit_code == 1 and "FAIL seq 11: rewritten" in result.output, result.output

    # Truncation: the last two entries removed (a liquidation, say). The chain still links.
    delete_after(url, 9)
    assert runner.invoke(app, ["verify", url]).exit_code == 0
    result = runner.invoke(app, ["verify", url, "--checkpoint", str(notary), "--public-key", str(public)])
    assert result.exit_code == 1 and "FAIL seq 10: truncated: the log ends at seq 9" in result.output, result.output

    # A checkpoint signed with another key, or altered, is refused.
    other_private, other_public = tmp_path / "other.pem", tmp_path / "other.pub"
    runner.invoke(app, ["checkpoint-key", str(other_private), str(other_public)])
    result = runner.invoke(app, ["verify", url, "--checkpoint", str(notary), "--public-key", str(other_public)])
    assert result.exit_code == 1 and "signed by key" in result.output
    line = json.loads(notary.read_text())
    notary.write_text(json.dumps({**line, "seq": 9}) + "\n")
    result = runner.invoke(app, ["verify", url, "--checkpoint", str(notary), "--public-key", str(public)])
    assert result.exit_code == 1 and "signature does not verify" in result.output


def test_the_service_refuses_a_broken_chain_until_an_operator_recovers_it(tmp_path):
    url = f"sqlite:///{tmp_path}/log.db"
    write(url, history())
    with CommandLog(url) as log, log.db.begin() as connection:
        connection.execute(commands_table.update().where(commands_table.c.seq == 8)
                           .values(payload=log.entry(8).payload.replace('"500"', '"50"')))
    with pytest.raises(LogMismatch) as refused:
        DurableEngine(url)
    assert refused.value.seq == 8 and "hash chain broken" in refused.value.message
    result = runner.invoke(app, ["recover", url, "--keep-through", "7", "--export", str(tmp_path / "removed.jsonl")])
    assert result.exit_code == 1 and "add --yes" in result.output  # nothing done without confirmation
    result = runner.invoke(app, ["recover", url, "--keep-through", "7", "--export", str(tmp_path / "removed.jsonl"),
                                 "--yes"])
    assert result.exit_code == 0 and "removed 4 entries" in result.output, result.output
    assert len((tmp_path / "removed.jsonl").read_text().splitlines()) == 4
    durable = DurableEngine(url)
    assert durable.seq == 7
    durable.close()
    assert verify_log(CommandLog(url)).entries == 7


def test_replay_refuses_reordered_entries(tmp_path):
    url = f"sqlite:///{tmp_path}/log.db"
    write(url, history())
    with CommandLog(url) as log:
        a, b = log.entry(9), log.entry(10)
        with log.db.begin() as connection:  # swap two entries' contents, each keeping the other's seq
            for seq, entry in ((9, b), (10, a)):
                connection.execute(commands_table.update().where(commands_table.c.seq == seq).values(
                    recorded_at=entry.recorded_at, kind=entry.kind, payload=entry.payload, prev_hash=entry.prev_hash,
                    command_hash=entry.command_hash, outcome=entry.outcome, hash=entry.hash))
        with pytest.raises(LogMismatch) as refused:
            replay_log(log)
        assert refused.value.seq == 9


class Exploit:
    """What a pickle can do: run anything at load time."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


def test_a_malicious_snapshot_runs_nothing_and_is_refused(tmp_path):
    url = f"sqlite:///{tmp_path}/log.db"
    write(url, history(), snapshot_every=5)
    marker = tmp_path / "pwned"
    with CommandLog(url) as log, log.db.begin() as connection:
        connection.execute(snapshots_table.update().where(snapshots_table.c.seq == 10).values(
            format="pickle-5/solvent-0.1.0", state=pickle.dumps(Exploit(str(marker)))))
    with pytest.warns(RuntimeWarning, match="not used"):
        durable = DurableEngine(url)
    assert not marker.exists() and durable.restored_from is None and durable.seq == 11
    durable.close()
    # A JSON snapshot naming anything but solvent's classes is refused as data, before any use.
    state = json.loads(dump_engine(durable.engine))
    for evil in ({"$o": "os:system", "a": []}, {"$o": "builtins:eval", "a": []},
                 {"$o": "solvent.cli.main:serve", "a": []}, {"$e": "subprocess:Popen", "v": "ls"}):
        forged = {**state, "a": {**state["a"], "extra": evil}}
        with pytest.raises(SnapshotRefused):
            load_engine(json.dumps(forged).encode(), FORMAT)
    # A snapshot with another state (its digest recomputed by the forger) loads as data, but verify,
    # which never loads it, finds that its digest is not the replayed state's.
    engine = load_engine(dump_engine(durable.engine))
    engine.ledger.accounts["alice"].balances["USDT"] += 10 ** 12
    from solvent.store.snapshots import state_digest

    with CommandLog(url) as log, log.db.begin() as connection:
        connection.execute(snapshots_table.update().where(snapshots_table.c.seq == 10).values(
            format=FORMAT, state=dump_engine(engine), digest=state_digest(engine)))
    with pytest.raises(LogMismatch, match="is not the snapshot's"):
        verify_log(CommandLog(url))


# tests/fixtures/log_v1_poison.sqlite was written by the code before issue 14 (commit c57bbee) running
# this script with the database URL as its argument; the last submit raised decimal.Overflow there.
OLD_LOG = """
import sys
from solvent.engine import commands as c
from solvent.store import DurableEngine
durable = DurableEngine(sys.argv[1], snapshot_every=4)
for command in [c.CreateVenue("bn", "binance"), c.OpenAccount("alice", "bn"), c.OpenAccount("bob", "bn"),
                c.Deposit("alice", "USDT", "10000"), c.Deposit("bob", "USDT", "10000"),
                c.UpdateOracle("bn", {"BTCUSDT": "60000"}, 1),
                c.ApplyFill("bn", "BTCUSDT", "alice", "bob", "0.1", "60000", buyer_margin_mode="isolated",
                            buyer_leverage="10"),
                c.UpdateOracle("bn", {"BTCUSDT": "59000"}, 2),
                c.SetIsolatedLeverage("bn", "alice", "BTCUSDT", "1E-999999999")]:
    try:
        durable.submit(command)
    except Exception as error:
        print(type(error).__name__)
"""


def test_a_log_written_by_the_previous_version_starts_and_verifies(tmp_path):
    """Written by the code before issue 14 (pickled snapshots, digest version 1) with the poison
    request of the issue left pending: the new code records it as refused, starts and verifies."""
    shutil.copy(FIXTURES / "log_v1_poison.sqlite", tmp_path / "old.db")
    url = f"sqlite:///{tmp_path}/old.db"
    with CommandLog(url) as log:
        assert log.last().pending and log.last().seq == 9
        assert {fmt for fmt, _ in log.snapshot_digests().values()} != {FORMAT}
    with pytest.warns(RuntimeWarning):  # the pickle is not loaded: the log is replayed
        durable = DurableEngine(url)
    assert durable.completed == [9]
    durable.close()
    with CommandLog(url) as log:
        assert log.entry(9).rejection["field"] == "leverage"
        report = verify_log(log)
    assert report.entries == 9 and report.snapshots_of_other_versions == [4, 8]
