"""``solvent.core.values.value``: a frozen dataclass with a faster ``__init__``, and nothing else changed."""

from __future__ import annotations

import dataclasses
import pickle
from dataclasses import InitVar, field
from typing import ClassVar

import pytest

from solvent.core.values import value


@value
class Point:
    kind: ClassVar[str] = "point"
    x: int
    y: int = 0
    label: str | None = None


@value
class Tagged(Point):
    tag: str = "t"


def test_builds_like_the_dataclass_it_is():
    assert Point(1) == Point(x=1, y=0, label=None)
    assert Point(1, 2, "a") == Point(label="a", y=2, x=1)
    assert repr(Point(1, 2)) == "Point(x=1, y=2, label=None)"
    assert hash(Point(1, 2)) == hash(Point(1, 2)) and Point(1, 2) != Point(2, 1)
    assert dataclasses.asdict(Tagged(1, tag="u")) == {"x": 1, "y": 0, "label": None, "tag": "u"}
    assert dataclasses.replace(Tagged(1), y=5) == Tagged(1, 5)
    assert pickle.loads(pickle.dumps(Tagged(3, 4, "z", "w"))) == Tagged(3, 4, "z", "w")
    assert Point.kind == "point" and "kind" not in dataclasses.asdict(Point(1))
    assert Point.__init__.__qualname__ == "Point.__init__"


def test_stays_frozen_and_checks_its_arguments():
    point = Point(1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        point.x = 2  # type: ignore[misc]
    with pytest.raises(TypeError):
        Point()  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        Point(1, 2, "a", "extra")  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        Point(1, z=3)  # type: ignore[call-arg]


def test_classes_it_cannot_stand_in_for_keep_the_generated_init():
    @value
    class WithFactory:
        items: list = field(default_factory=list)

    @value
    class WithInitVar:
        x: int
        scale: InitVar[int] = 1

    @value
    class WithPostInit:
        x: int

        def __post_init__(self) -> None:
            if self.x < 0:
                raise ValueError("negative")

    @value
    class KeywordOnly:
        x: int = field(kw_only=True)

    assert WithFactory().items == [] and WithFactory().items is not WithFactory().items
    assert WithInitVar(2, 3) == WithInitVar(2)  # the InitVar is accepted, not stored
    with pytest.raises(ValueError):
        WithPostInit(-1)
    with pytest.raises(TypeError):
        KeywordOnly(1)  # type: ignore[misc]
    assert KeywordOnly(x=1).x == 1
