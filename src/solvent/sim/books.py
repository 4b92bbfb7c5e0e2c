"""A user's book of perpetual positions: loaded from a file, validated, turned into engine commands.

One row per position, columns ``account, market, side, size, entry_price, margin_mode, leverage``
and optionally ``isolated_margin``, ``collateral`` (the account's deposit, on one of its rows or
repeated identically) and ``notional`` (instead of ``size``). ccxt's ``fetch_positions`` records
(``symbol``, ``contracts``, ``entryPrice``, ``marginMode``, ``leverage``, ``collateral``,
``notional``), with an ``account`` added, are read too. Everything is checked before anything is
used: a bad value is refused naming its row (counted from 1, header excluded) and column.

How the book enters the engine (:func:`book_commands`): accounts holding one cross position go in
bulk through ``OpenPositions`` (the path the synthetic population takes); the others open,
deposit and take each position by ``ApplyFill`` from the simulator's market maker. An account's
deposit is its ``collateral`` when given, else the margin its positions were opened with (entry
notional / leverage, plus any isolated margin beyond that). Its equity at the opening is that
deposit plus the PnL from entry to the scenario's opening price.

Design and formats: docs/your-data.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_HALF_EVEN, Decimal, InvalidOperation
from pathlib import Path

from ..core.errors import InvalidInput, SolventError
from ..engine import commands as c
from .tables import Columns, Problems, read_columns, row_count

REQUIRED = ("account", "market", "side", "entry_price")
KNOWN = set(REQUIRED) | {"size", "notional", "margin_mode", "leverage", "isolated_margin", "collateral"}
CCXT_NAMES = {"symbol": "market", "contracts": "size", "entryPrice": "entry_price", "marginMode": "margin_mode",
              "isolatedMargin": "isolated_margin"}
SIDES = {"long": 1, "buy": 1, "short": -1, "sell": -1}
RESERVED_ACCOUNTS = ("maker",)  # the simulator's own market maker
SYNTHETIC_PREFIX = "synthetic-"


@dataclass(frozen=True, eq=False)
class PerpBook:
    """A validated book: one entry per position, in file order (``rows`` are the file's row numbers)."""

    source: str
    rows: tuple[int, ...]
    account: tuple[str, ...]
    market: tuple[str, ...]  # as written in the file
    side: tuple[int, ...]  # +1 long, −1 short
    size: tuple[Decimal | None, ...]  # contracts, or None when the row gives a notional
    notional: tuple[Decimal | None, ...]  # quote currency (USD)
    entry_price: tuple[Decimal, ...]
    isolated: tuple[bool, ...]
    leverage: tuple[Decimal | None, ...]
    isolated_margin: tuple[Decimal | None, ...]
    collateral: tuple[tuple[str, Decimal], ...]  # (account, deposit) where the file gives one
    position_collateral: tuple[Decimal | None, ...] = ()  # ccxt's per-position collateral of a cross row

    def __len__(self) -> int:
        return len(self.rows)

    def __repr__(self) -> str:  # a 100,000-row book prints as its name, not its rows
        return f"PerpBook({self.source!r}, {len(self):,} positions, {len(self.accounts):,} accounts)"

    __str__ = __repr__

    @property
    def accounts(self) -> list[str]:
        """The book's accounts in the order they first appear."""
        return list(dict.fromkeys(self.account))


def load_book(path: str | Path) -> PerpBook:
    """Read and validate a book file (CSV, Parquet or JSON); nothing is kept unless all of it is good.

    A JSON file may also be a snapshot of a running solvent service: the account objects of
    ``GET /v1/accounts/{account}`` (one, or a list of them)."""
    path = Path(path)
    if path.suffix.lower() == ".json" and path.is_file():
        import json

        try:
            data = json.loads(path.read_text())
        except (ValueError, UnicodeDecodeError) as error:
            raise InvalidInput("book", f"{path} is not JSON: {error}") from None
        accounts = data if isinstance(data, list) else [data]
        if accounts and all(isinstance(item, dict) and "positions" in item and "balances" in item for item in accounts):
            return book_from_columns(_service_columns(accounts), path.name)
    return book_from_columns(read_columns(path, "book", records_key="positions"), path.name)


def _service_columns(accounts: list[dict]) -> Columns:
    """The accounts of a solvent service's snapshot as book columns: each position a row; the
    account's collateral (once) its wallet balance in the settle asset plus the margin of its
    isolated positions; an isolated position's own pool collateral its isolated margin."""
    from .tables import cell_text

    names = ("account", "market", "side", "size", "entry_price", "margin_mode", "isolated_margin", "collateral")
    columns: Columns = {name: [] for name in names}
    for item in accounts:
        given: set[str] = set()
        wallet: dict[str, Decimal] = {}  # the deposit: the wallet and what it moved into isolated positions
        for position in item.get("positions", []):
            settle = str(position.get("settle", ""))
            if settle not in wallet:
                wallet[settle] = _decimal(cell_text(item.get("balances", {}).get(settle, "0"))) or Decimal(0)
            if str(position.get("marginMode")) == "isolated":
                wallet[settle] += _decimal(cell_text(position.get("collateral"))) or Decimal(0)
        for position in item.get("positions", []):
            mode = str(position.get("marginMode") or "cross")
            settle = str(position.get("settle", ""))
            first = item.get("account") not in given
            given.add(str(item.get("account")))
            row = {"account": cell_text(item.get("account")), "market": cell_text(position.get("symbol")),
                   "side": cell_text(position.get("side")), "size": cell_text(position.get("contracts")),
                   "entry_price": cell_text(position.get("entryPrice")), "margin_mode": mode,
                   "isolated_margin": cell_text(position.get("collateral")) if mode == "isolated" else "",
                   "collateral": str(wallet.get(settle, Decimal(0))) if first else ""}
            for name in names:
                columns[name].append(row[name])
    return columns


def _decimal(text: str) -> Decimal | None:
    try:
        value = Decimal(text)
    except InvalidOperation:
        return None
    return value if value.is_finite() else None


def book_from_columns(columns: Columns, source: str = "book") -> PerpBook:
    """Validate a table of positions (``{column: [text, ...]}``) into a :class:`PerpBook`."""
    ccxt = "contracts" in columns or "entryPrice" in columns
    table = {CCXT_NAMES.get(name, name): values for name, values in columns.items()}
    problems = Problems(source)
    if ccxt and "collateral" in table:  # ccxt's collateral is the position's margin, not the account's deposit
        table["position_collateral"] = table.pop("collateral")
    missing = [name for name in REQUIRED if name not in table]
    if "size" not in table and "notional" not in table:
        missing.append("size (or notional)")
    if missing:
        raise InvalidInput(f"{source}.columns", f"missing {', '.join(missing)} (has: {', '.join(columns) or 'none'})")
    count = row_count(columns)
    if count == 0:
        raise InvalidInput(source, "the book has no rows")
    empty = [""] * count
    get = lambda name: table.get(name, empty)
    accounts, markets, sides, sizes, notionals, entries, isolated, leverages, margins, extras = ([] for _ in range(10))
    deposits: dict[str, tuple[int, Decimal]] = {}
    seen: set[tuple[str, str]] = set()
    for index in range(count):
        row = index + 1
        account = get("account")[index]
        if not account:
            problems.add(row, "account", "missing")
        elif "/" in account or account in RESERVED_ACCOUNTS or account.startswith(SYNTHETIC_PREFIX):
            problems.add(row, "account", f"{account!r}: account ids must not contain '/', be 'maker' or start with "
                                         f"{SYNTHETIC_PREFIX!r}")
        market = get("market")[index]
        if not market:
            problems.add(row, "market", "missing")
        side = SIDES.get(get("side")[index].lower())
        if side is None:
            problems.add(row, "side", f"{get('side')[index]!r} is not long, short, buy or sell")
        size_text, notional_text = get("size")[index], get("notional")[index]
        size = _decimal(size_text) if size_text else None
        notional = _decimal(notional_text) if notional_text else None
        if size_text and (size is None or size <= 0):
            problems.add(row, "size", f"{size_text!r} is not a positive number")
        elif not size_text and (notional is None or notional <= 0):
            problems.add(row, "notional" if notional_text or "notional" in table else "size",
                         f"{notional_text!r} is not a positive number" if notional_text else "give size or notional")
        if size is not None:
            notional = None  # the size decides; a notional beside it (ccxt gives both) is informative
        entry_text = get("entry_price")[index]
        entry = _decimal(entry_text)
        if entry is None or entry <= 0:
            problems.add(row, "entry_price", f"{entry_text!r} is not a positive price")
        mode = (get("margin_mode")[index] or "cross").lower()
        if mode not in ("cross", "isolated"):
            problems.add(row, "margin_mode", f"{mode!r} is not cross or isolated")
        leverage_text = get("leverage")[index]
        leverage = _decimal(leverage_text) if leverage_text else None
        if leverage_text and (leverage is None or leverage <= 0):
            problems.add(row, "leverage", f"{leverage_text!r} is not a positive number")
        margin_text = get("isolated_margin")[index]
        margin = _decimal(margin_text) if margin_text else None
        if margin_text and (margin is None or margin < 0):
            problems.add(row, "isolated_margin", f"{margin_text!r} is not a non-negative amount")
        position_text = get("position_collateral")[index]
        position_collateral = _decimal(position_text) if position_text else None
        if position_text and (position_collateral is None or position_collateral < 0):
            problems.add(row, "collateral", f"{position_text!r} is not a non-negative amount")
        if mode == "isolated" and margin is None and position_collateral is not None:
            margin, position_collateral = position_collateral, None  # ccxt: an isolated position's own margin
        if mode == "cross" and margin is not None:
            problems.add(row, "isolated_margin", "given for a cross position")
        collateral_text = get("collateral")[index]
        if collateral_text:
            collateral = _decimal(collateral_text)
            if collateral is None or collateral < 0:
                problems.add(row, "collateral", f"{collateral_text!r} is not a non-negative amount")
            elif account in deposits and deposits[account][1] != collateral:
                problems.add(row, "collateral", f"{collateral_text} differs from {deposits[account][1]} given for "
                                                f"{account!r} on row {deposits[account][0]}: once per account")
            else:
                deposits.setdefault(account, (row, collateral))
        key = (account, market)
        if account and market and key in seen:  # one position per account and market (one-way mode)
            problems.add(row, "market", f"{account!r} already holds a position on {market}")
        seen.add(key)
        accounts.append(account)
        markets.append(market)
        sides.append(side or 0)
        sizes.append(size)
        notionals.append(notional)
        entries.append(entry or Decimal(0))
        isolated.append(mode == "isolated")
        leverages.append(leverage)
        margins.append(margin)
        extras.append(position_collateral)
    for index in range(count):  # the deposit must be derivable for every account
        account = accounts[index]
        if account in deposits or margins[index] is not None or leverages[index] is not None \
                or extras[index] is not None:
            continue
        problems.add(index + 1, "leverage", f"needed: {account!r} has no collateral (nor isolated_margin) to "
                                            "derive its deposit from")
    problems.raise_if_any()
    return PerpBook(source, tuple(range(1, count + 1)), tuple(accounts), tuple(markets), tuple(sides), tuple(sizes),
                    tuple(notionals), tuple(entries), tuple(isolated), tuple(leverages), tuple(margins),
                    tuple((account, amount) for account, (_, amount) in deposits.items()), tuple(extras))


# ------------------------------------------------------------------ into the engine


def _resolve_market(text: str, markets: dict[str, str], aliases: Mapping[str, tuple[str, ...]]) -> str | None:
    """The scenario asset a book's market names: the preset's symbol (``BTCUSDT``), its base
    (``BTC``), a ccxt unified symbol (``BTC/USDC:USDC``) or another venue's symbol of the same
    coin (``BTCUSDT`` on a preset that lists ``BTC``), by its base."""
    from .prices import asset_of_symbol

    for asset, symbol in markets.items():
        if text == symbol:
            return asset
    base = asset_of_symbol(text)  # BTC/USDC:USDC, BTCUSDT, BTC-PERP: another venue's name of the same coin
    for asset in markets:
        if base in aliases.get(asset, (asset,)):
            return asset
    return None


def synthetic_accounts(book_accounts: int, share: float) -> int:
    """How many synthetic traders make them ``share`` of all the accounts next to a book's."""
    if not 0.0 <= share < 1.0:
        raise InvalidInput("synthetic_share", f"{share} must be within [0, 1)")
    return int(round(book_accounts * share / (1.0 - share)))


def book_commands(book: PerpBook, preset, markets: dict[str, str], venue: str, maker: str,
                  aliases: Mapping[str, tuple[str, ...]]) -> list[c.Command]:
    """The commands that open every account and position of ``book`` on ``venue`` (whose oracle
    already has the opening prices), each position taken from ``maker``. Refuses a row naming it
    (unknown market, a size finer than the market's lot) before returning any command."""
    problems = Problems(book.source)
    specs = preset.markets
    assets = preset.assets
    resolved: list[str] = []
    sizes: list[Decimal] = []
    margins: list[Decimal] = []  # settle asset: the margin each position was opened with
    held: dict[tuple[str, str], int] = {}  # (account, symbol) → the row that opened it
    assets_of = {text: _resolve_market(text, markets, aliases) for text in set(book.market)}  # once per spelling
    for index in range(len(book)):
        row = book.rows[index]
        asset = assets_of[book.market[index]]
        if asset is None:
            problems.add(row, "market", f"{book.market[index]!r} is none of the run's markets "
                                        f"({', '.join(f'{a} = {s}' for a, s in markets.items())})")
            resolved.append("")
            sizes.append(Decimal(0))
            margins.append(Decimal(0))
            continue
        symbol = markets[asset]
        spec = specs[symbol]
        linear = spec.kind.value == "linear"
        entry = book.entry_price[index]
        size = book.size[index]
        if size is None:  # from the notional (USD), to the nearest lot, at least one
            notional = book.notional[index]
            assert notional is not None
            contracts = notional / spec.contract_size / (entry if linear else 1)
            lots = max(int(contracts.scaleb(spec.size_decimals).to_integral_value(ROUND_HALF_EVEN)), 1)
            size = Decimal(lots).scaleb(-spec.size_decimals)
        elif size.scaleb(spec.size_decimals) != size.scaleb(spec.size_decimals).to_integral_value():
            problems.add(row, "size", f"{size} is finer than {symbol}'s lot of 1e-{spec.size_decimals} contracts")
        settle_value = size * spec.contract_size * (entry if linear else 1 / entry)
        leverage = book.leverage[index]
        isolated_margin = book.isolated_margin[index]
        margin = isolated_margin if book.isolated[index] and isolated_margin is not None \
            else (settle_value / leverage if leverage is not None else Decimal(0))
        position_collateral = book.position_collateral[index] if book.position_collateral else None
        if not book.isolated[index] and position_collateral is not None:
            margin = position_collateral
        if (book.account[index], symbol) in held:
            problems.add(row, "market", f"{book.account[index]!r} already holds a position on {symbol} "
                                        f"(row {held[book.account[index], symbol]})")
        held.setdefault((book.account[index], symbol), row)
        resolved.append(symbol)
        sizes.append(size)
        margins.append(margin)
    problems.raise_if_any()

    deposit_of = dict(book.collateral)
    counts: dict[str, int] = {}
    for index, account in enumerate(book.account):
        counts[account] = counts.get(account, 0) + 1
    needed: dict[str, Decimal] = {}
    for index, account in enumerate(book.account):
        needed[account] = needed.get(account, Decimal(0)) + margins[index]

    def amount(account: str, symbol: str) -> str:
        decimals = assets[specs[symbol].settle].decimals if specs[symbol].settle in assets else 8
        value = deposit_of.get(account, needed[account])
        return str(value.quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_CEILING))

    bulk: dict[str, list[int]] = {}
    single: list[int] = []
    for index, account in enumerate(book.account):
        if counts[account] == 1 and not book.isolated[index]:
            bulk.setdefault(resolved[index], []).append(index)
        else:
            single.append(index)
    commands: list[c.Command] = []
    for symbol, rows in bulk.items():
        commands.append(c.OpenPositions(
            venue, symbol, maker, tuple(book.account[i] for i in rows), tuple(amount(book.account[i], symbol) for i in rows),
            tuple(str(sizes[i] * book.side[i]) for i in rows), tuple(str(book.entry_price[i]) for i in rows)))
    opened: set[str] = set()
    for index in single:
        account, symbol = book.account[index], resolved[index]
        if account not in opened:
            opened.add(account)
            commands += [c.OpenAccount(account, venue), c.Deposit(account, specs[symbol].settle, amount(account, symbol))]
        mode = "isolated" if book.isolated[index] else "cross"
        leverage = book.leverage[index]
        if book.isolated[index] and leverage is None:
            isolated_margin = book.isolated_margin[index]
            assert isolated_margin is not None
            value = sizes[index] * specs[symbol].contract_size * (book.entry_price[index] if specs[symbol].kind.value ==
                                                                 "linear" else 1 / book.entry_price[index])
            leverage = (value / isolated_margin).quantize(Decimal("0.01")) if isolated_margin > 0 else None
        lev = None if leverage is None or not book.isolated[index] else str(leverage)
        long = book.side[index] > 0
        commands.append(c.ApplyFill(
            venue, symbol, buyer=account if long else maker, seller=maker if long else account, size=str(sizes[index]),
            price=str(book.entry_price[index]), buyer_margin_mode=mode if long else "cross",
            seller_margin_mode="cross" if long else mode, buyer_leverage=lev if long else None,
            seller_leverage=None if long else lev))
    return commands


def apply_setup(engine, commands: list[c.Command], book: PerpBook | None, log: list | None = None) -> None:
    """Apply a run's setup commands; a refusal of a book's command names the account and its row.
    With ``log``, their events are appended to it as step −1, time 0."""
    setup: list = []
    if log is not None:
        log.append((-1, 0, setup))
    if book is None:
        for command in commands:
            events = engine.apply(command)
            if log is not None:
                setup += events
        return
    first_rows: dict[str, int] = {}
    for row, account in zip(book.rows, book.account):
        first_rows.setdefault(account, row)
    for command in commands:
        try:
            setup += engine.apply(command)
        except SolventError as error:
            who = getattr(command, "account", None) or getattr(command, "buyer", None)
            if isinstance(command, c.ApplyFill) and who not in first_rows:
                who = command.seller
            if isinstance(command, c.OpenPositions):  # the ledger names the row within the command
                where = book.source
            else:
                where = f"{book.source}[row {first_rows[who]}]" if who in first_rows else book.source
            raise InvalidInput(where, f"the engine refused {command.kind} for {who or 'the book'}: {error}") from None
