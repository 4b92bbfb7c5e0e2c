"""API keys: a role each, stored as SHA-256 hashes in the log's database (table ``api_keys``).

Roles:

- ``admin``: configures venues and parameters; may submit every command and read everything.
- ``operator``: a venue's matching engine and price feeder (fills, prices, time, liquidator
  calls, deposits from custody); ``venue`` optionally restricts it to one venue.
- ``account``: one trader (``account``): reads only that account and its events, and may move
  its own money (withdraw, supply, borrow, repay, ...); deposits come from custody (the operator).

A key is shown once, when created; only its hash is kept, so a leaked database leaks no key.

Keys and their changes are logged commands (``register_key``, ``revoke_key``: the hash, role and
scope, never the key): a key authenticates only if its row is in ``api_keys`` *and* the command
log registered it, so a row inserted into the table by whoever holds the database is not a key,
and ``verify`` reports it.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import sqlalchemy as sa

if TYPE_CHECKING:  # pragma: no cover
    from ..engine.commands import Command

ROLES = ("admin", "operator", "account")
MAX_CACHED = 100_000  # principals kept in memory after a lookup

key_metadata = sa.MetaData()
api_keys = sa.Table(
    "api_keys", key_metadata,
    sa.Column("key_hash", sa.String(64), primary_key=True),
    sa.Column("role", sa.Text, nullable=False),
    sa.Column("account", sa.Text, nullable=True),
    sa.Column("venue", sa.Text, nullable=True),
    sa.Column("label", sa.Text, nullable=True),
    sa.Column("created_at", sa.Text, nullable=False),
)


@dataclass(frozen=True)
class Principal:
    """Who a request comes from."""

    role: str
    account: str | None = None
    venue: str | None = None
    label: str | None = None
    key_id: str | None = None  # the key's public id (rate limits, streams that close on revocation)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


KEY_ID_LENGTH = 16


def key_id(key: str) -> str:
    """A key's public id: the start of its hash, enough to name it, useless to authenticate."""
    return hash_key(key)[:KEY_ID_LENGTH]


def new_key() -> str:
    return "sk_" + secrets.token_urlsafe(32)


class KeyStore:
    def __init__(self, db: sa.engine.Engine, *, log_command: Callable[[Command], object] | None = None,
                 registered: Callable[[str], bool] | None = None) -> None:
        """``log_command`` submits a command to the log (``register_key``/``revoke_key``);
        ``registered(hash)`` tells whether the log registered a key. Without them (tools that only
        read), keys are the table's alone."""
        self.db = db
        self.log_command = log_command
        self.registered = registered
        self._known: dict[str, Principal] = {}  # key hash -> principal, of keys found (never of unknown ones)
        key_metadata.create_all(db)

    def add(self, role: str, *, account: str | None = None, venue: str | None = None, label: str | None = None,
            key: str | None = None) -> str:
        """Store a key (a new random one unless given) and return it; adding a known key is a no-op."""
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}")
        if role == "account" and not account:
            raise ValueError("an account key needs its account")
        key = key or new_key()
        digest = hash_key(key)
        if self.log_command is not None and self.registered is not None and not self.registered(digest):
            from ..engine.commands import RegisterKey

            self.log_command(RegisterKey(digest, role, account if role == "account" else None,
                                         venue if role == "operator" else None, label))
        with self.db.begin() as connection:
            known = connection.execute(sa.select(api_keys.c.key_hash).where(api_keys.c.key_hash == digest)).first()
            if known is None:
                connection.execute(api_keys.insert().values(
                    key_hash=digest, role=role, account=account if role == "account" else None,
                    venue=venue if role == "operator" else None, label=label,
                    created_at=datetime.now(UTC).isoformat()))
        return key

    def lookup(self, key: str) -> Principal | None:
        digest = hash_key(key)
        found = self._known.get(digest)
        if found is not None:
            return found
        with self.db.connect() as connection:
            row = connection.execute(sa.select(api_keys).where(api_keys.c.key_hash == digest)).first()
        if row is None or (self.registered is not None and not self.registered(digest)):
            return None  # a row the log never registered is not a key
        found = Principal(row.role, row.account, row.venue, row.label, digest[:KEY_ID_LENGTH])
        if len(self._known) < MAX_CACHED:
            self._known[digest] = found
        return found

    def cached(self, key: str) -> Principal | None:
        """A key already looked up and not revoked since (revoking evicts it): no database access."""
        return self._known.get(hash_key(key))

    def revoke(self, key_id: str) -> bool:
        """Delete the key whose id (see :func:`key_id`) this is; False when there is none."""
        if len(key_id) != KEY_ID_LENGTH or any(ch not in "0123456789abcdef" for ch in key_id):
            raise ValueError(f"a key id is {KEY_ID_LENGTH} lowercase hex characters")
        with self.db.begin() as connection:
            rows = connection.execute(sa.select(api_keys.c.key_hash).where(
                api_keys.c.key_hash.like(key_id + "%"))).fetchall()
            for row in rows:
                connection.execute(api_keys.delete().where(api_keys.c.key_hash == row.key_hash))
        for row in rows:
            self._known.pop(row.key_hash, None)
        if rows and self.log_command is not None:
            from ..engine.commands import RevokeKey

            self.log_command(RevokeKey(key_id))
        return bool(rows)

    def list(self) -> list[dict]:
        """Every key: its id, role, scope, label and creation time (never the key or its hash)."""
        with self.db.connect() as connection:
            rows = connection.execute(sa.select(api_keys).order_by(api_keys.c.created_at)).fetchall()
        return [{"id": row.key_hash[:KEY_ID_LENGTH], "role": row.role, "account": row.account, "venue": row.venue,
                 "label": row.label, "createdAt": row.created_at} for row in rows]

    def count(self) -> int:
        with self.db.connect() as connection:
            return int(connection.execute(sa.select(sa.func.count()).select_from(api_keys)).scalar_one())
