"""A fake peer node that accepts the node's own links: the responder of spec/federation.md
§2.2, for the conformance suite.

A node reaches a peer only at the address of its ``[peers]`` table, or at the peer's server
name (§2.1). :class:`FakePeerServer` listens on such an address under one fixed server name —
``127.0.0.1`` and a free port for the node the suite starts itself, which gets the
``[peers]`` entry in its ``kith.toml``; ``--peer-listen`` and ``--peer-name`` for a node
given by ``--node-url``, whose operator adds the entry. Its key is derived from its name, so
a long-lived node that pinned it in an earlier run (§1.2) still accepts it.

It checks the node's ``link_hello`` and ``link_prove`` as a responder must, then answers the
node's requests: ``sign_invite`` co-signed, ``txn`` accepted (or failed with
``internal_error`` when a test says so), ``to_device`` and ``ping`` with ``{}``,
``backfill`` and ``get_missing`` from :attr:`FakePeerServer.rooms`. Each link opened, each
request with the answer it got and each link closed is a :class:`Record`.

The node is session-scoped and keeps its links and its outbox from test to test, while each
test has an event loop of its own; so the server runs for the whole session in a thread with
its own trio loop. Tests read its records with :meth:`FakePeerServer.wait_for` and run code
on its links (an :class:`AcceptedLink` is a :class:`FakePeer`, so it makes and sends events
the same way) with :meth:`FakePeerServer.call`, both safe from any thread.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import os
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Final, Literal, TypeVar

import nacl.signing
import trio
from trio_websocket import ConnectionClosed, WebSocketConnection, WebSocketRequest, serve_websocket

from protocol import Endpoint, ErrorCode, RemoteProtocolError, compute_event_id, derive_key_id
from protocol.events import countersign_event, verify_event
from protocol.federation.keys import ServerKeys, parse_key_object, pin
from protocol.federation.link import LinkRoles, check_nonce, check_proof, encode_nonce
from protocol.ids import parse_user_id
from protocol.wire import MAX_FRAME_BYTES, SUBPROTOCOL
from tests.conformance.fake_peer import FakePeer, LinkClosedError, RoomHistory, now_ms
from tests.conformance.wsclient import Binary, Closed, Received, Text

__all__ = ["BAD_HELLO", "PEER_NAME", "AcceptedLink", "FakePeerServer", "Record", "peer_key"]

PEER_NAME: Final = "peer.conformance.test"
"""The fake peer's server name for the node the suite starts itself."""
HANDSHAKE_TIMEOUT: Final = 10.0
"""§2.2: a responder closes a link not authenticated by then (1008)."""
BAD_HELLO: Final = ("proof", "server_name", "nonce", "keys")
"""What :meth:`FakePeerServer.configure` can spoil in its ``link_hello`` answers: each is a
check the initiator makes of the answer (§2.2) — a proof that does not verify, a name other
than the one it dialed, a nonce that is not one, a key object that is not valid."""
_START_TIMEOUT_S: Final = 10.0
_CALL_TIMEOUT_S: Final = 30.0
_WAIT_LIMIT_S: Final = 60.0

T = TypeVar("T")


def peer_key(name: str) -> nacl.signing.SigningKey:
    """The fake peer's key: the same for the same name in every run, so that a node that
    pinned it once (§1.2) accepts it again. Public, like everything of a fake peer."""
    return nacl.signing.SigningKey(
        hashlib.sha256(b"kith conformance peer\0" + name.encode()).digest()
    )


@dataclass(frozen=True)
class Record:
    """One thing the fake peer saw on a link: ``open`` (``frame`` holds the WebSocket
    request's ``path`` and ``subprotocols``), ``request`` (the node's frame and the fake
    peer's answer), ``closed`` (``code`` and ``reason``) or ``error`` (the fake peer failed)."""

    index: int
    link: int
    kind: str
    frame: dict[str, Any]
    answer: dict[str, Any] | None = None
    event_ids: tuple[str, ...] = ()
    """For a ``txn``: the ids of its ``pdus``, in order ("" for one that has none)."""
    at: float = field(default_factory=time.monotonic)

    @property
    def op(self) -> str | None:
        """The op of a ``request`` record."""
        op = self.frame.get("op") if self.kind == "request" else None
        return op if isinstance(op, str) else None

    @property
    def params(self) -> dict[str, Any]:
        """The params of a ``request`` record."""
        params = self.frame.get("params")
        return params if isinstance(params, dict) else {}


class _ServerSocket:
    """trio-websocket's server-side connection as the socket a :class:`FakePeer` reads."""

    def __init__(self, ws: WebSocketConnection) -> None:
        self._ws = ws

    async def send_text(self, text: str) -> None:
        # A link closed meanwhile shows as Closed on the next receive.
        with contextlib.suppress(ConnectionClosed):
            await self._ws.send_message(text)

    async def receive(self) -> Received:
        try:
            message = await self._ws.get_message()
        except ConnectionClosed as exc:
            if exc.reason is None:
                return Closed(1006, "connection lost")
            return Closed(exc.reason.code, exc.reason.reason or "")
        return Text(message) if isinstance(message, str) else Binary(bytes(message))

    async def aclose(self, code: int, reason: str) -> None:
        await self._ws.aclose(code, reason)


class AcceptedLink(FakePeer):
    """A link the node opened to the fake peer, seen from the responder's end.

    A reader task answers the node's requests and hands answers to :meth:`request`, so the
    fake peer can also send requests of its own (``txn``, ``backfill``) once the link is
    authenticated, as both ends may (§2.2).
    """

    def __init__(self, socket: _ServerSocket, server: FakePeerServer, link_id: int) -> None:
        super().__init__(socket, "", server.name, key=server.key)
        self.socket = socket
        self.server = server
        self.link_id = link_id
        self.rooms = server.rooms
        self.authenticated = trio.Event()
        self.finished = trio.Event()
        self._hello_seen = False
        self._close_after_answer: tuple[int, str] | None = None
        self._waiting: dict[int, tuple[trio.Event, list[dict[str, Any]]]] = {}

    def roles(self) -> LinkRoles:
        """The node initiated this link; the fake peer responds."""
        assert self.node_nonce is not None, "link_hello was not answered"
        return LinkRoles(self.node_name, self.name, self.node_nonce, self.nonce)

    # --- running ----------------------------------------------------------------------

    async def run(self) -> None:
        """Read frames until the link closes (or a handshake check closes it)."""
        closed = Closed(1006, "connection lost")
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._expire_handshake)
                closed = await self._read()
                nursery.cancel_scope.cancel()
        finally:
            for done, _ in self._waiting.values():
                done.set()
            self.server.record(
                self.link_id, "closed", {"code": closed.code, "reason": closed.reason}
            )
            self.finished.set()

    async def _read(self) -> Closed:
        while True:
            message = await self.socket.receive()
            if isinstance(message, Closed):
                return message
            if not isinstance(message, Text):
                await self.close(1003, "the fake peer reads text frames only")
                continue
            frame = json.loads(message.data)
            if "op" in frame:
                await self._answer(frame)
                if self._close_after_answer is not None:
                    await self.close(*self._close_after_answer)
            elif isinstance(frame.get("id"), int) and frame["id"] in self._waiting:
                done, slot = self._waiting.pop(frame["id"])
                slot.append(frame)
                done.set()
            else:
                self.server.record(self.link_id, "error", {"unsolicited": frame})

    async def _expire_handshake(self) -> None:
        with trio.move_on_after(HANDSHAKE_TIMEOUT):
            await self.authenticated.wait()
            return
        await self.close(1008, "not authenticated in time")

    async def close(self, code: int, reason: str) -> None:
        """Close the link; :meth:`run` ends once the node answered the close."""
        with contextlib.suppress(ConnectionClosed, trio.BrokenResourceError):
            await self.socket.aclose(code, reason)

    async def request(self, op: str, **params: Any) -> dict[str, Any]:
        """Send a request on the node's link; its answer frame (the reader routes it)."""
        request_id = next(self._ids)
        done, slot = trio.Event(), list[dict[str, Any]]()
        self._waiting[request_id] = (done, slot)
        await self.send({"id": request_id, "op": op, "params": params})
        await done.wait()
        if not slot:
            raise LinkClosedError(Closed(1006, f"the link closed before {op} was answered"))
        return slot[0]

    async def _answer(self, frame: dict[str, Any]) -> None:
        self.requests.append(frame)
        answer = self.answer_for(frame) if "id" in frame else None
        event_ids: tuple[str, ...] = ()
        if frame.get("op") == "txn":
            event_ids = tuple(_event_id(pdu) for pdu in frame.get("params", {}).get("pdus", []))
        # Recorded before the node has the answer: what a test reads happened already.
        self.server.record(self.link_id, "request", frame, answer, event_ids)
        if answer is not None:
            await self.send(answer)

    # --- answers ----------------------------------------------------------------------

    def answer_for(self, frame: dict[str, Any]) -> dict[str, Any]:
        """The answer to one request: the handshake (§2.2), ``sign_invite`` (§7), a failed
        ``txn`` if a test asked for one; the rest as :class:`FakePeer` answers."""
        op, params = frame["op"], frame.get("params") or {}
        try:
            if op == "link_hello":
                result = self._answer_hello(params)
            elif op == "link_prove":
                result = self._answer_prove(params)
            elif op == "ping":
                result = {}
            elif not self.authenticated.is_set():
                raise RemoteProtocolError(ErrorCode.NOT_AUTHENTICATED, "prove your name first")
            elif op == "sign_invite":
                result = self._sign_invite(params)
            elif op == "txn" and self.server.take_txn_failure(params):
                raise RemoteProtocolError(ErrorCode.INTERNAL_ERROR, "the fake peer fails it")
            else:
                return super().answer_for(frame)
        except RemoteProtocolError as exc:
            return {"id": frame["id"], "error": {"code": exc.code.value, "message": exc.message}}
        return {"id": frame["id"], "result": result}

    def _answer_hello(self, params: dict[str, Any]) -> dict[str, Any]:
        """§2.2, the responder's checks of ``link_hello``, in the spec's order."""
        if self._hello_seen:
            raise RemoteProtocolError(ErrorCode.FORBIDDEN, "link_hello is sent once per link")
        self._hello_seen = True
        if params.get("responder") != self.name:
            raise RemoteProtocolError(ErrorCode.NOT_FOUND, f"this is {self.name}")
        initiator = params.get("server_name")
        if initiator == self.name:
            raise RemoteProtocolError(ErrorCode.FORBIDDEN, "a link from the fake peer's own name")
        keys = parse_key_object(params.get("keys"))
        if keys.server_name != initiator:
            raise RemoteProtocolError(ErrorCode.BAD_KEY, "the key object is of another server")
        self.server.pin(keys)
        nonce = check_nonce(params.get("nonce"))
        self.node_name, self.node_nonce, self.node_keys = keys.server_name, nonce, keys
        answer = {
            "server_name": self.name,
            "nonce": self.nonce,
            "keys": self.key_object(),
            "proof": self.proof(),
        }
        spoiled = self.server.bad_hello()
        if spoiled is not None:
            answer[spoiled] = self._spoiled(spoiled)
        return answer

    def _spoiled(self, member: str) -> Any:
        """A ``link_hello`` result member that fails what the initiator checks (§2.2)."""
        if member == "server_name":  # a valid name, not the one the node meant to reach
            return "other." + self.name
        if member == "nonce":  # 30 bytes, not 32
            return encode_nonce(os.urandom(32))[:40]
        if member == "keys":  # unsigned (§1.1 step 4)
            return {**self.key_object(), "signatures": {}}
        # The fake peer's own key and key id, over a statement with another nonce: it
        # cannot verify (§2.2 step 3).
        other = LinkRoles(
            self.node_name, self.name, self.node_nonce or "", encode_nonce(os.urandom(32))
        )
        return self.proof(roles=other)

    def _answer_prove(self, params: dict[str, Any]) -> dict[str, Any]:
        """§2.2: the initiator's proof; on failure answer the error, then close (1008)."""
        if self.node_keys is None or self.authenticated.is_set():
            raise RemoteProtocolError(ErrorCode.FORBIDDEN, "link_prove follows link_hello, once")
        try:
            check_proof(
                params.get("proof"), self.roles(), self.node_name, self.node_keys.link_key, now_ms()
            )
        except RemoteProtocolError:
            self._close_after_answer = (1008, "link proof refused")
            raise
        self.authenticated.set()
        return {}

    def _sign_invite(self, params: dict[str, Any]) -> dict[str, Any]:
        """§7: check the invite as the invitee's server, then co-sign it."""
        assert self.node_keys is not None
        event = params.get("event")
        if not isinstance(event, dict):
            raise RemoteProtocolError(ErrorCode.BAD_PARAMS, "event: an object")
        # §4 steps 1-2, with the link's peer as the only server whose keys are known.
        verify_event(event, {self.node_name: dict(self.node_keys.verify_keys)})
        if event["type"] != "member" or event["content"].get("membership") != "invite":
            raise RemoteProtocolError(ErrorCode.BAD_PARAMS, "not an invite")
        if parse_user_id(event["state_key"]).server_name != self.name:
            raise RemoteProtocolError(ErrorCode.NOT_FOUND, "not a user of the fake peer")
        key_id = derive_key_id(self.key.verify_key)
        return {"event": countersign_event(event, self.name, key_id, self.key)}


def _event_id(pdu: Any) -> str:
    try:
        return compute_event_id(pdu)
    except Exception:  # the test reads the event itself; any id will do here
        return ""


class FakePeerServer:
    """The listening fake peer, in a thread of its own: see the module's docstring."""

    def __init__(self, name: str = PEER_NAME, host: str = "127.0.0.1", port: int = 0) -> None:
        self.name = name
        self.key = peer_key(name)
        self.host = host
        self.port = port
        """The bound port, once :meth:`start` returned."""
        self.rooms: dict[str, RoomHistory] = {}
        """Rooms the fake peer gives the node with ``backfill`` and ``get_missing`` (§5)."""
        self._lock = threading.Condition()
        self._records: list[Record] = []
        self._bad_hello: str | None = None
        self._failing_txns = 0
        self._failure: BaseException | None = None
        self._started = threading.Event()
        self._thread: threading.Thread | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._stop: trio.Event | None = None
        # Used in the server's thread only:
        self._pinned: dict[str, ServerKeys] = {}
        self._links: dict[int, AcceptedLink] = {}
        self._link_ids = itertools.count(1)

    def user(self, label: str) -> str:
        """A user id of the fake peer."""
        return f"@{label}:{self.name}"

    # --- the server's thread ----------------------------------------------------------

    def start(self) -> None:
        """Listen; return once the port is bound."""
        self._thread = threading.Thread(target=self._run, name="fake-peer-server", daemon=True)
        self._thread.start()
        if not self._started.wait(_START_TIMEOUT_S) or self._failure is not None:
            raise RuntimeError(f"the fake peer cannot listen on {self.host}:{self.port}") from (
                self._failure
            )

    def stop(self) -> None:
        """Close every link and stop listening."""
        if self._thread is None:
            return
        if self._token is not None and self._stop is not None:
            with contextlib.suppress(trio.RunFinishedError):
                trio.from_thread.run_sync(self._stop.set, trio_token=self._token)
        self._thread.join(_START_TIMEOUT_S)
        if self._failure is not None:
            raise RuntimeError("the fake peer failed") from self._failure

    def _run(self) -> None:
        try:
            trio.run(self._main)
        except BaseException as exc:
            self._failure = exc
        finally:
            self._started.set()
            with self._lock:
                self._lock.notify_all()

    async def _main(self) -> None:
        self._token = trio.lowlevel.current_trio_token()
        self._stop = trio.Event()
        async with trio.open_nursery() as nursery:
            serve = partial(
                serve_websocket,
                self._accept,
                self.host,
                self.port,
                None,
                handler_nursery=nursery,
                max_message_size=MAX_FRAME_BYTES[Endpoint.FEDERATION],
                disconnect_timeout=2,
            )
            server = await nursery.start(serve)
            self.port = server.port
            self._started.set()
            await self._stop.wait()
            nursery.cancel_scope.cancel()

    async def _accept(self, request: WebSocketRequest) -> None:
        link_id = next(self._link_ids)
        offered = list(request.proposed_subprotocols)
        self.record(link_id, "open", {"path": request.path, "subprotocols": offered})
        if request.path != "/federation":
            await request.reject(404)
            return
        ws = await request.accept(subprotocol=SUBPROTOCOL if SUBPROTOCOL in offered else None)
        link = AcceptedLink(_ServerSocket(ws), self, link_id)
        self._links[link_id] = link
        try:
            await link.run()
        except Exception as exc:
            self.record(link_id, "error", {"error": repr(exc)})
            with contextlib.suppress(ConnectionClosed, trio.BrokenResourceError):
                await ws.aclose(1011, "the fake peer failed")
        finally:
            del self._links[link_id]

    def pin(self, keys: ServerKeys) -> None:
        """§1.2 for the node's key object; raises ``unknown_key`` if it cannot be pinned."""
        self._pinned[keys.server_name] = pin(self._pinned.get(keys.server_name), keys)

    def link(self, link_id: int) -> AcceptedLink:
        """A link still open, by id (in the server's thread: from :meth:`call`)."""
        return self._links[link_id]

    def record(
        self,
        link: int,
        kind: str,
        frame: dict[str, Any],
        answer: dict[str, Any] | None = None,
        event_ids: tuple[str, ...] = (),
    ) -> None:
        with self._lock:
            self._records.append(Record(len(self._records), link, kind, frame, answer, event_ids))
            self._lock.notify_all()

    def bad_hello(self) -> str | None:
        with self._lock:
            return self._bad_hello

    def take_txn_failure(self, params: dict[str, Any]) -> bool:
        """Whether to fail this ``txn``: one carrying events, while failures are owed."""
        with self._lock:
            if self._failing_txns > 0 and params.get("pdus"):
                self._failing_txns -= 1
                return True
            return False

    # --- for the tests, from any thread -----------------------------------------------

    def configure(
        self, *, bad_hello: str | Literal[False] | None = False, failing_txns: int | None = None
    ) -> None:
        """``bad_hello``: answer every ``link_hello`` with this member of the result (one of
        :data:`BAD_HELLO`) spoilt, or None to answer well again; ``failing_txns``: answer
        that many next ``txn`` carrying events with ``internal_error``."""
        assert bad_hello in (False, None, *BAD_HELLO), bad_hello
        with self._lock:
            if bad_hello is not False:
                self._bad_hello = bad_hello
            if failing_txns is not None:
                self._failing_txns = failing_txns

    def mark(self) -> int:
        """Where the records stand now: pass it as ``since`` to see only what follows."""
        with self._lock:
            return len(self._records)

    def records(self, since: int = 0) -> list[Record]:
        """Every record from ``since`` on."""
        with self._lock:
            return self._records[since:]

    async def wait_for(self, predicate: Callable[[Record], bool], *, since: int = 0) -> Record:
        """The first record from ``since`` on that matches, waiting for it if need be (as long
        as the caller's deadline allows, and at most a minute)."""
        left = trio.current_effective_deadline() - trio.current_time()
        timeout = max(0.0, min(left, _WAIT_LIMIT_S))
        found = await trio.to_thread.run_sync(
            self._wait_blocking, predicate, since, timeout, abandon_on_cancel=True
        )
        if found is None:
            raise AssertionError(f"no such record in {timeout:.1f} s: {self.records(since)}")
        return found

    def _wait_blocking(
        self, predicate: Callable[[Record], bool], since: int, timeout: float
    ) -> Record | None:
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                for record in self._records[since:]:
                    if predicate(record):
                        return record
                since = len(self._records)
                if self._failure is not None:
                    raise RuntimeError("the fake peer failed") from self._failure
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._lock.wait(left)

    async def call(self, afn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """``await afn(*args)`` in the server's thread, where its links live."""
        token = self._token
        assert token is not None, "the fake peer is not started"

        async def bounded() -> T:
            with trio.fail_after(_CALL_TIMEOUT_S):
                return await afn(*args)

        def run() -> T:
            return trio.from_thread.run(bounded, trio_token=token)

        return await trio.to_thread.run_sync(run, abandon_on_cancel=True)

    async def drop_links(self) -> None:
        """Close every open link (1001), so that the node must dial the next one anew."""
        await self.call(self._drop_links)

    async def _drop_links(self) -> None:
        for link in list(self._links.values()):
            await link.close(1001, "the fake peer drops its links")
            await link.finished.wait()
