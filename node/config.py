"""A node's settings, with defaults that serve a working node without a config file.

Every setting is also a ``kith serve`` option of the same name (see ``node.cli``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Final

from protocol import parse_server_name

__all__ = ["DEFAULT_DATA_DIR", "DEFAULT_HOST", "DEFAULT_PORT", "NodeConfig"]

DEFAULT_HOST: Final = "127.0.0.1"
"""Loopback only: exposing a node is a decision, not a default."""
DEFAULT_PORT: Final = 7447
DEFAULT_DATA_DIR: Final = Path("kith-data")


@dataclass(frozen=True, slots=True)
class NodeConfig:
    """Where the node listens and where it keeps its state.

    ``port`` 0 asks the system for a free port; the bound port is reported when the node
    starts (``serve_node``'s start value and the ``event=listening`` log line).
    ``data_dir`` holds the node's signing key and, later, its database.
    """

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    data_dir: Path = DEFAULT_DATA_DIR
    server_name: str = "localhost"
    """The node's name in user ids (``@alice:<server_name>``) and to its peers."""

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port {self.port} is not in 0..65535")
        if not self.host:
            raise ValueError("host must not be empty")
        parse_server_name(self.server_name)
