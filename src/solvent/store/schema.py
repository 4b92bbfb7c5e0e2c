"""The tables (SQLAlchemy Core, one schema for SQLite and PostgreSQL) and database URLs.

``commands``: one row per command asked of the engine, in ``seq`` order from 1, never updated
except to fill in ``outcome`` and ``hash`` once, right after the engine applied it.

``snapshots``: the engine's state after entry ``seq`` (JSON data, never a pickle, see :mod:`.snapshots`) and the
digest of that state, for fast restart and for replay to check against.

Every text column is stored as written (timestamps as ISO-8601 text, JSON as canonical text):
what is hashed is exactly what is read back, on both backends.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

DEFAULT_URL = "sqlite:///solvent.db"  # a file in the working directory

metadata = sa.MetaData()

commands = sa.Table(
    "commands", metadata,
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("recorded_at", sa.Text, nullable=False),
    sa.Column("idempotency_key", sa.Text, nullable=True, unique=True),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("payload", sa.Text, nullable=False),  # canonical JSON of command.to_dict()
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("command_hash", sa.String(64), nullable=False),
    sa.Column("outcome", sa.Text, nullable=True),  # canonical JSON {"events": [...]} or {"rejected": {...}}
    sa.Column("hash", sa.String(64), nullable=True),  # set with the outcome; the next entry's prev_hash
)

snapshots = sa.Table(
    "snapshots", metadata,
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("taken_at", sa.Text, nullable=False),
    sa.Column("format", sa.Text, nullable=False),
    sa.Column("state", sa.LargeBinary, nullable=False),  # BLOB on SQLite, BYTEA on PostgreSQL
    sa.Column("digest", sa.String(64), nullable=False),
)


def database_url(target: str | Path) -> str:
    """A SQLAlchemy URL for ``--db`` / ``LOG``: ``sqlite:///file.db``, ``postgresql://...`` (run
    through psycopg 3), or a bare file path (an SQLite file)."""
    text = str(target)
    if "://" not in text:
        return f"sqlite:///{Path(text).expanduser()}"
    scheme, rest = text.split("://", 1)
    if scheme in ("postgresql", "postgres"):
        return f"postgresql+psycopg://{rest}"
    return text


def sqlite_file(url: str) -> Path | None:
    """The file of an SQLite URL (None for other backends or an in-memory database)."""
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def redacted(url: str) -> str:
    """The URL without its password, for messages."""
    return sa.engine.make_url(url).render_as_string(hide_password=True)
