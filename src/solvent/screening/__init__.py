"""Vectorized screening of a whole book, with an exact re-check at the thresholds."""

from .book import ColumnarBook
from .screen import Screener, ScreenResult

__all__ = ["ColumnarBook", "ScreenResult", "Screener"]
