"""``value``: a frozen dataclass that is cheap to build.

A frozen dataclass's generated ``__init__`` sets each field through ``object.__setattr__`` (its
own ``__setattr__`` refuses), about 0.15 µs a field. The engine builds several such values for
every account it looks at and every event it emits, and a liquidation cascade makes hundreds of
thousands of them, so that cost shows. ``value`` gives the class an ``__init__`` with the same
signature that fills the instance's ``__dict__`` in one call instead. Everything else is the
dataclass's own: assignment still raises ``FrozenInstanceError``, and equality, hashing,
``repr``, ``asdict`` and ``replace`` are unchanged.

A class whose ``__init__`` does more than set its fields in order (``__post_init__``,
``InitVar`` or keyword-only fields, default factories, ``__slots__``) keeps the generated one.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import MISSING, dataclass, fields
from typing import Any, TypeVar, dataclass_transform

T = TypeVar("T")

_DEFAULTS = "__value_defaults__"


@dataclass_transform(frozen_default=True)
def value(cls: type[T]) -> type[T]:
    """``@dataclass(frozen=True)``, with a faster ``__init__`` where it is safe (see module doc)."""
    cls = dataclass(frozen=True)(cls)
    fast = _fast_init(cls)
    if fast is not None:
        cls.__init__ = fast  # type: ignore[method-assign]
    return cls


def _fast_init(cls: type) -> Callable[..., None] | None:
    if hasattr(cls, "__post_init__") or "__slots__" in cls.__dict__:
        return None
    declared = fields(cls)
    if any(f.default_factory is not MISSING for f in declared):
        return None
    parameters = list(inspect.signature(cls.__init__).parameters.values())[1:]  # type: ignore[misc]  # without self
    names = [f.name for f in declared]
    if [p.name for p in parameters] != names or any(p.kind is not p.POSITIONAL_OR_KEYWORD for p in parameters):
        return None  # an InitVar, a keyword-only or an excluded field: not a plain field-by-field init
    defaults = {p.name: p.default for p in parameters if p.default is not p.empty}
    signature = ", ".join(["self"] + [f"{name}={_DEFAULTS}[{name!r}]" if name in defaults else name for name in names])
    body = f"self.__dict__.update({', '.join(f'{name}={name}' for name in names)})" if names else "pass"
    namespace: dict[str, Any] = {_DEFAULTS: defaults}
    exec(f"def __init__({signature}):\n    {body}\n", namespace)  # as dataclasses builds its own methods
    init = namespace["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__module__ = cls.__module__
    return init
