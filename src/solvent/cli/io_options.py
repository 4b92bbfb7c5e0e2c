"""The command line's doors to the user's world: ``--book``, ``--prices``, ``--params``, ``--out``.

Shared by ``simulate``, ``sweep`` and ``compare``: the options are declared here once and the
files are read (and validated) in the main process before any run starts, so a bad row is said
once, naming its row and column, and never from inside a worker. Formats: docs/your-data.md.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import typer

from ..core.errors import InvalidInput

BOOK = typer.Option(None, "--book", help="Your positions: CSV, Parquet or JSON, one row per position "
                    "(account, market, side, size|notional, entry_price, margin_mode, leverage[, isolated_margin, "
                    "collateral]) or ccxt fetch_positions records with an account. See docs/your-data.md.")
SYNTHETIC_SHARE = typer.Option(0.0, "--synthetic-share", min=0.0, max=0.99,
                               help="With --book: synthetic traders beside your book, as this share of all accounts.")
PRICES = typer.Option([], "--prices", help="OHLCV candles (ccxt columns timestamp ms, open, high, low, close, volume, "
                      "symbol) in place of the scenario: FILE, or ASSET=FILE per symbol (repeat).")
STEP = typer.Option(None, "--step", min=1, help="With --prices: the run's step in seconds (a multiple of the "
                    "candles'); candles are resampled to it. Default: the candles' own step.")
PARAMS = typer.Option(None, "--params", help="A TOML file of [run] settings, [preset] overrides and a [sweep] grid.")
OUT = typer.Option(None, "--out", help="Write every event, liquidation, per-step series (or per-path metrics) and "
                   "metrics.json into this directory.")
FORMAT = typer.Option("parquet", "--format", help="Tables written by --out: parquet or csv.")


@dataclass(frozen=True)
class World:
    """What the user brought, read and validated."""

    book: Any = None
    prices: Any = None
    params: Any = None
    synthetic_share: float = 0.0

    def apply(self, config: Any) -> Any:
        """A SimConfig with the user's book, prices and parameters in it."""
        if self.params is not None:
            from ..sim.params import configured

            config = configured(config, self.params)
        if self.book is not None:
            config = replace(config, book=self.book, synthetic_share=self.synthetic_share)
        if self.prices is not None:
            config = replace(config, prices=self.prices, scenario=self.prices.source)
        return config

    @property
    def grid(self) -> dict[str, list[str]]:
        return dict(self.params.grid) if self.params is not None else {}


def read_world(book: Path | None, prices: list[str], step: int | None, params: Path | None,
               synthetic_share: float = 0.0) -> World:
    """Read every file the user named (raises InvalidInput naming the file, row and column)."""
    from ..sim.books import load_book
    from ..sim.params import load_params
    from ..sim.prices import load_prices

    if synthetic_share and book is None:
        raise InvalidInput("synthetic_share", "mixes a synthetic crowd into --book: give a book")
    loaded_prices = None
    if prices:
        per_asset = [spec for spec in prices if "=" in spec]
        if per_asset and len(per_asset) != len(prices):
            raise InvalidInput("prices", "give one file with a symbol column, or ASSET=FILE for every file")
        if per_asset:
            files = {}
            for spec in per_asset:
                asset, _, path = spec.partition("=")
                files[asset.strip()] = path.strip()
            loaded_prices = load_prices(files, step)
        elif len(prices) == 1:
            loaded_prices = load_prices(prices[0], step)
        else:
            raise InvalidInput("prices", "several files: name each one's asset, as BTC=btc.csv ETH=eth.csv")
    elif step is not None:
        raise InvalidInput("step", "resamples the candles of --prices: give them")
    return World(book=None if book is None else load_book(book), prices=loaded_prices,
                 params=None if params is None else load_params(params), synthetic_share=synthetic_share)


def check_format(format: str) -> str:
    from ..sim.export import FORMATS

    if format not in FORMATS:
        raise InvalidInput("format", f"expected parquet or csv, got {format!r}")
    return format
