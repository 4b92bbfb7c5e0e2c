"""What ``verify`` checks of an options venue's liquidations (used by :mod:`solvent.store.audit`).

The replay already recomputes every event, so the recorded equity and maintenance requirement are the
model's; here each ``liquidation_started`` of an options venue must also say why: equity below the
maintenance requirement (an MM surplus below zero). Those events are then taken out of the list the
perpetual trigger check matches against its pipeline."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from .venue import registry


def split_option_liquidations(seq: int, engine: Any, events: list[dict[str, Any]], mismatch: type[Exception]
                              ) -> list[dict[str, Any]]:
    venues = registry(engine)
    kept = []
    for event in events:
        if event.get("kind") == "liquidation_started" and event.get("venue") in venues:
            if Decimal(event["equity"]) > Decimal(event["maintenance_margin"]):  # float rounding may tie them
                raise mismatch(seq, f"liquidation of {event['account']} on {event['venue']}: equity "
                                    f"{event['equity']} is not below the maintenance requirement "
                                    f"{event['maintenance_margin']}")
            continue
        kept.append(event)
    return kept
