"""The node's database: one SQLite file in WAL mode, one writer, many readers.

Writes are plain functions of a connection, queued to the **writer thread**. The writer
takes every job waiting, runs them in one transaction — if one fails, the batch runs again
with each job in a savepoint, so one failing job does not undo the others — commits once,
and only then wakes the waiting tasks
(group commit: under load many writes share one commit; alone, a write commits at once).
``await db.write(job)`` therefore returns only after the job's effects are durable, which is
what lets the node acknowledge a request only after it is committed.

Reads run on trio's worker threads, each with its own read-only connection, so the event
loop never waits for SQLite.
"""

from __future__ import annotations

import contextlib
import queue
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Generic, TypeVar

import outcome
import sqlite_utils
import trio

from node.storage.schema import migrate

__all__ = ["Database"]

T = TypeVar("T")
Job = Callable[[sqlite3.Connection], T]

_MAX_BATCH = 512
_BUSY_TIMEOUT_MS = 10_000
_READERS = 4


def _connect(path: Path, *, synchronous: str, readonly: bool) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute(f"PRAGMA synchronous = {synchronous}")
    if readonly:
        conn.execute("PRAGMA query_only = ON")
    return conn


class _Pending(Generic[T]):
    """A queued write: the job, and where its outcome goes."""

    __slots__ = ("done", "job", "on_commit", "result", "token")

    def __init__(
        self,
        job: Job[T],
        token: trio.lowlevel.TrioToken,
        on_commit: Callable[[T], None] | None,
    ) -> None:
        self.job = job
        self.token = token
        self.on_commit = on_commit
        self.done = trio.Event()
        self.result: outcome.Outcome[T] | None = None

    def finish(self, result: outcome.Outcome[T]) -> None:
        """Called on the trio thread, in commit order, once the batch committed (or failed)."""
        self.result = result
        if self.on_commit is not None and isinstance(result, outcome.Value):
            self.on_commit(result.value)
        self.done.set()


class Database:
    """A node's SQLite database. Open with :meth:`open`, close with :meth:`aclose`."""

    def __init__(self, path: Path, *, synchronous: str = "NORMAL") -> None:
        if synchronous not in ("NORMAL", "FULL"):
            raise ValueError("synchronous must be NORMAL or FULL")
        self.path = path
        self._synchronous = synchronous
        self._queue: queue.SimpleQueue[_Pending[Any] | None] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        self._limiter = trio.CapacityLimiter(_READERS)
        self.commits = 0
        """How many transactions the writer committed (group commit shows as fewer commits)."""

    @classmethod
    async def open(cls, path: Path, *, synchronous: str = "NORMAL") -> Database:
        """Create or migrate the schema, then start the writer."""
        db = cls(path, synchronous=synchronous)
        await trio.to_thread.run_sync(db._migrate)
        db._writer = threading.Thread(target=db._write_loop, name="kith-db-writer", daemon=True)
        db._writer.start()
        return db

    def _migrate(self) -> None:
        conn = _connect(self.path, synchronous=self._synchronous, readonly=False)
        try:
            migrate(sqlite_utils.Database(conn))
        finally:
            conn.close()

    async def aclose(self) -> None:
        """Finish the queued writes, stop the writer, close every connection."""
        if self._writer is not None:
            self._queue.put(None)
            await trio.to_thread.run_sync(self._writer.join)
            self._writer = None
        with self._readers_lock:
            for conn in self._readers:
                conn.close()
            self._readers.clear()

    # --- writing --------------------------------------------------------------------------

    async def write(self, job: Job[T], *, on_commit: Callable[[T], None] | None = None) -> T:
        """Run ``job`` in the writer's transaction; return its result once committed.

        ``on_commit(result)`` runs on the event loop right after the commit, before this
        returns — and for the jobs of one database strictly in the order they were queued
        (trio runs ``run_sync_soon`` callbacks in order), which is how the node publishes
        its stream in position order. If ``job`` raises, its changes are rolled back (the
        rest of the batch is not) and the exception is raised here. ``job`` may run more than
        once (its changes undone in between): it must act only on the connection.
        """
        if self._writer is None:
            raise RuntimeError("the database is not open")
        pending = _Pending(job, trio.lowlevel.current_trio_token(), on_commit)
        self._queue.put(pending)
        await pending.done.wait()
        assert pending.result is not None
        return pending.result.unwrap()

    def _write_loop(self) -> None:
        conn = _connect(self.path, synchronous=self._synchronous, readonly=False)
        try:
            while True:
                first = self._queue.get()
                if first is None:
                    return
                batch = [first]
                while len(batch) < _MAX_BATCH:
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if item is None:
                        self._queue.put(None)  # stop after this batch
                        break
                    batch.append(item)
                self._commit(conn, batch)
        finally:
            conn.close()

    def _commit(self, conn: sqlite3.Connection, batch: list[_Pending[Any]]) -> None:
        try:
            results = self._run_batch(conn, batch, isolated=False)
            if results is None:  # a job failed: again, each job in a savepoint of its own
                results = self._run_batch(conn, batch, isolated=True)
            assert results is not None
            conn.execute("COMMIT")
            self.commits += 1
        except sqlite3.Error as exc:  # the commit itself failed: nothing of the batch stands
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            results = [outcome.Error(exc) for _ in batch]
        for pending, result in zip(batch, results, strict=True):
            # If the waiting run is gone, the write stands all the same.
            with contextlib.suppress(trio.RunFinishedError):
                pending.token.run_sync_soon(pending.finish, result)

    @staticmethod
    def _run_batch(
        conn: sqlite3.Connection, batch: list[_Pending[Any]], *, isolated: bool
    ) -> list[outcome.Outcome[Any]] | None:
        """Run the jobs in one open transaction; the caller commits.

        Not ``isolated``, the jobs run back to back — two statements fewer per job, the
        common case — and the first failure rolls everything back and returns None.
        ``isolated``, each job runs in a savepoint, and a failing job's changes alone are
        undone. A job may therefore run twice; it acts only on ``conn``, so that is safe.
        """
        conn.execute("BEGIN IMMEDIATE")
        results: list[outcome.Outcome[Any]] = []
        for pending in batch:
            if not isolated:
                result = outcome.capture(pending.job, conn)
                if isinstance(result, outcome.Error):
                    conn.execute("ROLLBACK")
                    return None
                results.append(result)
                continue
            conn.execute("SAVEPOINT job")
            result = outcome.capture(pending.job, conn)
            if isinstance(result, outcome.Error):
                conn.execute("ROLLBACK TO job")
            conn.execute("RELEASE job")
            results.append(result)
        return results

    # --- reading --------------------------------------------------------------------------

    async def read(self, query: Job[T]) -> T:
        """Run ``query`` on a worker thread's read-only connection."""
        return await trio.to_thread.run_sync(self._read, query, limiter=self._limiter)

    def _read(self, query: Job[T]) -> T:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = _connect(self.path, synchronous=self._synchronous, readonly=True)
            self._local.conn = conn
            with self._readers_lock:
                self._readers.append(conn)
        return query(conn)
