"""Vectorized screening of a whole book, with an exact re-check at the thresholds."""

from .book import ColumnarBook
from .screen import ScreenResult, Screener

__all__ = ["ColumnarBook", "ScreenResult", "Screener"]
