"""The notebook face of the simulator: your book, prices and parameters in, DataFrames out.

``solvent.simulate(...)`` runs one path and returns its events, liquidations and per-step series
as pandas DataFrames with its metrics; ``solvent.sweep(...)`` and ``solvent.compare(...)`` return
one row per Monte Carlo path (parameters, seed and every metric). They take what the command line
takes, with files or in-memory tables: a book as a path, a DataFrame or a loaded
:class:`~solvent.sim.books.PerpBook`; prices as a path, ``{asset: path}``, a DataFrame of candles
or a :class:`~solvent.sim.prices.PriceHistory`; parameters as a TOML path or the same tables as a
dict. Guide: docs/your-data.md.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .core.errors import InvalidInput


@dataclass
class Results:
    """One run: ``metrics`` (a dict), ``events``, ``liquidations`` and ``series`` (DataFrames), and
    ``run`` (the :class:`~solvent.sim.run.RunResult` behind them)."""

    metrics: dict[str, Any]
    events: Any
    liquidations: Any
    series: Any
    run: Any

    def write(self, directory: str | Path, format: str = "parquet") -> list[Path]:
        """The files ``solvent simulate --out`` writes."""
        from .sim.export import write_run

        return write_run(self.run, directory, format)


def _book(book: Any) -> Any:
    from .sim.books import PerpBook, book_from_columns, load_book
    from .sim.tables import cell_text

    if book is None or isinstance(book, PerpBook):
        return book
    if isinstance(book, (str, Path)):
        return load_book(book)
    if hasattr(book, "to_dict") and hasattr(book, "columns"):  # a pandas DataFrame
        return book_from_columns({str(name): [cell_text(value) for value in book[name].tolist()]
                                  for name in book.columns}, "book")
    if isinstance(book, Sequence):  # ccxt fetch_positions records (dicts) with an account
        names: dict[str, None] = {}
        for record in book:
            names.update(dict.fromkeys(record))
        return book_from_columns({name: [cell_text(record.get(name)) for record in book] for name in names}, "book")
    raise InvalidInput("book", f"expected a path, a DataFrame, records or a PerpBook, got {type(book).__name__}")


def _prices(prices: Any, step: int | None) -> Any:
    from .sim.prices import PriceHistory, load_prices

    if prices is None:
        return None
    if isinstance(prices, PriceHistory):
        return prices.resampled(step) if step else prices
    if hasattr(prices, "to_parquet"):  # a DataFrame of candles: through a temporary Parquet file
        import tempfile

        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "prices.parquet"
            prices.to_parquet(path)
            return load_prices(path, step)
    return load_prices(prices, step)


def _params(params: Any) -> Any:
    from .sim.params import Params, load_params, params_from_data

    if params is None or isinstance(params, Params):
        return params
    if isinstance(params, Mapping):
        return params_from_data(params)
    return load_params(params)


def _config(book: Any, prices: Any, params: Any, step: int | None, synthetic_share: float, settings: dict) -> Any:
    from .sim.params import configured
    from .sim.run import SimConfig

    try:
        config = SimConfig(**settings)
    except TypeError as error:
        raise InvalidInput("settings", str(error)) from None
    loaded_params = _params(params)
    if loaded_params is not None:
        config = configured(config, loaded_params)
    loaded_book = _book(book)
    if loaded_book is not None:
        config = replace(config, book=loaded_book, synthetic_share=synthetic_share)
    history = _prices(prices, step)
    if history is not None:
        config = replace(config, prices=history, scenario=history.source)
    return config, loaded_params


def simulate(book: Any = None, prices: Any = None, *, params: Any = None, step: int | None = None,
             synthetic_share: float = 0.0, **settings: Any) -> Results:
    """One run. ``settings`` are :class:`~solvent.sim.run.SimConfig` fields (``preset``,
    ``scenario``, ``seed``, ``accounts``, ``insurance_fund``, ``overrides``, ...)."""
    from .sim.export import events_table, liquidations_table, metrics_document, series_table
    from .sim.run import run

    config, _ = _config(book, prices, params, step, synthetic_share, settings)
    result = run(config, keep_events=True)
    return Results(metrics_document(result), events_table(result).to_pandas(),
                   liquidations_table(result).to_pandas(), series_table(result).to_pandas(), result)


def sweep(grid: Mapping[str, Sequence[Any]] | None = None, paths: int = 8, book: Any = None, prices: Any = None, *,
          params: Any = None, step: int | None = None, synthetic_share: float = 0.0, executor: str = "local",
          workers: int | None = None, **settings: Any) -> Any:
    """Monte Carlo over a grid (``{"insurance_fund": [0, 2_000_000], "execution.fee": [0, 0.01]}``,
    merged over a params file's ``[sweep]``): a DataFrame of one row per grid point and path."""
    from .sim.export import paths_table
    from .sim.sweep import executor_for, parse_grid, path_seeds
    from .sim.sweep import sweep as run_sweep

    config, loaded = _config(book, prices, params, step, synthetic_share, settings)
    specs = [f"{name}={','.join(str(value) for value in values)}" for name, values in (grid or {}).items()]
    combined = {**(loaded.grid if loaded is not None else {}), **parse_grid(specs)}
    points = run_sweep(config, combined, paths, executor_for(executor, workers))
    return paths_table(points, path_seeds(config.seed, paths)).to_pandas()


def compare(presets: Sequence[str], paths: int = 4, book: Any = None, prices: Any = None, *, params: Any = None,
            step: int | None = None, synthetic_share: float = 0.0, executor: str = "local", workers: int | None = None,
            **settings: Any) -> Any:
    """The same prices, book and seeds under each preset: a DataFrame of one row per preset and path."""
    from .sim.export import paths_table
    from .sim.sweep import compare as run_compare
    from .sim.sweep import executor_for, path_seeds

    config, _ = _config(book, prices, params, step, synthetic_share, settings)
    table = run_compare(config, list(presets), paths, executor_for(executor, workers))
    return paths_table(list(table.values()), path_seeds(config.seed, paths)).to_pandas()
