"""Signed checkpoints of the log's head: what the hash chain alone cannot prove.

The chain proves that no entry was edited *unless* every later hash was recomputed, and says
nothing about entries removed from the end. Whoever holds the database can do both. A checkpoint
is the head ``(seq, hash)`` signed with an Ed25519 key that the database owner does not hold,
kept where the database owner cannot reach it (a file on another machine, an external notary
reading stdout). Then :func:`check_checkpoint` finds:

- truncation: the log ends before the checkpoint's seq;
- a consistent rewrite: the entry at the checkpoint's seq does not have the signed hash (every
  hash after an edit changes, so a rewrite of any entry up to seq changes this one).

A checkpoint is one line of canonical JSON: ``{"format", "seq", "head", "taken_at", "key_id",
"signature"}``; the signature covers the canonical JSON of the other fields. ``key_id`` is the
start of the SHA-256 of the raw public key (to pick the key, never to trust it: the verifier is
given the public key).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ..core.errors import SolventError
from .canonical import canonical, sha256_hex
from .log import CommandLog, timestamp_text

FORMAT = "solvent-checkpoint/1"


class CheckpointError(SolventError):
    """A checkpoint is malformed, badly signed, or the log does not hold what it signs."""


@dataclass(frozen=True)
class Checkpoint:
    format: str
    seq: int
    head: str
    taken_at: str
    key_id: str
    signature: str

    def signed_text(self) -> str:
        return canonical({"format": self.format, "seq": self.seq, "head": self.head, "taken_at": self.taken_at,
                          "key_id": self.key_id})

    def to_line(self) -> str:
        return canonical(asdict(self))

    @classmethod
    def from_line(cls, text: str) -> Checkpoint:
        try:
            data = json.loads(text)
            checkpoint = cls(**{name: data[name] for name in ("format", "seq", "head", "taken_at", "key_id",
                                                                "signature")})
        except (ValueError, TypeError, KeyError) as error:
            raise CheckpointError(f"not a checkpoint: {error}") from None
        if checkpoint.format != FORMAT or type(checkpoint.seq) is not int or checkpoint.seq < 1:
            raise CheckpointError(f"not a {FORMAT} checkpoint")
        return checkpoint


def public_key_id(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return sha256_hex(raw.hex())[:16]


def generate_key(private_path: Path, public_path: Path) -> str:
    """Write a new Ed25519 key pair (PEM; the private file readable by its owner only); its id."""
    key = Ed25519PrivateKey.generate()
    private_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
    private_path.chmod(0o600)
    public_path.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                          serialization.PublicFormat.SubjectPublicKeyInfo))
    return public_key_id(key.public_key())


def load_private_key(path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as error:
        raise CheckpointError(f"cannot read the signing key {path}: {error}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise CheckpointError(f"{path} is not an Ed25519 private key")
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(Path(path).read_bytes())
    except (OSError, ValueError, TypeError) as error:
        raise CheckpointError(f"cannot read the public key {path}: {error}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise CheckpointError(f"{path} is not an Ed25519 public key")
    return key


def sign_head(seq: int, head: str, key: Ed25519PrivateKey, taken_at: str | None = None) -> Checkpoint:
    unsigned = Checkpoint(FORMAT, seq, head, timestamp_text(taken_at), public_key_id(key.public_key()), "")
    signature = key.sign(unsigned.signed_text().encode("utf-8")).hex()
    return Checkpoint(unsigned.format, seq, head, unsigned.taken_at, unsigned.key_id, signature)


def checkpoint_log(log: CommandLog, key: Ed25519PrivateKey) -> Checkpoint:
    """Sign the head of a log whose chain verifies (``check_chain`` first: never sign a broken one)."""
    from .audit import check_chain

    report = check_chain(log)
    last = log.last()
    if last is None or report.chain_head is None:
        raise CheckpointError("the log is empty: nothing to sign")
    if last.pending:
        raise CheckpointError(f"entry {last.seq} is pending: reopen the log to complete it first")
    assert last.hash is not None  # a complete entry (not pending, checked above) has its hash
    return sign_head(last.seq, last.hash, key)


def read_checkpoints(path: Path | str) -> list[Checkpoint]:
    """Every checkpoint in a file (one per line, as :meth:`Checkpoint.to_line` writes; ``-``: none)."""
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as error:
        raise CheckpointError(f"cannot read {path}: {error}") from None
    found = [Checkpoint.from_line(line) for line in lines if line.strip()]
    if not found:
        raise CheckpointError(f"{path} holds no checkpoint")
    return found


def verify_signature(checkpoint: Checkpoint, public: Ed25519PublicKey) -> None:
    if checkpoint.key_id != public_key_id(public):
        raise CheckpointError(f"checkpoint at seq {checkpoint.seq} was signed by key {checkpoint.key_id}, not by "
                              f"the key given ({public_key_id(public)})")
    try:
        public.verify(bytes.fromhex(checkpoint.signature), checkpoint.signed_text().encode("utf-8"))
    except (InvalidSignature, ValueError):
        raise CheckpointError(f"checkpoint at seq {checkpoint.seq}: the signature does not verify") from None


def check_checkpoints(log: CommandLog, checkpoints: Iterable[Checkpoint], public: Ed25519PublicKey) -> int:
    """Each checkpoint is signed by ``public`` and the log holds, at its seq, the hash it signs.
    The chain itself is checked by the caller (``verify``). Returns the highest seq checked."""
    from .audit import LogMismatch

    last = log.last()
    end = 0 if last is None else last.seq
    highest = 0
    for checkpoint in sorted(checkpoints, key=lambda one: one.seq):
        verify_signature(checkpoint, public)
        if checkpoint.seq > end:
            raise LogMismatch(end + 1, f"truncated: the log ends at seq {end}, but a checkpoint signed on "
                                       f"{checkpoint.taken_at} saw it reach seq {checkpoint.seq}")
        entry = log.entry(checkpoint.seq)
        if entry is None or entry.hash != checkpoint.head:
            raise LogMismatch(checkpoint.seq, f"rewritten: entry {checkpoint.seq} does not have the hash signed on "
                                              f"{checkpoint.taken_at} ({checkpoint.head[:12]}…); the history up "
                                              "to it was changed and the chain recomputed")
        highest = checkpoint.seq
    return highest
