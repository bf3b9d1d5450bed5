"""The database: migrations, durable writes with group commit, reads off the event loop."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlite_utils
import trio

from node.storage.db import Database
from node.storage.schema import SCHEMA_VERSION, migrate


def _count(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT count(*) FROM rooms").fetchone()[0])


def _insert_room(room_id: str) -> Callable[[sqlite3.Connection], str]:
    def job(conn: sqlite3.Connection) -> str:
        conn.execute(
            "INSERT INTO rooms (room_id, create_event_id, direct, created_ts) VALUES (?, ?, 0, 0)",
            (room_id, "$" + room_id[1:]),
        )
        return room_id

    return job


async def test_a_new_database_is_migrated_to_the_current_version(tmp_path: Path) -> None:
    db = await Database.open(tmp_path / "kith.db")
    try:
        version = await db.read(
            lambda conn: conn.execute("SELECT version FROM schema_version").fetchone()[0]
        )
        assert version == SCHEMA_VERSION
        tables = await db.read(
            lambda conn: {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
        )
        assert {"users", "devices", "events", "stream", "to_device"} <= tables
        mode = await db.read(lambda conn: conn.execute("PRAGMA journal_mode").fetchone()[0])
        assert mode == "wal"
    finally:
        await db.aclose()


def test_migrating_twice_changes_nothing_and_newer_schemas_are_refused(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "kith.db")
    db = sqlite_utils.Database(conn)
    assert migrate(db) == 0
    assert migrate(db) == SCHEMA_VERSION
    conn.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION + 1,))
    conn.commit()
    with pytest.raises(RuntimeError):
        migrate(db)
    conn.close()


async def test_a_write_is_committed_when_it_returns(tmp_path: Path) -> None:
    db = await Database.open(tmp_path / "kith.db")
    try:
        with trio.fail_after(10):
            assert await db.write(_insert_room("!a")) == "!a"
            # A fresh connection, outside the node, sees it: it is committed.
            outside = sqlite3.connect(tmp_path / "kith.db")
            assert _count(outside) == 1
            outside.close()
    finally:
        await db.aclose()


async def test_concurrent_writes_share_commits_and_a_failure_stays_its_own(tmp_path: Path) -> None:
    db = await Database.open(tmp_path / "kith.db")
    errors: list[BaseException] = []

    async def write(i: int) -> None:
        try:
            await db.write(_insert_room("!dup" if i % 50 == 0 else f"!r{i}"))
        except sqlite3.IntegrityError as exc:
            errors.append(exc)

    try:
        with trio.fail_after(20):
            async with trio.open_nursery() as nursery:
                for i in range(300):
                    nursery.start_soon(write, i)
            assert len(errors) == 5  # six writes of "!dup": the first wins
            assert await db.read(_count) == 295
            assert db.commits < 300
    finally:
        await db.aclose()


async def test_a_job_that_fails_after_writing_leaves_nothing_and_its_batch_commits(
    tmp_path: Path,
) -> None:
    db = await Database.open(tmp_path / "kith.db")
    failures: list[str] = []

    def half_done(room_id: str) -> Callable[[sqlite3.Connection], str]:
        insert = _insert_room(room_id)

        def job(conn: sqlite3.Connection) -> str:
            insert(conn)
            raise ValueError(room_id)

        return job

    async def write(i: int) -> None:
        job = half_done(f"!bad{i}") if i % 7 == 3 else _insert_room(f"!r{i}")
        try:
            await db.write(job)
        except ValueError as exc:
            failures.append(str(exc))

    try:
        with trio.fail_after(20):
            async with trio.open_nursery() as nursery:
                for i in range(200):
                    nursery.start_soon(write, i)
            bad = [f"!bad{i}" for i in range(200) if i % 7 == 3]
            assert sorted(failures) == sorted(bad)
            stored = await db.read(
                lambda conn: {r for (r,) in conn.execute("SELECT room_id FROM rooms")}
            )
            assert stored == {f"!r{i}" for i in range(200) if i % 7 != 3}
            assert db.commits < 200
    finally:
        await db.aclose()


async def test_queued_writes_finish_before_close_and_survive_reopening(tmp_path: Path) -> None:
    path = tmp_path / "kith.db"
    db = await Database.open(path)
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            for i in range(20):
                nursery.start_soon(db.write, _insert_room(f"!r{i}"))
        await db.aclose()
        again = await Database.open(path)
        try:
            assert await again.read(_count) == 20
        finally:
            await again.aclose()


async def test_reads_are_read_only(tmp_path: Path) -> None:
    db = await Database.open(tmp_path / "kith.db")
    try:
        with pytest.raises(sqlite3.OperationalError):
            await db.read(_insert_room("!nope"))
    finally:
        await db.aclose()


async def test_commit_callbacks_run_in_the_order_writes_were_queued(tmp_path: Path) -> None:
    db = await Database.open(tmp_path / "kith.db")
    seen: list[str] = []
    try:
        with trio.fail_after(10):

            async def write(room_id: str) -> None:
                await db.write(_insert_room(room_id), on_commit=seen.append)

            async with trio.open_nursery() as nursery:
                for i in range(100):
                    nursery.start_soon(write, f"!r{i:03}")
                    await trio.sleep(0)  # queue them in this order
            assert seen == [f"!r{i:03}" for i in range(100)]
    finally:
        await db.aclose()
