"""The deterministic engine: commands in, events out.

``Engine.apply(command) -> list[Event]``. The engine reads no clock, file, socket or random
generator: time, prices, fills and random draws arrive as command fields, so the same commands
always give the same events (replay, audit and simulation depend on it).
"""

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
from . import lending  # noqa: F401,E402 - registers the lending commands for command_from_dict
from . import pricing, steward  # noqa: F401,E402 - register UpdateSourceQuotes, UpdateRiskParam

__all__ = [
    "AdvanceTime", "ApplyFill", "Command", "CommandRejected", "CreateBackstop", "CreateMarket", "CreateVenue", "Deposit",
    "Engine", "Event", "FundInsurance", "OpenAccount", "SetParams", "UpdateOracle", "Withdraw",
]
