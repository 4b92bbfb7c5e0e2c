"""The risk dashboard: static files at ``/ui`` (``service/ui/``: plain HTML, CSS and JavaScript, no
build step, no CDN) and the one read it needs beyond the existing API, ``GET /v1/risk/{venue}``:
the venue's marks and funds and its accounts nearest liquidation.

The page itself is public (it is only code); everything it shows comes from the API with the key
the user enters, under the same roles: an account key sees its own account only."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse
from starlette.staticfiles import StaticFiles

from .validation import EdgeError, venue_exists
from .views import account_view, venue_view

if TYPE_CHECKING:
    from .app import Service, ServiceAPI

UI = Path(__file__).with_name("ui")
MAX_NEAREST = 100


def _distance(position: dict[str, Any]) -> Decimal | None:
    """How far the mark must move to the liquidation price, as a fraction of the mark."""
    try:
        mark, liquidation = Decimal(position["markPrice"]), Decimal(position["liquidationPrice"])
    except (TypeError, ValueError, ArithmeticError, KeyError):
        return None
    if mark <= 0:
        return None
    return abs(mark - liquidation) / mark


def risk(service: Service, venue: str, account: str | None, limit: int) -> dict[str, Any]:
    """The venue's view and its ``limit`` accounts nearest liquidation (highest margin ratio, i.e.
    maintenance over equity; equity at or below zero first), or only ``account``."""
    with service.lock:
        service.durable.settle()
        engine = service.durable.engine
        if not venue_exists(engine, venue):
            raise EdgeError(404, "venue", f"unknown venue {venue!r}")
        view = venue_view(engine, venue)
        if venue in engine.venues:
            names = sorted(engine.venues[venue].accounts) if account is None else [account]
        else:
            names = [] if account is None else [account]
        accounts = [account_view(engine, name) for name in names if name in engine.ledger.accounts]
    rows = []
    for item in accounts:
        ratios = [Decimal(pool["marginRatio"]) for pool in item["pools"] if pool["marginRatio"] is not None]
        underwater = any(pool["marginRatio"] is None and pool["maintenanceMargin"] not in (None, "0")
                         for pool in item["pools"])
        positions = [{**position, "distance": None if _distance(position) is None else str(_distance(position))}
                     for position in item["positions"] if position["venue"] == venue]
        if not positions and account is None:
            continue
        ratio = max(ratios) if ratios else None
        rows.append({"account": item["account"], "marginRatio": None if ratio is None else str(ratio),
                     "underwater": underwater, "equity": sum((Decimal(pool["equity"]) for pool in item["pools"]),
                                                             Decimal(0)).__str__(),
                     "positions": positions})
    rows.sort(key=lambda row: (not row["underwater"], -Decimal(row["marginRatio"] or 0), row["account"]))
    return {"venue": venue, "view": view, "accounts": len(rows), "nearest": rows[:limit]}


def install(app: ServiceAPI, service: Service) -> None:
    from .app import authenticate
    from .keys import Principal

    async def principal(request: Request) -> Principal:
        return await authenticate(service, request.headers)

    @app.get("/v1/risk/{venue}", tags=["reads"],
             summary="A venue's marks and funds and its accounts nearest liquidation (an account key: its own)")
    async def read_risk(venue: str, limit: int = 20, who: Principal = Depends(principal)) -> dict[str, Any]:
        if not 1 <= limit <= MAX_NEAREST:
            raise EdgeError(422, "limit", f"1 to {MAX_NEAREST}")
        account = who.account if who.role == "account" else None
        if who.role == "operator" and who.venue is not None and who.venue != venue:
            raise EdgeError(403, "venue", f"this operator key reads venue {who.venue!r} only")
        return await run_in_threadpool(risk, service, venue, account, limit)

    @app.get("/v1/me", tags=["reads"], summary="The role of the key, its account or venue (and the account's venue)")
    async def me(who: Principal = Depends(principal)) -> dict[str, Any]:
        home = None
        if who.account is not None:
            with service.lock:
                home = service.durable.engine.home_venue.get(who.account)
        return {"role": who.role, "account": who.account, "venue": who.venue or home}

    @app.get("/ui", include_in_schema=False)
    async def ui_root() -> RedirectResponse:
        return RedirectResponse("/ui/")

    app.mount("/ui", StaticFiles(directory=str(UI), html=True), name="ui")
