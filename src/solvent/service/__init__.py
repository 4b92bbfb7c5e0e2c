"""The live service (``solvent serve``): REST commands and reads, a WebSocket event stream, API
keys with roles, validation at the edge, over the durable command log. See :mod:`.app`."""

from .app import Service, create_app
from .keys import KeyStore, Principal

__all__ = ["KeyStore", "Principal", "Service", "create_app"]
