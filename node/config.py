"""A node's settings: defaults that serve a working node, an optional ``kith.toml`` on top.

Every setting has a default (spec/client.md gives the limits' defaults), so no file is
needed. ``<data folder>/kith.toml`` may change any of them; ``kith serve`` options
(``--host``, ``--port``, ``--server-name``, ``--log-level``) override the file. The file is
strict: an unknown section or key, or a value of the wrong type or range, is a
:class:`ConfigError` whose message is one line naming the file and the setting — a typo must
not silently leave a limit at its default.

``SETTINGS`` maps each ``[section] key`` of the file to a :class:`NodeConfig` field; the
commented ``kith.example.toml`` at the repository root documents every one of them (a test
checks both ways).
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Final

from node.log import LEVELS
from protocol import RemoteProtocolError, parse_server_name
from protocol.client_api import MAX_HISTORY_LIMIT, MAX_TYPING_TIMEOUT_MS

__all__ = [
    "CONFIG_FILE_NAME",
    "DEFAULT_DATA_DIR",
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "LOG_LEVELS",
    "PASSWORD_COSTS",
    "REGISTRATION_MODES",
    "SETTINGS",
    "SYNCHRONOUS_MODES",
    "ConfigError",
    "NodeConfig",
    "Setting",
    "load_config",
]

DEFAULT_HOST: Final = "127.0.0.1"
"""Loopback only: exposing a node is a decision, not a default."""
DEFAULT_PORT: Final = 7447
DEFAULT_DATA_DIR: Final = Path("kith-data")
CONFIG_FILE_NAME: Final = "kith.toml"

REGISTRATION_MODES: Final = ("closed", "token", "open")
"""spec/client.md §2: who may ``register`` (closed: only the administrator makes accounts)."""
PASSWORD_COSTS: Final = ("interactive", "min")
"""Argon2id cost: ``interactive`` for real nodes; ``min`` (libsodium's minimum) for tests only."""
SYNCHRONOUS_MODES: Final = ("NORMAL", "FULL")
LOG_LEVELS: Final = tuple(LEVELS)


class ConfigError(ValueError):
    """A setting is unusable; the message is one line for the operator."""


@dataclass(frozen=True, slots=True)
class NodeConfig:
    """Every setting of a node. Constructing one checks every value (:class:`ConfigError`).

    ``port`` 0 asks the system for a free port; the bound port is reported when the node
    starts (``serve_node``'s start value and the ``event=listening`` log line).
    ``data_dir`` holds the node's signing key, its database and its ``kith.toml``.
    """

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    data_dir: Path = DEFAULT_DATA_DIR
    server_name: str = "localhost"
    """The node's name in user ids (``@alice:<server_name>``) and to its peers."""
    tls_cert: Path | None = None
    """PEM certificate chain; with ``tls_key`` the node serves ``wss://`` only."""
    tls_key: Path | None = None
    registration_mode: str = "closed"
    registration_token: str | None = None
    """The token ``register`` must carry when ``registration_mode`` is ``token``."""
    max_connections: int = 10_000
    """Open WebSocket connections of the whole node, both endpoints (spec/client.md §7)."""
    max_connections_per_user: int = 20
    requests_per_second: float = 50.0
    """Client requests per connection: the rate of the token bucket (spec/client.md §7)."""
    request_burst: int = 200
    """Client requests per connection: the bucket's size."""
    heartbeat_interval_s: float = 5.0
    presence_timeout_s: float = 30.0
    typing_timeout_ms: int = 30_000
    sync_batch_items: int = 100
    sync_catch_up_limit: int = 1_000
    sync_room_tail: int = 20
    storage_synchronous: str = "NORMAL"
    password_cost: str = "interactive"
    session_check_interval_s: float = 5.0
    """How often the node re-checks its signed-in connections against the database, so a
    user deactivated (or a device revoked) by ``kith user`` beside it is signed out."""
    log_level: str = "info"
    peers: Mapping[str, str] = field(default_factory=dict)
    """``[peers]``: server name → federation address (spec/federation.md §2.1)."""
    federation_ca_file: Path | None = None
    """PEM certificates trusted for peers' ``wss://`` links besides the system's (private
    networks with their own certificate authority, and tests)."""

    def __post_init__(self) -> None:
        _check(self.host != "", "host", "must not be empty")
        _check(0 <= self.port <= 65535, "port", f"{self.port} is not in 0..65535")
        try:
            parse_server_name(self.server_name)
        except RemoteProtocolError as exc:
            raise ConfigError(f"server_name: {exc.message}") from None
        _check(
            (self.tls_cert is None) == (self.tls_key is None),
            "tls_cert",
            "tls_cert and tls_key go together: set both or neither",
        )
        _one_of(self.registration_mode, "registration_mode", REGISTRATION_MODES)
        if self.registration_mode == "token":
            _check(
                bool(self.registration_token),
                "registration_token",
                "registration mode 'token' needs a non-empty token",
            )
        _check(self.max_connections >= 1, "max_connections", "must be at least 1")
        _check(self.max_connections_per_user >= 1, "max_connections_per_user", "must be >= 1")
        _positive(self.requests_per_second, "requests_per_second")
        _check(self.request_burst >= 1, "request_burst", "must be at least 1")
        _positive(self.heartbeat_interval_s, "heartbeat_interval_s")
        _check(
            _finite(self.presence_timeout_s)
            and self.presence_timeout_s > self.heartbeat_interval_s,
            "presence_timeout_s",
            "must be longer than heartbeat_interval_s",
        )
        _check(
            1 <= self.typing_timeout_ms <= MAX_TYPING_TIMEOUT_MS,
            "typing_timeout_ms",
            f"must be in 1..{MAX_TYPING_TIMEOUT_MS}",
        )
        _check(self.sync_batch_items >= 1, "sync_batch_items", "must be at least 1")
        _check(self.sync_catch_up_limit >= 1, "sync_catch_up_limit", "must be at least 1")
        _check(
            1 <= self.sync_room_tail <= MAX_HISTORY_LIMIT,
            "sync_room_tail",
            f"must be in 1..{MAX_HISTORY_LIMIT}",
        )
        _one_of(self.storage_synchronous, "storage_synchronous", SYNCHRONOUS_MODES)
        _one_of(self.password_cost, "password_cost", PASSWORD_COSTS)
        _positive(self.session_check_interval_s, "session_check_interval_s")
        _one_of(self.log_level, "log_level", LOG_LEVELS)
        for name, address in self.peers.items():
            try:
                parse_server_name(name)
            except RemoteProtocolError as exc:
                raise ConfigError(f"peers: {name!r}: {exc.message}") from None
            _check(type(address) is str and address != "", "peers", f"{name}: not an address")

    @property
    def tls(self) -> bool:
        """True when the node serves ``wss://``."""
        return self.tls_cert is not None


def _finite(value: float) -> bool:
    return math.isfinite(value)


def _check(ok: bool, name: str, message: str) -> None:
    if not ok:
        raise ConfigError(f"{name}: {message}")


def _positive(value: float, name: str) -> None:
    _check(_finite(value) and value > 0, name, "must be a positive number")


def _one_of(value: str, name: str, choices: tuple[str, ...]) -> None:
    _check(value in choices, name, f"{value!r} is not one of {', '.join(choices)}")


# --- the file ---------------------------------------------------------------------------


def _string(value: object) -> str:
    if type(value) is not str:
        raise ConfigError("must be a string")
    return value


def _integer(value: object) -> int:
    if type(value) is not int:
        raise ConfigError("must be an integer")
    return value


def _number(value: object) -> float:
    if type(value) not in (int, float):
        raise ConfigError("must be a number")
    return float(value)  # type: ignore[arg-type]


def _upper(value: object) -> str:
    return _string(value).upper()


@dataclass(frozen=True, slots=True)
class Setting:
    """One key of ``kith.toml``: where it lives, the field it sets, how its value is read."""

    section: str
    key: str
    field: str
    parse: Callable[[object], object]

    @property
    def name(self) -> str:
        """``[section] key``, as error messages and the docs write it."""
        return f"[{self.section}] {self.key}"


SETTINGS: Final[tuple[Setting, ...]] = (
    Setting("listen", "host", "host", _string),
    Setting("listen", "port", "port", _integer),
    Setting("listen", "tls_cert", "tls_cert", _string),
    Setting("listen", "tls_key", "tls_key", _string),
    Setting("server", "name", "server_name", _string),
    Setting("registration", "mode", "registration_mode", _string),
    Setting("registration", "token", "registration_token", _string),
    Setting("limits", "max_connections", "max_connections", _integer),
    Setting("limits", "max_connections_per_user", "max_connections_per_user", _integer),
    Setting("limits", "requests_per_second", "requests_per_second", _number),
    Setting("limits", "request_burst", "request_burst", _integer),
    Setting("presence", "heartbeat_interval_s", "heartbeat_interval_s", _number),
    Setting("presence", "presence_timeout_s", "presence_timeout_s", _number),
    Setting("typing", "timeout_ms", "typing_timeout_ms", _integer),
    Setting("sync", "batch_items", "sync_batch_items", _integer),
    Setting("sync", "catch_up_limit", "sync_catch_up_limit", _integer),
    Setting("sync", "room_tail", "sync_room_tail", _integer),
    Setting("storage", "synchronous", "storage_synchronous", _upper),
    Setting("passwords", "cost", "password_cost", _string),
    Setting("accounts", "session_check_interval_s", "session_check_interval_s", _number),
    Setting("log", "level", "log_level", _string),
    Setting("federation", "ca_file", "federation_ca_file", _string),
)
"""Every key of ``kith.toml``. ``data_dir`` is not one: the file lives in it."""

_BY_SECTION: Final[Mapping[str, Mapping[str, Setting]]] = {
    section: {s.key: s for s in SETTINGS if s.section == section}
    for section in dict.fromkeys(s.section for s in SETTINGS)
}
_BY_FIELD: Final[Mapping[str, Setting]] = {s.field: s for s in SETTINGS}
_PATH_FIELDS: Final = frozenset({"tls_cert", "tls_key", "federation_ca_file"})


def _read_file(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as file:
            return tomllib.load(file)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not valid TOML: not UTF-8 text") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None


def _settings_from_file(path: Path) -> dict[str, object]:
    """The fields ``path`` sets, each checked for its type; relative paths resolved."""
    values: dict[str, object] = {}
    for section, table in _read_file(path).items():
        if section == "peers":
            # Keys are server names, not settings: any name, each mapped to an address.
            if not isinstance(table, dict):
                raise ConfigError(f"{path}: [peers] must be a table of server names")
            values["peers"] = {str(name): _peer_address(path, name, v) for name, v in table.items()}
            continue
        known = _BY_SECTION.get(section)
        if known is None:
            raise ConfigError(f"{path}: unknown section [{section}]")
        if not isinstance(table, dict):
            raise ConfigError(f"{path}: [{section}] must be a table of settings")
        for key, value in table.items():
            setting = known.get(key)
            if setting is None:
                raise ConfigError(f"{path}: unknown setting {key!r} in [{section}]")
            try:
                parsed = setting.parse(value)
            except ConfigError as exc:
                raise ConfigError(f"{path}: {setting.name} {exc}") from None
            if setting.field in _PATH_FIELDS:
                # Relative certificate paths are relative to the file, i.e. the data folder.
                parsed = path.parent / Path(str(parsed))
            values[setting.field] = parsed
    return values


def _peer_address(path: Path, name: str, value: object) -> str:
    if type(value) is not str or not value:
        raise ConfigError(f"{path}: [peers] {name!r} must be host:port or a ws[s]:// URL")
    return value


def load_config(data_dir: Path, **overrides: Any) -> NodeConfig:
    """The settings of the node whose data folder is ``data_dir``.

    Defaults, then ``<data_dir>/kith.toml`` if it exists, then ``overrides`` (command-line
    options; ``None`` means "not given"). Raises :class:`ConfigError` with one line saying
    which setting is wrong, naming the file's ``[section] key`` when the file set it.
    """
    path = data_dir / CONFIG_FILE_NAME
    from_file = _settings_from_file(path) if path.is_file() else {}
    given = {name: value for name, value in overrides.items() if value is not None}
    field_names = {f.name for f in fields(NodeConfig)}
    unknown = set(given) - field_names
    if unknown:
        raise TypeError(f"not settings of a node: {', '.join(sorted(unknown))}")
    try:
        return NodeConfig(data_dir=data_dir, **{**from_file, **given})
    except ConfigError as exc:
        # Name the file's [section] key unless a command-line option gave the bad value.
        field_name, _, message = str(exc).partition(": ")
        setting = _BY_FIELD.get(field_name)
        if from_file and field_name not in given and setting is not None:
            raise ConfigError(f"{path}: {setting.name}: {message}") from None
        raise
