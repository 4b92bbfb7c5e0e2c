"""Errors raised by solvent. Every error about input names the field that was wrong."""

from __future__ import annotations


def _rebuilt(kind: type[SolventError], args: tuple, state: dict) -> SolventError:
    """An error as it was pickled, without calling its ``__init__`` (whose parameters differ)."""
    error = kind.__new__(kind)
    error.args = args
    error.__dict__.update(state)
    return error


class SolventError(Exception):
    """Base class of every error solvent raises on purpose.

    Every subclass pickles (``__reduce__``), whatever its ``__init__`` takes: an error raised in
    a process-pool or Ray worker reaches the caller as itself, so the CLI can print its message
    instead of the pool's traceback.
    """

    def __reduce__(self):
        return _rebuilt, (type(self), self.args, dict(self.__dict__))


class InvalidInput(SolventError, ValueError):
    """A value given to solvent is malformed or out of range.

    ``field`` is the dotted path of the offending field (``positions[1].size``) so that a
    caller, a CLI or an API can point at it.
    """

    def __init__(self, field: str, message: str):
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")


class UnknownName(SolventError, KeyError):
    """A reference to something that does not exist (market, account, asset, preset)."""

    def __init__(self, kind: str, name: object, known: list[str] | None = None):
        self.kind = kind
        self.name = name
        hint = f" (known: {', '.join(sorted(known))})" if known else ""
        super().__init__(f"unknown {kind} {name!r}{hint}")

    def __str__(self) -> str:  # KeyError would otherwise repr() the message
        return str(self.args[0])


class InsufficientFunds(SolventError):
    """An operation would take more of an asset than an account holds."""
