"""A device's session with its home node: connect, log in, stay connected, sync.

::

    async with client.connect("ws://127.0.0.1:7447", store="~/.kith/alice.json") as session:
        if not session.logged_in:
            await session.login("alice", password)
        room_id = await session.create_room(name="plans")
        await session.send(room_id, "hello")
        async for update in session.sync():
            ...

What the session does by itself:

* **Stays connected.** A supervisor task owns the connection (``client.link``). When it
  drops, the session waits (exponential backoff with jitter, ``client.backoff``), connects
  again, binds the connection with ``authenticate`` and the stored token (client.md §1, §2)
  and, if the application is syncing, restarts ``sync`` after the last position it read
  (§5): nothing is lost and nothing is yielded twice.
* **Retries what is safe to retry.** A request waits while the session is reconnecting; if
  the connection drops before its answer, it is sent again on the next connection when
  repeating it is harmless (``client.api.RETRY_SAFE_OPS``; ``send`` keeps its transaction
  id) — up to :data:`MAX_ATTEMPTS` times in all — and raises
  :class:`~client.errors.ConnectionLostError` otherwise.
* **Heartbeats.** Every ``heartbeat_interval`` seconds while bound (client.md §6); a
  heartbeat not answered within ``response_timeout`` means the connection is dead, and it
  is dropped and replaced.
* **Acknowledges.** Processed stream positions are written to the store and sent as
  ``ack`` (§5 step 4) in the background; see ``client.sync`` for when an update counts as
  processed.
* **Ends the device on ``signed_out``** (§1), or when the node refuses the stored token: the
  token is removed from the store, the stream yields :class:`~client.updates.SignedOut`
  and ends, and the connection stays open but unbound (log in again to go on).

* **Encrypts end to end** with ``connect(..., e2ee=True)`` (``client.crypto_device``,
  spec/e2ee.md §4): the device publishes its keys when it logs in, ``send`` encrypts in
  rooms whose ``encryption`` state is set, and the stream yields events and to-device
  messages decrypted.

The store's secrets never reach a log line: requests are logged by op only.
"""

from __future__ import annotations

import itertools
import logging
import os
import ssl
from collections.abc import Callable
from functools import partial
from types import TracebackType
from typing import Any

import trio

from client.api import RETRY_SAFE_OPS, Operations
from client.backoff import Backoff
from client.crypto_device import DeviceCrypto
from client.errors import (
    SIGNED_OUT_CODES,
    ClientError,
    ConnectError,
    ConnectionLostError,
    SessionClosedError,
)
from client.link import Link, LinkLostError, NodeAddress, open_link
from client.results import HistoryPage, Login, need
from client.store import Store, write_atomically
from client.sync import UpdateStream
from client.updates import DeviceListUpdate, KeyCounts, Pending, Reconnecting
from protocol import OPS, JsonObject, Notice, RemoteProtocolError

__all__ = ["Session", "connect"]

log = logging.getLogger(__name__)

DEFAULT_HEARTBEAT_INTERVAL = 5.0
"""Seconds between heartbeats: the node's default (client.md §6)."""
_TRANSIENT_CODES = frozenset({"rate_limited", "internal_error"})
"""Refusals that may go away by themselves (spec/wire.md §6): the ack is tried again."""
_ACK_RETRY_DELAY = 1.0
MAX_ATTEMPTS = 3
"""How often a request safe to repeat is sent before its lost answers raise
:class:`~client.errors.ConnectionLostError`."""


class Session(Operations):
    """A device's connection to its node that survives disconnects (see the module doc).

    Make one with :func:`connect`; every op of spec/client.md is a method.
    """

    def __init__(
        self,
        address: NodeAddress,
        store: Store,
        *,
        ssl_context: ssl.SSLContext | None,
        heartbeat_interval: float,
        response_timeout: float,
        connect_timeout: float,
        close_timeout: float,
        backoff: Backoff,
        e2ee: bool = False,
    ) -> None:
        self._address = address
        self._store = store
        self._ssl_context = ssl_context
        self._heartbeat_interval = heartbeat_interval
        self._response_timeout = response_timeout
        self._connect_timeout = connect_timeout
        self._close_timeout = close_timeout
        self._backoff = backoff
        self._generations = itertools.count(1)
        self._link: Link | None = None
        self._generation = 0
        self._bound = False
        """True while the current connection is bound to the stored device."""
        self._link_changed = trio.Event()
        self._closing = False
        self._stream: UpdateStream | None = None
        self._store_lock = trio.Lock()
        self._processed_upto = self._acked = store.cursor or 0
        self._ack_wanted = trio.Event()
        self._ack_progress = trio.Event()
        self._nursery: trio.Nursery | None = None
        self._crypto = DeviceCrypto(self, store, self._save_store) if e2ee else None

    # --- what the application reads ---------------------------------------------------------

    @property
    def store(self) -> Store:
        """The device's store (URL, ids, token, cursor)."""
        return self._store

    @property
    def url(self) -> str:
        """The node's URL."""
        return self._address.url

    @property
    def user_id(self) -> str | None:
        """The user this device belongs to, once logged in."""
        return self._store.user_id if self._store.logged_in else None

    @property
    def device_id(self) -> str | None:
        """This device's id, once logged in."""
        return self._store.device_id if self._store.logged_in else None

    @property
    def logged_in(self) -> bool:
        """True while the store holds a device and its token."""
        return self._store.logged_in

    @property
    def crypto(self) -> DeviceCrypto | None:
        """The device's end-to-end encryption (None unless connected with ``e2ee=True``)."""
        return self._crypto

    @property
    def connected(self) -> bool:
        """True while a connection is up (it may still be unbound)."""
        return self._link is not None and not self._link.closed.is_set()

    # --- requests ---------------------------------------------------------------------------

    async def _call(self, op: str, params: JsonObject) -> JsonObject:
        """Send ``op`` once connected; repeat it after a lost answer if that is safe."""
        try:
            OPS[op].params.validate(params)  # fail here rather than after a round trip
        except RemoteProtocolError as exc:
            raise ClientError(exc.code.value, exc.message, op=op) from None
        log.debug("request op=%s", op)
        attempts = MAX_ATTEMPTS if op in RETRY_SAFE_OPS else 1
        for attempt in range(1, attempts + 1):
            link = await self._wait_for_link()
            try:
                return await link.request(op, params)
            except LinkLostError:
                log.info("connection lost before op=%s was answered (attempt %d)", op, attempt)
        # Lost every time: more likely the request itself breaks the connection (an answer
        # too large for the frame limit, say) than bad luck. Let the application decide.
        raise ConnectionLostError(op)

    async def _wait_for_link(self) -> Link:
        while True:
            if self._closing:
                raise SessionClosedError("the session is closed")
            link = self._link
            if link is not None and not link.closed.is_set():
                return link
            await self._link_changed.wait()

    def _set_link(self, link: Link | None) -> None:
        self._link = link
        self._link_changed.set()
        self._link_changed = trio.Event()

    # --- accounts and the device (§2) -------------------------------------------------------

    async def register(
        self,
        username: str,
        password: str,
        *,
        registration_token: str | None = None,
        device_name: str | None = None,
    ) -> Login:
        """Create an account and log this session in as its first device."""
        params: JsonObject = {"username": username, "password": password}
        if registration_token is not None:
            params["registration_token"] = registration_token
        if device_name is not None:
            params["device_name"] = device_name
        return await self._signed_in(await self._call("register", params))

    async def login(
        self,
        username: str,
        password: str,
        *,
        device_id: str | None = None,
        device_name: str | None = None,
    ) -> Login:
        """Log in with a password: a new device, or ``device_id`` of this user again."""
        params: JsonObject = {"username": username, "password": password}
        if device_id is not None:
            params["device_id"] = device_id
        if device_name is not None:
            params["device_name"] = device_name
        return await self._signed_in(await self._call("login", params))

    async def authenticate(self, access_token: str | None = None) -> Login:
        """Bind the connection with a token (the stored one by default).

        The session does this by itself on every (re)connection while it holds a token.
        """
        token = access_token if access_token is not None else self._store.access_token
        if token is None:
            raise ClientError("not_authenticated", "no access token to authenticate with")
        result = await self._call("authenticate", {"access_token": token})
        return await self._signed_in({**result, "access_token": token})

    async def _signed_in(self, result: JsonObject) -> Login:
        user_id = need(result, "user_id", str)
        device_id = need(result, "device_id", str)
        same_device = (self._store.user_id, self._store.device_id) == (user_id, device_id)
        self._store.remember_login(
            self._address.url, user_id, device_id, need(result, "access_token", str)
        )
        if not same_device:
            self._processed_upto = self._acked = self._store.cursor or 0
        self._bound = True
        await self._save_store()
        log.info("signed in user_id=%s device_id=%s", user_id, device_id)
        if self._crypto is not None:
            await self._crypto.ready()  # a new device publishes its keys (e2ee.md §4.1)
        return Login(user_id, device_id)

    async def logout(self) -> None:
        """End this device: its token stops working everywhere (client.md §1)."""
        await self._call("logout", {})
        await self._device_ended("logout")

    async def revoke_device(self, device_id: str) -> None:
        """End one of the user's devices (this one included: the session is signed out)."""
        await self._call("revoke_device", {"device_id": device_id})

    async def _device_ended(self, reason: str) -> None:
        """The device is gone: forget its token, end the stream with ``SignedOut``."""
        if not self._store.logged_in:
            return  # told twice (logout's answer and its signed_out notice)
        log.info("signed out reason=%s", reason)
        self._bound = False
        self._store.forget_device()
        if self._crypto is not None:
            self._crypto.forget()
        self._processed_upto = self._acked = 0
        self._ack_progressed()
        await self._save_store()
        stream, self._stream = self._stream, None
        if stream is not None:
            stream.feed(self._generation, Notice("signed_out", {"reason": reason}))
            stream.end()

    # --- messages, encrypted where the room says so (e2ee.md §4.2) -------------------------

    async def send(
        self,
        room_id: str,
        content: JsonObject | str,
        *,
        type: str | None = None,
        txn_id: str | None = None,
    ) -> str:
        """Send a timeline event; its id (see :meth:`Operations.send`).

        With end-to-end encryption on, in a room whose ``encryption`` state is set, the
        event is encrypted first — after its room key reached every joined member's
        devices — and sent as an ``encrypted`` event.
        """
        crypto = self._crypto
        if crypto is None or type == "encrypted" or not await crypto.room_encrypted(room_id):
            return await super().send(room_id, content, type=type, txn_id=txn_id)
        if isinstance(content, str):
            content = {"msgtype": "text", "body": content}
        encrypted = await crypto.encrypt(room_id, type or "message", content)
        return await super().send(room_id, encrypted, type="encrypted", txn_id=txn_id)

    async def history(
        self,
        room_id: str,
        *,
        before: str | None = None,
        limit: int | None = None,
        decrypt: bool = True,
    ) -> HistoryPage:
        """A page of the room's timeline (see :meth:`Operations.history`); with end-to-end
        encryption on, the events this device holds keys for are decrypted (``decrypt``)."""
        page = await super().history(room_id, before=before, limit=limit)
        if self._crypto is None or not decrypt:
            return page
        return await self._crypto.decrypt_page(page)

    async def _decrypt(self, step: Pending) -> list[Pending]:
        """The steps the stream yields for ``step``: decrypted where it was encrypted (the
        last one completes ``step``'s position; any before it complete none)."""
        if self._crypto is None and isinstance(step.update, KeyCounts | DeviceListUpdate):
            # Items for the encryption layer: without it, nothing to show (as before it).
            return [Pending(None, step.completes, decrypted=True)]
        if self._crypto is None or step.update is None or not self._store.logged_in:
            return [Pending(step.update, step.completes, decrypted=True)]
        updates = await self._crypto.process(step.update)
        *first, last = updates
        return [
            *(Pending(update, decrypted=True) for update in first),
            Pending(last, step.completes, decrypted=True),
        ]

    async def _save_store(self) -> None:
        """Write the store off the event loop; writes never overtake one another."""
        async with self._store_lock:
            path, data = self._store.path, self._store.dumps()
            if path is not None:
                await trio.to_thread.run_sync(write_atomically, path, data)

    # --- the stream (§5) --------------------------------------------------------------------

    def sync(self, *, auto_ack: bool = True) -> UpdateStream:
        """The device's stream as an async iterator (see ``client.sync``).

        One at a time per session: the stream starts with the first ``async for`` step.
        """
        if self._stream is not None:
            raise RuntimeError("this session already has a sync iterator")
        self._stream = UpdateStream(self, auto_ack=auto_ack)
        return self._stream

    async def _start_sync(self, stream: UpdateStream) -> None:
        if stream is not self._stream:
            raise RuntimeError("this sync iterator is closed")
        if not self._store.logged_in:
            self._stream_closed(stream)
            raise ClientError("not_authenticated", "log in before syncing", op="sync")
        stream.begin(self._store.cursor or 0)
        link = self._link
        if link is None or link.closed.is_set():
            return  # the supervisor starts the stream once it has a connection
        try:
            await link.request("sync", {"since": stream.resume_after})
        except LinkLostError:
            pass  # the supervisor restarts the stream on the next connection
        except BaseException:
            self._stream_closed(stream)
            raise

    def _stream_closed(self, stream: UpdateStream) -> None:
        if self._stream is stream:
            self._stream = None

    def _mark_processed(self, position: int) -> None:
        """The application is done with everything up to ``position``."""
        if position > self._processed_upto:
            self._processed_upto = position
            self._ack_wanted.set()

    async def ack(self, position: int | None = None) -> None:
        """Mark everything up to ``position`` processed, and wait until it is acknowledged.

        Without ``position``: wait until what the stream counts as processed is written to
        the store and acknowledged to the node (client.md §5 step 4).
        """
        if position is not None:
            self._mark_processed(position)
        target = self._processed_upto
        while self._acked < target and self._store.logged_in:
            if self._closing:
                raise SessionClosedError("the session closed before the ack was sent")
            progress = self._ack_progress
            await progress.wait()

    async def _acknowledge(self) -> None:
        """Background task: store the cursor, then ``ack``, for the newest processed position."""
        while True:
            await self._ack_wanted.wait()
            self._ack_wanted = trio.Event()
            position = self._processed_upto
            if position <= self._acked or not self._store.logged_in:
                continue
            if self._store.cursor is None or position > self._store.cursor:
                self._store.cursor = position
                if self._crypto is not None:  # what those positions taught it goes along
                    self._crypto.seal_into_store()
                await self._save_store()
            try:
                await self._call("ack", {"position": position})
            except ClientError as exc:
                log.warning("ack refused: %s", exc.code)
                if exc.code in _TRANSIENT_CODES:
                    await trio.sleep(_ACK_RETRY_DELAY)
                    self._ack_wanted.set()
                continue
            self._acked = max(self._acked, position)
            self._ack_progressed()

    def _ack_progressed(self) -> None:
        self._ack_progress.set()
        self._ack_progress = trio.Event()

    # --- the connection ---------------------------------------------------------------------

    async def _on_notice(self, generation: int, notice: Notice) -> None:
        """A push from the node, in arrival order (called by the link's reader)."""
        if notice.op == "signed_out":
            await self._device_ended(str(notice.params.get("reason", "")))
        elif self._stream is not None and self._stream.started:
            self._stream.feed(generation, notice)

    async def _supervise(self, *, task_status: trio.TaskStatus[None]) -> None:
        """Keep a connection up until the session closes; report the first one started.

        The first connection's failure is raised (``connect`` fails with it); later ones
        are retried after a backoff.
        """
        failures = 0
        started = False

        def ready() -> None:
            nonlocal started, failures
            failures = 0
            if not started:
                started = True
                task_status.started()

        while True:
            generation = next(self._generations)
            error: Exception | None = None
            try:
                async with open_link(
                    self._address,
                    partial(self._on_notice, generation),
                    ssl_context=self._ssl_context,
                    connect_timeout=self._connect_timeout,
                    close_timeout=self._close_timeout,
                ) as link:
                    self._generation = generation
                    # Failures come back as values: raised here, inside the link's nursery,
                    # they would reach us wrapped in an ExceptionGroup.
                    error = await self._serve(link, ready)
            except ConnectError as exc:
                error = exc
            finally:
                self._bound = False
                self._set_link(None)
            if self._closing:
                return
            if not started:
                assert error is not None
                if isinstance(error, ConnectError | ClientError):
                    raise error
                raise ConnectError(f"{self._address.url}: {error or 'connection lost'}")
            log.info("disconnected url=%s error=%s", self._address.url, error)
            delay = self._backoff.delay(failures)
            failures += 1
            log.info("reconnecting in %.2fs (attempt %d)", delay, failures)
            if self._stream is not None and self._stream.started:
                self._stream.announce(Reconnecting(failures, delay))
            await trio.sleep(delay)

    async def _serve(self, link: Link, ready: Callable[[], None]) -> Exception | None:
        """Set a fresh connection up, then keep it until it closes; the failure, if any."""
        try:
            with trio.fail_after(self._response_timeout):
                await self._set_up(link)
        except (LinkLostError, ClientError, trio.TooSlowError) as exc:
            return exc
        self._set_link(link)
        log.info("connected url=%s", self._address.url)
        ready()
        async with trio.open_nursery() as tasks:
            tasks.start_soon(self._heartbeat, link)
            await link.closed.wait()
            tasks.cancel_scope.cancel()
        return None

    async def _set_up(self, link: Link) -> None:
        """Bind a fresh connection with the stored token and resume the stream."""
        self._bound = False
        token = self._store.access_token
        if token is not None:
            try:
                await link.request("authenticate", {"access_token": token})
            except ClientError as exc:
                if exc.code not in SIGNED_OUT_CODES:
                    raise
                # The token is dead for good (client.md §2): this device is over.
                await self._device_ended(exc.code)
                return
            self._bound = True
        stream = self._stream
        if self._bound and stream is not None and stream.started:
            await link.request("sync", {"since": stream.resume_after})
        if self._bound and self._processed_upto > self._acked:
            self._ack_wanted.set()

    async def _heartbeat(self, link: Link) -> None:
        """Heartbeat while bound; drop a connection whose node stopped answering."""
        while True:
            await trio.sleep(self._heartbeat_interval)
            if not self._bound:
                continue
            with trio.move_on_after(self._response_timeout) as waited:
                try:
                    await link.request("heartbeat", {})
                except ClientError as exc:
                    log.debug("heartbeat refused: %s", exc.code)
                except LinkLostError:
                    return
            if waited.cancelled_caught:
                log.warning("no answer to a heartbeat in %ss: reconnecting", self._response_timeout)
                await link.abort()
                return

    # --- life cycle -------------------------------------------------------------------------

    async def _open(self, nursery: trio.Nursery) -> None:
        self._nursery = nursery
        await nursery.start(self._supervise)
        nursery.start_soon(self._acknowledge)

    async def _close(self) -> None:
        """Acknowledge what was processed and close the connection (briefly), then stop."""
        with trio.CancelScope(shield=True):
            with trio.move_on_after(self._close_timeout):
                if self.connected and self._bound:
                    await self.ack()
                if self._crypto is not None and self._crypto.dirty and self._store.logged_in:
                    self._crypto.seal_into_store()
                    await self._save_store()
            self._closing = True
            self._set_link(self._link)  # wake requests waiting for a connection: they fail
            self._ack_progressed()  # and waiters for an ack that will not come
            if self._link is not None:
                # Close while the link's reader still runs, so the node's close frame is
                # read and the close handshake completes at once (bounded by the timeout).
                await self._link.aclose(self._close_timeout)
        if self._stream is not None:
            self._stream.end()
            self._stream = None
        if self._nursery is not None:
            self._nursery.cancel_scope.cancel()


class _Connect:
    """The async context manager :func:`connect` returns.

    It owns the session's nursery without wrapping the application's exceptions in an
    ``ExceptionGroup``: the body runs outside the nursery's ``async with``.
    """

    def __init__(self, session: Session) -> None:
        self._session = session
        self._nursery_manager: Any = None

    async def __aenter__(self) -> Session:
        self._nursery_manager = trio.open_nursery()
        nursery = await self._nursery_manager.__aenter__()
        try:
            await self._session._open(nursery)
        except BaseException:
            nursery.cancel_scope.cancel()
            await self._nursery_manager.__aexit__(None, None, None)
            raise
        return self._session

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        try:
            await self._session._close()
        finally:
            await self._nursery_manager.__aexit__(None, None, None)


def connect(
    url: str | None = None,
    *,
    store: Store | str | os.PathLike[str] | None = None,
    ssl_context: ssl.SSLContext | None = None,
    heartbeat_interval: float = DEFAULT_HEARTBEAT_INTERVAL,
    response_timeout: float = 20.0,
    connect_timeout: float = 10.0,
    close_timeout: float = 2.0,
    backoff: Backoff | None = None,
    e2ee: bool = False,
) -> _Connect:
    """Connect to a node: ``async with connect(url, store=path) as session: ...``.

    ``url`` is the node's ``ws://`` or ``wss://`` URL (path ``/client`` by default); without
    it, the store's. ``store`` is a :class:`Store`, a path to one (created on first
    login), or None for a session kept only in memory. A store that belongs to another URL
    is reset. ``ssl_context`` verifies ``wss://`` (the system's trust store by default).
    The first connection must succeed (:class:`ConnectError` otherwise); later
    disconnects are retried with ``backoff``. If the store holds a token, the connection
    is authenticated before the block runs; a token the node refuses is dropped from the
    store (check :attr:`Session.logged_in`). ``e2ee`` switches end-to-end encryption on
    (spec/e2ee.md §4): the device's keys are kept, sealed, in the store.
    """
    if store is None:
        kept = Store()
    elif isinstance(store, Store):
        kept = store
    else:
        kept = Store.load(store)
    url = url if url is not None else kept.url
    if url is None:
        raise ValueError("connect() needs a URL: none given and none in the store")
    address = NodeAddress.parse(url)
    if kept.url is not None and NodeAddress.parse(kept.url).endpoint != address.endpoint:
        # A store belongs to one node: its token and cursor mean nothing to another.
        kept.forget_device()
        kept.user_id = None
    kept.url = url
    session = Session(
        address,
        kept,
        ssl_context=ssl_context,
        heartbeat_interval=heartbeat_interval,
        response_timeout=response_timeout,
        connect_timeout=connect_timeout,
        close_timeout=close_timeout,
        backoff=backoff if backoff is not None else Backoff(),
        e2ee=e2ee,
    )
    return _Connect(session)
