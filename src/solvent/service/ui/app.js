// solvent risk desk: plain JavaScript, no build step. Fed by the WebSocket stream (resuming from the
// last seq seen after a reconnect), with the venue panels re-read from /v1/risk/{venue} at most
// every REFRESH_MS while events arrive. The tape is appended row by row (at most TAPE_ROWS kept).
"use strict";

const TAPE_KINDS = ["margin_call_issued", "liquidation_started", "position_liquidated", "insurance_fund_drawn",
  "backstop_drawn", "position_auto_deleveraged", "loss_socialized", "bad_debt", "bad_debt_recorded", "liquidated",
  "absorbed", "auction_started", "auction_taken", "trove_liquidated"];
const WATCH_KINDS = ["venue_created", "account_opened", "oracle_price_updated", ...TAPE_KINDS];
const TAPE_ROWS = 500;
const REFRESH_MS = 500;
const FUND_POINTS = 200;

const state = { key: null, me: null, ws: null, lastSeq: 0, lastIndex: -1, venues: new Map(), retry: null,
  received: 0 };
const $ = (selector, root = document) => root.querySelector(selector);

function setStatus(text, mode) {
  const status = $("#status");
  status.textContent = text;
  status.dataset.state = mode;
}

async function api(path) {
  const response = await fetch(path, { headers: { Authorization: `Bearer ${state.key}` } });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw Object.assign(new Error(body.error || response.statusText), { status: response.status });
  return body;
}

function cell(row, text, title) {
  const td = row.insertCell();
  td.textContent = text == null ? "" : String(text);
  if (title) td.title = title;
  return td;
}

function fmt(value, digits = 2) {
  if (value == null || value === "") return "–";
  const number = Number(value);
  if (!Number.isFinite(number)) return String(value);
  return number.toLocaleString("en-US", { maximumFractionDigits: digits });
}

// ---------------------------------------------------------------- venues

function venuePanel(name) {
  let venue = state.venues.get(name);
  if (venue) return venue;
  const node = $("#venue-template").content.firstElementChild.cloneNode(true);
  node.dataset.venue = name;
  $(".venue-name", node).textContent = name;
  $("#venues").appendChild(node);
  venue = { name, node, timer: null, loading: false, dirty: false, fund: [] };
  state.venues.set(name, venue);
  refresh(venue);
  return venue;
}

function touch(name) {
  const venue = venuePanel(name);
  if (venue.timer || venue.loading) { venue.dirty = true; return; }
  venue.timer = setTimeout(() => { venue.timer = null; refresh(venue); }, REFRESH_MS);
}

async function refresh(venue) {
  venue.loading = true;
  venue.dirty = false;
  try {
    render(venue, await api(`/v1/risk/${encodeURIComponent(venue.name)}?limit=15`));
  } catch (error) {
    if (error.status === 401) return logout("the key was revoked");
    $(".count", venue.node).textContent = `(${error.message})`;
  } finally {
    venue.loading = false;
    if (venue.dirty) touch(venue.name);
  }
}

function balances(map) {
  const entries = Object.entries(map || {});
  return entries.length ? entries.map(([asset, amount]) => `${fmt(amount)} ${asset}`).join(" · ") : "0";
}

function render(venue, risk) {
  const node = venue.node;
  const view = risk.view || {};
  const marks = $(".marks tbody", node);
  marks.replaceChildren();
  for (const [symbol, market] of Object.entries(view.markets || {})) {
    const row = marks.insertRow();
    row.dataset.symbol = symbol;
    cell(row, symbol);
    cell(row, fmt(market.markPrice, 4)).className = "mark";
  }
  $(".fund", node).textContent = balances(view.insuranceFund);
  const total = Object.values(view.insuranceFund || {}).reduce((sum, value) => sum + Number(value), 0);
  venue.fund.push(total);
  if (venue.fund.length > FUND_POINTS) venue.fund.shift();
  drawFund(node, venue.fund);
  $(".backstop", node).textContent = view.backstop ? `${view.backstop.name}: ${balances(view.backstop.balance)}`
    : "none";
  $(".count", node).textContent = `(${risk.nearest.length} of ${risk.accounts} accounts with positions)`;
  const body = $(".nearest tbody", node);
  body.replaceChildren();
  for (const account of risk.nearest) {
    const positions = account.positions.length ? account.positions : [null];
    positions.forEach((position, index) => {
      const row = body.insertRow();
      row.dataset.account = account.account;
      if (account.underwater) row.classList.add("underwater");
      else if (Number(account.marginRatio) >= 0.8) row.classList.add("danger");
      cell(row, index ? "" : account.account);
      cell(row, index ? "" : (account.underwater ? "underwater" : `${fmt(Number(account.marginRatio) * 100)}%`));
      cell(row, index ? "" : fmt(account.equity));
      cell(row, position ? `${position.side} ${fmt(position.contracts, 6)} ${position.symbol}` : "no position");
      cell(row, position ? fmt(position.markPrice, 4) : "");
      cell(row, position ? fmt(position.liquidationPrice, 4) : "");
      cell(row, position && position.distance != null ? `${fmt(Number(position.distance) * 100)}%` : "–");
    });
  }
}

function drawFund(node, points) {
  const line = $(".fund-chart polyline", node);
  if (points.length < 2) { line.setAttribute("points", ""); return; }
  const low = Math.min(...points), high = Math.max(...points), span = high - low || 1;
  line.setAttribute("points", points.map((value, index) =>
    `${(index / (points.length - 1)) * 200},${38 - ((value - low) / span) * 36}`).join(" "));
}

// ---------------------------------------------------------------- tape

function tape(seq, event) {
  const body = $("#tape tbody");
  const row = body.insertRow(0);
  row.className = `k-${event.kind}`;
  row.dataset.seq = seq;
  row.dataset.kind = event.kind;
  if (event.account) row.dataset.account = event.account;
  cell(row, seq);
  cell(row, event.kind.replaceAll("_", " "));
  cell(row, event.venue || event.backstop || "");
  cell(row, event.account || "");
  cell(row, event.market || "");
  cell(row, event.size != null ? fmt(event.size, 6) : "");
  cell(row, event.price != null ? fmt(event.price, 4) : fmt(event.amount ?? event.margin_ratio ?? null));
  while (body.rows.length > TAPE_ROWS) body.deleteRow(body.rows.length - 1);
}

// ---------------------------------------------------------------- stream

function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const from = Math.max(state.lastSeq, 1);
  const url = `${scheme}://${location.host}/v1/stream?from_seq=${from}&kinds=${WATCH_KINDS.join(",")}` +
    `&key=${encodeURIComponent(state.key)}`;
  const ws = new WebSocket(url);
  state.ws = ws;
  setStatus("connecting", "connecting");
  ws.onopen = () => setStatus(`live · seq ${state.lastSeq}`, "live");
  ws.onmessage = (message) => {
    const { seq, index, event } = JSON.parse(message.data);
    if (seq < state.lastSeq || (seq === state.lastSeq && index <= state.lastIndex)) return;  // seen before the reconnect
    state.lastSeq = seq;
    state.lastIndex = index;
    state.received += 1;
    if (event.venue && state.me.role !== "account") touch(event.venue);
    else if (state.me.role === "account" && state.me.venue) touch(state.me.venue);
    if (TAPE_KINDS.includes(event.kind)) tape(seq, event);
    setStatus(`live · seq ${seq}`, "live");
  };
  ws.onclose = (close) => {
    if (state.ws !== ws) return;
    state.ws = null;
    if (close.code === 4401) return logout("unknown or revoked key");
    setStatus(`reconnecting after seq ${state.lastSeq}`, "offline");
    state.retry = setTimeout(connect, 1000);
  };
}

async function login(key) {
  state.key = key;
  try {
    state.me = await api("/v1/me");
  } catch (error) {
    state.key = null;
    $("#login-error").textContent = error.status === 401 ? "unknown API key" : error.message;
    setStatus("refused", "refused");
    return;
  }
  sessionStorage.setItem("solvent-key", key);
  $("#login").hidden = true;
  $("#desk").hidden = false;
  $("#logout").hidden = false;
  $("#login-error").textContent = "";
  if (state.me.venue) venuePanel(state.me.venue);
  connect();
}

function logout(reason) {
  sessionStorage.removeItem("solvent-key");
  clearTimeout(state.retry);
  const ws = state.ws;
  state.ws = null;
  if (ws) ws.close();
  for (const venue of state.venues.values()) clearTimeout(venue.timer);
  state.venues.clear();
  Object.assign(state, { key: null, me: null, lastSeq: 0, lastIndex: -1 });
  $("#venues").replaceChildren();
  $("#tape tbody").replaceChildren();
  $("#desk").hidden = true;
  $("#logout").hidden = true;
  $("#login").hidden = false;
  $("#login-error").textContent = reason || "";
  setStatus("offline", "offline");
}

$("#login").addEventListener("submit", (event) => {
  event.preventDefault();
  login($("#key").value.trim());
});
$("#logout").addEventListener("click", () => logout());
window.solventDesk = state;  // for tests and the curious: lastSeq, received
const saved = sessionStorage.getItem("solvent-key");
if (saved) login(saved);
