"""What an operator runs the service with: ``/metrics``, ``/v1/ready``, the API docs from local
assets (with an Authorize button), and the bus publisher. :func:`install` wires them into an app
built by :func:`solvent.service.create_app`."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.staticfiles import StaticFiles

from ..store.schema import sqlite_file
from .metrics import ServiceMetrics

if TYPE_CHECKING:
    from .app import Service, ServiceAPI

SECURITY_SCHEMES = {
    "bearer": {"type": "http", "scheme": "bearer", "description": "Authorization: Bearer <API key>"},
    "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
}


class Operations:
    """The operational side of one app: its metrics, readiness, and (with ``publish``) publisher."""

    def __init__(self, service: Service, publish: str | None = None, *, stream: str = "SOLVENT",
                 subject: str = "solvent.events") -> None:
        self.service = service
        self.metrics = ServiceMetrics(service)
        service.observer = self.metrics.observe
        self.publisher = None
        if publish:
            from .bus import Publisher

            self.publisher = Publisher(service, publish, stream=stream, subject=subject,
                                       on_published=self._published)
        path = sqlite_file(service.log.url)
        self._sqlite = path
        self._inode = os.stat(path).st_ino if path is not None and os.path.exists(path) else None

    def _published(self, seq: int) -> None:
        self.metrics.published_seq = seq

    def start(self) -> None:
        if self.publisher is not None:
            self.publisher.start()

    def stop(self) -> None:
        if self.publisher is not None:
            self.publisher.stop()

    # ------------------------------------------------------------ readiness

    def check_database(self) -> str | None:
        """None when the log's database answers (and, for SQLite, is still the file that was
        opened: a deleted or replaced file would take writes nowhere durable); else why not."""
        if self._sqlite is not None:
            try:
                inode = os.stat(self._sqlite).st_ino
            except OSError:
                return f"the database file {self._sqlite} is gone"
            if self._inode is not None and inode != self._inode:
                return f"the database file {self._sqlite} was replaced"
        import sqlalchemy as sa

        try:
            with self.service.log.db.connect() as connection:
                connection.execute(sa.text("SELECT max(seq) FROM commands")).scalar()
        except Exception as error:
            return f"the database does not answer: {type(error).__name__}"
        return None

    def check_writer(self) -> str | None:
        service = self.service
        if service._closing:
            return "the service is stopping"
        for thread in (service._committer, service._writer):
            if thread is not None and not thread.is_alive():
                return f"the {thread.name} thread has stopped"
        return None

    async def ready(self) -> tuple[int, dict[str, Any]]:
        started = time.perf_counter()
        database = await run_in_threadpool(self.check_database)
        writer = self.check_writer()
        checks = {"database": database or "ok", "writer": writer or "ok"}
        if self.publisher is not None:
            checks["bus"] = "ok" if self.publisher.published is not None else "not connected"
        ok = database is None and writer is None
        return (200 if ok else 503), {"status": "ready" if ok else "not ready", "checks": checks,
                                      "seq": self.service.durable.seq,
                                      "ms": round((time.perf_counter() - started) * 1000, 3)}


def install(app: ServiceAPI, service: Service, *, publish: str | None = None, stream: str = "SOLVENT",
            subject: str = "solvent.events") -> Operations:
    """Add /metrics, /v1/ready and the local API docs to ``app``; returns the Operations (start
    and stop it with the app)."""
    from .app import authenticate
    from .validation import EdgeError

    ops = Operations(service, publish, stream=stream, subject=subject)
    app.state.ops = ops

    @app.get("/metrics", tags=["service"], include_in_schema=True,
             summary="Prometheus metrics (an admin or operator key)")
    async def metrics(request: Request) -> Response:
        who = await authenticate(service, request.headers)
        if who.role not in ("admin", "operator"):
            raise EdgeError(403, "Authorization", "an admin or operator key is required")
        body, media_type = await run_in_threadpool(ops.metrics.render)
        return Response(content=body, media_type=media_type)

    @app.get("/v1/ready", tags=["service"], summary="Readiness: the database answers and the writer runs")
    async def ready() -> JSONResponse:
        status, body = await ops.ready()
        return JSONResponse(status_code=status, content=body)

    _local_docs(app)
    from .dashboard import install as install_dashboard

    install_dashboard(app, service)
    return ops


def _assets() -> str:
    """The directory of Swagger UI 5 and ReDoc 2's files shipped by the ``fastapi-offline`` package
    (only its files are used: the routes are ours). Swagger UI 4 (the ``swagger-ui-bundle``
    package) cannot read FastAPI's OpenAPI 3.1 document."""
    import fastapi_offline

    return str(Path(fastapi_offline.__file__).with_name("static"))


def _local_docs(app: ServiceAPI) -> None:
    """Swagger UI (/docs) and ReDoc (/redoc) from local files (no CDN), with the API's security
    schemes so that Swagger's Authorize button sends the key."""
    app.router.routes = [route for route in app.router.routes
                         if getattr(route, "path", None) not in ("/docs", "/redoc", "/docs/oauth2-redirect")]
    app.mount("/docs/assets", StaticFiles(directory=_assets()), name="docs-assets")
    base_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = base_openapi()
            schema.setdefault("components", {})["securitySchemes"] = SECURITY_SCHEMES
            schema["security"] = [{"bearer": []}, {"apiKey": []}]
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    openapi_url = app.openapi_url or "/openapi.json"

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url=openapi_url, title=f"{app.title} - API",
                                   swagger_js_url="/docs/assets/swagger-ui-bundle.js",
                                   swagger_css_url="/docs/assets/swagger-ui.css",
                                   swagger_favicon_url="/docs/assets/favicon.png",
                                   oauth2_redirect_url="/docs/oauth2-redirect",
                                   swagger_ui_parameters={"persistAuthorization": True})

    @app.get("/docs/oauth2-redirect", include_in_schema=False)
    async def oauth2_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(openapi_url=openapi_url, title=f"{app.title} - API",
                              redoc_js_url="/docs/assets/redoc.standalone.js",
                              redoc_favicon_url="/docs/assets/favicon.png", with_google_fonts=False)
