"""solvent: a shared margin and liquidation engine for leveraged crypto derivatives and lending.

The package is layered so that the architecture shows in the imports:

- ``solvent.core``: domain values, exact numbers, the ledger, oracles (no I/O);
- ``solvent.policies``: margin models and liquidation-price rules, the parts of a preset;
- ``solvent.presets``: venue presets as data files (TOML, sources cited) and their loader;
- ``solvent.screening``: vectorized screening of a whole book with an exact re-check;
- ``solvent.conformance``: the runner of the venues' published numbers;
- ``solvent.bench`` and ``solvent.cli``: the edges.
"""

__version__ = "0.2.0"

# The notebook API (solvent.api), imported on first use so that `import solvent` stays light:
# solvent.simulate(...), solvent.sweep(...), solvent.compare(...) return pandas DataFrames.
_API = ("simulate", "sweep", "compare", "Results")


def __getattr__(name: str):
    if name in _API:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'solvent' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_API])
