"""Venue presets: data files (TOML) with their sources, and the loader that turns them into policies.

A preset names a venue's margin model, its liquidation-price conventions, its mark and oracle
rules, its collateral haircuts and its markets. Adding a venue that recombines existing parts is
one new ``.toml`` file here (or anywhere, by path); a user's own design is an existing preset with
overrides (:meth:`Preset.with_overrides`).
"""

from .loader import Preset, list_presets, load_preset

__all__ = ["Preset", "list_presets", "load_preset"]
