"""The account ops end to end (spec/client.md §1-§2): a real node, real SQLite, real sockets."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
import trio

from node.log import LogfmtFormatter
from protocol import OPS, Endpoint
from protocol.client_api import REQUESTS_BEFORE_AUTH
from protocol.ops import OpKind
from tests.node.session_client import (
    PASSWORD,
    client,
    node_config,
    open_accounts,
    signed_out,
    start_node,
)
from tests.node.wsclient import TIMEOUT

CLIENT_REQUESTS = sorted(
    name
    for name, spec in OPS.items()
    if spec.kind is OpKind.REQUEST and Endpoint.CLIENT in spec.endpoints
)


@pytest.fixture
async def port(nursery: trio.Nursery, tmp_path: Path) -> int:
    """A node with open registration and cheap password hashes."""
    return await start_node(nursery, node_config(tmp_path))


# --- §1 the gate ----------------------------------------------------------------------------


_SAMPLES: dict[str, Any] = {
    "room_id": "!" + "A" * 43,
    "event_id": "$" + "A" * 43,
    "user_id": "@bob:localhost",
    "device_id": "DEVICE",
}
_KIND_SAMPLES: dict[type, Any] = {str: "x", int: 0, bool: True, dict: {}, list: []}


def _valid_params(op: str) -> dict[str, Any]:
    """Required params of ``op`` that pass its schema (checked before the gate, §1)."""
    return {
        name: _SAMPLES.get(name, _KIND_SAMPLES[field.kind])
        for name, field in OPS[op].params.fields.items()
        if field.required
    }


@pytest.mark.parametrize("op", [op for op in CLIENT_REQUESTS if op not in REQUESTS_BEFORE_AUTH])
async def test_every_op_but_the_session_ones_needs_a_bound_connection(port: int, op: str) -> None:
    with trio.fail_after(TIMEOUT):
        async with client(port) as alice:
            assert await alice.error(op, **_valid_params(op)) == "not_authenticated"


async def test_register_binds_the_connection_and_the_gate_opens(port: int) -> None:
    with trio.fail_after(TIMEOUT):
        async with client(port) as alice:
            assert await alice.error("devices") == "not_authenticated"
            registered = await alice.register("alice", device_name="laptop")
            assert registered["user_id"] == "@alice:localhost"
            assert len(registered["access_token"]) == 43
            (device,) = (await alice.result("devices"))["devices"]
    assert device["device_id"] == registered["device_id"]
    assert device["display_name"] == "laptop"
    assert device["current"] is True


# --- §2 register ----------------------------------------------------------------------------


async def test_closed_registration_is_refused(nursery: trio.Nursery, tmp_path: Path) -> None:
    port = await start_node(nursery, node_config(tmp_path, registration_mode="closed"))
    with trio.fail_after(TIMEOUT):
        async with client(port) as alice:
            code = await alice.error(
                "register", username="alice", password=PASSWORD, registration_token="x" * 8
            )
            assert code == "registration_closed"
            assert await alice.error("devices") == "not_authenticated"


async def test_token_registration_needs_the_right_token(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    config = node_config(tmp_path, registration_mode="token", registration_token="let-me-in")
    port = await start_node(nursery, config)
    with trio.fail_after(TIMEOUT):
        async with client(port) as alice:
            assert await alice.error("register", username="a", password=PASSWORD) == (
                "registration_closed"
            )
            for wrong in ("let-me-i", "let-me-in!", ""):
                code = await alice.error(
                    "register", username="a", password=PASSWORD, registration_token=wrong
                )
                assert code == "registration_closed"
            result = await alice.register("alice", registration_token="let-me-in")
    assert result["user_id"] == "@alice:localhost"


@pytest.mark.parametrize("username", ["Alice", "al ice", "al:ice", "ålice"])
async def test_register_with_a_bad_username_is_bad_identifier(port: int, username: str) -> None:
    with trio.fail_after(TIMEOUT):
        async with client(port) as alice:
            assert await alice.error("register", username=username, password=PASSWORD) == (
                "bad_identifier"
            )


async def test_register_a_taken_username_is_user_exists(port: int) -> None:
    with trio.fail_after(TIMEOUT):
        async with client(port) as first, client(port) as second:
            await first.register("alice")
            assert await second.error("register", username="alice", password=PASSWORD) == (
                "user_exists"
            )
            assert await second.error("devices") == "not_authenticated"


async def test_register_with_a_short_password_is_bad_params(port: int) -> None:
    with trio.fail_after(TIMEOUT):
        async with client(port) as alice:
            assert await alice.error("register", username="alice", password="1234567") == (
                "bad_params"
            )


# --- §2 login and authenticate ---------------------------------------------------------------


async def test_login_makes_a_new_device_with_its_own_token(port: int) -> None:
    with trio.fail_after(TIMEOUT):
        async with client(port) as laptop, client(port) as phone:
            first = await laptop.register("alice")
            second = await phone.result(
                "login", username="alice", password=PASSWORD, device_name="phone"
            )
            assert second["user_id"] == "@alice:localhost"
            assert second["device_id"] != first["device_id"]
            assert second["access_token"] != first["access_token"]
            devices = (await phone.result("devices"))["devices"]
    assert [(d["device_id"], d["current"]) for d in devices] == [
        (first["device_id"], False),
        (second["device_id"], True),
    ]
    assert devices[1]["display_name"] == "phone"
    assert all(isinstance(d["created_ts"], int) and d["last_seen_ts"] > 0 for d in devices)


async def test_wrong_password_and_unknown_user_are_the_same_bad_credentials(port: int) -> None:
    with trio.fail_after(TIMEOUT):
        async with client(port) as alice:
            await alice.register("alice")
        async with client(port) as mallory:
            wrong = await mallory.request("login", username="alice", password="wrong password")
            unknown = await mallory.request("login", username="nobody", password=PASSWORD)
            malformed = await mallory.request("login", username="NOBODY", password=PASSWORD)
            assert await mallory.error("devices") == "not_authenticated"
    assert wrong["error"] == unknown["error"] == malformed["error"]
    assert wrong["error"]["code"] == "bad_credentials"


async def test_login_with_an_existing_device_id_keeps_the_device_and_replaces_the_token(
    port: int,
) -> None:
    with trio.fail_after(TIMEOUT):
        async with client(port) as alice:
            first = await alice.register("alice")
        async with client(port) as alice:
            again = await alice.result(
                "login", username="alice", password=PASSWORD, device_id=first["device_id"]
            )
            assert again["device_id"] == first["device_id"]
            assert len((await alice.result("devices"))["devices"]) == 1
        async with client(port) as stale:
            code = await stale.error("authenticate", access_token=first["access_token"])
            assert code == "bad_credentials"


async def test_authenticate_binds_a_second_connection_to_the_same_device(port: int) -> None:
    with trio.fail_after(TIMEOUT):
        async with client(port) as first:
            registered = await first.register("alice")
            async with client(port) as second:
                result = await second.result(
                    "authenticate", access_token=registered["access_token"]
                )
                assert result == {
                    "user_id": "@alice:localhost",
                    "device_id": registered["device_id"],
                }
                (device,) = (await second.result("devices"))["devices"]
                assert device["current"] is True


@pytest.mark.parametrize("token", ["A" * 43, "not a token", "x"])
async def test_authenticate_with_an_unknown_token_is_bad_credentials(port: int, token: str) -> None:
    with trio.fail_after(TIMEOUT):
        async with client(port) as mallory:
            assert await mallory.error("authenticate", access_token=token) == "bad_credentials"
            assert await mallory.error("devices") == "not_authenticated"


async def test_deactivated_user_can_neither_log_in_nor_authenticate(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    config = node_config(tmp_path)
    port = await start_node(nursery, config)
    with trio.fail_after(TIMEOUT):
        async with client(port) as alice:
            registered = await alice.register("alice")
        async with open_accounts(config) as accounts:
            await accounts.deactivate("alice")
        async with client(port) as alice:
            assert await alice.error("login", username="alice", password=PASSWORD) == (
                "user_deactivated"
            )
            assert await alice.error("login", username="alice", password="wrong password") == (
                "bad_credentials"
            )
            code = await alice.error("authenticate", access_token=registered["access_token"])
            assert code == "user_deactivated"


async def test_login_on_a_bound_connection_switches_it_to_the_new_device(port: int) -> None:
    with trio.fail_after(TIMEOUT):
        async with client(port) as conn:
            await conn.register("alice")
            await conn.register("bob")
            bob = await conn.result("login", username="bob", password=PASSWORD)
            devices = (await conn.result("devices"))["devices"]
    assert [d["current"] for d in devices] == [False, True]
    assert devices[1]["device_id"] == bob["device_id"]


# --- §1 ending a device -----------------------------------------------------------------------


async def test_logout_signs_out_every_connection_of_the_device(port: int) -> None:
    with trio.fail_after(TIMEOUT):
        async with client(port) as first, client(port) as second, client(port) as phone:
            registered = await first.register("alice")
            await second.result("authenticate", access_token=registered["access_token"])
            await phone.result("login", username="alice", password=PASSWORD)
            assert await first.result("logout") == {}
            assert first.notices == [signed_out("logout")]
            assert await second.notice() == signed_out("logout")
            assert await first.error("devices") == "not_authenticated"
            assert await second.error("devices") == "not_authenticated"
            # Another device of the user is not affected.
            assert len((await phone.result("devices"))["devices"]) == 1
            assert phone.notices == []
        async with client(port) as again:
            code = await again.error("authenticate", access_token=registered["access_token"])
            assert code == "bad_credentials"


async def test_revoke_device_signs_out_that_device_and_deletes_it(port: int) -> None:
    with trio.fail_after(TIMEOUT):
        async with client(port) as laptop, client(port) as phone:
            await laptop.register("alice")
            on_phone = await phone.result("login", username="alice", password=PASSWORD)
            assert await laptop.result("revoke_device", device_id=on_phone["device_id"]) == {}
            assert await phone.notice() == signed_out("revoked")
            assert await phone.error("devices") == "not_authenticated"
            devices = (await laptop.result("devices"))["devices"]
            assert [d["device_id"] for d in devices] != [on_phone["device_id"]]
            assert len(devices) == 1
            assert laptop.notices == []


async def test_revoking_the_current_device_signs_out_this_connection(port: int) -> None:
    with trio.fail_after(TIMEOUT):
        async with client(port) as alice:
            registered = await alice.register("alice")
            assert await alice.result("revoke_device", device_id=registered["device_id"]) == {}
            assert alice.notices == [signed_out("revoked")]
            assert await alice.error("devices") == "not_authenticated"


async def test_revoke_or_rename_of_an_unknown_or_foreign_device_is_not_found(port: int) -> None:
    with trio.fail_after(TIMEOUT):
        async with client(port) as alice, client(port) as bob:
            await alice.register("alice")
            bobs = await bob.register("bob")
            for device_id in (bobs["device_id"], "NOSUCHDEV0"):
                assert await alice.error("revoke_device", device_id=device_id) == "not_found"
                assert await alice.error(
                    "rename_device", device_id=device_id, display_name="mine now"
                ) == ("not_found")
            (device,) = (await bob.result("devices"))["devices"]
            assert device["display_name"] is None
            assert bob.notices == []


async def test_rename_device_sets_its_display_name(port: int) -> None:
    with trio.fail_after(TIMEOUT):
        async with client(port) as alice:
            registered = await alice.register("alice", device_name="laptop")
            await alice.result(
                "rename_device", device_id=registered["device_id"], display_name="work laptop"
            )
            (device,) = (await alice.result("devices"))["devices"]
    assert device["display_name"] == "work laptop"


async def test_user_deactivated_beside_the_running_node_is_signed_out(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    config = node_config(tmp_path, session_check_interval_s=0.05)
    port = await start_node(nursery, config)
    with trio.fail_after(TIMEOUT):
        async with client(port) as alice, client(port) as bob:
            await alice.register("alice")
            await bob.register("bob")
            async with open_accounts(config) as accounts:  # as `kith user deactivate` does
                await accounts.deactivate("alice")
            assert await alice.notice() == signed_out("user_deactivated")
            assert await alice.error("devices") == "not_authenticated"
            assert len((await bob.result("devices"))["devices"]) == 1
            assert bob.notices == []


async def test_device_revoked_beside_the_running_node_is_signed_out(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    config = node_config(tmp_path, session_check_interval_s=0.05)
    port = await start_node(nursery, config)
    with trio.fail_after(TIMEOUT):
        async with client(port) as alice:
            await alice.register("alice")
            async with open_accounts(config) as accounts:  # `kith user passwd --revoke-devices`
                await accounts.change_password("alice", "new password", revoke_devices=True)
            assert await alice.notice() == signed_out("revoked")


# --- logs -------------------------------------------------------------------------------------


async def test_logs_name_the_events_but_never_a_password_or_a_token(
    port: int, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="node"), trio.fail_after(TIMEOUT):
        async with client(port) as alice, client(port) as other:
            registered = await alice.register("alice")
            await other.error("login", username="alice", password="wrong password")
            phone = await other.result("login", username="alice", password=PASSWORD)
            await other.result("authenticate", access_token=registered["access_token"])
            await other.error("authenticate", access_token="A" * 43)
            await alice.result("revoke_device", device_id=phone["device_id"])
            await alice.result("logout")
    formatter = LogfmtFormatter()
    text = "\n".join(formatter.format(record) for record in caplog.records)
    for event in ("registered", "login_failed", "login", "authenticated", "device_revoked"):
        assert f"event={event} " in text
    assert "event=authenticate_failed" in text
    assert "event=logout" in text
    assert "event=signed_out" in text
    for secret in (PASSWORD, "wrong password", registered["access_token"], phone["access_token"]):
        assert secret not in text
    assert "argon2id" not in text
