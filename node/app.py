"""The node as one trio task: load its key, open its database, wire the services, serve.

``await nursery.start(serve_node, config)`` returns the bound port once the node accepts
connections; cancelling the nursery stops it. Everything the node runs lives under this one
task, so nothing outlives it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial

import trio

from node import api
from node.clock import now_ms
from node.config import ConfigError, NodeConfig
from node.dispatch import Dispatcher
from node.federation.service import Federation
from node.hub import Hub
from node.keys import NodeKey, apply_pending_rotation, load_or_create_keyring
from node.log import get_log
from node.ratelimit import RateLimit
from node.services.accounts import Accounts
from node.services.signins import SignIns
from node.services.wiring import Services
from node.storage.db import Database
from node.transport.tls import server_tls_context
from node.transport.websocket import open_listeners, serve_websocket_endpoints
from protocol.wire import ENDPOINT_PATHS

__all__ = ["DATABASE_FILE_NAME", "Node", "serve_node"]

log = get_log(__name__)

DATABASE_FILE_NAME = "kith.db"


@dataclass
class Node:
    """Everything one running node holds: settings, key, database and services."""

    config: NodeConfig
    key: NodeKey
    db: Database
    federation: Federation = field(kw_only=True)
    hub: Hub = field(default_factory=Hub)
    accounts: Accounts = field(kw_only=True)
    signins: SignIns = field(kw_only=True)
    services: Services = field(kw_only=True)

    @property
    def server_name(self) -> str:
        """The node's server name (user ids are ``@name:<server_name>``)."""
        return self.config.server_name


async def serve_node(
    config: NodeConfig, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED
) -> None:
    """Run a node from ``config`` until cancelled; report the bound port when listening.

    Creates the data folder, the signing key and the database on first use. Raises
    ``KeyFileError`` if the key is unusable, ``TLSError`` if the certificate is,
    ``ConfigError`` if the database holds users of another server name and ``ListenError``
    if the port cannot be bound, all unwrapped and before reporting started. Logs
    ``event=listening`` with the real port: the conformance suite reads that line to find a
    node it started with ``--port 0``.
    """
    keyring, created = await trio.to_thread.run_sync(load_or_create_keyring, config.data_dir)
    if keyring.next is not None:  # kith key rotate ran: take the new key now (§1.4)
        retiring = keyring.current.key_id
        keyring = await trio.to_thread.run_sync(apply_pending_rotation, config.data_dir, now_ms())
        log.info("key_rotated", key_id=keyring.current.key_id, retired=retiring)
    key = keyring.current
    if created:
        log.info("key_created", key_id=key.key_id, public_key=key.public_key)
    ssl_context = None
    if config.tls_cert is not None and config.tls_key is not None:
        ssl_context = server_tls_context(config.tls_cert, config.tls_key)
    db = await Database.open(
        config.data_dir / DATABASE_FILE_NAME, synchronous=config.storage_synchronous
    )
    try:
        hub = Hub()
        accounts = Accounts(db, config.server_name, password_cost=config.password_cost)
        stranger = await accounts.check_server_name()
        if stranger is not None:
            raise ConfigError(
                f"server_name: the database holds {stranger}, of another server than"
                f" {config.server_name!r}; a node keeps the name it made its users with"
            )
        signins = SignIns(hub, max_connections_per_user=config.max_connections_per_user)
        services = await Services.start(config, key, db, hub)
        federation = Federation(config, keyring, db, services, accounts)
        node = Node(
            config,
            key,
            db,
            hub,
            accounts=accounts,
            signins=signins,
            services=services,
            federation=federation,
        )
        dispatcher = Dispatcher(
            api.handlers(node),
            rate_limit=RateLimit(config.requests_per_second, config.request_burst),
            on_request=services.presence.request_seen,
        )
        listeners = await open_listeners(config.host, config.port)
        async with trio.open_nursery() as nursery:
            await nursery.start(signins.watch, accounts, config.session_check_interval_s)
            nursery.start_soon(accounts.passwords.warm_up)
            services.run(nursery)
            await federation.start(nursery)
            address = await nursery.start(
                partial(
                    serve_websocket_endpoints,
                    ssl_context=ssl_context,
                    max_connections=config.max_connections,
                    on_federation=federation.accept,
                ),
                dispatcher,
                listeners,
            )
            log.info(
                "listening",
                url=address.url,
                host=address.host,
                port=address.port,
                endpoints=",".join(ENDPOINT_PATHS),
                key_id=key.key_id,
                server_name=config.server_name,
            )
            task_status.started(address.port)
    finally:
        with trio.CancelScope(shield=True):
            await db.aclose()
