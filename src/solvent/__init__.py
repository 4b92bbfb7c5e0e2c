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
