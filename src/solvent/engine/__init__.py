"""The deterministic engine: commands in, events out.

``Engine.apply(command) -> list[Event]``. The engine reads no clock, file, socket or random
generator: time, prices, fills and random draws arrive as command fields, so the same commands
always give the same events (replay, audit and simulation depend on it).
"""

from . import (  # noqa: F401 - register UpdateSourceQuotes, UpdateRiskParam
    lending,
    pricing,
    steward,
)
from .commands import (
    AdvanceTime,
    ApplyFill,
    Command,
    CreateBackstop,
    CreateMarket,
    CreateVenue,
    Deposit,
    FundInsurance,
    OpenAccount,
    SetParams,
    UpdateOracle,
    Withdraw,
)
from .engine import CommandRejected, Engine
from .events import Event

__all__ = [
    "AdvanceTime", "ApplyFill", "Command", "CommandRejected", "CreateBackstop", "CreateMarket", "CreateVenue", "Deposit",
    "Engine", "Event", "FundInsurance", "OpenAccount", "SetParams", "UpdateOracle", "Withdraw",
]
