"""The options family in the engine: option markets on a venue, vol surfaces, fills, expiry and
cash settlement, margin by the preset's model, margin calls, and Derive's Dutch auction with the
security module and socialized loss behind it.

- :mod:`.commands` / :mod:`.events` — the family's verbs and what happened;
- :mod:`.venue` — an options venue's state and each account's margin;
- :mod:`.liquidation` — margin calls, liquidation, the auction's bids, the loss waterfall;
- :mod:`.handlers` — the engine's handlers (and wrappers of its general verbs).

Design: docs/options-engine.md. Policies: :mod:`solvent.policies.options`.
"""

from .handlers import create_options_venue, options_handlers, options_positions_balance, settle
from .venue import OptionMarket, OptionsVenue, options_venue, registry

__all__ = ["OptionMarket", "OptionsVenue", "create_options_venue", "options_handlers", "options_positions_balance",
           "options_venue", "registry", "settle"]
