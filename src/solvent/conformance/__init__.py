"""The conformance runner: venues' own published numbers, reproduced through the presets."""

from .runner import CaseResult, run_paths

__all__ = ["CaseResult", "run_paths"]
