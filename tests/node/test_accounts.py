"""The accounts service on a real database: users, passwords, devices and tokens."""

from __future__ import annotations

import hashlib
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from node.services.accounts import Accounts, SignOutReason, hash_token
from node.services.passwords import PasswordHasher
from node.storage.db import Database
from protocol import ProtocolError, decode_base64_urlsafe

PASSWORD = "correct horse battery"


class Clock:
    """Milliseconds since the epoch, moved by the test."""

    def __init__(self) -> None:
        self.now = 1_700_000_000_000

    def __call__(self) -> int:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = await Database.open(tmp_path / "kith.db")
    try:
        yield database
    finally:
        await database.aclose()


@pytest.fixture
def accounts(db: Database, clock: Clock) -> Accounts:
    return Accounts(db, "example.org", password_cost="min", now_ms=clock)


async def _code(awaitable: object) -> str:
    with pytest.raises(ProtocolError) as raised:
        await awaitable  # type: ignore[misc]
    return raised.value.code.value


# --- users ----------------------------------------------------------------------------------


async def test_created_user_has_an_id_on_this_server_and_is_listed(accounts: Accounts) -> None:
    assert await accounts.create_user("alice", PASSWORD, admin=True) == "@alice:example.org"
    await accounts.create_user("bob", PASSWORD)
    users = await accounts.users()
    assert [(u.user_id, u.admin, u.deactivated, u.devices) for u in users] == [
        ("@alice:example.org", True, False, 0),
        ("@bob:example.org", False, False, 0),
    ]


@pytest.mark.parametrize("name", ["Alice", "al ice", "", "a" * 65, "alice:x", "@alice", "é"])
async def test_username_outside_the_localpart_rules_is_bad_identifier(
    accounts: Accounts, name: str
) -> None:
    assert await _code(accounts.create_user(name, PASSWORD)) == "bad_identifier"


async def test_taken_username_is_user_exists(accounts: Accounts) -> None:
    await accounts.create_user("alice", PASSWORD)
    assert await _code(accounts.create_user("alice", "another password")) == "user_exists"


@pytest.mark.parametrize("password", ["short12", "x" * 1025])
async def test_password_outside_8_to_1024_characters_is_refused(
    accounts: Accounts, password: str
) -> None:
    assert await _code(accounts.create_user("alice", password)) == "bad_params"


async def test_right_password_checks_out_and_wrong_or_unknown_are_bad_credentials(
    accounts: Accounts,
) -> None:
    await accounts.create_user("alice", PASSWORD)
    assert await accounts.check_password("alice", PASSWORD) == "@alice:example.org"
    assert await _code(accounts.check_password("alice", PASSWORD + "!")) == "bad_credentials"
    assert await _code(accounts.check_password("nobody", PASSWORD)) == "bad_credentials"
    assert await _code(accounts.check_password("Not Valid", PASSWORD)) == "bad_credentials"


async def test_unknown_user_costs_a_password_check_like_a_wrong_password(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    checked: list[str | None] = []
    accounts = Accounts(db, "example.org", password_cost="min")
    original = accounts.passwords.verify

    async def spy(stored: str | None, password: str) -> bool:
        checked.append(stored)
        return await original(stored, password)

    monkeypatch.setattr(accounts.passwords, "verify", spy)
    await accounts.create_user("alice", PASSWORD)
    for name in ("alice", "nobody", "NOT-VALID"):
        with pytest.raises(ProtocolError):
            await accounts.check_password(name, "wrong password")
    assert len(checked) == 3
    assert checked[0] is not None
    assert checked[1:] == [None, None]  # the dummy hash, same cost


async def test_deactivated_user_is_told_so_only_with_the_right_password(
    accounts: Accounts,
) -> None:
    await accounts.create_user("alice", PASSWORD)
    deactivation = await accounts.deactivate("alice")
    assert (deactivation.user_id, deactivation.already) == ("@alice:example.org", False)
    assert await _code(accounts.check_password("alice", PASSWORD)) == "user_deactivated"
    assert await _code(accounts.check_password("alice", "wrong password")) == "bad_credentials"
    assert (await accounts.users())[0].deactivated


async def test_deactivating_twice_says_already_and_an_unknown_user_is_not_found(
    accounts: Accounts,
) -> None:
    await accounts.create_user("alice", PASSWORD)
    await accounts.deactivate("alice")
    assert (await accounts.deactivate("alice")).already
    assert await _code(accounts.deactivate("nobody")) == "not_found"


async def test_deactivated_name_stays_taken(accounts: Accounts) -> None:
    await accounts.create_user("alice", PASSWORD)
    await accounts.deactivate("alice")
    assert await _code(accounts.create_user("alice", PASSWORD)) == "user_exists"


async def test_changed_password_replaces_the_old_one(accounts: Accounts) -> None:
    await accounts.create_user("alice", PASSWORD)
    assert await accounts.change_password("alice", "new password!") == 0
    assert await _code(accounts.check_password("alice", PASSWORD)) == "bad_credentials"
    assert await accounts.check_password("alice", "new password!") == "@alice:example.org"
    assert await _code(accounts.change_password("nobody", "new password!")) == "not_found"


async def test_changing_the_password_can_revoke_every_device(accounts: Accounts) -> None:
    user_id = await accounts.create_user("alice", PASSWORD)
    first = await accounts.issue_device(user_id)
    await accounts.issue_device(user_id)
    assert await accounts.change_password("alice", "new password!", revoke_devices=True) == 2
    assert await accounts.devices(user_id) == []
    assert await _code(accounts.token_owner(first.access_token)) == "bad_credentials"


async def test_database_of_another_server_name_is_detected(db: Database) -> None:
    await Accounts(db, "a.example", password_cost="min").create_user("alice", PASSWORD)
    assert await Accounts(db, "a.example").check_server_name() is None
    assert await Accounts(db, "b.example").check_server_name() == "@alice:a.example"


# --- devices and tokens ---------------------------------------------------------------------


async def test_new_device_has_ten_character_id_and_a_43_character_token(
    accounts: Accounts, clock: Clock
) -> None:
    user_id = await accounts.create_user("alice", PASSWORD)
    login = await accounts.issue_device(user_id, device_name="phone")
    assert re.fullmatch(r"[A-Z0-9]{10}", login.device_id)
    assert login.new_device
    assert len(login.access_token) == 43
    assert len(decode_base64_urlsafe(login.access_token)) == 32
    (device,) = await accounts.devices(user_id)
    assert (device.device_id, device.display_name) == (login.device_id, "phone")
    assert device.created_ts == device.last_seen_ts == clock.now


async def test_token_is_stored_only_as_its_sha256_and_the_password_only_as_argon2id(
    accounts: Accounts, db: Database
) -> None:
    login = await accounts.register("alice", PASSWORD)
    assert hash_token(login.access_token) == hashlib.sha256(login.access_token.encode()).hexdigest()

    def rows(conn: object) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
        execute = conn.execute  # type: ignore[attr-defined]
        return (
            execute("SELECT * FROM users").fetchall(),
            execute("SELECT * FROM devices").fetchall(),
        )

    users, devices = await db.read(rows)
    stored = repr(users) + repr(devices)
    assert login.access_token not in stored
    assert PASSWORD not in stored
    assert hash_token(login.access_token) in stored
    assert "$argon2id$" in repr(users)


async def test_token_names_its_device_and_authenticating_updates_last_seen(
    accounts: Accounts, clock: Clock
) -> None:
    login = await accounts.register("alice", PASSWORD)
    assert await accounts.token_owner(login.access_token) == ("@alice:example.org", login.device_id)
    clock.now += 60_000
    await accounts.token_used(login.access_token)
    (device,) = await accounts.devices("@alice:example.org")
    assert device.last_seen_ts == clock.now
    assert device.created_ts == clock.now - 60_000


async def test_unknown_token_is_bad_credentials(accounts: Accounts) -> None:
    assert await _code(accounts.token_owner("A" * 43)) == "bad_credentials"
    assert await _code(accounts.token_used("A" * 43)) == "bad_credentials"


async def test_token_of_a_deactivated_user_is_user_deactivated(accounts: Accounts) -> None:
    login = await accounts.register("alice", PASSWORD)
    deactivation = await accounts.deactivate("alice")
    assert deactivation.device_ids == (login.device_id,)
    assert await _code(accounts.token_owner(login.access_token)) == "user_deactivated"
    assert await _code(accounts.issue_device(login.user_id)) == "user_deactivated"


async def test_login_with_an_existing_device_id_replaces_its_token(
    accounts: Accounts, clock: Clock
) -> None:
    first = await accounts.register("alice", PASSWORD, device_name="laptop")
    clock.now += 1000
    again = await accounts.issue_device(first.user_id, device_id=first.device_id)
    assert (again.device_id, again.new_device) == (first.device_id, False)
    assert again.access_token != first.access_token
    assert await _code(accounts.token_owner(first.access_token)) == "bad_credentials"
    assert await accounts.token_owner(again.access_token) == (first.user_id, first.device_id)
    (device,) = await accounts.devices(first.user_id)
    assert (device.display_name, device.last_seen_ts) == ("laptop", clock.now)


async def test_login_with_a_device_id_of_another_user_makes_a_new_device(
    accounts: Accounts,
) -> None:
    bob = await accounts.register("bob", PASSWORD)
    alice = await accounts.create_user("alice", PASSWORD)
    login = await accounts.issue_device(alice, device_id=bob.device_id)
    assert login.new_device
    assert login.device_id != bob.device_id
    assert await accounts.token_owner(bob.access_token) == (bob.user_id, bob.device_id)


async def test_device_can_be_renamed_and_removed_only_by_its_user(accounts: Accounts) -> None:
    alice = await accounts.register("alice", PASSWORD)
    bob = await accounts.register("bob", PASSWORD)
    await accounts.rename_device(alice.user_id, alice.device_id, "work")
    assert [d.display_name for d in await accounts.devices(alice.user_id)] == ["work"]
    assert await _code(accounts.rename_device(bob.user_id, alice.device_id, "x")) == "not_found"
    assert await _code(accounts.remove_device(bob.user_id, alice.device_id)) == "not_found"
    await accounts.remove_device(alice.user_id, alice.device_id)
    assert await accounts.devices(alice.user_id) == []
    assert await _code(accounts.remove_device(alice.user_id, alice.device_id)) == "not_found"


async def test_devices_are_listed_oldest_first(accounts: Accounts, clock: Clock) -> None:
    user_id = await accounts.create_user("alice", PASSWORD)
    made = []
    for _ in range(3):
        made.append((await accounts.issue_device(user_id)).device_id)
        clock.now += 1
    assert [d.device_id for d in await accounts.devices(user_id)] == made


async def test_removed_devices_and_deactivated_users_are_logged_for_the_running_node(
    accounts: Accounts,
) -> None:
    alice = await accounts.register("alice", PASSWORD)
    bob = await accounts.register("bob", PASSWORD)
    carol = await accounts.register("carol", PASSWORD)
    start = await accounts.last_signout()
    await accounts.remove_device(bob.user_id, bob.device_id)
    await accounts.deactivate("carol")
    await accounts.deactivate("carol")  # already deactivated: logged once
    await accounts.change_password("alice", "another password", revoke_devices=True)
    log = await accounts.signouts_after(start)
    assert [(e.user_id, e.device_id, e.reason) for e in log] == [
        (bob.user_id, bob.device_id, SignOutReason.REVOKED),
        (carol.user_id, None, SignOutReason.USER_DEACTIVATED),
        (alice.user_id, alice.device_id, SignOutReason.REVOKED),
    ]
    assert await accounts.last_signout() == log[-1].id
    await accounts.forget_signouts(log[0].id)
    assert await accounts.signouts_after(start) == log[1:]
    assert await accounts.signouts_after(log[-1].id) == []


# --- password hashes ------------------------------------------------------------------------


async def test_interactive_cost_hashes_with_libsodiums_interactive_limits() -> None:
    hasher = PasswordHasher("interactive")
    stored = await hasher.hash(PASSWORD)
    assert stored.startswith("$argon2id$v=19$m=65536,t=2,p=1$")
    assert await hasher.verify(stored, PASSWORD)
    assert not await hasher.verify(stored, "wrong password")


async def test_malformed_stored_hash_never_matches() -> None:
    hasher = PasswordHasher("min")
    assert not await hasher.verify("$argon2id$v=19$garbage", PASSWORD)
    assert not await hasher.verify(None, PASSWORD)
