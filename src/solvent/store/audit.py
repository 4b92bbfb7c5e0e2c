"""Replay and verify a command log.

``replay_log(log)`` rebuilds the engine from the first entry, applying every command decoded from
its stored payload, and checks that each recomputed outcome (events, or the refusal) is the one
recorded, and that the state digest after each snapshotted entry is the snapshot's digest.

``verify_log(log)`` first checks the hash chain over the stored columns (see
:mod:`.canonical`), then replays with these checks added, for every liquidation in the log:

- that the account was liquidatable when it started, re-derived from the state the recorded
  commands produce. Perpetual venues: the liquidation pipeline runs inside the command that
  moved a price, a fill or time, so the check runs at the moment the pipeline opens the
  liquidation: the account is valued afresh (``cross_pool``) and the venue's trigger rule
  (``equity <= MM`` or ``equity < MM``) applied; the equity and maintenance margin the
  ``liquidation_started`` event recorded must be those. Lending venues: liquidations are
  commands, so the borrower is valued by the protocol's own rule (health factor, liquidity, LTV,
  vault safety, ICR) on the state after the entries before it;
- that every fee, fill, fund draw, backstop draw, ADL, socialized loss and bad-debt amount is
  recomputed identically from the recorded inputs (the outcome comparison), and that value is
  conserved (the ledger's and every lending venue's accounting) after each entry with one.

Both stop at the first mismatch with :class:`LogMismatch`, which names the entry's ``seq``.
Neither loads a snapshot: they compare digests only.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from ..core.errors import SolventError
from ..engine import Engine
from .canonical import GENESIS, canonical, command_hash, entry_hash
from .durable import outcome_of
from .log import CommandLog
from .snapshots import FORMAT, state_digest

PERP_LIQUIDATION_KINDS = (
    "liquidation_started", "position_liquidated", "liquidation_fee_charged", "insurance_fund_drawn",
    "backstop_drawn", "adl_queue_ranked", "position_auto_deleveraged", "loss_socialized", "bad_debt",
    "liquidation_paused", "liquidation_ended", "liquidation_failed")
LENDING_LIQUIDATION_KINDS = (
    "liquidation_called", "absorbed", "liquidated", "auction_started", "auction_taken", "auction_reset",
    "auction_settled", "collateral_bought", "trove_liquidated", "bad_debt_recorded")
LIQUIDATION_KINDS = PERP_LIQUIDATION_KINDS + LENDING_LIQUIDATION_KINDS
# Lending commands that liquidate, and the field naming the account(s) they liquidate.
LENDING_LIQUIDATIONS = {"liquidation_call": "borrower", "absorb": "accounts", "liquidate": "borrower",
                        "bark": "account", "liquidate_trove": "borrower"}


class LogMismatch(SolventError):
    """The log does not check out at entry ``seq``."""

    def __init__(self, seq: int, message: str):
        self.seq = seq
        self.message = message
        super().__init__(f"seq {seq}: {message}")


@dataclass
class ReplayReport:
    entries: int = 0
    first_seq: int | None = None
    last_seq: int = 0
    accepted: int = 0
    rejected: int = 0
    pending: int = 0
    events: int = 0
    liquidation_events: Counter = field(default_factory=Counter)
    snapshots_checked: list[int] = field(default_factory=list)
    # Snapshots another version of solvent took: their digests hash that version's engine state
    # (its bookkeeping fields), so they are not compared; the outcomes still are.
    snapshots_of_other_versions: list[int] = field(default_factory=list)
    final_digest: str = ""
    # verify only
    chain_head: str | None = None
    perp_triggers_checked: int = 0
    lending_triggers_checked: int = 0
    conservation_checked: int = 0
    key_rows_checked: int = 0

    @property
    def liquidations(self) -> int:
        """Liquidations started (perpetual venues) plus liquidating lending commands accepted."""
        return self.perp_liquidations + self.lending_liquidations

    @property
    def perp_liquidations(self) -> int:
        return self.liquidation_events["liquidation_started"]

    @property
    def lending_liquidations(self) -> int:
        counts = self.liquidation_events
        return sum(counts[kind] for kind in ("liquidation_called", "absorbed", "liquidated", "auction_started",
                                             "trove_liquidated"))


# ------------------------------------------------------------------------------------ differences


def describe_difference(recorded: str | None, recomputed: str) -> str:
    """Where a recorded outcome and a recomputed one first differ, in words."""
    if recorded is None:
        return "no recorded outcome"
    try:
        before = json.loads(recorded)
    except ValueError:
        return "the recorded outcome is not JSON"
    after = json.loads(recomputed)
    if "rejected" in before or "rejected" in after:
        def say(outcome):
            if "rejected" in outcome:
                return f"rejected ({outcome['rejected'].get('reason')})"
            return f"accepted with {len(outcome.get('events', []))} events"
        return f"recorded {say(before)}, recomputed {say(after)}"
    old, new = before.get("events", []), after.get("events", [])
    for index, (a, b) in enumerate(zip(old, new)):
        if a != b:
            if a.get("kind") != b.get("kind"):
                return f"event {index + 1}: recorded {a.get('kind')}, recomputed {b.get('kind')}"
            fields = [name for name in sorted(set(a) | set(b)) if a.get(name) != b.get(name)]
            detail = ", ".join(f"{name} recorded {a.get(name)!r} recomputed {b.get(name)!r}" for name in fields)
            return f"event {index + 1} ({a.get('kind')}): {detail}"
    return f"recorded {len(old)} events, recomputed {len(new)}"


# ------------------------------------------------------------------------------------ hash chain


class ChainChecker:
    """Checks entries one by one, in the order read: seq continuity, every link and both hashes.
    Used by :func:`check_chain`, by replay (which so refuses reordered, missing or edited entries)
    and by the service at start."""

    def __init__(self, previous: str = GENESIS, expected: int = 1) -> None:
        """From the start of the log, or (``previous``, ``expected``) from the middle of it: the
        ``prev_hash`` entry ``expected`` must have."""
        self.previous, self.expected = previous, expected
        self.last = None

    def check(self, entry) -> None:
        last = self.last
        if last is not None and last.pending:
            raise LogMismatch(last.seq, "has no outcome but is not the last entry")
        if entry.seq != self.expected:
            if entry.seq < self.expected:
                raise LogMismatch(entry.seq, f"entry {entry.seq} comes after entry {self.expected - 1}: reordered")
            raise LogMismatch(self.expected, f"entry {self.expected} is missing (the next one is {entry.seq})")
        if entry.prev_hash != self.previous:
            raise LogMismatch(entry.seq, f"prev_hash {str(entry.prev_hash)[:12]}… does not link to entry "
                                         f"{entry.seq - 1} ({self.previous[:12]}…)")
        if command_hash(entry.prev_hash, entry.seq, entry.recorded_at, entry.idempotency_key, entry.kind,
                        entry.payload) != entry.command_hash:
            raise LogMismatch(entry.seq, f"hash chain broken: the {entry.kind} command, its timestamp or key was "
                                         "edited after it was recorded (command_hash does not match)")
        if entry.pending:
            if entry.hash is not None:
                raise LogMismatch(entry.seq, "has a hash but no outcome")
        elif entry.hash is None or entry_hash(entry.command_hash, entry.outcome) != entry.hash:
            raise LogMismatch(entry.seq, f"hash chain broken: the recorded outcome of the {entry.kind} command was "
                                         "edited after it was recorded (hash does not match)")
        try:
            payload_kind = json.loads(entry.payload).get("kind")
        except (ValueError, AttributeError, TypeError):
            payload_kind = None
        if payload_kind != entry.kind:
            raise LogMismatch(entry.seq, f"kind column {entry.kind!r} is not the payload's {payload_kind!r}")
        # A complete entry has its hash (checked above), a pending one only its command hash.
        self.previous = entry.hash if entry.hash is not None else entry.command_hash
        self.expected += 1
        self.last = entry

    @property
    def head(self) -> str | None:
        return self.previous if self.last is not None else None


def check_chain(log: CommandLog, report: ReplayReport | None = None) -> ReplayReport:
    """Check seq continuity, every link and both hashes of every entry; the first break raises."""
    report = report or ReplayReport()
    checker = ChainChecker()
    for entry in log.entries():
        checker.check(entry)
    report.chain_head = checker.head
    return report


# ------------------------------------------------------------------------------------ triggers


@dataclass(frozen=True)
class TriggerCheck:
    account: str
    venue: str
    settle: str
    equity: Decimal | None
    maintenance_margin: Decimal | None
    rule: str
    liquidatable: bool


_WATCHERS: dict[int, Callable[[TriggerCheck], None]] = {}
_HOOK_LOCK = threading.Lock()
_HOOK: dict[str, Any] = {}  # "original": the pipeline's own _liquidate while the hook is installed


def _trigger_check(engine: Engine, venue, key) -> TriggerCheck:
    from ..engine.pipeline import cross_pool

    account, settle = key
    pool = cross_pool(engine, account, settle)  # valued afresh, not the pool the pipeline holds
    rule = venue.rules.trigger
    if pool is None or pool.maintenance_margin <= 0:
        return TriggerCheck(account, venue.name, settle, None if pool is None else pool.equity,
                            None if pool is None else pool.maintenance_margin, rule, False)
    equity, mm = pool.equity, pool.maintenance_margin
    liquidatable = equity <= mm if rule == "at_or_below" else equity < mm
    return TriggerCheck(account, venue.name, settle, equity, mm, rule, liquidatable)


@contextmanager
def _watching(engine: Engine, sink: Callable[[TriggerCheck], None]):
    """While verifying, wrap the pipeline's ``_liquidate`` so that verify looks at an account at the
    very moment a liquidation opens (inside the command); engines nobody watches pass straight
    through. The pipeline's own function is put back when the last verification ends."""
    from ..engine import pipeline

    with _HOOK_LOCK:
        if not _WATCHERS:
            original = pipeline._liquidate

            def watched(engine, venue, key, pool):
                sink = _WATCHERS.get(id(engine))
                if sink is not None and key not in engine.liquidating:
                    sink(_trigger_check(engine, venue, key))
                return original(engine, venue, key, pool)

            _HOOK.update(original=original, watched=watched)
            pipeline._liquidate = watched
        _WATCHERS[id(engine)] = sink
    try:
        yield
    finally:
        with _HOOK_LOCK:
            _WATCHERS.pop(id(engine), None)
            if not _WATCHERS and _HOOK:
                if pipeline._liquidate is _HOOK["watched"]:
                    pipeline._liquidate = _HOOK["original"]
                _HOOK.clear()


def _check_perp_triggers(seq: int, events: list[dict], checks: list[TriggerCheck]) -> int:
    """Match each liquidation the pipeline opened with its ``liquidation_started`` event."""
    started = [event for event in events if event.get("kind") == "liquidation_started"]
    failed = {event.get("account"): event.get("error") for event in events if event.get("kind") == "liquidation_failed"}
    position = 0
    for check in checks:
        who = f"liquidation of {check.account} on {check.venue}"
        if not check.liquidatable:
            raise LogMismatch(seq, f"{who}: the account was not liquidatable (equity {check.equity}, maintenance "
                                   f"margin {check.maintenance_margin}, trigger {check.rule})")
        event = started[position] if position < len(started) else None
        if event is None or (event["account"], event["venue"]) != (check.account, check.venue):
            if check.account in failed:
                raise LogMismatch(seq, f"{who} failed inside the engine: {failed[check.account]}")
            raise LogMismatch(seq, f"{who} was opened without its liquidation_started event")
        position += 1
        if (Decimal(event["equity"]), Decimal(event["maintenance_margin"])) != (check.equity,
                                                                                 check.maintenance_margin):
            raise LogMismatch(seq, f"{who}: recorded equity {event['equity']} / maintenance margin "
                                   f"{event['maintenance_margin']}, valued {check.equity} / {check.maintenance_margin}")
    if position != len(started):
        extra = started[position]
        raise LogMismatch(seq, f"liquidation_started of {extra['account']} on {extra['venue']}: the pipeline "
                               "opened no such liquidation")
    return len(checks)


def _lending_valuations(engine: Engine, command) -> list[tuple[str, bool | None, str]]:
    """Before a lending liquidation command: (account, liquidatable?, detail) for each account it
    names, by the protocol's own rule. Judged after the command, only if the engine accepted it."""
    from ..engine.lending import lending_account, lending_venue
    from ..engine.lending_maker import MakerVenue

    accounts = getattr(command, LENDING_LIQUIDATIONS[command.kind])
    accounts = list(accounts) if isinstance(accounts, (list, tuple)) else [accounts]
    valuations = []
    for account in accounts:
        try:
            venue = lending_venue(engine, command.venue)
            state = lending_account(engine, command.venue, account)
            if venue.protocol == "morpho":
                row = state.get("markets", {}).get(command.market, {})
                flag, detail = row.get("liquidatable"), f"LTV {row.get('ltv')}"
            elif venue.protocol == "maker":
                assert isinstance(venue, MakerVenue)  # the maker protocol's venue class
                row = state.get("vaults", {}).get(venue.ilk_name(command.ilk, "ilk"), {})
                flag, detail = row.get("unsafe"), f"collateralization {row.get('collateralization')}"
            else:
                flag = state.get("liquidatable")
                detail = ", ".join(f"{name} {state[name]}" for name in ("health_factor", "liquidity", "health", "icr")
                                   if name in state)
        except SolventError as error:
            flag, detail = None, str(error)
        valuations.append((account, flag, detail or "no valuation"))
    return valuations


def _check_lending_trigger(seq: int, command, valuations: list[tuple[str, bool | None, str]]) -> int:
    for account, flag, detail in valuations:
        if flag is not True:
            raise LogMismatch(seq, f"{command.kind} of {account} on {command.venue}: the account was not "
                                   f"liquidatable ({detail})")
    return len(valuations)


def _check_conservation(seq: int, engine: Engine) -> None:
    from ..engine.lending import all_lending_conservation

    report = engine.conservation()
    if not report.holds:
        raise LogMismatch(seq, "value is not conserved after this entry:\n" + report.describe())
    for name, lending in all_lending_conservation(engine).items():
        if not lending.holds:
            raise LogMismatch(seq, f"lending venue {name} does not balance after this entry:\n" + lending.describe())


# ------------------------------------------------------------------------------------ replay


def replay_log(log: CommandLog, *, verify: bool = False, engine_factory: Callable[[], Engine] = Engine,
               report: ReplayReport | None = None) -> tuple[Engine, ReplayReport]:
    """Rebuild the engine from the whole log, checking the chain as it goes (a reordered, missing
    or edited entry is refused), outcomes and snapshot digests (and, with ``verify``, the
    liquidation checks of the module docstring). Returns the engine and a report. Any failure is
    a :class:`LogMismatch` naming the entry, never another exception."""
    report = report or ReplayReport()
    try:
        return _replay(log, verify, engine_factory, report)
    except (LogMismatch, MemoryError, KeyboardInterrupt):
        raise
    except Exception as error:
        raise LogMismatch(report.last_seq + (0 if report.entries else 1),
                          f"cannot be checked: {type(error).__name__}: {error}") from None


def _replay(log: CommandLog, verify: bool, engine_factory: Callable[[], Engine],
            report: ReplayReport) -> tuple[Engine, ReplayReport]:
    engine = engine_factory()
    digests = log.snapshot_digests()
    checks: list[TriggerCheck] = []
    chain = ChainChecker()
    with _watching(engine, checks.append) if verify else _nothing():
        for entry in log.entries():
            chain.check(entry)  # in order, linked, unedited: a reordered log is refused here
            report.entries += 1
            report.first_seq = entry.seq if report.first_seq is None else report.first_seq
            report.last_seq = entry.seq
            try:
                command = entry.command()
            except (SolventError, ValueError, TypeError) as error:
                raise LogMismatch(entry.seq, f"the payload does not decode: {error}") from None
            lending = verify and command.kind in LENDING_LIQUIDATIONS
            valuations = _lending_valuations(engine, command) if lending else []
            checks.clear()
            try:
                outcome = outcome_of(engine, command)
            except Exception as error:
                raise LogMismatch(entry.seq, f"{entry.kind}: the engine failed on it ({type(error).__name__}: "
                                             f"{error})") from None
            text = canonical(outcome)
            if entry.pending:
                report.pending += 1
            elif text != entry.outcome:
                raise LogMismatch(entry.seq, f"{entry.kind}: the recorded outcome is not what the commands give: "
                                             + describe_difference(entry.outcome, text))
            if "rejected" in outcome:
                report.rejected += 1
            else:
                report.accepted += 1
                events = outcome["events"]
                report.events += len(events)
                liquidating = [event["kind"] for event in events if event["kind"] in LIQUIDATION_KINDS]
                report.liquidation_events.update(liquidating)
                if verify:
                    from ..engine.options.audit import split_option_liquidations

                    events = split_option_liquidations(entry.seq, engine, events, LogMismatch)
                    report.perp_triggers_checked += _check_perp_triggers(entry.seq, events, checks)
                    if lending:
                        report.lending_triggers_checked += _check_lending_trigger(entry.seq, command, valuations)
                    if liquidating:
                        _check_conservation(entry.seq, engine)
                        report.conservation_checked += 1
            if entry.seq in digests:
                taken_by, recorded = digests[entry.seq]
                if taken_by != FORMAT:
                    report.snapshots_of_other_versions.append(entry.seq)
                    continue
                digest = state_digest(engine)
                if digest != recorded:
                    raise LogMismatch(entry.seq, f"the state rebuilt from the log (digest {digest[:12]}…) is not the "
                                                 f"snapshot's (digest {recorded[:12]}…)")
                report.snapshots_checked.append(entry.seq)
    orphans = sorted(set(digests) - set(report.snapshots_checked) - set(report.snapshots_of_other_versions))
    if orphans:
        raise LogMismatch(orphans[0], "a snapshot was taken at an entry the log does not hold")
    report.final_digest = state_digest(engine)
    return engine, report


@contextmanager
def _nothing():
    yield


def verify_log(log: CommandLog, *, engine_factory: Callable[[], Engine] = Engine) -> ReplayReport:
    """The hash chain first (naming the first broken entry), then the replay with every check,
    then the service's key table against the keys the log registered (:func:`check_key_rows`)."""
    report = check_chain(log)
    engine, report = replay_log(log, verify=True, engine_factory=engine_factory, report=report)
    report.key_rows_checked = check_key_rows(log, engine)
    return report


def check_key_rows(log: CommandLog, engine: Engine) -> int:
    """Every row of the service's ``api_keys`` table (if the database has one) is a key the log
    registered, with the same role and scope: a row inserted by hand is reported (seq 0: it is
    no entry of the log). Returns how many rows were checked."""
    import sqlalchemy as sa

    if not sa.inspect(log.db).has_table("api_keys"):
        return 0
    table = sa.Table("api_keys", sa.MetaData(), autoload_with=log.db)
    with log.db.connect() as connection:
        rows = connection.execute(sa.select(table.c.key_hash, table.c.role, table.c.account, table.c.venue)).all()
    for row in rows:
        registered = engine.api_keys.get(row.key_hash)
        if registered is None:
            raise LogMismatch(0, f"api_keys: the {row.role} key {row.key_hash[:16]} is in the table but no "
                                 "register_key command of the log put it there (inserted by hand?)")
        if registered != (row.role, row.account, row.venue):
            raise LogMismatch(0, f"api_keys: the key {row.key_hash[:16]} is {row.role} in the table but "
                                 f"{registered[0]} in the log")
    return len(rows)
