"""Shared test helpers: a fresh PostgreSQL schema per test (or a skip when the server is down)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

PG_SERVER = "postgresql://127.0.0.1:5432/test"


def postgres_problem() -> str | None:
    """Why PostgreSQL cannot be used (None when it answers)."""
    try:
        import psycopg

        with psycopg.connect(PG_SERVER, connect_timeout=3):
            return None
    except Exception as error:
        return f"PostgreSQL not reachable at 127.0.0.1:5432 ({type(error).__name__}: {error})"


@contextmanager
def postgres_schema(prefix: str) -> Iterator[str]:
    """A URL on a new, empty schema, dropped afterwards; skips the test if PostgreSQL is down."""
    problem = postgres_problem()
    if problem:
        pytest.skip(problem)
    import psycopg

    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_SERVER, autocommit=True) as connection:
        connection.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"{PG_SERVER}?options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(PG_SERVER, autocommit=True) as connection:
            connection.execute(f'DROP SCHEMA "{schema}" CASCADE')
