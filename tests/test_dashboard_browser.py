"""The risk dashboard and Swagger UI in a real headless browser: Playwright driving Debian's
chromium (``apt-get install -y chromium``; skipped when either is missing). A scripted crash
liquidates accounts while the page watches; screenshots go to tests/artifacts/ (gitignored)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx
import pytest

CHROMIUM = "/usr/bin/chromium"
pytest.importorskip("playwright.sync_api")
if not os.path.exists(CHROMIUM):
    pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)", allow_module_level=True)
from playwright.sync_api import expect, sync_playwright

from solvent.bench.serve import free_port, start_server, stop_server

ADMIN = "sk_admin_ui_" + "0123456789abcdef0123456789"  # at least 32 characters
BIG = "100000000"
ARTIFACTS = Path(__file__).parent / "artifacts"
TRADERS = [(f"t{index:02d}", str(700 + 60 * index)) for index in range(12)]  # collateral for 0.5 BTC long


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    db = f"sqlite:///{tmp_path_factory.mktemp('ui')}/ui.db"
    port = free_port()
    process = start_server(db, ADMIN, port)
    base = f"http://127.0.0.1:{port}"
    with httpx.Client(base_url=base, headers=auth(ADMIN), timeout=10) as client:
        setup = [{"kind": "create_venue", "venue": "bn", "preset": "binance", "overrides": {}},
                 {"kind": "fund_insurance", "asset": "USDT", "amount": "250000", "venue": "bn"},
                 {"kind": "deposit", "account": "bn/book", "asset": "USDT", "amount": BIG},
                 {"kind": "deposit", "account": "bn/liquidator", "asset": "USDT", "amount": BIG},
                 {"kind": "open_account", "account": "mm", "venue": "bn"},
                 {"kind": "deposit", "account": "mm", "asset": "USDT", "amount": BIG},
                 {"kind": "update_oracle", "venue": "bn", "prices": {"BTCUSDT": "60000"}, "timestamp": 1}]
        for name, collateral in TRADERS:
            setup += [{"kind": "open_account", "account": name, "venue": "bn"},
                      {"kind": "deposit", "account": name, "asset": "USDT", "amount": collateral},
                      {"kind": "apply_fill", "venue": "bn", "market": "BTCUSDT", "buyer": name, "seller": "mm",
                       "size": "0.5", "price": "60000"}]
        assert client.post("/v1/commands", json=setup).status_code == 200
        account_key = client.post("/v1/keys", json={"role": "account", "account": "t00"}).json()["key"]
    try:
        yield base, account_key, db
    finally:
        stop_server(process)


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking"])
        yield launched
        launched.close()


def watch_errors(page) -> list[str]:
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    return errors


def log_in(page, base: str, key: str) -> None:
    page.goto(f"{base}/ui/")
    page.fill("#key", key)
    page.click("#login button[type=submit]")


def test_the_desk_watches_a_crash_liquidate_accounts_in_order(server, browser):
    base, _, db = server
    ARTIFACTS.mkdir(exist_ok=True)
    page = browser.new_page(viewport={"width": 1500, "height": 1000})
    errors = watch_errors(page)
    log_in(page, base, ADMIN)
    venue = page.locator("article.venue[data-venue=bn]")
    expect(venue.locator(".marks tr[data-symbol=BTCUSDT] .mark")).to_have_text("60,000")
    # nearest liquidation first: the thinnest collateral, t00
    expect(venue.locator(".nearest tbody tr").first).to_have_attribute("data-account", "t00")
    expect(venue.locator(".fund")).to_contain_text("250,000 USDT")

    latencies = []
    with httpx.Client(base_url=base, headers=auth(ADMIN), timeout=10) as client:
        for step, price in enumerate(range(59400, 55000, -400)):
            before = page.locator("#tape tbody tr").count()
            started = time.perf_counter()
            response = client.post("/v1/commands", json={"kind": "update_oracle", "venue": "bn",
                                                          "prices": {"BTCUSDT": str(price)}, "timestamp": 2 + step})
            committed = time.perf_counter()
            assert response.status_code == 200
            tape_events = [event for event in response.json()["events"] if event["kind"] == "position_liquidated"]
            if tape_events:
                page.wait_for_function(f"document.querySelectorAll('#tape tbody tr').length > {before}")
                latencies.append((time.perf_counter() - committed, committed - started))
    expect(venue.locator(".marks tr[data-symbol=BTCUSDT] .mark")).to_have_text("55,400")

    from solvent.store import CommandLog

    with CommandLog(db) as log:
        liquidated = [(entry.seq, event["account"]) for entry in log.entries(1) for event in entry.events
                      if event["kind"] == "position_liquidated"]
    assert len(liquidated) >= 6
    rows = page.locator("#tape tbody tr[data-kind=position_liquidated]")
    expect(rows).to_have_count(len(liquidated))
    on_screen = [(int(row.get_attribute("data-seq")), row.get_attribute("data-account")) for row in rows.all()]
    assert on_screen == liquidated[::-1]  # newest on top, in the log's order
    assert page.locator("#tape tbody tr[data-kind=margin_call_issued]").count() + \
        page.locator("#tape tbody tr[data-kind=liquidation_started]").count() >= len(liquidated)
    page.screenshot(path=str(ARTIFACTS / "dashboard-crash.png"), full_page=True)
    worst = max(latency for latency, _ in latencies)
    print(f"\ncommit -> row on screen: max {worst * 1000:.0f} ms over {len(latencies)} liquidating updates")
    assert worst < 2.0
    assert errors == []


def test_the_tape_resumes_after_its_last_seq_when_the_stream_drops(server, browser):
    base, _, _ = server
    page = browser.new_page()
    errors = watch_errors(page)
    log_in(page, base, ADMIN)
    expect(page.locator("#status")).to_contain_text("live")
    head = httpx.get(f"{base}/v1/health", headers=auth(ADMIN)).json()["seq"]  # seq only with a key
    page.wait_for_function(f"window.solventDesk.lastSeq >= {head}")
    before = page.evaluate("document.querySelectorAll('#tape tbody tr').length")
    page.evaluate("window.solventDesk.ws.close()")  # a dropped connection: onclose reconnects
    expect(page.locator("#status")).to_contain_text("live", timeout=10_000)
    with httpx.Client(base_url=base, headers=auth(ADMIN), timeout=10) as client:
        response = client.post("/v1/commands", json={"kind": "update_oracle", "venue": "bn",
                                                      "prices": {"BTCUSDT": "55400"}, "timestamp": 100})
        assert response.status_code == 200
        seq = response.json()["seq"]
    page.wait_for_function(f"window.solventDesk.lastSeq >= {seq}")
    after = page.evaluate("document.querySelectorAll('#tape tbody tr').length")
    assert after == before  # nothing replayed twice after the reconnect
    assert errors == []


def test_an_account_key_sees_its_own_account_only(server, browser):
    base, account_key, _ = server
    page = browser.new_page(viewport={"width": 1500, "height": 900})
    errors = watch_errors(page)
    log_in(page, base, account_key)
    venue = page.locator("article.venue[data-venue=bn]")
    expect(venue.locator(".nearest tbody tr").first).to_have_attribute("data-account", "t00")
    page.wait_for_function("window.solventDesk.lastSeq > 0")
    accounts = {row.get_attribute("data-account") for row in page.locator("tr[data-account]").all()}
    assert accounts == {"t00"}
    page.screenshot(path=str(ARTIFACTS / "dashboard-account-key.png"), full_page=True)
    assert errors == []


def test_a_wrong_key_is_refused(server, browser):
    base, _, _ = server
    page = browser.new_page()
    log_in(page, base, "sk_nobody")
    expect(page.locator("#login-error")).to_have_text("unknown API key")
    expect(page.locator("#desk")).to_be_hidden()


def test_swagger_ui_renders_offline_with_an_authorize_button(server, browser):
    base, _, _ = server
    context = browser.new_context()
    outside: list[str] = []

    def only_local(route):
        if route.request.url.startswith(base):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    context.route("**/*", only_local)
    page = context.new_page()
    errors = watch_errors(page)
    page.goto(f"{base}/docs")
    expect(page.locator(".swagger-ui .btn.authorize")).to_be_visible(timeout=15_000)
    expect(page.locator(".swagger-ui .opblock-summary-path", has_text="/v1/commands").first).to_be_visible()
    page.screenshot(path=str(ARTIFACTS / "swagger-offline.png"))
    page.click(".swagger-ui .btn.authorize")
    expect(page.locator(".swagger-ui .auth-container").first).to_be_visible()  # the bearer key form
    assert outside == [] and errors == []
    page.goto(f"{base}/redoc")
    expect(page.locator("h1", has_text="solvent")).to_be_visible(timeout=15_000)
    # ReDoc's own bundle links its "API docs by Redocly" logo from its CDN: blocked, nothing else
    assert all(url.startswith("https://cdn.redoc.ly/") for url in outside)
    context.close()
