"""Which connections act as which device: binding them, and signing them out.

spec/client.md §1: ``register``, ``login`` and ``authenticate`` bind a connection to a device;
``logout`` and ``revoke_device`` end a device, and every connection bound to it receives the
notice ``signed_out`` and becomes unbound. spec/client.md §7: a user has at most
``max_connections_per_user`` bound connections; one more is refused ``too_many_connections``
and closed (1008).

The per-user limit is checked *before* a login creates anything — a refused request has no
effect (§7) — and logins of one user running at the same time each hold a reserved slot
until they bind, so two of them cannot both squeeze into the last free one.

:meth:`SignIns.watch` is the node's answer to ``kith user deactivate`` (and ``kith user
passwd --revoke-devices``) run beside it: those change the database from another process,
and triggers log each removed device and deactivated user in the ``signouts`` table; every
``session_check_interval_s`` the node reads the rows added since and signs out the
connections concerned.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

import trio

from node.hub import Hub
from node.log import get_log
from node.services.accounts import Accounts
from node.session import Session
from protocol import ErrorCode, Notice, RemoteProtocolError, encode_frame

__all__ = ["SignIns"]

log = get_log(__name__)


class SignIns:
    """Binds sessions to devices within the per-user limit, and signs them out."""

    def __init__(self, hub: Hub, *, max_connections_per_user: int) -> None:
        self._hub = hub
        self._max_per_user = max_connections_per_user
        self._reserved: Counter[str] = Counter()
        self._bound: dict[Session, None] = {}
        self._signout_cursor = 0
        """The last row of the sign-out log acted on (accounts' ``signouts``)."""

    @contextmanager
    def slot(self, session: Session, user_id: str) -> Iterator[None]:
        """Hold one of ``user_id``'s connection slots while a login is under way.

        Refuses with ``too_many_connections`` (and has the connection closed after the
        answer) when the user's bound connections and pending logins fill the limit. The
        connection's own slot counts as free when it is already bound to this user.
        """
        taken = self._hub.count(user_id) + self._reserved[user_id]
        if session.user_id == user_id and session in self._bound:
            taken -= 1
        if taken >= self._max_per_user:
            log.info(
                "too_many_connections",
                scope="user",
                user_id=user_id,
                limit=self._max_per_user,
                conn=session.peer.connection_id,
            )
            session.close_after_answer()
            raise RemoteProtocolError(
                ErrorCode.TOO_MANY_CONNECTIONS,
                f"{user_id} has {self._max_per_user} connections, the most this node allows",
            )
        self._reserved[user_id] += 1
        try:
            yield
        finally:
            self._reserved[user_id] -= 1
            if not self._reserved[user_id]:
                del self._reserved[user_id]

    def bind(self, session: Session, user_id: str, device_id: str) -> None:
        """Make ``session`` act as the device (leaving any device it acted as before)."""
        if session.closed.is_set():
            return  # the connection left while its login ran: nothing to bind
        if session.bound:
            self.unbind(session)
        session.bind(user_id, device_id)
        self._hub.attach(session)
        self._bound[session] = None
        session.on_end.append(self._forget)

    def unbind(self, session: Session) -> None:
        """Back to unbound: out of the hub, no longer acting as any device."""
        self._hub.detach(session)
        session.unbind()
        self._forget(session)
        if self._forget in session.on_end:
            session.on_end.remove(self._forget)

    def _forget(self, session: Session) -> None:
        self._bound.pop(session, None)

    async def sign_out(self, user_id: str, device_id: str, reason: str) -> int:
        """Unbind every connection of a device, then tell each ``signed_out``; how many.

        All of them are unbound before the first notice is sent, so nothing meant for the
        device reaches any of them after its ``signed_out``.
        """
        sessions = self._hub.of_device(user_id, device_id)
        for session in sessions:
            self.unbind(session)
        if sessions:
            log.info(
                "signed_out",
                user_id=user_id,
                device_id=device_id,
                reason=reason,
                connections=len(sessions),
            )
        frame = encode_frame(Notice("signed_out", {"reason": reason}))
        for session in sessions:
            await session.push(frame)
        return len(sessions)

    async def check(self, accounts: Accounts) -> int:
        """Act on the sign-out log since the last check; how many devices were signed out.

        Reads only the rows added since (none, usually): the cost follows changes, never the
        number of connected devices. Rows for devices this node already signed out itself
        (a ``logout``) find no connection and do nothing.
        """
        entries = await accounts.signouts_after(self._signout_cursor)
        if not entries:
            return 0
        signed_out = 0
        for entry in entries:
            sessions = self._hub.of_user(entry.user_id)
            devices = sorted(
                {s.device_id for s in sessions if s.device_id is not None}
                if entry.device_id is None
                else {entry.device_id}
            )
            for device_id in devices:
                if await self.sign_out(entry.user_id, device_id, entry.reason):
                    signed_out += 1
        self._signout_cursor = entries[-1].id
        await accounts.forget_signouts(self._signout_cursor)
        return signed_out

    async def watch(
        self,
        accounts: Accounts,
        interval_s: float,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Run :meth:`check` every ``interval_s`` seconds until cancelled."""
        self._signout_cursor = await accounts.last_signout()
        task_status.started()
        while True:
            await trio.sleep(interval_s)
            try:
                await self.check(accounts)
            except Exception:
                # A locked or failing database must not stop the node; try again next time.
                log.exception("session_check_failed")
